"""evaluate stage: the trained CNN scored once on the untouched test set.

Writes test metrics (accuracy, loss, macro precision/recall/F1), per-digit precision/recall/F1,
inference speed (throughput and single-image latency), per-image predictions (DVC's confusion plot
and the compare stage read them), and figures: confusion matrix, misclassified and sample
predictions, training curves.  Nothing here chooses anything: the test set is only reported.
"""

from __future__ import annotations

import json
import logging

import keras
import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from pipeline import paths, plots
from pipeline.files import atomic_write, save_json
from pipeline.params import load_params
from pipeline.scoring import classification_metrics, inference_speed, save_predictions

log = logging.getLogger(__name__)
FIGURES = (paths.CONFUSION_PLOT, paths.MISCLASSIFIED_PLOT, paths.SAMPLES_PLOT, paths.CURVES_PLOT)


def figures(images: np.ndarray, table: pd.DataFrame, history: pd.DataFrame, kept_epoch: int, grid_size: int) -> dict:
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
        paths.CURVES_PLOT: plots.training_curves(history, kept_epoch),
    }


def main() -> None:
    params = load_params().evaluate
    images, actual = paths.load_split("test")
    model = keras.saving.load_model(paths.CNN_MODEL, safe_mode=True)
    probabilities = model.predict(images, batch_size=params.batch_size, verbose=0)
    metrics = classification_metrics(actual, probabilities)
    per_class = metrics.pop("per_class")
    speed = inference_speed(model.predict_on_batch, images, params.batch_size, params.latency_runs)

    save_json(paths.TEST_METRICS, metrics)
    save_json(paths.PER_CLASS_METRICS, per_class)
    save_json(paths.INFERENCE_SPEED, speed)
    table = save_predictions(paths.CNN_PREDICTIONS, actual, probabilities)
    with atomic_write(paths.CLASSIFICATION_REPORT) as tmp:
        tmp.write_text(classification_report(actual, table.predicted, digits=4, zero_division=0))
    kept_epoch = json.loads(paths.TRAIN_METRICS.read_text())["kept_epoch"]
    for path, figure in figures(images, table, pd.read_csv(paths.HISTORY), kept_epoch, params.grid_size).items():
        plots.save(figure, path)

    log.info(
        "test accuracy %.4f, loss %.4f, macro F1 %.4f; %s images/s, latency %s ms",
        metrics["accuracy"],
        metrics["loss"],
        metrics["macro_f1"],
        speed["throughput_images_per_s"],
        speed["latency_ms_p50"],
    )
