"""evaluate stage: the trained CNN on the untouched test set, logged into the run train opened.

Writes test metrics (accuracy, loss, per-class precision/recall/F1 and macro averages), inference
speed (throughput and single-image latency), per-image predictions (DVC's confusion plot and the
compare stage read them), and figures: confusion matrix, misclassified and sample predictions,
training curves.  The registered model version gets the alias `candidate`.
"""

from __future__ import annotations

import logging
import time

import keras
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, log_loss

from pipeline import paths, plots, tracking
from pipeline.files import atomic_write, save_json
from pipeline.params import load_params

log = logging.getLogger(__name__)
CANDIDATE_ALIAS = "candidate"
FIGURES = (paths.CONFUSION_PLOT, paths.MISCLASSIFIED_PLOT, paths.SAMPLES_PLOT, paths.CURVES_PLOT)


def test_metrics(actual: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy, loss, macro averages and per-digit precision / recall / F1."""
    predicted = probabilities.argmax(axis=1)
    report = classification_report(actual, predicted, labels=range(10), output_dict=True, zero_division=0)
    return {
        "test_accuracy": float(np.mean(predicted == actual)),
        "test_loss": float(log_loss(actual, probabilities, labels=range(10))),
        "macro_precision": report["macro avg"]["precision"],
        "macro_recall": report["macro avg"]["recall"],
        "macro_f1": report["macro avg"]["f1-score"],
        "per_class": {
            digit: {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1-score"]}
            for digit, scores in report.items()
            if digit.isdigit()
        },
    }


def inference_speed(model: keras.Model, images: np.ndarray, batch_size: int, latency_runs: int) -> dict:
    """Batch throughput over `images` and single-image latency (median and 95th percentile)."""
    model.predict(images[:batch_size], batch_size=batch_size, verbose=0)  # warm-up: tracing, allocation
    start = time.perf_counter()
    model.predict(images, batch_size=batch_size, verbose=0)
    throughput = len(images) / (time.perf_counter() - start)
    latencies = []
    for image in images[:latency_runs]:
        start = time.perf_counter()
        model.predict_on_batch(image[None])
        latencies.append(time.perf_counter() - start)
    return {
        "throughput_images_per_s": round(throughput),
        "latency_ms_p50": round(1000 * float(np.median(latencies)), 2),
        "latency_ms_p95": round(1000 * float(np.percentile(latencies, 95)), 2),
    }


def predictions_table(actual: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per test image: actual and predicted digit, and the prediction's probability."""
    return pd.DataFrame(
        {"actual": actual, "predicted": probabilities.argmax(axis=1), "confidence": probabilities.max(axis=1)}
    )


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
    params = load_params().evaluate
    images, actual = paths.load_split("test")
    model = keras.saving.load_model(paths.CNN_MODEL)
    probabilities = model.predict(images, batch_size=params.batch_size, verbose=0)
    metrics = test_metrics(actual, probabilities)
    speed = inference_speed(model, images, params.batch_size, params.latency_runs)
    table = predictions_table(actual, probabilities)

    save_json(paths.TEST_METRICS, metrics)
    save_json(paths.INFERENCE_SPEED, speed)
    with atomic_write(paths.CNN_PREDICTIONS) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_write(paths.CLASSIFICATION_REPORT) as tmp:
        tmp.write_text(classification_report(actual, table.predicted, digits=4, zero_division=0))
    for path, figure in figures(images, table, pd.read_csv(paths.HISTORY), params.grid_size).items():
        plots.save(figure, path)

    run, handover = tracking.resume_run(paths.CNN_RUN)
    with run:
        per_class = {f"{m}_{d}": v for d, scores in metrics["per_class"].items() for m, v in scores.items()}
        mlflow.log_metrics({k: v for k, v in metrics.items() if k != "per_class"} | per_class | speed)
        for path in (paths.TEST_METRICS, paths.CNN_PREDICTIONS, paths.CLASSIFICATION_REPORT, *FIGURES):
            mlflow.log_artifact(str(path), artifact_path=path.parent.name)
        if handover["model_version"] is not None:
            mlflow.MlflowClient().set_registered_model_alias(
                handover["model_name"], CANDIDATE_ALIAS, handover["model_version"]
            )
    log.info(
        "test accuracy %.4f, loss %.4f, macro F1 %.4f; %s images/s, latency %s ms",
        metrics["test_accuracy"], metrics["test_loss"], metrics["macro_f1"],
        speed["throughput_images_per_s"], speed["latency_ms_p50"],
    )
