"""Composition holds for any digits: narrow, wide, faint, blank, touching at any column (Hypothesis)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from pipeline.images import composition
from tests.digits import font_mnist


@st.composite
def digit_images(draw) -> np.ndarray:
    """A 28x28 uint8 image holding a stroke-like shape of any width (1 to 28 columns) and brightness (faint
    strokes never reach STROKE), or nothing at all."""
    image = np.zeros((28, 28), np.uint8)
    if draw(st.integers(0, 19)) == 0:
        return image  # blank
    left = draw(st.integers(0, 27))
    width = draw(st.integers(1, 28 - left))
    top = draw(st.integers(0, 26))
    height = draw(st.integers(1, 28 - top))
    brightness = draw(st.sampled_from([40, 127, 128, 200, 255]))
    image[top : top + height, left : left + width] = brightness
    if width > 2 and height > 2 and draw(st.booleans()):  # a hollow shape (a 0): the next digit may fit inside
        image[top + 1 : top + height - 1, left + 1 : left + width - 1] = 0
    return image


@st.composite
def numbers(draw) -> tuple[np.ndarray, np.ndarray, int]:
    digits = draw(st.lists(digit_images(), min_size=1, max_size=6))
    touching = draw(st.lists(st.booleans(), min_size=len(digits) - 1, max_size=len(digits) - 1))
    return np.stack(digits), np.array(touching, bool), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=300, deadline=None)
@given(numbers())
def test_a_number_keeps_every_digit_in_order_between_empty_margins(number):
    digits, touching, seed = number
    image, placed = composition.layout(digits, touching, np.random.default_rng(seed))
    assert image.dtype == np.uint8 and image.shape[0] == composition.ROWS
    assert not image[:, : composition.MARGIN].any() and not image[:, -composition.MARGIN :].any()
    end = composition.MARGIN  # columns holding earlier digits end before this one
    for i, (digit, (top, left, glyph)) in enumerate(zip(digits, placed, strict=True)):
        assert glyph.sum(dtype=np.int64) == digit.sum(dtype=np.int64)  # the glyph is all the digit's ink
        assert 0 <= top <= composition.ROWS - 28 and left >= composition.MARGIN
        assert (image[top : top + 28, left : left + glyph.shape[1]] >= glyph).all()  # its ink kept
        if i and not touching[i - 1]:  # apart from every earlier digit
            assert composition.GAPS[0] <= left - end <= composition.GAPS[1]
        end = max(end, left + glyph.shape[1])
    for (_, left, glyph), (_, next_left, next_glyph) in itertools.pairwise(placed):
        assert next_left > left + (glyph.shape[1] - 1) / 2  # right of the previous digit's centre
        assert next_left + next_glyph.shape[1] > left + glyph.shape[1]  # and ending right of it
    assert image.shape[1] == end + composition.MARGIN


def test_touching_pairs_join_and_the_others_stay_apart():
    images, _ = font_mnist(10, seed=2)
    digits = images[[0, 3, 4, 6]]
    rng = np.random.default_rng(0)
    apart = _strokes(composition.compose(digits, np.array([False, False, False]), rng))
    assert apart >= 4 and _strokes(composition.compose(digits, np.array([True, False, True]), rng)) == apart - 2
    composed = composition.compose(digits, np.array([False, False, False]), rng)
    assert composed.shape[0] == composition.ROWS and not composed[:, : composition.MARGIN].any()


def _strokes(number: np.ndarray) -> int:
    return ndimage.label(number >= composition.STROKE, structure=np.ones((3, 3)))[1]
