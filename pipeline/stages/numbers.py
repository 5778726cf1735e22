"""numbers stage: whole numbers read as `predict` reads them, measured on numbers composed of test digits.

Each number is `min_digits` to `max_digits` test digits side by side, their empty margins cropped,
each a pixel or two up or down; a `touching` share of adjacent pairs are moved together until their
strokes join, the others are 2 to 6 pixels apart.  The number is photographed as the photograph
stage photographs a digit, saved as JPEG, and read back by `pipeline.images.load_number` with the
ONNX export and the touching-digits detector, `predict`'s default models, exactly as `predict` reads a file.  Metrics: sequence
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

from pipeline import paths, plots
from pipeline.composition import compose
from pipeline.files import atomic_write, save_json
from pipeline.images import ImageError, load_number, photograph
from pipeline.inference import Predictor, onnx_predictor, read_number
from pipeline.params import NumbersParams, load_params

log = logging.getLogger(__name__)
SHOWN = 6  # numbers in the report figure: the first ones, and the first two read wrong
_models: tuple[Predictor, Predictor]  # each worker process's own digit model and touching-digits detector


def _load_models(model: Path, touching: Path) -> None:
    global _models
    _models = onnx_predictor(model), onnx_predictor(touching)


def photograph_and_read(digits: np.ndarray, touching: np.ndarray, index: int, seed: int, folder: Path) -> str | None:
    """Number `index` composed, photographed (its own generator: `seed`, `index`), saved and read back as
    `predict` reads a file: the number read, or None when no digit was found."""
    rng = np.random.default_rng([seed, index])
    path = folder / f"number-{index:05d}.jpg"
    photograph(compose(digits, touching, rng), rng).save(path, quality=int(rng.integers(60, 95)))
    try:
        return read_number(load_number(path, *_models), _models[0])["number"]
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


def read_all(
    images: np.ndarray, labels: np.ndarray, params: NumbersParams, models: tuple[Path, Path], folder: Path
) -> pd.DataFrame:
    """Every number of `draw_numbers` composed of `images`, photographed into `folder` and read back with
    `models` (the digit model and the touching-digits detector), on every core: a row per number."""
    numbers = draw_numbers(labels, params)
    workers = len(os.sched_getaffinity(0))
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=_load_models, initargs=models) as pool:
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
    """Sequence, digit and digit-count accuracy; and, when some numbers have a touching pair, the share of
    adjacent pairs touching and sequence accuracy on those numbers (absent, not null: MLflow logs numbers)."""
    right = table.truth == table.read
    digits = table.truth.str.len()
    errors = sum(edit_distance(t, r) for t, r in zip(table.truth, table.read, strict=True))
    metrics = {
        "numbers": len(table),
        "sequence_accuracy": float(right.mean()),
        "digit_accuracy": float(1 - errors / digits.sum()),
        "count_accuracy": float((table.read.str.len() == digits).mean()),
        "unreadable": int((table.read == "").sum()),
    }
    if table.touching.any():
        metrics["touching_sequence_accuracy"] = float(right[table.touching].mean())
        metrics["touching_pair_share"] = float(table.touching_pairs.sum() / (digits - 1).sum())
    return metrics


def main() -> None:
    params = load_params().numbers
    images, labels = paths.load_split("test")
    with tempfile.TemporaryDirectory() as folder:
        table = read_all(images, labels, params, (paths.ONNX_MODEL, paths.TOUCHING_MODEL), Path(folder))
        wrong = table.index[table.truth != table.read]
        shown = sorted({*table.index[: SHOWN - len(wrong[:2])], *wrong[:2]})
        photos = [np.asarray(Image.open(Path(folder) / f"number-{i:05d}.jpg")) for i in shown]
    metrics = number_metrics(table)
    save_json(paths.NUMBERS_METRICS, metrics)
    with atomic_write(paths.NUMBERS_READ) as tmp:
        table.to_csv(tmp, index_label="number")
    rows = table.loc[shown]
    captions = [f"number {i}: {row.truth}, read as {row.read or '(nothing)'}" for i, row in rows.iterrows()]
    plots.save(plots.numbers(photos, captions, (rows.truth != rows.read).to_numpy()), paths.NUMBERS_PLOT)
    log.info(
        "%d numbers of %d-%d test digits: %.2f%% read whole, %.2f%% of digits (%.2f%% of those with a touching pair)",
        metrics["numbers"],
        params.min_digits,
        params.max_digits,
        100 * metrics["sequence_accuracy"],
        100 * metrics["digit_accuracy"],
        100 * metrics.get("touching_sequence_accuracy", float("nan")),
    )
