"""compose and numbers stages: the draw of numbers, what a small test split refuses, and the metrics."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.infra.params import NumbersParams
from pipeline.stages import compose, numbers
from tests.digits import font_mnist


def test_numbers_are_drawn_reproducibly_within_the_lengths_asked():
    params = NumbersParams(
        seed=3, count=200, min_digits=2, max_digits=6, touching=0.2, outside_numbers=0, outside_digits=0
    )
    labels = np.arange(1000) % 10
    first, again = compose.draw_numbers(labels, params), compose.draw_numbers(labels, params)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    lengths = [len(digits) for digits, _ in first]
    assert min(lengths) == 2 and max(lengths) == 6
    pairs = np.concatenate([touching for _, touching in first])
    assert 0.15 < pairs.mean() < 0.25


def test_a_test_split_smaller_than_a_number_is_refused_naming_the_key():
    params = NumbersParams(
        seed=3, count=5, min_digits=2, max_digits=6, touching=0.2, outside_numbers=0, outside_digits=0
    )
    with pytest.raises(PipelineError, match=r"numbers.max_digits = 6 needs at least that many test images.* has 5"):
        compose.draw_numbers(np.arange(5), params)


def test_photos_are_the_jpeg_files_one_after_another():
    params = NumbersParams(
        seed=3, count=4, min_digits=1, max_digits=3, touching=0.5, outside_numbers=0, outside_digits=0
    )
    images, labels = font_mnist(20, seed=2)
    made = compose.compose_all(images, labels, params)
    for i in range(4):
        photo = Image.open(io.BytesIO(numbers.photo_bytes(made, i)))
        assert photo.format == "JPEG" and photo.height >= 40
    assert made["ends"][-1] == made["jpeg"].size and len(made["truth"]) == 4


def test_the_held_out_material_is_numbers_then_test_digits_then_uci_digits_each_photographed_reproducibly():
    params = NumbersParams(
        seed=3, count=1, min_digits=2, max_digits=4, touching=0.2, outside_numbers=3, outside_digits=5
    )
    images, labels = font_mnist(20, seed=2)
    made, again = compose.outside_all(images, labels, params), compose.outside_all(images, labels, params)
    assert np.array_equal(made["jpeg"], again["jpeg"]) and np.array_equal(made["truth"], again["truth"])
    assert list(made["material"]) == ["number"] * 3 + ["test digit"] * 2 + ["UCI digit"] * 3
    assert all(2 <= len(truth) <= 4 for truth in made["truth"][:3]) and all(len(t) == 1 for t in made["truth"][3:])
    assert set("".join(made["truth"][:5])) <= set(map(str, labels))
    for i in range(8):
        assert Image.open(io.BytesIO(numbers.photo_bytes(made, i))).format == "JPEG"


def test_held_out_metrics_are_the_numbers_ones_prefixed_and_single_digits_read_or_split():
    table = pd.DataFrame(
        {
            "material": ["composed", "number", "number", "test digit", "UCI digit", "UCI digit"],
            "truth": ["12", "345", "67", "8", "9", "1"],
            "read": ["12", "345", "6", "8", "47", "7"],
            "touching": [False] * 6,
            "touching_pairs": [0] * 6,
        }
    )
    assert numbers.outside_metrics(table) == {
        "outside_numbers": 2,
        "outside_sequence_accuracy": 0.5,
        "outside_digit_accuracy": 1 - 1 / 5,
        "outside_count_accuracy": 0.5,
        "outside_unreadable": 0,
        "outside_digits": 3,
        "outside_digits_read": 1 / 3,
        "outside_digits_as_several": 1,
    }


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
