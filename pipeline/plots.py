"""matplotlib figures, one function each; `save` writes a figure to PNG atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline.files import atomic_write


def save(figure: Figure, path: Path) -> None:
    """Write `figure` as a PNG at `path` (byte-stable for equal figures)."""
    with atomic_write(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def class_distribution(counts: dict[str, np.ndarray]) -> Figure:
    """Grouped bars: each digit's share of every split, so stratification shows at a glance."""
    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.add_subplot()
    digits = np.arange(10)
    width = 0.8 / len(counts)
    for i, (split, split_counts) in enumerate(counts.items()):
        offset = (i - (len(counts) - 1) / 2) * width
        label = f"{split} ({split_counts.sum():,} images)"
        axes.bar(digits + offset, 100 * split_counts / split_counts.sum(), width, label=label)
    axes.set(xticks=digits, xlabel="digit", ylabel="share of split (%)", title="Class distribution per split")
    figure.legend(loc="outside lower center", ncols=len(counts), frameon=False)
    return figure
