"""evaluate stage: the CNN's metrics and figures, from the probabilities the export stage scored once.

The export stage holds TensorFlow and scores the saved CNN on the validation split and, once, on the
untouched test set (data/predictions/cnn.npz); this stage imports no TensorFlow.  It writes
metrics/CNN.json (test and validation accuracy and loss: validation is what choices are made on, test
is only reported), per-class and macro precision/recall/F1 on the test set, per-image predictions
(DVC's confusion plot and the compare stage read them), the classification report, and figures:
confusion matrix, misclassified images (alone, and with the Grad-CAM and occlusion maps the export
stage made of them), sample predictions, training curves.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import classification_report

from pipeline.infra import paths
from pipeline.infra.files import atomic_write, load_npz, save_json
from pipeline.infra.params import load_params
from pipeline.ml.scoring import classification_metrics, most_confident_mistakes, save_predictions
from pipeline.report import plots

log = logging.getLogger(__name__)
FIGURES = (paths.CONFUSION_PLOT, paths.MISCLASSIFIED_PLOT, paths.SAMPLES_PLOT, paths.CURVES_PLOT)


def figures(
    images: np.ndarray, table: pd.DataFrame, history: pd.DataFrame, kept_epoch: int, grid_size: int, names: list[str]
) -> dict:
    """Every figure of the stage but the maps, keyed by the path it is saved to: of the test `images` and
    their predictions `table` (`predictions_table`); classes by their `names`."""
    wrong = table.loc[most_confident_mistakes(table, grid_size)]
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


def explained_mistakes(images: np.ndarray, table: pd.DataFrame, scores: dict, names: list[str]) -> Figure:
    """The most confident mistakes the export stage explained, each with its Grad-CAM and occlusion maps
    for the class read."""
    wrong = table.loc[scores["mistakes"]]
    maps = {"Grad-CAM": scores["grad_cam"], "occlusion": scores["occlusion"]}
    captions = [f"true {names[r.actual]}, read {names[r.predicted]} ({r.confidence:.0%})" for r in wrong.itertuples()]
    return plots.saliency_rows(images[wrong.index], maps, captions, "Misclassified test images: where the model looked")


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
    scores = load_npz(paths.CNN_SCORES)
    test = classification_metrics(actual, scores["test"])
    validation = classification_metrics(paths.load_split("val")[1], scores["val"])
    per_class = test["per_class"] | {"macro": {k: test[f"macro_{k}"] for k in ("precision", "recall", "f1")}}

    save_json(paths.CNN_METRICS, headline(test, validation))
    save_json(paths.PER_CLASS_METRICS, per_class)
    table = save_predictions(paths.CNN_PREDICTIONS, actual, scores["test"])
    with atomic_write(paths.CLASSIFICATION_REPORT) as tmp:
        tmp.write_text(classification_report(actual, table.predicted, digits=4, zero_division=0))
    kept_epoch = json.loads(paths.TRAIN_METRICS.read_text())["kept_epoch"]
    history = pd.read_csv(paths.HISTORY)
    for path, figure in figures(images, table, history, kept_epoch, params.grid_size, names).items():
        plots.save(figure, path)
    plots.save(explained_mistakes(images, table, scores, names), paths.EXPLAINED_PLOT)
    log.info(
        "test accuracy %.4f, loss %.4f, macro F1 %.4f (validation accuracy %.4f)",
        test["accuracy"],
        test["loss"],
        test["macro_f1"],
        validation["accuracy"],
    )
