"""Segmentation and the detector's examples hold for any composed number (Hypothesis): shapes of any
width and height, far apart or touching at any column, any seed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.images import composition, detector_examples
from pipeline.images.digits import ImageError
from pipeline.images.segmentation import MAX_DIGITS, segment

SCALE = 4  # pages are drawn this many times MNIST's size, as a photo is
UNSURE = lambda images: np.full((len(images), 10), 0.1, np.float32)


@st.composite
def rings(draw) -> np.ndarray:
    """A digit-like ring (a 0, a thick 1 when narrow) of any size a digit has, stroke 3 pixels."""
    height = draw(st.integers(16, 28))
    width = draw(st.integers(6, min(20, height)))  # no wider than tall: one digit, not two touching
    top, left = draw(st.integers(0, 28 - height)), draw(st.integers(0, 28 - width))
    image = np.zeros((28, 28), np.uint8)
    image[top : top + height, left : left + width] = 255
    image[top + 3 : top + height - 3, left + 3 : left + width - 3] = 0
    return image


@st.composite
def numbers(draw, touching: bool) -> tuple[np.ndarray, np.ndarray, int]:
    digits = np.stack(draw(st.lists(rings(), min_size=1, max_size=6)))
    pairs = draw(st.lists(st.booleans(), min_size=len(digits) - 1, max_size=len(digits) - 1)) if touching else []
    return digits, np.array(pairs or np.zeros(len(digits) - 1), bool), draw(st.integers(0, 2**32 - 1))


def page(number: np.ndarray) -> np.ndarray:
    """The composed `number` SCALE times larger, dark ink on light paper, as grey levels."""
    large = Image.fromarray(number).resize((number.shape[1] * SCALE, number.shape[0] * SCALE), Image.Resampling.NEAREST)
    return 1 - np.asarray(large, np.float32) / 255


@settings(max_examples=60, deadline=None)
@given(numbers(touching=False))
def test_digits_apart_are_each_found_in_order_in_their_own_box(number):
    digits, touching, seed = number
    image, placed = composition.layout(digits, touching, np.random.default_rng(seed))
    found = segment(page(image), UNSURE)
    assert len(found) == len(digits)
    for digit, (_, left, glyph) in zip(found, placed, strict=True):
        assert digit.image.shape == (28, 28) and digit.image.dtype == np.uint8 and digit.image.max() == 255
        assert digit.box[0] <= left * SCALE and (left + glyph.shape[1]) * SCALE <= digit.box[2]


@settings(max_examples=60, deadline=None)
@given(numbers(touching=True))
def test_touching_digits_are_cut_into_pieces_that_keep_every_stroke_in_order(number):
    """A classifier with no opinion cuts at the first candidate, so pieces may be slivers; still every
    stroke is kept in some piece's box, and the boxes lie on the ink, left to right."""
    digits, touching, seed = number
    grey = page(composition.compose(digits, touching, np.random.default_rng(seed)))
    try:
        found = segment(grey, UNSURE)
    except ImageError as error:  # only when cutting made more pieces than a number may have
        assert f"more than the {MAX_DIGITS}" in str(error)
        return
    assert 1 <= len(found) <= MAX_DIGITS
    covered = np.zeros(grey.shape, bool)
    for digit in found:
        left, top, right, bottom = digit.box
        covered[top:bottom, left:right] = True
        assert digit.image.shape == (28, 28) and digit.image.max() > 0
    assert covered[grey < 0.5].all()  # every stroke is in some digit's box
    assert [digit.box[0] for digit in found] == sorted(digit.box[0] for digit in found)  # read left to right
    rows, columns = np.nonzero(grey < 0.5)
    for left, top, right, bottom in (digit.box for digit in found):  # each box on the ink, none beyond it
        assert columns.min() - SCALE <= left < right <= columns.max() + 1 + SCALE
        assert rows.min() - SCALE <= top < bottom <= rows.max() + 1 + SCALE


@settings(max_examples=25, deadline=None)
@given(st.lists(rings(), min_size=3, max_size=8), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_the_detector_s_examples_are_single_and_touching_blobs_by_turns(images, count, seed):
    blobs, labels = detector_examples.examples(np.stack(images), count, (seed,))
    assert blobs.shape == (count, 28, 28) and blobs.dtype == np.uint8
    assert (blobs.reshape(count, -1).max(axis=1) > 0).all()
    assert labels.tolist() == [i % 2 for i in range(count)]
