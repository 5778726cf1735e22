"""The team server (`python -m pipeline server`): MLflow on PostgreSQL, with users and passwords."""
