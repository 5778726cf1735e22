"""numbers stage: whole numbers read as `predict` reads them, measured on numbers composed of test digits.

Each number is `min_digits` to `max_digits` test digits side by side, their empty margins cropped,
each a pixel or two up or down; a `touching` share of adjacent pairs are moved together until their
strokes join, the others are 2 to 6 pixels apart.  The number is photographed as the photograph
stage photographs a digit, saved as JPEG, and read back by `pipeline.images.load_number` with the
ONNX export, `predict`'s default model, exactly as `predict` reads a file.  Metrics: sequence
accuracy (the whole number right), digit accuracy (1 - edit distance / digits, so a digit missed,
split in two or misread costs one), the share read with the right number of digits, and sequence
accuracy on the numbers with a touching pair.  Numbers are rendered and read in parallel, each from
its own seeded generator, so the result does not depend on the number of cores.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from pipeline import paths, plots
from pipeline.files import atomic_write, save_json
from pipeline.images import ImageError, load_number, photograph
from pipeline.inference import Predictor, onnx_predictor, read_number
from pipeline.params import NumbersParams, load_params

log = logging.getLogger(__name__)
ROWS = 32  # a number's height: 28 rows and room to move each digit up or down by 2
MARGIN = 4  # empty columns either side of a number
SHOWN = 6  # numbers in the report figure
_predictor: Predictor  # each worker process's own model


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


def _load_model(path: Path) -> None:
    global _predictor
    _predictor = onnx_predictor(path)


def photograph_and_read(digits: np.ndarray, touching: np.ndarray, index: int, seed: int, folder: Path) -> str | None:
    """Number `index` composed, photographed (its own generator: `seed`, `index`), saved and read back as
    `predict` reads a file: the number read, or None when no digit was found."""
    rng = np.random.default_rng([seed, index])
    path = folder / f"number-{index:05d}.jpg"
    photograph(compose(digits, touching, rng), rng).save(path, quality=int(rng.integers(60, 95)))
    try:
        return read_number(load_number(path, _predictor), _predictor)["number"]
    except ImageError:
        return None


def draw_numbers(labels: np.ndarray, params: NumbersParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each number, the indices of its digits (distinct, drawn at random) and which pairs touch."""
    rng = np.random.default_rng(params.seed)
    numbers = []
    for _ in range(params.count):
        length = int(rng.integers(params.min_digits, params.max_digits + 1))
        numbers.append((rng.choice(len(labels), length, replace=False), rng.random(length - 1) < params.touching))
    return numbers


def read_all(images: np.ndarray, labels: np.ndarray, params: NumbersParams, model: Path, folder: Path) -> pd.DataFrame:
    """Every number of `draw_numbers` composed of `images`, photographed into `folder` and read back with
    `model`, on every core: a row per number (truth, read, touching)."""
    numbers = draw_numbers(labels, params)
    workers = len(os.sched_getaffinity(0))
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=_load_model, initargs=(model,)) as pool:
        read = list(
            pool.map(
                photograph_and_read,
                [images[digits] for digits, _ in numbers],
                [touching for _, touching in numbers],
                range(len(numbers)),
                [params.seed] * len(numbers),
                [folder] * len(numbers),
                chunksize=16,
            )
        )
    return pd.DataFrame(
        {
            "truth": ["".join(map(str, labels[digits])) for digits, _ in numbers],
            "read": [number or "" for number in read],
            "touching": [bool(touching.any()) for _, touching in numbers],
            "touching_pairs": [int(touching.sum()) for _, touching in numbers],
        }
    )


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning `a` into `b`."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def number_metrics(table: pd.DataFrame) -> dict:
    """Sequence, digit and digit-count accuracy, and sequence accuracy on the numbers with a touching pair."""
    right = table.truth == table.read
    digits = table.truth.str.len()
    errors = sum(edit_distance(t, r) for t, r in zip(table.truth, table.read, strict=True))
    return {
        "numbers": len(table),
        "sequence_accuracy": float(right.mean()),
        "digit_accuracy": float(1 - errors / digits.sum()),
        "count_accuracy": float((table.read.str.len() == digits).mean()),
        "touching_sequence_accuracy": float(right[table.touching].mean()) if table.touching.any() else None,
        "touching_pair_share": float(table.touching_pairs.sum() / (digits - 1).sum()),
        "unreadable": int((table.read == "").sum()),
    }


def main() -> None:
    params = load_params().numbers
    images, labels = paths.load_split("test")
    with tempfile.TemporaryDirectory() as folder:
        table = read_all(images, labels, params, paths.ONNX_MODEL, Path(folder))
        shown = [np.asarray(Image.open(Path(folder) / f"number-{i:05d}.jpg")) for i in range(min(SHOWN, len(table)))]
    metrics = number_metrics(table)
    save_json(paths.NUMBERS_METRICS, metrics)
    with atomic_write(paths.NUMBERS_READ) as tmp:
        table.to_csv(tmp, index_label="number")
    captions = [f"{row.truth} read as {row.read or '(nothing)'}" for row in table.head(SHOWN).itertuples()]
    plots.save(plots.numbers(shown, captions, (table.truth != table.read).head(SHOWN).to_numpy()), paths.NUMBERS_PLOT)
    log.info(
        "%d numbers of %d-%d test digits: %.2f%% read whole, %.2f%% of digits (%.2f%% of those with a touching pair)",
        metrics["numbers"],
        params.min_digits,
        params.max_digits,
        100 * metrics["sequence_accuracy"],
        100 * metrics["digit_accuracy"],
        100 * (metrics["touching_sequence_accuracy"] or 0),
    )
