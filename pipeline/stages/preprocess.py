"""preprocess stage: a seeded, stratified train/validation split; the test set passes through untouched.

Images stay uint8 (N, 28, 28), a quarter of float32's size and quick to load; scaling to [0, 1]
is the model's first layer, so a saved model takes raw pixels.  `subset` keeps a stratified
sample of the training images for quick runs.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline import PipelineError
from pipeline.infra import paths
from pipeline.infra.files import atomic_write, load_npz, save_json, save_npz
from pipeline.infra.params import PreprocessParams, load_params
from pipeline.report import plots

log = logging.getLogger(__name__)
Split = tuple[np.ndarray, np.ndarray]


def split(arrays: dict[str, np.ndarray], params: PreprocessParams) -> dict[str, Split]:
    """Train, validation and test (images, labels), keyed by split name."""
    x, y = arrays["x_train"], arrays["y_train"]
    if params.subset is not None and params.subset > len(y):
        raise PipelineError(f"preprocess.subset = {params.subset} exceeds the {len(y)} training images")
    try:
        if params.subset is not None and params.subset < len(y):
            x, _, y, _ = train_test_split(x, y, train_size=params.subset, stratify=y, random_state=params.seed)
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=params.val_fraction, stratify=y, random_state=params.seed
        )
    except ValueError as error:  # e.g. too few images for every class to reach both splits
        raise PipelineError(f"preprocess: cannot split {len(y)} images stratified: {error}") from None
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (arrays["x_test"], arrays["y_test"])}


def class_counts(splits: dict[str, Split]) -> dict[str, np.ndarray]:
    """Images per digit in each split."""
    return {name: np.bincount(y, minlength=10) for name, (_, y) in splits.items()}


def split_sizes(counts: dict[str, np.ndarray]) -> dict[str, int]:
    """The metrics file: images in each split (the per-digit counts are a report, not metrics)."""
    return {name: int(c.sum()) for name, c in counts.items()}


def class_count_table(counts: dict[str, np.ndarray]) -> pd.DataFrame:
    """Images per digit (rows) in each split (columns)."""
    return pd.DataFrame(counts).rename_axis("digit")


def main() -> None:
    everything = load_params()
    params, dataset = everything.preprocess, everything.data.current
    splits = split(load_npz(paths.RAW_DATA), params)
    for name, (x, y) in splits.items():
        save_npz(paths.split_file(name), {"x": x, "y": y})
    counts = class_counts(splits)
    save_json(paths.DATA_METRICS, split_sizes(counts))
    with atomic_write(paths.CLASS_COUNTS) as tmp:
        class_count_table(counts).to_csv(tmp)
    plots.save(plots.class_distribution(counts, dataset.classes, dataset.noun), paths.CLASS_DISTRIBUTION_PLOT)
    log.info("split sizes: %s", ", ".join(f"{name} {len(y)}" for name, (_, y) in splits.items()))
