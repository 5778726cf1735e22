"""`python -m pipeline promote`: point the alias `champion` at the best CNN version, chosen on validation.

Only versions validated on the current params' validation split compete: the split that dvc.lock
records for the preprocess stage, matched by its md5 against the md5 each pipeline run logged
(tag `dvc.md5.data/processed/val.npz`).  A version validated on another split (a `preprocess.subset`
experiment's 10 images, another seed's split) is listed apart with its split, and never aliased:
100% on 10 images says nothing against 99.4% on 6,000.  Among comparable versions, the validation
accuracy of the saved model ranks (ties: lower validation loss, then the newer version), as the latest
pipeline run that used the version logged it (a version whose execution did not finish has none, and
is no candidate).  The test set chooses nothing: that run's test accuracy is printed beside it, for
information only.  Afterwards `mlflow.keras.load_model("models:/<cnn_model_name>@champion")` loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import yaml

from pipeline import PipelineError
from pipeline.infra import metric_names, paths, tracking
from pipeline.infra.params import load_params
from pipeline.infra.yaml_files import read_yaml

CHAMPION_ALIAS = "champion"
VAL_ACCURACY, VAL_LOSS, TEST_ACCURACY = (
    metric_names.metric_name(paths.CNN_METRICS, key) for key in ("val_accuracy", "val_loss", "test_accuracy")
)
VAL_IMAGES = metric_names.metric_name(paths.DATA_METRICS, "val")
VAL_SPLIT = paths.split_file("val")
VAL_SPLIT_TAG = f"dvc.md5.{VAL_SPLIT}"  # as the record stage tags every pipeline run
LOCK_FILE = Path("dvc.lock")


@dataclass(frozen=True)
class Candidate:
    version: int
    val_accuracy: float
    val_loss: float
    test_accuracy: float  # shown, never ranked on
    val_split: str  # md5 of the validation split it was scored on
    val_images: int

    def __str__(self) -> str:
        return (
            f"version {self.version}: val accuracy {self.val_accuracy:.4f}, val loss {self.val_loss:.4f} "
            f"on {self.val_images:,} images (test accuracy {self.test_accuracy:.4f})"
        )


def current_val_split(lock_file: Path = LOCK_FILE) -> str:
    """md5 of the validation split of the current params, as dvc.lock records the preprocess stage's output."""
    try:
        outs = read_yaml(lock_file)["stages"]["preprocess"]["outs"]
        return next(out["md5"] for out in outs if out["path"] == str(VAL_SPLIT))
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration):
        raise PipelineError(
            f"{lock_file}: no md5 of {VAL_SPLIT} under stages.preprocess.outs: run dvc repro first"
        ) from None


def evaluated_versions(name: str, experiment_id: str) -> list[Candidate]:
    """Every version of model `name` that a pipeline run evaluated, as its latest such run logged it."""
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
                Candidate(
                    int(version.version),
                    metrics[VAL_ACCURACY],
                    metrics[VAL_LOSS],
                    metrics[TEST_ACCURACY],
                    pipeline_runs[0].data.tags.get(VAL_SPLIT_TAG, "not recorded"),
                    int(metrics.get(VAL_IMAGES, 0)),
                )
            )
    return candidates


def rank_versions(candidates: list[Candidate], val_split: str) -> tuple[list[Candidate], list[Candidate]]:
    """Those validated on `val_split`, best first; and the others, which are not comparable."""
    comparable = [c for c in candidates if c.val_split == val_split]
    apart = [c for c in candidates if c.val_split != val_split]
    return sorted(comparable, key=lambda c: (-c.val_accuracy, c.val_loss, -c.version)), apart


def main() -> None:
    params = load_params().mlflow
    experiment_id = tracking.use_experiment(params.experiment)
    val_split = current_val_split()
    ranking, apart = rank_versions(evaluated_versions(params.cnn_model_name, experiment_id), val_split)
    if not ranking:
        raise PipelineError(
            f"no version of model '{params.cnn_model_name}' in {tracking.tracking_uri()} was validated on the "
            f"current validation split ({VAL_SPLIT}, md5 {val_split}): run dvc repro first"
        )
    best = ranking[0]
    mlflow.MlflowClient().set_registered_model_alias(params.cnn_model_name, CHAMPION_ALIAS, str(best.version))
    print(f"{params.cnn_model_name}@{CHAMPION_ALIAS} -> {best}")
    for runner_up in ranking[1:5]:
        print(f"  runner-up: {runner_up}")
    if apart:
        print(f"Not compared: {len(apart)} validated on another split than {VAL_SPLIT} (md5 {val_split}):")
        for other in sorted(apart, key=lambda c: -c.version)[:5]:
            print(f"  {other}, split md5 {other.val_split}")
