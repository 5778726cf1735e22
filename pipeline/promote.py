"""`python -m pipeline promote`: point the alias `champion` at the best evaluated CNN version.

"Best" is the highest test accuracy logged by the evaluate stage (ties: lower test loss, then the
newer version).  Afterwards `mlflow.keras.load_model("models:/<cnn_model_name>@champion")` loads it.
"""

from __future__ import annotations

import mlflow

from pipeline import PipelineError, tracking
from pipeline.params import load_params

CHAMPION_ALIAS = "champion"


def rank_versions(name: str) -> list[tuple[float, float, int]]:
    """(test accuracy, test loss, version) of every evaluated version of model `name`, best first."""
    client = mlflow.MlflowClient()
    scored = []
    for version in client.search_model_versions(f"name = '{name}'"):
        metrics = client.get_run(version.run_id).data.metrics
        if "test_accuracy" in metrics:
            scored.append((metrics["test_accuracy"], metrics["test_loss"], int(version.version)))
    return sorted(scored, key=lambda s: (-s[0], s[1], -s[2]))


def main() -> None:
    params = load_params().mlflow
    tracking.use_experiment(params.experiment)
    ranking = rank_versions(params.cnn_model_name)
    if not ranking:
        raise PipelineError(
            f"no evaluated version of model '{params.cnn_model_name}' in {tracking.tracking_uri()}: run dvc repro first"
        )
    accuracy, loss, version = ranking[0]
    mlflow.MlflowClient().set_registered_model_alias(params.cnn_model_name, CHAMPION_ALIAS, str(version))
    print(
        f"{params.cnn_model_name}@{CHAMPION_ALIAS} -> version {version}: test accuracy {accuracy:.4f}, loss {loss:.4f}"
    )
    for accuracy, loss, version in ranking[1:5]:
        print(f"  runner-up: version {version}: test accuracy {accuracy:.4f}, loss {loss:.4f}")
