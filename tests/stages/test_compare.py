"""compare stage: McNemar's test against hand-computed cases, the table and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.stages import compare as stage


def paired(only_cnn: int, only_baseline: int, both: int = 50, neither: int = 5):
    cnn = np.array([True] * only_cnn + [False] * only_baseline + [True] * both + [False] * neither)
    baseline = np.array([False] * only_cnn + [True] * only_baseline + [True] * both + [False] * neither)
    return cnn, baseline


def test_mcnemar_matches_the_exact_binomial_computed_by_hand():
    # 10 vs 2 disagreements: p = 2 * P(X <= 2 | n = 12, 1/2) = 2 * (1 + 12 + 66) / 4096
    result = stage.mcnemar(*paired(10, 2))
    assert result["only_cnn_right"] == 10 and result["only_baseline_right"] == 2
    assert result["mcnemar_p_value"] == pytest.approx(158 / 4096)


def test_mcnemar_is_symmetric_and_balanced_disagreement_is_no_evidence():
    assert stage.mcnemar(*paired(2, 10))["mcnemar_p_value"] == pytest.approx(158 / 4096)
    assert stage.mcnemar(*paired(6, 6))["mcnemar_p_value"] == pytest.approx(1.0)
    assert stage.mcnemar(*paired(0, 0))["mcnemar_p_value"] == 1.0


def metrics(accuracy: float, accuracy_on_3: float) -> dict:
    return {
        "accuracy": accuracy,
        "macro_f1": 0.9,
        "train_seconds": 12.5,
        "throughput_images_per_s": 1000,
        "latency_ms_p50": 1.5,
        "params": 7850,
        "per_digit": pd.Series([100.0] * 3 + [accuracy_on_3] + [100.0] * 6),
    }


def test_per_digit_accuracy_is_each_digit_s_share_right():
    predictions = pd.DataFrame({"actual": [3, 3, 3, 3, 7], "predicted": [3, 3, 3, 8, 1]})
    assert stage.per_digit_accuracy(predictions).to_dict() == {3: 75.0, 7: 0.0}


def test_table_and_report():
    table = stage.comparison_table(metrics(0.995, 98.0), metrics(0.9257, 90.0), test_images=10_000)
    assert table.loc["test accuracy (%)"].tolist() == pytest.approx([99.5, 92.57])
    assert table.loc["errors (of 10,000)"].tolist() == [50, 743]
    assert table.loc["accuracy on 3 (%)"].tolist() == pytest.approx([98, 90])
    text = stage.report(table, stage.mcnemar(*paired(10, 2)), alpha=0.05)
    assert "| errors (of 10,000) | 50 | 743 |" in text
    assert "10 are right only for the CNN and 2 only for the baseline" in text
    assert "p = 0.0386, a real difference at the 5% level" in text
    stricter = stage.report(table, stage.mcnemar(*paired(10, 2)), alpha=0.01)  # compare.alpha decides
    assert "p = 0.0386, no evidence of a difference at the 1% level" in stricter
