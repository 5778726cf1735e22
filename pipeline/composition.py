"""Numbers composed of MNIST digits, as a person writes them: side by side, some touching.

The numbers stage measures `predict` on such numbers made of test digits; the segmentation's touching-
digits detector (pipeline.touching) learns from such numbers made of training digits.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

ROWS = 32  # a number's height: 28 rows and room to move each digit up or down by 2
MARGIN = 4  # empty columns either side of a number


def compose(digits: np.ndarray, touching: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST `digits` (uint8 (N, 28, 28)) side by side as one number (uint8, ROWS rows): pair i touches
    the next where `touching[i]`, else 2 to 6 empty columns apart."""
    number = np.zeros((ROWS, MARGIN), np.uint8)
    for i, digit in enumerate(digits):
        columns = np.flatnonzero(digit.max(axis=0))
        glyph = np.zeros((ROWS, columns[-1] - columns[0] + 1), np.uint8)
        top = rng.integers(0, ROWS - 28 + 1)
        glyph[top : top + 28] = digit[:, columns[0] : columns[-1] + 1]
        if i and touching[i - 1]:
            number = _touching(number, glyph)
        else:
            number = _place(number, glyph, number.shape[1] + (int(rng.integers(2, 7)) if i else 0))
    return np.pad(number, ((0, 0), (0, MARGIN)))


def _place(number: np.ndarray, glyph: np.ndarray, left: int) -> np.ndarray:
    """`number` with `glyph` drawn from column `left` on (ink over ink keeps the darker)."""
    placed = np.zeros((ROWS, max(number.shape[1], left + glyph.shape[1])), np.uint8)
    placed[:, : number.shape[1]] = number
    placed[:, left : left + glyph.shape[1]] = np.maximum(placed[:, left : left + glyph.shape[1]], glyph)
    return placed


def _touching(number: np.ndarray, glyph: np.ndarray) -> np.ndarray:
    """`number` with `glyph` moved left against it until their strong strokes join."""
    for overlap in range(glyph.shape[1]):
        placed = _place(number, glyph, number.shape[1] - overlap)
        strokes, _ = ndimage.label(placed >= 128, structure=np.ones((3, 3)))
        before = np.zeros_like(placed, bool)
        before[:, : number.shape[1]] = number >= 128
        after = np.zeros_like(placed, bool)
        after[:, number.shape[1] - overlap :] = glyph >= 128
        if np.intersect1d(strokes[before], strokes[after]).any():  # label 0 is background: never shared
            return placed
    return placed
