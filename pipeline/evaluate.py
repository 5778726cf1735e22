"""evaluate stage: the trained CNN on the untouched test set, logged into the run train opened.

Writes test metrics (accuracy, loss, per-class precision/recall/F1 and macro averages), inference
speed (throughput and single-image latency), per-image predictions (DVC's confusion plot and the
compare stage read them), and figures: confusion matrix, misclassified and sample predictions,
training curves.  The registered model version gets the alias `candidate`.
"""

from __future__ import annotations

import logging

import keras
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from pipeline import paths, plots, tracking
from pipeline.files import atomic_write, save_json
from pipeline.params import load_params
from pipeline.scoring import classification_metrics, inference_speed, mlflow_metrics, save_predictions

log = logging.getLogger(__name__)
CANDIDATE_ALIAS = "candidate"
FIGURES = (paths.CONFUSION_PLOT, paths.MISCLASSIFIED_PLOT, paths.SAMPLES_PLOT, paths.CURVES_PLOT)


def figures(images: np.ndarray, table: pd.DataFrame, history: pd.DataFrame, grid_size: int) -> dict:
    """Every figure of the stage, keyed by the path it is saved to."""
    wrong = table[table.actual != table.predicted].sort_values("confidence", ascending=False).head(grid_size)
    sample = table.head(grid_size)
    return {
        paths.CONFUSION_PLOT: plots.confusion_matrix(table.actual.to_numpy(), table.predicted.to_numpy()),
        paths.MISCLASSIFIED_PLOT: plots.digit_grid(
            images[wrong.index],
            [f"true {r.actual}, pred {r.predicted}\n{r.confidence:.0%}" for r in wrong.itertuples()],
            np.ones(len(wrong), bool),
            f"The {len(wrong)} most confident mistakes",
        ),
        paths.SAMPLES_PLOT: plots.digit_grid(
            images[sample.index],
            [f"pred {r.predicted} ({r.confidence:.0%})" for r in sample.itertuples()],
            (sample.actual != sample.predicted).to_numpy(),
            f"The first {len(sample)} test images (mistakes in red)",
        ),
        paths.CURVES_PLOT: plots.training_curves(history),
    }


def main() -> None:
    all_params = load_params()
    params, experiment = all_params.evaluate, all_params.mlflow.experiment
    images, actual = paths.load_split("test")
    model = keras.saving.load_model(paths.CNN_MODEL, safe_mode=True)
    probabilities = model.predict(images, batch_size=params.batch_size, verbose=0)
    metrics = classification_metrics(actual, probabilities)
    speed = inference_speed(model.predict_on_batch, images, params.batch_size, params.latency_runs)

    save_json(paths.TEST_METRICS, metrics)
    save_json(paths.INFERENCE_SPEED, speed)
    table = save_predictions(paths.CNN_PREDICTIONS, actual, probabilities)
    with atomic_write(paths.CLASSIFICATION_REPORT) as tmp:
        tmp.write_text(classification_report(actual, table.predicted, digits=4, zero_division=0))
    for path, figure in figures(images, table, pd.read_csv(paths.HISTORY), params.grid_size).items():
        plots.save(figure, path)

    with tracking.resumed_run(paths.CNN_RUN, experiment) as handover:
        if handover:
            mlflow.log_metrics(mlflow_metrics(metrics) | speed)
            for path in (paths.TEST_METRICS, paths.CNN_PREDICTIONS, paths.CLASSIFICATION_REPORT, *FIGURES):
                mlflow.log_artifact(str(path), artifact_path=path.parent.name)
            if handover["model_version"] is not None:
                mlflow.MlflowClient().set_registered_model_alias(
                    handover["model_name"], CANDIDATE_ALIAS, handover["model_version"]
                )
    log.info(
        "test accuracy %.4f, loss %.4f, macro F1 %.4f; %s images/s, latency %s ms",
        metrics["test_accuracy"],
        metrics["test_loss"],
        metrics["macro_f1"],
        speed["throughput_images_per_s"],
        speed["latency_ms_p50"],
    )
