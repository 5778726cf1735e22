"""The hyperparameter search (`python -m pipeline tune`); train and record import only `handover`, which imports no search library."""
