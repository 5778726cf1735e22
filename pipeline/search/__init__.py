"""The hyperparameter search (`python -m pipeline tune`); train and record read only `handover`."""
