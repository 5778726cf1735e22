"""Reading a row of digits: each found, touching pairs cut, broken strokes joined, specks ignored, any polarity."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.images.composition import compose
from pipeline.images.digits import ImageError
from pipeline.images.segmentation import segment
from pipeline.ml.predictors import onnx_predictor
from tests.digits import font_mnist

pytestmark = pytest.mark.e2e  # trains the digit model once per session


@pytest.fixture(scope="module")
def read(digit_model):
    """The number the digit model reads in a grey image, and its digits."""
    classify = onnx_predictor(digit_model.onnx_path)

    def read(grey: np.ndarray) -> tuple[str, list]:
        digits = segment(grey, classify)
        return "".join(str(classify(d.image[None])[0].argmax()) for d in digits), digits

    return read


@pytest.fixture(scope="module")
def typeset() -> dict[int, np.ndarray]:
    """A typeset digit of each kind, as MNIST has digits (light on dark, 28x28)."""
    images, labels = font_mnist(30, seed=3)
    return {d: images[np.flatnonzero(labels == d)[1]] for d in range(10)}


def page(typeset: dict, text: str, touching: list[bool], seed: int = 0) -> np.ndarray:
    """`text` composed of typeset digits as the numbers stage composes test digits, 4x larger, dark on light."""
    number = compose(np.stack([typeset[int(d)] for d in text]), np.array(touching, bool), np.random.default_rng(seed))
    large = Image.fromarray(number).resize((number.shape[1] * 4, number.shape[0] * 4), Image.Resampling.BICUBIC)
    return 1 - np.asarray(large, np.float32) / 255


def test_separate_digits_are_read_left_to_right_with_their_boxes(read, typeset):
    number, digits = read(page(typeset, "3057", [False] * 3))
    assert number == "3057"
    lefts, rights = [d.box[0] for d in digits], [d.box[2] for d in digits]
    assert lefts == sorted(lefts) and all(r <= nxt for r, nxt in zip(rights, lefts[1:], strict=False))


def test_light_ink_on_dark_reads_the_same(read, typeset):
    grey = page(typeset, "3057", [False] * 3)
    assert [d.image.tolist() for d in read(1 - grey)[1]] == [d.image.tolist() for d in read(grey)[1]]


def test_touching_digits_are_cut_apart(read, typeset):
    assert read(page(typeset, "2026", [False, True, False]))[0] == "2026"
    number, digits = read(page(typeset, "48063", [True, False, True, True]))  # a run of three touching
    assert len(digits) == 5 and number[:2] == "48"


def test_a_broken_stroke_stays_one_digit(read, typeset):
    broken = dict(typeset)
    five = typeset[5].copy()
    rows = np.flatnonzero(five.max(axis=1))
    five[rows[0] + 5 : rows[0] + 8] = 0  # the 5's top bar cut off from its body
    broken[5] = five
    assert read(page(broken, "759", [False, False]))[0] == "759"


def test_a_single_digit_is_a_number_of_one(read, typeset):
    number, digits = read(page(typeset, "8", []))
    assert number == "8" and len(digits) == 1


def test_specks_of_noise_are_ignored(read, typeset):
    grey = page(typeset, "416", [False, False])
    noisy = grey.copy()
    noisy[3:6, 3:6] = noisy[-6:-3, -40:-37] = noisy[60:63, 2:5] = 0.1  # dust on the page
    assert read(noisy)[0] == "416"
    assert [d.image.tolist() for d in read(noisy)[1]] == [d.image.tolist() for d in read(grey)[1]]


def test_a_blank_image_holds_no_digit(read):
    with pytest.raises(ImageError, match="no digit found"):
        read(np.full((100, 300), 0.8, np.float32))
