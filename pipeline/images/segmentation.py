"""A row of handwritten digits (a number) cut into digits, each in MNIST's format.

Each connected blob of ink is a digit; pieces one above the other are one digit (a broken stroke),
specks are dropped, and a blob the touching-digits detector (pipeline.ml.touching_detector) finds
several digits in is cut where the digit model is most confident of both halves (a drop-fall cut).
The detector learns, and the constants were chosen, on numbers composed from MNIST's training
digits (bench/segmentation.py), never its test ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from pipeline.images.digits import (
    MIN_BLOB,
    ImageError,
    bounds,
    extent,
    ink_levels,
    normalise,
    otsu_threshold,
    padded_window,
    read_image,
    working_size,
)

SHORT = 0.5  # in a number, a blob shorter than this share of the row's height is part of a digit ...
SPECK = 0.25  # ... or noise, if its longer side is under this share of the row's height, or it is far from any
MERGE_OVERLAP = 0.5  # blobs overlapping horizontally by this share of the narrower are one digit
MIN_SPLIT_WIDTH = 0.5  # a blob narrower than this times the row's height is one digit; a wider one is
SPLIT_WIDTH = 1.15  # several touching if the detector says so, or without a detector, if wider than this
TOUCHING_CONFIDENCE = (
    0.7  # the detector says so when its probability of several digits is above this (docs/segmentation.md)
)
REACH = 0.15  # a cut may wander this share of the row's height either side of its column
MIN_PIECE = 0.15  # cuts no closer to a blob's ends than this share of the row's height
CUTS = 12  # cuts tried per blob, evenly spaced
MAX_DIGITS = 12  # a number longer than this is refused rather than read (a page of text, a barcode)

Classifier = Callable[[np.ndarray], np.ndarray]  # uint8 digits (N, 28, 28) -> probabilities (N, 10)


@dataclass(frozen=True)
class Digit:
    """One digit of a number: as MNIST would have it, and its box (left, top, right, bottom) in the image."""

    image: np.ndarray
    box: tuple[int, int, int, int]


def load_number(path: Path, classify: Classifier, touching: Classifier | None = None) -> list[Digit]:
    """The digits in the image file at `path`, left to right, as `segment` finds them; ImageError names the file."""
    try:
        return segment(read_image(path), classify, touching)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def segment(grey: np.ndarray, classify: Classifier, touching: Classifier | None = None) -> list[Digit]:
    """The digits in grey image `grey`, a row of one or more, left to right, each normalised as `to_mnist`
    does; the `touching` detector tells which blobs hold several digits, and `classify` where to cut them."""
    ink, blobs, height = _ink_and_blobs(grey)
    scale = grey.shape[1] / ink.shape[1]
    digits = []
    for blob in blobs:
        window = padded_window(blob, pad=2 + height // 8)  # room for `normalise`'s dilation and `_thicken`
        corner = np.array([window[1].start, window[0].start] * 2)
        for piece in _split(ink[window], blob[window], height, classify, touching):
            digits.append(Digit(normalise(_beside(ink[window], piece), piece), _box(piece, corner, scale)))
    if len(digits) > MAX_DIGITS:
        raise ImageError(f"{len(digits)} digit-like shapes found, more than the {MAX_DIGITS} a number may have")
    return sorted(digits, key=lambda digit: digit.box[0])


def largest_blob(grey: np.ndarray) -> np.ndarray:
    """The largest blob of ink (in pixels) `segment` would find in `grey` before cutting any, normalised as a digit."""
    ink, blobs, _ = _ink_and_blobs(grey)
    blob = max(blobs, key=np.count_nonzero)
    return normalise(_beside(ink, blob), blob)


def _ink_and_blobs(grey: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The ink of `grey` at the working size, its blobs (`_blobs`) and the row's height."""
    ink = ink_levels(working_size(grey))
    return (ink, *_blobs(ink > otsu_threshold(ink)))


def _blobs(mask: np.ndarray) -> tuple[list[np.ndarray], int]:
    """The digit candidates in `mask`, and the row's height: connected blobs not much smaller than the
    largest; a short blob (a broken stroke, a 5's detached bar) joined to the nearest tall one, or
    dropped as noise when none is near; tall blobs one above the other merged."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    blobs = [labels == label for label in np.flatnonzero(sizes >= MIN_BLOB * sizes.max()) + 1]
    height = max(extent(blob)[0] for blob in blobs)
    tall = sorted((blob for blob in blobs if extent(blob)[0] >= SHORT * height), key=_columns)
    for piece in (blob for blob in blobs if extent(blob)[0] < SHORT * height):
        gaps = [_gap(_columns(piece), _columns(blob)) for blob in tall]
        if max(extent(piece)) >= SPECK * height and min(gaps) <= SHORT * height:
            tall[int(np.argmin(gaps))] |= piece
    merged = tall[:1]
    for blob in tall[1:]:
        (left, right), (p_left, p_right) = _columns(blob), _columns(merged[-1])
        if -_gap((left, right), (p_left, p_right)) >= MERGE_OVERLAP * min(right - left, p_right - p_left) + 1:
            merged[-1] = merged[-1] | blob
        else:
            merged.append(blob)
    return merged, height


def _gap(span: tuple[int, int], other: tuple[int, int]) -> int:
    """Empty columns between two column spans; negative: how many they share."""
    return max(span[0], other[0]) - min(span[1], other[1]) - 1


def _split(
    ink: np.ndarray, blob: np.ndarray, height: int, classify: Classifier, touching: Classifier | None
) -> list[np.ndarray]:
    """`blob` as one digit or, when it holds several touching, cut in two where `classify` is most confident
    of both halves (the product of their probabilities, and of the detector's that each is one digit),
    each half split again.  A blob narrower than
    MIN_SPLIT_WIDTH x `height` is one digit; a wider one holds several if the `touching` detector says so
    (pipeline.touching), or without it, if wider than SPLIT_WIDTH x `height`."""
    left, right = _columns(blob)
    width = right - left + 1
    if width <= MIN_SPLIT_WIDTH * height:
        return [blob]
    if touching is None:
        several = width > SPLIT_WIDTH * height
    else:
        several = touching(normalise(_beside(ink, blob), blob)[None])[0, 1] > TOUCHING_CONFIDENCE
    if not several:
        return [blob]
    margin = max(1, round(MIN_PIECE * height))
    cuts = np.unique(np.linspace(left + margin, right + 1 - margin, CUTS).round().astype(int))
    halves = [(part, blob & ~part) for part in _before(blob, cuts, round(REACH * height))]
    halves = [(a, b) for a, b in halves if a.any() and b.any()]
    if not halves:
        return [blob]
    pieces = np.stack([normalise(_beside(ink, half), half) for pair in halves for half in pair])
    score = classify(pieces).max(axis=1)
    if touching is not None:  # and as surely one digit each, rather than a fragment or two
        score = score * touching(pieces)[:, 0]
    first, second = halves[int(score.reshape(-1, 2).prod(axis=1).argmax())]
    return _split(ink, first, height, classify, touching) + _split(ink, second, height, classify, touching)


def _before(blob: np.ndarray, columns: np.ndarray, reach: int) -> np.ndarray:
    """For each of `columns`, the part of `blob` left of the top-to-bottom path that crosses the least
    of it, starting near that column and staying within `reach` columns of it, one column left or
    right per row (a drop-fall cut: where touching digits overlap, it follows the gap between them);
    bool (len(columns), rows, columns of `blob`), every column's path found at once."""
    rows, width = blob.shape
    offsets = np.arange(-reach, reach + 1)
    window = columns[:, None] + offsets  # (cuts, 2 reach + 1): the columns each path may take
    inside = (window >= 0) & (window < width)
    ink = blob[:, np.clip(window, 0, width - 1)].astype(np.float32)  # (rows, cuts, window)
    cost = np.where(inside, ink + 1e-3 * np.abs(offsets), np.inf)  # straight down when free
    total = cost[0].copy()
    moves = np.zeros(cost.shape, np.int8)
    edge = np.full((len(columns), 1), np.inf)
    for row in range(1, rows):
        options = np.stack([np.hstack([edge, total[:, :-1]]), total, np.hstack([total[:, 1:], edge])])
        moves[row] = options.argmin(axis=0) - 1
        total = cost[row] + options.min(axis=0)
    path = np.empty((rows, len(columns)), int)
    path[-1] = total.argmin(axis=1)
    cuts = np.arange(len(columns))
    for row in range(rows - 1, 0, -1):
        path[row - 1] = path[row] + moves[row, cuts, path[row]]
    boundary = window[cuts, path].T  # (cuts, rows): the first column right of each path
    return blob & (np.arange(width) < boundary[:, :, None])


def _beside(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`ink` within the columns of `mask`: a cut digit's neighbour left out."""
    left, right = _columns(mask)
    part = np.zeros_like(ink)
    part[:, left : right + 1] = ink[:, left : right + 1]
    return part


def _columns(mask: np.ndarray) -> tuple[int, int]:
    """The first and last column holding any of `mask`."""
    columns = np.flatnonzero(mask.any(axis=0))
    return int(columns[0]), int(columns[-1])


def _box(mask: np.ndarray, corner: np.ndarray, scale: float) -> tuple[int, int, int, int]:
    """`mask`'s bounding box (left, top, right, bottom), moved by `corner` and scaled back to the
    pixels of the image before `working_size`."""
    top, bottom, left, right = bounds(mask)
    box = corner + [left, top, right + 1, bottom + 1]
    return tuple(int(v) for v in np.round(box * scale))
