"""evaluate stage: the saved CNN scored on the validation split and, once, on the untouched test set.

Writes metrics/CNN.json (test and validation accuracy and loss: validation is what choices are made
on, test is only reported), per-digit and macro precision/recall/F1 on the test set, inference speed
(throughput, timed on the scoring pass itself, and single-image latency), per-image predictions
(DVC's confusion plot and the compare stage read them), the test probabilities (the export's
reference), the saliency maps' deletion test on the first `explain_images` test digits
(metrics/CNN/explain.json, pipeline.ml.explain), and figures: confusion matrix, misclassified digits
(alone and with their Grad-CAM and occlusion maps), sample predictions, training curves.
"""

from __future__ import annotations

import json
import logging

import keras
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import classification_report

from pipeline.infra import paths
from pipeline.infra.files import atomic_write, save_json, save_npz
from pipeline.infra.params import EvaluateParams, load_params
from pipeline.ml import explain, training
from pipeline.ml.predictors import keras_predictor
from pipeline.ml.scoring import classification_metrics, save_predictions, timed_predictions
from pipeline.report import plots

log = logging.getLogger(__name__)
FIGURES = (paths.CONFUSION_PLOT, paths.MISCLASSIFIED_PLOT, paths.SAMPLES_PLOT, paths.CURVES_PLOT)


def figures(
    images: np.ndarray, table: pd.DataFrame, history: pd.DataFrame, kept_epoch: int, grid_size: int, names: list[str]
) -> dict:
    """Every figure of the stage but the maps, keyed by the path it is saved to; classes by their `names`."""
    wrong = most_confident_mistakes(table, grid_size)
    sample = table.head(grid_size)
    between = ", " if max(map(len, names)) <= 2 else "\n"  # a garment's name fills a cell: a line each
    return {
        paths.CONFUSION_PLOT: plots.confusion_matrix(table.actual.to_numpy(), table.predicted.to_numpy(), names),
        paths.MISCLASSIFIED_PLOT: plots.digit_grid(
            images[wrong.index],
            [
                f"true {names[r.actual]}{between}pred {names[r.predicted]}\n{r.confidence:.0%}"
                for r in wrong.itertuples()
            ],
            np.ones(len(wrong), bool),
            f"The {len(wrong)} most confident mistakes",
        ),
        paths.SAMPLES_PLOT: plots.digit_grid(
            images[sample.index],
            [f"pred {names[r.predicted]} ({r.confidence:.0%})" for r in sample.itertuples()],
            (sample.actual != sample.predicted).to_numpy(),
            f"The first {len(sample)} test images (mistakes in red)",
        ),
        paths.CURVES_PLOT: plots.training_curves(history, kept_epoch),
    }


def explained_mistakes(
    model, images: np.ndarray, table: pd.DataFrame, params: EvaluateParams, names: list[str]
) -> Figure:
    """The `explained_mistakes` most confident mistakes, each with its Grad-CAM and occlusion maps for
    the digit read (`model`: the Keras model)."""
    wrong = most_confident_mistakes(table, params.explained_mistakes)
    digits, classes = images[wrong.index], wrong.predicted.to_numpy()
    occluded = explain.occlusion(
        keras_predictor(model), digits, classes, params.occlusion_patch, params.occlusion_stride
    )
    maps = {"Grad-CAM": explain.grad_cam(model, digits, classes), "occlusion": occluded}
    captions = [f"true {names[r.actual]}, read {names[r.predicted]} ({r.confidence:.0%})" for r in wrong.itertuples()]
    return plots.saliency_rows(digits, maps, captions, "Misclassified test digits: where the model looked")


def most_confident_mistakes(table: pd.DataFrame, count: int) -> pd.DataFrame:
    """The first `count` rows of the predictions table that are wrong, most confident first."""
    return table[table.actual != table.predicted].sort_values("confidence", ascending=False).head(count)


def deletion_test(model, digits: np.ndarray, classes: np.ndarray, params: EvaluateParams) -> dict:
    """The deletion test of occlusion's and Grad-CAM's maps for `classes` (those read) against a
    random order, on `digits`."""
    predictor = keras_predictor(model)
    maps = {
        "occlusion": explain.occlusion(predictor, digits, classes, params.occlusion_patch, params.occlusion_stride),
        "grad_cam": explain.grad_cam(model, digits, classes),
    }
    return explain.deletion_test(predictor, digits, classes, maps, params.explain_seed, params.deletion_steps)


def headline(test: dict, validation: dict) -> dict:
    """metrics/CNN.json: test accuracy and loss first (dvc exp show's first columns), then validation's,
    then the errors of each, named so that MLflow, which sorts a group's charts by name, charts them
    first: a count its bar chart shows exactly, where it rounds 0.9952 to 1.00."""
    scores = {"test": test, "val": validation}
    return {f"{split}_{key}": scores[split][key] for split in scores for key in ("accuracy", "loss")} | {
        f"errors_{split}": scores[split]["errors"] for split in scores
    }


def main() -> None:
    everything = load_params()
    params, names = everything.evaluate, everything.data.current.classes
    images, actual = paths.load_split("test")
    model = keras.saving.load_model(paths.CNN_MODEL, safe_mode=True)
    probabilities, speed = timed_predictions(model.predict_on_batch, images, params.batch_size, params.latency_runs)
    test = classification_metrics(actual, probabilities)
    validation = training.validation_metrics(model, paths.load_split("val"), params.batch_size)
    per_class = test["per_class"] | {"macro": {k: test[f"macro_{k}"] for k in ("precision", "recall", "f1")}}

    save_json(paths.CNN_METRICS, headline(test, validation))
    save_json(paths.PER_CLASS_METRICS, per_class)
    save_json(paths.INFERENCE_SPEED, speed)
    save_npz(paths.TEST_PROBABILITIES, {"probabilities": probabilities})
    table = save_predictions(paths.CNN_PREDICTIONS, actual, probabilities)
    with atomic_write(paths.CLASSIFICATION_REPORT) as tmp:
        tmp.write_text(classification_report(actual, table.predicted, digits=4, zero_division=0))
    explained = table.head(params.explain_images)
    save_json(
        paths.EXPLAIN_METRICS, deletion_test(model, images[explained.index], explained.predicted.to_numpy(), params)
    )
    kept_epoch = json.loads(paths.TRAIN_METRICS.read_text())["kept_epoch"]
    history = pd.read_csv(paths.HISTORY)
    for path, figure in figures(images, table, history, kept_epoch, params.grid_size, names).items():
        plots.save(figure, path)
    plots.save(explained_mistakes(model, images, table, params, names), paths.EXPLAINED_PLOT)

    log.info(
        "test accuracy %.4f, loss %.4f, macro F1 %.4f (validation accuracy %.4f); %s images/s, latency %s ms",
        test["accuracy"],
        test["loss"],
        test["macro_f1"],
        validation["accuracy"],
        speed["throughput_images_per_s"],
        speed["latency_ms_p50"],
    )
