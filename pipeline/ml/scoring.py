"""Scoring shared by the CNN and the baseline, so both report the same metrics the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, log_loss

from pipeline.infra.files import atomic_write


def classification_metrics(actual: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy, errors (images misread), loss, macro averages and per-digit precision / recall / F1."""
    predicted = probabilities.argmax(axis=1)
    report = classification_report(actual, predicted, labels=range(10), output_dict=True, zero_division=0)
    return {
        "accuracy": float(np.mean(predicted == actual)),
        "errors": int(np.sum(predicted != actual)),
        "loss": float(log_loss(actual, probabilities, labels=range(10))),
        "macro_precision": report["macro avg"]["precision"],
        "macro_recall": report["macro avg"]["recall"],
        "macro_f1": report["macro avg"]["f1-score"],
        "per_class": {
            digit: {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1-score"]}
            for digit, scores in report.items()
            if digit.isdigit()
        },
    }


def predictions_table(actual: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per test image: actual and predicted digit, and the prediction's probability."""
    return pd.DataFrame(
        {"actual": actual, "predicted": probabilities.argmax(axis=1), "confidence": probabilities.max(axis=1)}
    )


def most_confident_mistakes(table: pd.DataFrame, count: int) -> np.ndarray:
    """The indices of the first `count` rows of a predictions table that are wrong, the most confident
    first (ties: in order)."""
    wrong = table[table.actual != table.predicted]
    return wrong.sort_values("confidence", ascending=False, kind="stable").index.to_numpy()[:count]


def save_predictions(path: Path, actual: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """Writes the predictions table as CSV (what `dvc plots` reads for the confusion matrix); returns it."""
    table = predictions_table(actual, probabilities)
    with atomic_write(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    return table


def timed_predictions(
    predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int, latency_runs: int
) -> tuple[np.ndarray, dict]:
    """`predict`'s probabilities for `images` in batches, and its speed measured on that same pass:
    throughput (after a warm-up batch, which tracing and allocation slow) and the single-image
    latency (median, p95) of the first `latency_runs` images."""
    predict(images[:batch_size])
    start = time.perf_counter()
    probabilities = np.concatenate([predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    throughput = len(images) / (time.perf_counter() - start)
    latencies = []
    for image in images[:latency_runs]:
        start = time.perf_counter()
        predict(image[None])
        latencies.append(time.perf_counter() - start)
    return probabilities, {
        "throughput_images_per_s": round(throughput),
        "latency_ms_p50": round(1000 * float(np.median(latencies)), 2),
        "latency_ms_p95": round(1000 * float(np.percentile(latencies, 95)), 2),
    }
