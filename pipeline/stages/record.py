"""record stage: the execution's one MLflow pipeline run, exactly as its outputs stand.

DVC runs this last stage whenever anything upstream changed (its deps are every metrics and report
file, the models, the training hand-overs and every params section) and skips it when nothing did,
so each `dvc repro` / `dvc exp run` that runs a stage yields exactly one new pipeline run, and one
that runs nothing adds none.  The run holds every key of params.yaml, every metrics file (those of
stages DVC skipped included), the per-epoch curves of the model used, the reports and figures, and
tags: commit, DVC experiment, md5 of the data and models (as in dvc.lock), data digest, and links
to the training runs and model versions used.  A training run made in this same execution is
nested under it, and the run itself, when the experiment is a trial of a search, under the study run.
Nothing writes to the run afterwards.
"""

from __future__ import annotations

import json
import logging
import os

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from pipeline.infra import metric_names, paths, tracking
from pipeline.infra.files import file_digest, save_json
from pipeline.infra.params import PARAMS_FILE, load_params
from pipeline.infra.yaml_files import read_yaml
from pipeline.search.handover import current_trial

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
METRICS = (  # the order of dvc.yaml's top-level `metrics:`
    paths.CNN_METRICS,
    paths.TRAIN_METRICS,
    paths.PER_CLASS_METRICS,
    paths.EXPORT_METRICS,
    paths.EXPLAIN_METRICS,
    paths.PHOTOS_METRICS,
    paths.SEGMENTER_METRICS,
    paths.NUMBERS_METRICS,
    paths.BASELINE_METRICS,
    paths.COMPARE_METRICS,
    paths.DATA_METRICS,
    paths.TRAIN_SPEED,
    paths.INFERENCE_SPEED,
    paths.EXPORT_SPEED,
    paths.BASELINE_SPEED,
)
REPORTS = (
    paths.HISTORY,
    paths.CNN_PREDICTIONS,
    paths.BASELINE_PREDICTIONS,
    paths.CLASSIFICATION_REPORT,
    paths.COMPARISON_REPORT,
    paths.CLASS_COUNTS,
    paths.CLASS_DISTRIBUTION_PLOT,
    paths.CURVES_PLOT,
    paths.CONFUSION_PLOT,
    paths.MISCLASSIFIED_PLOT,
    paths.SAMPLES_PLOT,
    paths.COMPARISON_PLOT,
    paths.PHOTOS_PLOT,
    paths.EXPLAINED_PLOT,
    paths.NUMBERS_PLOT,
    paths.NUMBERS_READ,
    paths.MODEL_CARD,
    paths.CONFUSED_PLOT,
)
FINGERPRINTED = (
    paths.RAW_DATA,
    *map(paths.split_file, paths.SPLITS),
    paths.PHOTOS,
    paths.NUMBER_PHOTOS,
    paths.OUTSIDE_PHOTOS,
    paths.CNN_MODEL,
    paths.ONNX_MODEL,
    paths.INT8_MODEL,
    paths.TOUCHING_MODEL,
    paths.BASELINE_MODEL,
)
TRAININGS = {"cnn": paths.CNN_RUN, "baseline": paths.BASELINE_RUN}


def run_tags(trainings: dict[str, dict]) -> dict[str, str]:
    """The pipeline run's tags: its code and experiment, the md5 of data and models, the data
    digest, and the training runs and model versions it used."""
    tags = tracking.run_tags("pipeline") | {f"dvc.md5.{path}": file_digest(path, "md5") for path in FINGERPRINTED}
    tags["data_digest"] = json.loads(paths.RAW_MANIFEST.read_text())["content_digest"]
    if trial := current_trial():
        tags |= {PARENT_TAG: trial.study_run_id, "optuna.study": trial.study, "optuna.trial": str(trial.number)}
    for role, handover in trainings.items():
        tags[f"{role}.run_id"] = handover["run_id"]
        if handover["model_version"] is not None:
            tags[f"{role}.model_uri"] = f"models:/{handover['model_name']}/{handover['model_version']}"
    return tags


def description(experiment_id: str, trainings: dict[str, dict]) -> str:
    """The run page's note: links to the training runs."""
    links = [
        f"[{role} training run](#/experiments/{experiment_id}/runs/{h['run_id']})" for role, h in trainings.items()
    ]
    return "Pipeline run: params, metrics and reports of this execution's outputs. " + ", ".join(links)


def nest_fresh_trainings(run_id: str, trainings: dict[str, dict]) -> None:
    """Nest under this pipeline run the training runs this execution made: those of this DVC
    experiment (or of none, outside `dvc exp`) not yet nested.  A reused training stays where it is."""
    client = mlflow.MlflowClient()
    for handover in trainings.values():
        try:
            tags = client.get_run(handover["run_id"]).data.tags
        except MlflowException:  # results pulled from a DVC remote, trained against another store
            log.warning("training run %s is not in %s: not nested", handover["run_id"], tracking.tracking_uri())
            continue
        if PARENT_TAG not in tags and tags.get(tracking.EXPERIMENT_TAG) == os.environ.get("DVC_EXP_NAME"):
            client.set_tag(handover["run_id"], PARENT_TAG, run_id)


def main() -> None:
    params = load_params()
    experiment_id = tracking.use_experiment(params.mlflow.experiment)  # fails before any work
    trainings = {role: json.loads(path.read_text()) for role, path in TRAININGS.items()}
    flat_params = metric_names.run_params(read_yaml(PARAMS_FILE))
    files = {path: json.loads(path.read_text()) for path in METRICS}
    metrics, notes = metric_names.metrics_of(files), metric_names.notes_of(files)
    history = pd.read_csv(paths.HISTORY)
    with tracking.start_run(tracking.run_name(), run_tags(trainings) | notes) as run:
        mlflow.set_tag("mlflow.note.content", description(experiment_id, trainings))
        mlflow.log_params(flat_params)
        mlflow.log_metrics(metrics)
        for epoch in history.to_dict("records"):
            mlflow.log_metrics(metric_names.epoch_metrics(epoch), step=int(epoch["epoch"]))
        for path in (*METRICS, *REPORTS, paths.ONNX_MODEL, paths.INT8_MODEL):
            mlflow.log_artifact(str(path), artifact_path=str(path.parent))
        nest_fresh_trainings(run.info.run_id, trainings)
    save_json(paths.PIPELINE_RUN, {"run_id": run.info.run_id, "run_name": run.info.run_name})
    log.info(
        "MLflow pipeline run %s (%s): %d params, %d metrics",
        run.info.run_name,
        run.info.run_id,
        len(flat_params),
        len(metrics),
    )
