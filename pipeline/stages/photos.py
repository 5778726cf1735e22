"""photos stage: `predict`'s path checked end to end on digits as a user would photograph them.

Test digits are rendered as photos (dark ink on tinted paper, a random size and place on a page of
random size, uneven light, sensor noise, JPEG at a random quality), written to disk, read back and
normalised by `pipeline.images`, and classified by the exported model.  Their accuracy is reported
next to the same model's on the same digits as MNIST has them.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline import paths, plots
from pipeline.files import save_json
from pipeline.images import ImageError, load_digit
from pipeline.inference import load_predictor, predict_files, predict_in_batches
from pipeline.params import load_params

log = logging.getLogger(__name__)
SHOWN = 8  # photos in the report figure


def photograph(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """MNIST `digit` (uint8 28x28, light on dark) as an RGB photo of ink on paper."""
    side = int(rng.integers(40, 300))  # the 28x28 field's size in the photo, in pixels
    width, height = (rng.uniform(1.2, 3.0, 2) * side).astype(int)
    stroke = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
    ink = np.zeros((height, width, 1), np.float32)
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    ink[top : top + side, left : left + side, 0] = np.clip(stroke, 0, 1)
    paper = rng.uniform(0.7, 0.95) + rng.uniform(-0.04, 0.04, 3)
    pen = rng.uniform(0.05, 0.35) + rng.uniform(-0.05, 0.05, 3)
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    light = 1 + rng.uniform(0, 0.2) * (np.cos(angle) * x + np.sin(angle) * y - 0.5)
    rgb = (paper * (1 - ink) + pen * ink) * light[..., None] + rng.normal(0, rng.uniform(0.01, 0.04), ink.shape)
    return Image.fromarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def _digit_or_blank(path: Path) -> np.ndarray:
    try:
        return load_digit(path)
    except ImageError:
        return np.zeros((28, 28), np.uint8)


def main() -> None:
    all_params = load_params()
    params = all_params.photos
    images, actual = paths.load_split("test")
    rng = np.random.default_rng(params.seed)
    chosen = np.sort(rng.choice(len(actual), min(params.count, len(actual)), replace=False))
    predictor = load_predictor(paths.ONNX_MODEL)
    with tempfile.TemporaryDirectory() as folder:
        files = [Path(folder, f"test-{i:05d}.jpg") for i in chosen]
        for path, digit in zip(files, images[chosen], strict=True):
            photograph(digit, rng).save(path, quality=int(rng.integers(60, 95)))
        rows = predict_files(files, predictor)
        shown = [np.asarray(Image.open(path)) for path in files[:SHOWN]]
        normalised = [_digit_or_blank(path) for path in files[:SHOWN]]
    on_photos = np.array([row.get("digit", -1) for row in rows])
    as_mnist = predict_in_batches(predictor, images[chosen], all_params.evaluate.batch_size).argmax(1)
    metrics = {
        "images": len(chosen),
        "unreadable": int(np.sum(on_photos < 0)),
        "photo_accuracy": float(np.mean(on_photos == actual[chosen])),
        "mnist_accuracy": float(np.mean(as_mnist == actual[chosen])),
    }
    metrics["gap_points"] = round(100 * (metrics["mnist_accuracy"] - metrics["photo_accuracy"]), 2)
    save_json(paths.PHOTOS_METRICS, metrics)
    captions = [f"true {a}, pred {p}" for a, p in zip(actual[chosen][:SHOWN], on_photos[:SHOWN], strict=True)]
    plots.save(plots.photos(shown, normalised, captions), paths.PHOTOS_PLOT)

    log.info(
        "%d photographed test digits: %.2f%% right, against %.2f%% for the same digits as in MNIST (%d unreadable)",
        metrics["images"],
        100 * metrics["photo_accuracy"],
        100 * metrics["mnist_accuracy"],
        metrics["unreadable"],
    )
