"""The held-out photos (pipeline/images/other_hands.py): any glyphs make a readable photo of their row."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from pipeline.images.other_hands import photo

glyph = arrays(np.uint8, st.tuples(st.integers(4, 40), st.integers(4, 40)), elements=st.integers(0, 255))


def _grey(glyphs: list[np.ndarray], seed: int) -> np.ndarray:
    image = Image.open(io.BytesIO(photo(glyphs, np.random.default_rng(seed))))
    assert image.format == "JPEG" and image.mode == "RGB"
    return np.asarray(image.convert("L"), np.float32)


@settings(max_examples=30, deadline=None)
@given(glyphs=st.lists(glyph, min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_any_glyphs_blank_or_not_make_a_jpeg_photo_of_one_row(glyphs, seed):
    grey = _grey(glyphs, seed)
    assert grey.shape[0] >= 24  # a digit's height at the least
    if len(glyphs) >= 4:
        assert grey.shape[1] > grey.shape[0]  # a row, wider than it is tall


@pytest.mark.parametrize("seed", range(10))
def test_the_ink_is_on_the_photo_darker_than_the_paper(seed):
    stroke = np.zeros((28, 28), np.uint8)
    stroke[4:24, 10:18] = 255
    grey = _grey([stroke, stroke], seed)
    assert np.median(grey) - np.percentile(grey, 1) > 40
