"""evaluate stage: metrics against hand-computed values, predictions table, figures, speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import evaluate as stage
from pipeline import models, paths
from pipeline.params import AugmentParams


def one_hot(digits, confidence=0.91):
    probabilities = np.full((len(digits), 10), (1 - confidence) / 9)
    probabilities[np.arange(len(digits)), digits] = confidence
    return probabilities


def test_metrics_match_a_hand_computed_case():
    actual = np.array([0, 0, 0, 1, 1, 2] * 5 + list(range(3, 10)))
    predicted = actual.copy()
    predicted[:6] = [0, 0, 1, 1, 1, 2]  # one 0 taken for a 1
    metrics = stage.test_metrics(actual, one_hot(predicted))
    assert metrics["test_accuracy"] == pytest.approx(36 / 37)
    assert metrics["test_loss"] == pytest.approx(-np.log(0.91) * 36 / 37 - np.log(0.01) / 37)
    assert metrics["per_class"]["0"] == {"precision": 1.0, "recall": pytest.approx(14 / 15), "f1": pytest.approx(28 / 29)}
    assert metrics["per_class"]["1"]["precision"] == pytest.approx(10 / 11)
    assert metrics["macro_recall"] == pytest.approx((9 + 14 / 15) / 10)


def test_predictions_table_has_one_row_per_image():
    table = stage.predictions_table(np.array([3, 4]), one_hot(np.array([3, 5]), confidence=0.55))
    assert table.to_dict("list") == {"actual": [3, 4], "predicted": [3, 5], "confidence": [0.55, 0.55]}


def test_figures_show_the_most_confident_mistakes_first():
    images = np.zeros((30, 28, 28), np.uint8)
    actual = np.arange(30) % 10
    predicted = actual.copy()
    predicted[[4, 7]] = 0
    probabilities = one_hot(predicted)
    probabilities[7] = one_hot(np.array([0]), confidence=0.99)
    table = stage.predictions_table(actual, probabilities)
    history = pd.DataFrame({"epoch": [1, 2], "accuracy": [0.9, 0.95], "loss": [0.3, 0.2], "val_accuracy": [0.9, 0.96],
                            "val_loss": [0.3, 0.1], "learning_rate": [1e-3, 0.0]})
    figures = stage.figures(images, table, history, grid_size=9)
    assert set(figures) == set(stage.FIGURES)
    mistakes = figures[paths.MISCLASSIFIED_PLOT]
    titles = [axes.get_title() for axes in mistakes.axes if axes.get_title()]
    assert titles == ["true 7, pred 0\n99%", "true 4, pred 0\n91%"]
    assert mistakes.get_suptitle() == "The 2 most confident mistakes"


def test_inference_speed_is_measured():
    model = models.build("tiny", AugmentParams(enabled=False, rotation_deg=0, shift=0, zoom=0))
    speed = stage.inference_speed(model, np.zeros((64, 28, 28), np.uint8), batch_size=32, latency_runs=5)
    assert speed["throughput_images_per_s"] > 0
    assert 0 < speed["latency_ms_p50"] <= speed["latency_ms_p95"]
