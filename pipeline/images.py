"""Real-world images of digits in MNIST's format: what `predict`, the draw page and the photos stages feed the model.

MNIST's digits are light ink on black, size-normalised to fit a 20x20 box keeping their aspect
ratio, anti-aliased, and centred by centre of mass in a 28x28 field (LeCun et al.).  `to_mnist`
does the same to a photo or scan of one digit, of any size: dark ink on light paper or light on
dark, off-centre, with specks of noise, thin pen or thick marker.  `segment` reads a row of digits
(a number): each connected blob of ink is a digit, pieces one above the other are one digit (a
broken stroke), specks are dropped, and a blob the touching-digits detector (pipeline.touching)
finds several digits in is cut where the digit model is most confident of both halves.  The
detector learns, and the constants were chosen, on numbers composed from MNIST's training digits
(bench/segmentation.py), never its test ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from pipeline import PipelineError, one_line

MAX_PIXELS = 50_000_000  # larger images are refused before decoding (decompression bombs)
WORKING_SIDE = 512  # bigger images are reduced to this long side first: a digit needs far fewer pixels
MIN_CONTRAST = 0.15  # ink must differ from the background by this share of the full grey range
BOX, FIELD = 20, 28  # MNIST: the digit fits a 20x20 box, centred in a 28x28 field
STROKE = 2.5 / 20  # MNIST's typical stroke width as a share of the box; thinner pens are thickened to it
MIN_BLOB = 0.1  # ink blobs smaller than this share of the largest are noise
SHORT = 0.5  # in a number, a blob shorter than this share of the row's height is part of a digit ...
SPECK = 0.25  # ... or noise, if its longer side is under this share of the row's height, or it is far from any
MERGE_OVERLAP = 0.5  # blobs overlapping horizontally by this share of the narrower are one digit
MIN_SPLIT_WIDTH = 0.5  # a blob narrower than this times the row's height is one digit; a wider one is
SPLIT_WIDTH = 1.15  # several touching if the detector says so, or without a detector, if wider than this
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


class ImageError(PipelineError):
    """An image that cannot be read, or holds no digit."""


def load_digit(path: Path) -> np.ndarray:
    """The digit in the image file at `path`, as `to_mnist` makes it; ImageError names the file."""
    try:
        return to_mnist(read_image(path))
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def read_image(path: Path | BinaryIO) -> np.ndarray:
    """The first frame of the image file at `path` (or in an open binary file) as grey levels in [0, 1] (0 = black)."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(f"{image.width}x{image.height} pixels, more than the {MAX_PIXELS:,} allowed")
            image.seek(0)  # animated GIF, multi-page TIFF: the first frame
            ImageOps.exif_transpose(image, in_place=True)  # a camera's orientation applied (no copy made)
            return grey_levels(image)
    except Image.DecompressionBombError as error:  # PIL's own guard, for sizes far beyond ours
        raise ImageError(f"refused: {one_line(error)}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"not a readable image ({one_line(error)})") from None


def grey_levels(image: Image.Image) -> np.ndarray:
    """`image` in any mode (16-bit, palette, transparent, CMYK, ...) as grey levels in [0, 1]."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        top = 65535 if pixels.max() > 255 else 255
        return np.clip(pixels / top, 0, 1)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:  # transparent: as on white paper
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


def load_number(path: Path, classify: Classifier, touching: Classifier | None = None) -> list[Digit]:
    """The digits in the image file at `path`, left to right, as `segment` finds them; ImageError names the file."""
    try:
        return segment(read_image(path), classify, touching)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """The digit in grey image `grey` ([0, 1]) as MNIST would have it: uint8 (28, 28), ink bright on black."""
    ink = _ink(_reduce(grey))
    return _normalise(ink, _digit_mask(ink))


def segment(grey: np.ndarray, classify: Classifier, touching: Classifier | None = None) -> list[Digit]:
    """The digits in grey image `grey`, a row of one or more, left to right, each normalised as `to_mnist`
    does; the `touching` detector tells which blobs hold several digits, and `classify` where to cut them."""
    ink, blobs, height = _ink_and_blobs(grey)
    scale = grey.shape[1] / ink.shape[1]
    digits = []
    for blob in blobs:
        window = _window(blob, pad=2 + height // 8)  # room for `_normalise`'s dilation and `_thicken`
        corner = np.array([window[1].start, window[0].start] * 2)
        for piece in _split(ink[window], blob[window], height, classify, touching):
            digits.append(Digit(_normalise(_beside(ink[window], piece), piece), _box(piece, corner, scale)))
    if len(digits) > MAX_DIGITS:
        raise ImageError(f"{len(digits)} digit-like shapes found, more than the {MAX_DIGITS} a number may have")
    return sorted(digits, key=lambda digit: digit.box[0])


def largest_blob(grey: np.ndarray) -> np.ndarray:
    """The largest blob of ink (in pixels) `segment` would find in `grey` before cutting any, normalised as a digit."""
    ink, blobs, _ = _ink_and_blobs(grey)
    blob = max(blobs, key=np.count_nonzero)
    return _normalise(_beside(ink, blob), blob)


def _ink_and_blobs(grey: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The ink of `grey` at the working size, its blobs (`_blobs`) and the row's height."""
    ink = _ink(_reduce(grey))
    return (ink, *_blobs(ink > _otsu_threshold(ink)))


def _blobs(mask: np.ndarray) -> tuple[list[np.ndarray], int]:
    """The digit candidates in `mask`, and the row's height: connected blobs not much smaller than the
    largest; a short blob (a broken stroke, a 5's detached bar) joined to the nearest tall one, or
    dropped as noise when none is near; tall blobs one above the other merged."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    blobs = [labels == label for label in np.flatnonzero(sizes >= MIN_BLOB * sizes.max()) + 1]
    height = max(_extent(blob)[0] for blob in blobs)
    tall = sorted((blob for blob in blobs if _extent(blob)[0] >= SHORT * height), key=_columns)
    for piece in (blob for blob in blobs if _extent(blob)[0] < SHORT * height):
        gaps = [_gap(_columns(piece), _columns(blob)) for blob in tall]
        if max(_extent(piece)) >= SPECK * height and min(gaps) <= SHORT * height:
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
        several = touching(_normalise(_beside(ink, blob), blob)[None])[0].argmax() == 1
    if not several:
        return [blob]
    margin = max(1, round(MIN_PIECE * height))
    cuts = np.unique(np.linspace(left + margin, right + 1 - margin, CUTS).round().astype(int))
    halves = [(part, blob & ~part) for part in _before(blob, cuts, round(REACH * height))]
    halves = [(a, b) for a, b in halves if a.any() and b.any()]
    if not halves:
        return [blob]
    pieces = np.stack([_normalise(_beside(ink, half), half) for pair in halves for half in pair])
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


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """`mask`'s bounding box: its first and last row, first and last column (quicker than np.nonzero)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _extent(mask: np.ndarray) -> tuple[int, int]:
    """The height and width of `mask`'s bounding box."""
    top, bottom, left, right = _bounds(mask)
    return bottom - top + 1, right - left + 1


def _box(mask: np.ndarray, corner: np.ndarray, scale: float) -> tuple[int, int, int, int]:
    """`mask`'s bounding box (left, top, right, bottom), moved by `corner` and scaled back to the
    pixels of the image before `_reduce`."""
    top, bottom, left, right = _bounds(mask)
    box = corner + [left, top, right + 1, bottom + 1]
    return tuple(int(v) for v in np.round(box * scale))


def _window(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The slices of `mask`'s bounding box widened by `pad` pixels (within the image)."""
    top, bottom, left, right = _bounds(mask)
    return np.s_[max(top - pad, 0) : bottom + 1 + pad, max(left - pad, 0) : right + 1 + pad]


def _normalise(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ink of the digit `mask` covers, size-normalised and centred as MNIST's."""
    window = _window(mask, pad=3 + (max(_extent(mask)) - 1) // 8)  # room for the dilation and `_thicken`
    mask, ink = mask[window], ink[window]
    ink = _thicken(np.where(ndimage.binary_dilation(mask, iterations=2), ink, 0), mask)
    top, bottom, left, right = _bounds(ink > 0)
    ink = ink[top : bottom + 1, left : right + 1]
    scale = BOX / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    box = np.clip(np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS)), 0, None)
    box /= box.max()
    field = np.zeros((FIELD, FIELD), np.float32)
    centre = np.array(ndimage.center_of_mass(box))
    top, left = np.clip(np.round(FIELD / 2 - centre).astype(int), 0, np.array(FIELD) - box.shape)
    field[top : top + box.shape[0], left : left + box.shape[1]] = box
    return np.round(np.clip(field, 0, 1) * 255).astype(np.uint8)


def photograph(digits: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """MNIST-style `digits` (uint8, 28 rows, light on dark: a digit, or a number composed of them) as an
    RGB photo of ink on paper: dark ink on tinted paper, a random size and place on a page of random
    size, uneven light, sensor noise."""
    side = int(rng.integers(40, 300))  # the 28 rows' height in the photo, in pixels
    size = np.maximum(1, np.round(np.array(digits.shape) * side / FIELD).astype(int))  # (rows, columns)
    width, height = (rng.uniform(1.2, 3.0, 2) * size[::-1]).astype(int)
    stroke = np.asarray(Image.fromarray(digits).resize(tuple(size[::-1]), Image.Resampling.BICUBIC), np.float32)
    ink = np.zeros((height, width), np.float32)
    top, left = rng.integers(0, height - size[0] + 1), rng.integers(0, width - size[1] + 1)
    ink[top : top + size[0], left : left + size[1]] = np.clip(stroke / 255, 0, 1)
    paper = (rng.uniform(0.7, 0.95) + rng.uniform(-0.04, 0.04, 3)).astype(np.float32)
    pen = (rng.uniform(0.05, 0.35) + rng.uniform(-0.05, 0.05, 3)).astype(np.float32)
    angle, brightness, noise = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.2), rng.uniform(0.01, 0.04)
    y = np.arange(height, dtype=np.float32)[:, None] / max(height, width)
    x = np.arange(width, dtype=np.float32)[None, :] / max(height, width)
    light = 1 + brightness * (np.cos(angle) * x + np.sin(angle) * y - 0.5)
    grain = noise * rng.standard_normal((height, width), np.float32)
    shaded_ink = ink * light
    rgb = np.empty((height, width, 3), np.uint8)
    for channel in range(3):  # (paper (1 - ink) + pen ink) light + grain, a plane at a time (float32, contiguous)
        plane = paper[channel] * light + (pen[channel] - paper[channel]) * shaded_ink + grain
        rgb[..., channel] = np.round(np.clip(plane, 0, 1) * 255)
    return Image.fromarray(rgb)


def _reduce(grey: np.ndarray) -> np.ndarray:
    scale = WORKING_SIDE / max(grey.shape)
    if scale >= 1:
        return grey
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    return np.asarray(Image.fromarray(grey.astype(np.float32)).resize(size, Image.Resampling.BOX))


def _ink(grey: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0 = background: the border's median is taken as the background,
    and a light background means dark ink."""
    width = max(1, min(grey.shape) // 20)
    border = np.concatenate(
        [grey[:width].ravel(), grey[-width:].ravel(), grey[:, :width].ravel(), grey[:, -width:].ravel()]
    )
    background = float(np.median(border))
    ink = background - grey if background > 0.5 else grey - background
    if ink.max() < MIN_CONTRAST:
        raise ImageError("no digit found: the image is blank (one flat colour)")
    return np.clip(ink, 0, None).astype(np.float32)


def _digit_mask(ink: np.ndarray) -> np.ndarray:
    """The pixels of the digit: above Otsu's threshold, in blobs not much smaller than the largest."""
    mask = ink > _otsu_threshold(ink)
    blobs, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(blobs.ravel())[1:]
    keep = np.flatnonzero(sizes >= MIN_BLOB * sizes.max()) + 1
    return np.isin(blobs, keep)


def _otsu_threshold(values: np.ndarray) -> float:
    """The level that best splits `values` into two classes (Otsu, 1979)."""
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * centres)
    below, above = weight[:-1], weight[-1] - weight[:-1]
    valid = (below > 0) & (above > 0)
    between = np.zeros_like(centres[:-1])
    mean_below = mean[:-1][valid] / below[valid]
    mean_above = (mean[-1] - mean[:-1][valid]) / above[valid]
    between[valid] = below[valid] * above[valid] * (mean_below - mean_above) ** 2
    return float(edges[1:-1][between.argmax()])


def _thicken(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Widen strokes thinner than MNIST's (a pen photographed large) so they survive the shrink to 20x20."""
    top, bottom, left, right = _bounds(mask)
    target = STROKE * max(bottom - top + 1, right - left + 1)
    # the distances within the digit's box, ringed by background, are those in the whole image
    box = np.pad(mask[top : bottom + 1, left : right + 1], 1)
    width = 4 * ndimage.distance_transform_edt(box)[box].mean()  # a stroke of width w averages w/4
    radius = round((target - width) / 2)
    if radius < 1:
        return ink
    disk = np.hypot(*np.mgrid[-radius : radius + 1, -radius : radius + 1]) <= radius
    return ndimage.grey_dilation(ink, footprint=disk)
