"""card stage: what it says of figures a short run may lack, each from its own metric."""

from __future__ import annotations

from pipeline.stages import card


def test_the_held_out_photos_are_described_each_figure_from_its_own_metric():
    numbers = {
        "outside_numbers": 500,
        "outside_sequence_accuracy": 0.87,
        "outside_digits": 1000,
        "outside_digits_read": 0.955,
        "outside_digits_as_several": 9,
    }
    assert card._outside(numbers) == (
        "**87.00%** of 500 numbers read whole; **95.50%** of 1,000 single digits (test and UCI digits) read right, "
        "9 of them as several digits"
    )
    assert card._outside({}) == "none made in this run"
