"""One item per image as Fashion-MNIST has its products: trimmed to the item, its longer side 28 pixels,
centred, light on black; for datasets whose classes are not digits (`predict`, the photograph stage).

Fashion-MNIST's own conversion (zalandoresearch/fashion-mnist, "Get the Data") trims the product photo,
resizes its longest edge to 28, centres it and negates it: no 20x20 box, no centre of mass and no
stroke widening, which are MNIST's and a digit's (`pipeline.images.digits`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.images.digits import FIELD, ImageError, bounds, ink_levels, ink_mask, read_image, working_size


def load_item(path: Path) -> np.ndarray:
    """The item in the image file at `path`, as `to_item` makes it; ImageError names the file."""
    try:
        return to_item(read_image(path))
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def to_item(grey: np.ndarray) -> np.ndarray:
    """The item in grey image `grey` ([0, 1]) as Fashion-MNIST would have it: uint8 (28, 28), bright on black."""
    ink = ink_levels(working_size(grey))
    top, bottom, left, right = bounds(ink_mask(ink))
    item = ink[top : bottom + 1, left : right + 1]
    scale = FIELD / max(item.shape)
    size = (max(1, round(item.shape[1] * scale)), max(1, round(item.shape[0] * scale)))
    item = np.clip(np.asarray(Image.fromarray(item).resize(size, Image.Resampling.LANCZOS)), 0, None)
    field = np.zeros((FIELD, FIELD), np.float32)
    top, left = (FIELD - item.shape[0]) // 2, (FIELD - item.shape[1]) // 2
    field[top : top + item.shape[0], left : left + item.shape[1]] = item / item.max()
    return np.round(field * 255).astype(np.uint8)
