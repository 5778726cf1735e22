"""Scoring shared by the CNN and the baseline: metrics against hand-computed values, speed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ml.scoring import classification_metrics, predictions_table, timed_predictions
from tests.mnist_files import one_hot


def test_metrics_match_a_hand_computed_case():
    actual = np.array([0, 0, 0, 1, 1, 2] * 5 + list(range(3, 10)))
    predicted = actual.copy()
    predicted[:6] = [0, 0, 1, 1, 1, 2]  # one 0 taken for a 1
    metrics = classification_metrics(actual, one_hot(predicted))
    assert metrics["accuracy"] == pytest.approx(36 / 37)
    assert metrics["loss"] == pytest.approx(-np.log(0.91) * 36 / 37 - np.log(0.01) / 37)
    assert metrics["per_class"]["0"] == {
        "precision": 1.0,
        "recall": pytest.approx(14 / 15),
        "f1": pytest.approx(28 / 29),
    }
    assert metrics["per_class"]["1"]["precision"] == pytest.approx(10 / 11)
    assert metrics["macro_recall"] == pytest.approx((9 + 14 / 15) / 10)


def test_predictions_table_has_one_row_per_image():
    table = predictions_table(np.array([3, 4]), one_hot(np.array([3, 5]), confidence=0.55))
    assert table.to_dict("list") == {"actual": [3, 4], "predicted": [3, 5], "confidence": [0.55, 0.55]}


def test_timed_predictions_score_and_time_one_pass_after_a_warm_up_then_single_images():
    batches = []

    def predict(images: np.ndarray) -> np.ndarray:
        batches.append(len(images))
        return one_hot(images[:, 0, 0] % 10)

    images = np.arange(70, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    probabilities, speed = timed_predictions(predict, images, batch_size=32, latency_runs=5)
    assert batches == [32, 32, 32, 6, 1, 1, 1, 1, 1]  # warm-up, the 70 images in batches, 5 timed singles
    np.testing.assert_array_equal(probabilities.argmax(1), np.arange(70) % 10)
    assert set(speed) == {"throughput_images_per_s", "latency_ms_p50", "latency_ms_p95"}
    assert speed["throughput_images_per_s"] > 0
