"""Digits a model can really learn without MNIST (tests never download it): typeset in the fonts
matplotlib ships, drawn as pages of dark ink on light paper, and normalised like any user's image."""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.images.digits import to_mnist

FONT_DIR = Path(matplotlib.get_data_path(), "fonts", "ttf")
FONTS = sorted(
    str(FONT_DIR / name)
    for name in (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
        "STIXGeneral.ttf",
        "STIXGeneralBol.ttf",
        "cmr10.ttf",
        "cmss10.ttf",
    )
)


def page(digit: int, rng: np.random.Generator, size: int = 160, offset: tuple[int, int] | None = None) -> np.ndarray:
    """Grey levels in [0, 1] of a `size`-pixel square page: `digit` in a random font, weight and tilt, dark on light."""
    font = _font(FONTS[rng.integers(len(FONTS))], int(size * rng.uniform(0.45, 0.7)))
    image = Image.new("L", (size, size), 230)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    x, y = offset or ((size - (right - left)) // 2 - left, (size - (bottom - top)) // 2 - top)
    draw.text((x, y), str(digit), fill=25, font=font, stroke_width=int(rng.integers(0, 3)), stroke_fill=25)
    image = image.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BICUBIC, fillcolor=230)
    return np.asarray(image, np.float32) / 255


def font_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels): typeset digits normalised as MNIST's, every digit equally often."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return np.stack([to_mnist(page(int(d), rng)) for d in labels]), labels


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)
