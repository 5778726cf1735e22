"""How this project starts MLflow's own server, for `ui` and the team's `server`."""

# MLflow's server starts a job runner and seven huey consumers for its GenAI features (online trace
# scoring, trace archival): about 2 GB of memory and seconds of CPU at every start, for nothing a
# training pipeline uses.
WITHOUT_GENAI_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
