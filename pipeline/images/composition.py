"""Numbers composed of MNIST digits, as a person writes them: side by side, some touching.

The compose stage makes the numbers stage's test numbers of test digits this way; the segmentation's
touching-digits detector (pipeline.ml.touching_detector) learns from such numbers made of training digits.
It holds for any digits (narrow or wide, faint, blank): the number keeps every digit's ink where it
was placed, the digits stay in order left to right, and a touching pair is moved together only as far
as the second digit's left edge stays right of the first's centre (tests/test_composition.py).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

ROWS = 32  # a number's height: 28 rows and room to move each digit up or down by 2
MARGIN = 4  # empty columns either side of a number
STROKE = 128  # a touching pair's strokes this bright join
GAPS = (2, 6)  # empty columns between digits that do not touch, at least and at most


def compose(digits: np.ndarray, touching: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST `digits` (uint8 (N, 28, 28)) side by side as one number (uint8, ROWS rows): pair i touches
    the next where `touching[i]`, else 2 to 6 empty columns apart."""
    return layout(digits, touching, rng)[0]


def layout(digits: np.ndarray, touching: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple]]:
    """`compose`'s number, and where each digit's glyph (its inked columns) went: (top, left, glyph)."""
    number = np.zeros((ROWS, MARGIN), np.uint8)
    placed: list[tuple[int, int, np.ndarray]] = []
    for i, digit in enumerate(digits):
        glyph = _glyph(digit)
        top = int(rng.integers(0, ROWS - 28 + 1))
        tall = np.zeros((ROWS, glyph.shape[1]), np.uint8)
        tall[top : top + 28] = glyph
        if i and touching[i - 1]:
            left = _touching_left(number, tall, placed[-1])
        else:
            left = number.shape[1] + (int(rng.integers(GAPS[0], GAPS[1] + 1)) if i else 0)
        number = _place(number, tall, left)
        placed.append((top, left, glyph))
    return np.pad(number, ((0, 0), (0, MARGIN))), placed


def _glyph(digit: np.ndarray) -> np.ndarray:
    """`digit`'s inked columns (all 28 of a blank one)."""
    columns = np.flatnonzero(digit.max(axis=0))
    return digit[:, columns[0] : columns[-1] + 1] if columns.size else digit


def _place(number: np.ndarray, glyph: np.ndarray, left: int) -> np.ndarray:
    """`number` with `glyph` drawn from column `left` on (ink over ink keeps the darker)."""
    placed = np.zeros((ROWS, max(number.shape[1], left + glyph.shape[1])), np.uint8)
    placed[:, : number.shape[1]] = number
    placed[:, left : left + glyph.shape[1]] = np.maximum(placed[:, left : left + glyph.shape[1]], glyph)
    return placed


def _touching_left(number: np.ndarray, glyph: np.ndarray, previous: tuple[int, int, np.ndarray]) -> int:
    """The column to draw `glyph` from so that its strong strokes join `number`'s: moved left from just
    beyond the number until they do, but never so far that its left edge reaches the previous digit's
    centre or its right edge the previous digit's right edge (then as far as that, touching or not)."""
    _, previous_left, previous_glyph = previous
    width = previous_glyph.shape[1]
    nearest = max(previous_left + width // 2 + 1, previous_left + width - glyph.shape[1] + 1)
    strong = np.pad(number >= STROKE, ((0, 0), (0, 1)))  # a column beyond: ink there touches the number's end
    reach = ndimage.binary_dilation(strong, structure=np.ones((3, 3)))  # strong ink and its neighbours
    strokes = glyph >= STROKE
    for left in range(number.shape[1], nearest - 1, -1):
        covered = reach[:, left : left + glyph.shape[1]]
        if (covered & strokes[:, : covered.shape[1]]).any():
            return left
    return nearest
