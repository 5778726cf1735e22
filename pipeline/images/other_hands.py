"""Digits and numbers written and photographed as someone outside the project would: the held-out check.

The compose stage's numbers come from the same composition and camera code the touching-digits detector
learns from, so a change to that code can make the stage's own figure look better while real photos are
read worse.  This renderer shares nothing with them (neither `composition` nor `camera`): each digit is
scaled, slanted and drawn with its own pen (a fine pen thins MNIST's stroke, a marker thickens it), the
gaps are a person's (wide, narrow, now and then overlapping), the paper is tinted and textured, the
light falls unevenly, and the camera blurs and compresses.  The numbers
stage reads numbers and single digits made this way (`numbers.outside_*` metrics).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

PAPERS = np.array(  # RGB: white, cream, recycled grey, a blue and a yellow sticky note
    [[0.93, 0.93, 0.92], [0.95, 0.91, 0.80], [0.80, 0.79, 0.76], [0.78, 0.86, 0.95], [0.98, 0.93, 0.58]]
)
PENS = np.array([[0.08, 0.08, 0.10], [0.10, 0.17, 0.55], [0.33, 0.33, 0.35]])  # RGB: black, blue, pencil
TOUCHING = 0.15  # share of neighbours written overlapping


def photo(glyphs: list[np.ndarray], rng: np.random.Generator) -> bytes:
    """`glyphs` (light-on-dark arrays, any size and range) written left to right and photographed: JPEG bytes."""
    height = float(rng.uniform(24, 140))  # a digit's ink height in the photo, in pixels
    written = [_written(glyph, height, rng) for glyph in glyphs]
    margin = int(rng.uniform(0.3, 1.0) * height)
    width = sum(g.shape[1] for g in written) + int(len(written) * 0.5 * height) + 2 * margin
    ink = np.zeros((int(1.6 * height) + 2 * margin, width), np.float32)
    left = margin
    for glyph in written:
        top = margin + int((0.3 + rng.uniform(-0.08, 0.08)) * height)
        rows, columns = glyph.shape
        view = ink[top : top + rows, left : left + columns]
        np.maximum(view, glyph[: view.shape[0], : view.shape[1]], out=view)
        gap = -rng.uniform(0.0, 0.08) if rng.random() < TOUCHING else rng.uniform(0.08, 0.45)
        left += columns + int(gap * height)
    ink = ink[:, : left + margin] if left + margin < width else ink
    return _photographed(ink, rng)


def _written(glyph: np.ndarray, height: float, rng: np.random.Generator) -> np.ndarray:
    """`glyph` as ink in [0, 1], cropped to its ink, `height` pixels tall (give or take), slanted and
    redrawn with a pen finer or broader than the original's."""
    glyph = glyph.astype(np.float32) / max(float(glyph.max()), 1e-6)
    rows, columns = np.flatnonzero(glyph.max(axis=1) > 0.1), np.flatnonzero(glyph.max(axis=0) > 0.1)
    if rows.size:  # a blank glyph is a blank field
        glyph = glyph[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    scale = height * rng.uniform(0.85, 1.15) / glyph.shape[0]
    size = (max(1, round(glyph.shape[1] * scale)), max(1, round(glyph.shape[0] * scale)))
    glyph = np.asarray(Image.fromarray(glyph, "F").resize(size, Image.Resampling.BICUBIC))
    slant = rng.uniform(-0.2, 0.2)  # columns moved per row, about the middle row
    glyph = ndimage.affine_transform(
        np.pad(glyph, ((0, 0), (size[1] // 4, size[1] // 4))), [[1, 0], [slant, 1]], [0, -slant * size[1] / 2], order=1
    )
    pen = round(rng.uniform(-0.03, 0.05) * height)  # pixels added to (or taken from) each side of a stroke
    if pen > 0:
        glyph = ndimage.grey_dilation(glyph, footprint=_disc(pen))
    elif pen < 0:
        glyph = ndimage.grey_erosion(glyph, footprint=_disc(-pen))
    glyph = np.clip(glyph, 0, 1)
    columns = np.flatnonzero(glyph.max(axis=0) > 0.1)
    return glyph[:, columns[0] : columns[-1] + 1] if columns.size else glyph


def _disc(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def _photographed(ink: np.ndarray, rng: np.random.Generator) -> bytes:
    """`ink` (light on dark, [0, 1]) as a JPEG photo of a pen on paper under uneven light."""
    rows, columns = ink.shape
    paper = PAPERS[rng.integers(len(PAPERS))] * rng.uniform(0.65, 1.0)
    pen = PENS[rng.integers(len(PENS))]
    texture = ndimage.gaussian_filter(rng.standard_normal(ink.shape), rng.uniform(2, 8)) * rng.uniform(0, 0.6)
    y, x = np.mgrid[0:rows, 0:columns] / max(rows, columns)
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0, 0.2) * (np.cos(angle) * x + np.sin(angle) * y - 0.5)
    light -= rng.uniform(0, 0.1) * ((x - x.mean()) ** 2 + (y - y.mean()) ** 2)  # vignetting
    opacity = ink * rng.uniform(0.7, 1.0)
    rgb = (paper * (1 + 0.05 * texture[..., None]) * (1 - opacity[..., None]) + pen * opacity[..., None]) * light[
        ..., None
    ]
    rgb = ndimage.gaussian_filter(rgb, (rng.uniform(0.3, 1.2), rng.uniform(0.3, 1.2), 0))
    rgb += rng.uniform(0.005, 0.03) * rng.standard_normal(rgb.shape)
    image = Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=int(rng.integers(40, 95)))
    return out.getvalue()
