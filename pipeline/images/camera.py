"""A digit, or a number composed of digits, photographed: dark ink on paper, as a camera sees it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.images.digits import FIELD


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
