"""numbers stage: whole numbers read as `predict` reads them, from the photos the compose stage made.

Each photographed number (data/numbers.npz: JPEG files of numbers composed of test digits) is read
as `predict` reads a file, with its default models: the ONNX export and the touching-digits detector.
The cut stage has cut the photos into digits wherever that needs no digit model: here the export
classifies those digits in one batch, and segments again the photos where it must choose a cut
between touching digits (`pipeline.reading.photographed`).  Metrics: sequence accuracy (the whole
number right), digit accuracy (1 - edit distance / digits, so a digit missed, split in two or misread
costs one), the share read with the right number of digits, and sequence accuracy on the numbers with
a touching pair.  The same, prefixed `outside_`, on the held-out numbers of data/outside.npz (written
and photographed by other code, `pipeline.images.other_hands`), and for its single digits the share
read as that one digit, and how many were read as several.  Photos are read on every core; the result
does not depend on their number.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.infra import paths
from pipeline.infra.files import atomic_write, load_npz, save_json
from pipeline.infra.params import load_params
from pipeline.reading import photographed
from pipeline.reading.photographed import every_photo, photo_bytes
from pipeline.stages import not_applicable

log = logging.getLogger(__name__)
SHOWN = 6  # numbers in the report figure: the first ones, and the first two read wrong


def read_all(
    numbers: dict[str, np.ndarray],
    outside: dict[str, np.ndarray],
    cut: dict[str, np.ndarray],
    models: tuple[Path, Path] = (paths.ONNX_MODEL, paths.TOUCHING_MODEL),
) -> pd.DataFrame:
    """Every photo of both sets read with `models` (the digit model and the touching-digits detector
    that `cut` was made with, `photographed.cut_all`): a row per photo, the composed numbers first
    (material "composed")."""
    read = photographed.read_all(every_photo(numbers, outside), cut, *models)
    outside_touching = np.zeros(len(outside["truth"]), int)  # not known: the hand, not the code, decides
    return pd.DataFrame(
        {
            "material": np.r_[np.full(len(numbers["truth"]), "composed"), outside["material"]],
            "truth": np.r_[numbers["truth"], outside["truth"]].astype(str),
            "read": read,
            "touching": np.r_[numbers["touching_pairs"], outside_touching] > 0,
            "touching_pairs": np.r_[numbers["touching_pairs"], outside_touching],
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


def outside_metrics(table: pd.DataFrame) -> dict:
    """`number_metrics` of the held-out numbers, prefixed `outside_`, and of its single digits the share
    read right (`outside_digits_read`) and the count read as two or more (`outside_digits_as_several`)."""
    metrics = {}
    numbers = table[table.material == "number"]
    if len(numbers):
        metrics = {f"outside_{name}": value for name, value in number_metrics(numbers).items()}
    singles = table[table.material.isin(["test digit", "UCI digit"])]
    if len(singles):
        metrics["outside_digits"] = len(singles)
        metrics["outside_digits_read"] = float((singles.truth == singles.read).mean())
        metrics["outside_digits_as_several"] = int((singles.read.str.len() > 1).sum())
    return metrics


def main() -> None:
    if not_applicable.skip(load_params(), paths.NUMBERS_METRICS, (paths.NUMBERS_READ, paths.NUMBERS_PLOT)):
        return
    numbers = load_npz(paths.NUMBER_PHOTOS)
    table = read_all(numbers, load_npz(paths.OUTSIDE_PHOTOS), load_npz(paths.CUT_DIGITS))
    composed = table[table.material == "composed"]
    metrics = number_metrics(composed) | outside_metrics(table)
    save_json(paths.NUMBERS_METRICS, metrics)
    with atomic_write(paths.NUMBERS_READ) as tmp:
        table.to_csv(tmp, index_label="photo")
    wrong = composed.index[composed.truth != composed.read]
    rows = composed.loc[sorted({*composed.index[: SHOWN - len(wrong[:2])], *wrong[:2]})]
    from pipeline.report import plots  # matplotlib: a third of a second, needless where numbers do not apply

    photos = [np.asarray(Image.open(io.BytesIO(photo_bytes(numbers, i)))) for i in rows.index]
    captions = [f"number {i}: {row.truth}, read as {row.read or '(nothing)'}" for i, row in rows.iterrows()]
    plots.save(plots.numbers(photos, captions, (rows.truth != rows.read).to_numpy()), paths.NUMBERS_PLOT)
    log.info(
        "%d numbers of test digits: %.2f%% read whole, %.2f%% of digits (%.2f%% of those with a touching pair); "
        "held out: %.2f%% of %d numbers read whole, %.2f%% of %d single digits read right, %d as several",
        metrics["numbers"],
        100 * metrics["sequence_accuracy"],
        100 * metrics["digit_accuracy"],
        100 * metrics.get("touching_sequence_accuracy", float("nan")),
        100 * metrics.get("outside_sequence_accuracy", float("nan")),
        metrics.get("outside_numbers", 0),
        100 * metrics.get("outside_digits_read", float("nan")),
        metrics.get("outside_digits", 0),
        metrics.get("outside_digits_as_several", 0),
    )
