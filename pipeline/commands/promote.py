"""`python -m pipeline promote`: point the alias `champion` at the best CNN version, chosen on validation.

Versions are ranked by the validation accuracy of the saved model (ties: lower validation loss,
then the newer version), as the latest pipeline run that used the version logged it (a version whose
execution did not finish has none, and is no candidate).  The test set chooses nothing: that run's
test accuracy is printed beside it, for information only.
Afterwards `mlflow.keras.load_model("models:/<cnn_model_name>@champion")` loads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow

from pipeline import PipelineError
from pipeline.infra import metric_names, paths, tracking
from pipeline.infra.params import load_params

CHAMPION_ALIAS = "champion"
VAL_ACCURACY, VAL_LOSS, TEST_ACCURACY = (
    metric_names.metric_name(paths.CNN_METRICS, key) for key in ("val_accuracy", "val_loss", "test_accuracy")
)


@dataclass(frozen=True)
class Candidate:
    version: int
    val_accuracy: float
    val_loss: float
    test_accuracy: float  # shown, never ranked on

    def __str__(self) -> str:
        return (
            f"version {self.version}: val accuracy {self.val_accuracy:.4f}, val loss {self.val_loss:.4f} "
            f"(test accuracy {self.test_accuracy:.4f})"
        )


def rank_versions(name: str, experiment_id: str) -> list[Candidate]:
    """Every version of model `name` that a pipeline run evaluated, best first."""
    client = mlflow.MlflowClient()
    candidates = []
    for version in client.search_model_versions(f"name = '{name}'"):
        pipeline_runs = client.search_runs(
            [experiment_id],
            f"tags.`cnn.model_uri` = 'models:/{name}/{version.version}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if pipeline_runs and VAL_ACCURACY in (metrics := pipeline_runs[0].data.metrics):
            candidates.append(
                Candidate(int(version.version), metrics[VAL_ACCURACY], metrics[VAL_LOSS], metrics[TEST_ACCURACY])
            )
    return sorted(candidates, key=lambda c: (-c.val_accuracy, c.val_loss, -c.version))


def main() -> None:
    params = load_params().mlflow
    experiment_id = tracking.use_experiment(params.experiment)
    ranking = rank_versions(params.cnn_model_name, experiment_id)
    if not ranking:
        raise PipelineError(
            f"no trained version of model '{params.cnn_model_name}' in {tracking.tracking_uri()}: run dvc repro first"
        )
    best = ranking[0]
    mlflow.MlflowClient().set_registered_model_alias(params.cnn_model_name, CHAMPION_ALIAS, str(best.version))
    print(f"{params.cnn_model_name}@{CHAMPION_ALIAS} -> {best}")
    for runner_up in ranking[1:5]:
        print(f"  runner-up: {runner_up}")
