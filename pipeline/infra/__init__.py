"""Infrastructure every layer stands on: files written atomically, the repository's paths, params.yaml's
schema and MLflow's store."""
