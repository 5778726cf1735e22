"""One digit of a real-world image in MNIST's format: what `predict`, the draw page and the photos stages feed the model.

MNIST's digits are light ink on black, size-normalised to fit a 20x20 box keeping their aspect
ratio, anti-aliased, and centred by centre of mass in a 28x28 field (LeCun et al.).  `to_mnist`
does the same to a photo or scan of one digit, of any size: dark ink on light paper or light on
dark, off-centre, with specks of noise, thin pen or thick marker.  Numbers are cut into digits by
pipeline.images.segmentation, which normalises each as `normalise` does here.
"""

from __future__ import annotations

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


def to_mnist(grey: np.ndarray) -> np.ndarray:
    """The digit in grey image `grey` ([0, 1]) as MNIST would have it: uint8 (28, 28), ink bright on black."""
    ink = ink_levels(working_size(grey))
    return normalise(ink, ink_mask(ink))


def bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """`mask`'s bounding box: its first and last row, first and last column (quicker than np.nonzero)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def extent(mask: np.ndarray) -> tuple[int, int]:
    """The height and width of `mask`'s bounding box."""
    top, bottom, left, right = bounds(mask)
    return bottom - top + 1, right - left + 1


def padded_window(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The slices of `mask`'s bounding box widened by `pad` pixels (within the image)."""
    top, bottom, left, right = bounds(mask)
    return np.s_[max(top - pad, 0) : bottom + 1 + pad, max(left - pad, 0) : right + 1 + pad]


def normalise(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ink of the digit `mask` covers, size-normalised and centred as MNIST's."""
    window = padded_window(mask, pad=3 + (max(extent(mask)) - 1) // 8)  # room for the dilation and `_thicken`
    mask, ink = mask[window], ink[window]
    ink = _thicken(np.where(ndimage.binary_dilation(mask, iterations=2), ink, 0), mask)
    top, bottom, left, right = bounds(ink > 0)
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


def working_size(grey: np.ndarray) -> np.ndarray:
    scale = WORKING_SIDE / max(grey.shape)
    if scale >= 1:
        return grey
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    return np.asarray(Image.fromarray(grey.astype(np.float32)).resize(size, Image.Resampling.BOX))


def ink_levels(grey: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0 = background: the border's median is taken as the background,
    and the ink is on the side of it the image reaches farther (dark ink on paper however dim the
    light, light chalk or MNIST's white strokes on black however bright)."""
    width = max(1, min(grey.shape) // 20)
    border = np.concatenate(
        [grey[:width].ravel(), grey[-width:].ravel(), grey[:, :width].ravel(), grey[:, -width:].ravel()]
    )
    background = float(np.median(border))
    ink = background - grey if background - grey.min() > grey.max() - background else grey - background
    if ink.max() < MIN_CONTRAST:
        raise ImageError("no digit found: the image is blank (one flat colour)")
    return np.clip(ink, 0, None).astype(np.float32)


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """The pixels of the ink (a digit, an item): above Otsu's threshold, in blobs not much smaller than the largest."""
    mask = ink > otsu_threshold(ink)
    blobs, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(blobs.ravel())[1:]
    keep = np.flatnonzero(sizes >= MIN_BLOB * sizes.max()) + 1
    return np.isin(blobs, keep)


def otsu_threshold(values: np.ndarray) -> float:
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
    top, bottom, left, right = bounds(mask)
    target = STROKE * max(bottom - top + 1, right - left + 1)
    # the distances within the digit's box, ringed by background, are those in the whole image
    box = np.pad(mask[top : bottom + 1, left : right + 1], 1)
    width = 4 * ndimage.distance_transform_edt(box)[box].mean()  # a stroke of width w averages w/4
    radius = round((target - width) / 2)
    if radius < 1:
        return ink
    disk = np.hypot(*np.mgrid[-radius : radius + 1, -radius : radius + 1]) <= radius
    return ndimage.grey_dilation(ink, footprint=disk)
