"""Photos of numbers cut once without the digit model, then read with it: exactly what `predict` reads."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline import PipelineError
from pipeline.ml.predictors import onnx_predictor
from pipeline.reading import photographed
from pipeline.reading.numbers import predict_files
from pipeline.stages.compose import photo_of_number
from tests.digits import font_mnist

pytestmark = pytest.mark.e2e  # the session's trained digit model and touching-digits detector

TYPESET = font_mnist(200, seed=11)[0]
BLANK = io.BytesIO()
Image.new("L", (120, 40), 230).save(BLANK, "JPEG")


def read_whole(photos: list[bytes], model, touching) -> list[str]:
    """The number in each photo as `predict` reads it from a file ("" where it finds no digit)."""
    with tempfile.TemporaryDirectory() as folder:
        files = [Path(folder, f"{i}.jpg") for i in range(len(photos))]
        for file, photo in zip(files, photos, strict=True):
            file.write_bytes(photo)
        rows = predict_files(files, onnx_predictor(model), onnx_predictor(touching))
    return [row.get("number", "") for row in rows]


def photos_of(numbers: list[tuple[list[int], float, int]]) -> list[bytes]:
    """Each number (typeset digits' indices, share of pairs touching, seed) composed and photographed."""
    photos = []
    for index, (digits, touching, seed) in enumerate(numbers):
        pairs = np.random.default_rng(seed).random(len(digits) - 1) < touching
        photos.append(photo_of_number(TYPESET[digits], pairs, index, seed))
    return photos


NUMBERS = st.lists(
    st.tuples(st.lists(st.integers(0, len(TYPESET) - 1), min_size=1, max_size=5), st.floats(0, 1), st.integers(0, 999)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numbers=NUMBERS, blank=st.booleans())
def test_any_photos_read_from_their_cut_digits_as_predict_reads_them_whole(digit_model, numbers, blank):
    photos = photos_of(numbers) + [BLANK.getvalue()] * blank
    model, touching = digit_model.onnx_path, digit_model.touching_path
    cut = photographed.cut_all(photos, touching)
    assert photographed.read_all(photos, cut, model, touching) == read_whole(photos, model, touching)


def test_touching_digits_wait_for_the_digit_model_the_others_are_cut_and_a_blank_photo_is_unreadable(digit_model):
    numbers = [([3, 14, 25], 1.0, seed) for seed in range(6)] + [([5, 16, 27], 0.0, seed) for seed in range(6)]
    photos = [*photos_of(numbers), BLANK.getvalue()]
    cut = photographed.cut_all(photos, digit_model.touching_path)
    status = cut["status"]
    assert photographed.NEEDS_MODEL in status[:6]  # touching pairs: where to cut is the digit model's choice
    assert (status[6:12] == photographed.CUT).all() and status[12] == photographed.UNREADABLE
    assert len(cut["digits"]) == cut["ends"][-1] == 3 * np.sum(status == photographed.CUT)
    read = photographed.read_all(photos, cut, digit_model.onnx_path, digit_model.touching_path)
    assert read[6:12].count("567") >= 5 and read[12] == ""  # typeset digits: read right over 95% of the time


def test_cut_digits_of_other_photos_are_refused(digit_model):
    photos = photos_of([([1, 2], 0.0, 0), ([3], 0.0, 1)])
    cut = photographed.cut_all(photos[:1], digit_model.touching_path)
    with pytest.raises(PipelineError, match="the cut digits describe 1 photos, not the 2 given"):
        photographed.read_all(photos, cut, digit_model.onnx_path, digit_model.touching_path)
