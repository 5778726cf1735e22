"""compare stage: the CNN against the logistic-regression baseline on the same test images.

Besides the side-by-side table, McNemar's test says whether the difference is more than luck: it
looks only at the images exactly one of the two models gets right, and asks how likely so lopsided
a split would be if both were equally good (exact binomial form, valid for any count).  The
results go to reports/comparison.md, metrics/compare.json and reports/comparison.png.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from pipeline import PipelineError
from pipeline.infra import paths
from pipeline.infra.files import atomic_write, save_json
from pipeline.infra.params import load_params
from pipeline.report import plots

log = logging.getLogger(__name__)


def mcnemar(cnn_correct: np.ndarray, baseline_correct: np.ndarray) -> dict[str, float | int]:
    """Exact McNemar test on paired per-image outcomes (True = right)."""
    only_cnn = int(np.sum(cnn_correct & ~baseline_correct))
    only_baseline = int(np.sum(~cnn_correct & baseline_correct))
    disagreements = only_cnn + only_baseline
    p_value = binomtest(min(only_cnn, only_baseline), disagreements, 0.5).pvalue if disagreements else 1.0
    return {"only_cnn_right": only_cnn, "only_baseline_right": only_baseline, "mcnemar_p_value": float(p_value)}


def per_digit_accuracy(predictions: pd.DataFrame) -> pd.Series:
    """The share of each digit's test images predicted right (its recall), in %."""
    return 100 * (predictions.actual == predictions.predicted).groupby(predictions.actual).mean()


def comparison_table(cnn: dict, baseline: dict, test_images: int) -> pd.DataFrame:
    """One row per figure, one column per model; each model's dict holds its metrics and `per_digit`."""
    rows = {
        "test accuracy (%)": lambda m: 100 * m["accuracy"],
        "macro F1": lambda m: m["macro_f1"],
        f"errors (of {test_images:,})": lambda m: round((1 - m["accuracy"]) * test_images),
        "train time (s)": lambda m: m["train_seconds"],
        "inference (images/s)": lambda m: m["throughput_images_per_s"],
        "latency, 1 image (ms)": lambda m: m["latency_ms_p50"],
        "parameters": lambda m: m["params"],
    } | {f"accuracy on {d} (%)": (lambda m, d=d: m["per_digit"][d]) for d in range(10)}
    return pd.DataFrame({name: [row(cnn), row(baseline)] for name, row in rows.items()}, index=["CNN", "baseline"]).T


def report(table: pd.DataFrame, test: dict, alpha: float) -> str:
    """reports/comparison.md: the table and what McNemar's test says at level `alpha`."""
    lines = ["# CNN vs logistic-regression baseline", "", "| | CNN | baseline |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {_cell(row['CNN'])} | {_cell(row['baseline'])} |" for name, row in table.iterrows()]
    p_value = test["mcnemar_p_value"]
    verdict = "a real difference" if p_value < alpha else "no evidence of a difference"
    lines += [
        "",
        (
            f"On the same test images, {test['only_cnn_right']} are right only for the CNN and "
            f"{test['only_baseline_right']} only for the baseline. McNemar's exact test: "
            f"p {'< 1e-300' if p_value == 0 else f'= {p_value:.3g}'}, {verdict} at the {alpha * 100:g}% level."
        ),
    ]
    return "\n".join(lines) + "\n"


def _cell(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def main() -> None:
    everything = load_params()
    params, dataset = everything.compare, everything.data.current
    cnn_predictions, baseline_predictions = pd.read_csv(paths.CNN_PREDICTIONS), pd.read_csv(paths.BASELINE_PREDICTIONS)
    if not cnn_predictions["actual"].equals(baseline_predictions["actual"]):
        raise PipelineError(
            f"{paths.CNN_PREDICTIONS} and {paths.BASELINE_PREDICTIONS} do not list the same test images"
        )
    headline, per_class = (json.loads(path.read_text()) for path in (paths.CNN_METRICS, paths.PER_CLASS_METRICS))
    cnn = {"accuracy": headline["test_accuracy"], "macro_f1": per_class["macro"]["f1"]}
    cnn |= _read(paths.TRAIN_METRICS, paths.TRAIN_SPEED, paths.INFERENCE_SPEED)
    baseline = _read(paths.BASELINE_METRICS, paths.BASELINE_SPEED)
    cnn["per_digit"], baseline["per_digit"] = map(per_digit_accuracy, (cnn_predictions, baseline_predictions))
    test = mcnemar(
        (cnn_predictions.actual == cnn_predictions.predicted).to_numpy(),
        (baseline_predictions.actual == baseline_predictions.predicted).to_numpy(),
    )
    table = comparison_table(cnn, baseline, len(cnn_predictions))
    baseline_errors = 1 - baseline["accuracy"]
    metrics = test | {
        "accuracy_gain_pt": round(100 * (cnn["accuracy"] - baseline["accuracy"]), 2),
        "error_reduction": round(1 - (1 - cnn["accuracy"]) / baseline_errors, 4) if baseline_errors else 0.0,
    }

    save_json(paths.COMPARE_METRICS, metrics)
    with atomic_write(paths.COMPARISON_REPORT) as tmp:
        tmp.write_text(report(table, test, params.alpha))
    per_class = table.loc[[name for name in table.index if name.startswith("accuracy on")]]
    by_name = per_class.set_axis(dataset.classes)
    plots.save(plots.comparison(100 - by_name, dataset.class_noun), paths.COMPARISON_PLOT)
    log.info(
        "CNN %.2f%% vs baseline %.2f%%: McNemar p = %.3g",
        100 * cnn["accuracy"],
        100 * baseline["accuracy"],
        test["mcnemar_p_value"],
    )


def _read(*files: Path) -> dict:
    """The metrics files merged into one dict."""
    return {key: value for path in files for key, value in json.loads(path.read_text()).items()}
