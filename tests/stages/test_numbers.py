"""numbers stage: composition (touching pairs really touch), the draw of numbers, and the metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from pipeline.params import NumbersParams
from pipeline import composition
from pipeline.stages import numbers
from tests.digits import font_mnist


def _strokes(number: np.ndarray) -> int:
    return ndimage.label(number >= 128, structure=np.ones((3, 3)))[1]


def test_touching_pairs_join_and_the_others_stay_apart():
    images, _ = font_mnist(10, seed=2)
    digits = images[[0, 3, 4, 6]]
    rng = np.random.default_rng(0)
    apart = _strokes(composition.compose(digits, np.array([False, False, False]), rng))
    assert apart >= 4 and _strokes(composition.compose(digits, np.array([True, False, True]), rng)) == apart - 2
    composed = composition.compose(digits, np.array([False, False, False]), rng)
    assert composed.shape[0] == composition.ROWS and not composed[:, : composition.MARGIN].any()


def test_numbers_are_drawn_reproducibly_within_the_lengths_asked():
    params = NumbersParams(seed=3, count=200, min_digits=2, max_digits=6, touching=0.2)
    labels = np.arange(1000) % 10
    first, again = numbers.draw_numbers(labels, params), numbers.draw_numbers(labels, params)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    lengths = [len(digits) for digits, _ in first]
    assert min(lengths) == 2 and max(lengths) == 6
    pairs = np.concatenate([touching for _, touching in first])
    assert 0.15 < pairs.mean() < 0.25


def test_metrics_count_whole_numbers_digits_by_edit_distance_and_touching_ones():
    table = pd.DataFrame(
        {
            "truth": ["2026", "845", "64323", "17"],
            "read": ["2026", "85", "64328", ""],  # right; a digit lost; one misread; nothing found
            "touching": [True, True, False, False],
            "touching_pairs": [1, 1, 0, 0],
        }
    )
    assert numbers.number_metrics(table) == {
        "numbers": 4,
        "sequence_accuracy": 0.25,
        "digit_accuracy": 1 - (0 + 1 + 1 + 2) / 14,
        "count_accuracy": 0.5,
        "unreadable": 1,
        "touching_sequence_accuracy": 0.5,
        "touching_pair_share": 2 / 10,
    }
    assert numbers.edit_distance("2026", "20226") == 1 and numbers.edit_distance("", "12") == 2


def test_numbers_of_one_digit_have_no_pairs_to_touch():
    table = pd.DataFrame(
        {"truth": ["7", "3"], "read": ["7", "8"], "touching": [False, False], "touching_pairs": [0, 0]}
    )
    metrics = numbers.number_metrics(table)
    assert "touching_pair_share" not in metrics and "touching_sequence_accuracy" not in metrics
    assert metrics["sequence_accuracy"] == metrics["digit_accuracy"] == 0.5
