"""matplotlib figures, one function each; `save` writes a figure to PNG atomically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from pipeline.infra.files import atomic_write


def save(figure: Figure, path: Path) -> None:
    """Write `figure` as a PNG at `path` (byte-stable for equal figures)."""
    with atomic_write(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def class_distribution(counts: dict[str, np.ndarray], names: list[str], noun: str) -> Figure:
    """Grouped bars: each class's share of every split, so stratification shows at a glance; the classes
    by their `names`, each a `noun` ("digit")."""
    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.add_subplot()
    _grouped_bars(axes, {f"{split} ({c.sum():,} images)": 100 * c / c.sum() for split, c in counts.items()})
    _class_ticks(axes, names, noun)
    axes.set(ylabel="share of split (%)", title="Class distribution per split")
    figure.legend(loc="outside lower center", ncols=len(counts), frameon=False)
    return figure


def training_curves(history: pd.DataFrame, kept_epoch: int) -> Figure:
    """Error rate (log scale, so late epochs stay readable), loss and learning rate per epoch; the
    epoch whose weights training kept is marked."""
    figure = Figure(figsize=(12, 3.5), layout="constrained")
    error, loss, rate = figure.subplots(1, 3)
    for split, prefix in (("train", ""), ("validation", "val_")):
        error.plot(history["epoch"], 100 * (1 - history[f"{prefix}accuracy"]), marker=".", label=split)
        loss.plot(history["epoch"], history[f"{prefix}loss"], marker=".", label=split)
    error.axvline(kept_epoch, color="grey", linestyle=":", label=f"kept (epoch {kept_epoch})")
    error.set(xlabel="epoch", ylabel="%", yscale="log", title="error rate")
    loss.set(xlabel="epoch", yscale="log", title="loss")
    _plain_log_ticks(error, loss)
    rate.plot(history["epoch"], history["learning_rate"], marker=".")
    rate.set(xlabel="epoch", title="learning rate (at epoch end)")
    error.legend()
    loss.legend()
    return figure


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray, names: list[str]) -> Figure:
    """Counts of every (actual, predicted) pair on the test set, classes by their `names`."""
    from sklearn.metrics import ConfusionMatrixDisplay  # here: 0.7 s to import, and only evaluate draws this

    figure = Figure(figsize=(6, 5.5), layout="constrained")
    axes = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        actual, predicted, labels=range(len(names)), display_labels=names, ax=axes, colorbar=False, cmap="Blues"
    )
    if _long(names):
        axes.tick_params(axis="x", labelrotation=45)
    axes.set_title(f"Confusion matrix: {int((actual != predicted).sum())} errors in {len(actual):,} test images")
    return figure


def digit_grid(images: np.ndarray, captions: list[str], wrong: np.ndarray, title: str) -> Figure:
    """Images in a square grid, each captioned; captions of wrong predictions in red."""
    side = math.ceil(math.sqrt(len(images)))
    figure = Figure(figsize=(1.6 * side, 1.8 * side), layout="constrained")
    grid = figure.subplots(side, side).flat  # may hold more cells than images: those stay blank
    for axes, image, caption, is_wrong in zip(grid, images, captions, wrong, strict=False):
        axes.imshow(image, cmap="gray_r", vmin=0, vmax=255)
        axes.set_title(caption, fontsize=9, color="tab:red" if is_wrong else "black")
    for axes in figure.axes:
        axes.set_axis_off()
    figure.suptitle(title)
    return figure


def photos(photos: list[np.ndarray], digits: list[np.ndarray], captions: list[str], noun: str) -> Figure:
    """Photos in a row, each scaled to fit its cell, above the 28x28 image normalised from it; what
    they show, each a `noun` ("digit"), in the title."""
    figure = Figure(figsize=(2 * len(photos), 4.2), layout="constrained")
    cells = np.asarray(figure.subplots(2, len(photos))).reshape(2, -1)
    for above, below, photo, digit, caption in zip(*cells, photos, digits, captions, strict=True):
        above.imshow(photo)
        above.set_title(f"{photo.shape[1]}x{photo.shape[0]} JPEG", fontsize=9)
        below.imshow(digit, cmap="gray_r", vmin=0, vmax=255)
        below.set_title(caption, fontsize=9)
    for axes in figure.axes:
        axes.set_axis_off()
    figure.suptitle(f"Test {noun}s photographed (rendered), and what predict makes of them")
    return figure


def numbers(photos: list[np.ndarray], captions: list[str], wrong: np.ndarray) -> Figure:
    """Photographed numbers, one above another, each captioned with what was read (mistakes in red)."""
    figure = Figure(figsize=(7, 1.6 * len(photos)), layout="constrained")
    for axes, photo, caption, is_wrong in zip(
        np.atleast_1d(figure.subplots(len(photos), 1)), photos, captions, wrong, strict=True
    ):
        axes.imshow(photo)
        axes.set_title(caption, fontsize=10, color="tab:red" if is_wrong else "black")
        axes.set_axis_off()
    figure.suptitle("Numbers of test digits, photographed,\nand what predict reads (mistakes in red)")
    return figure


def saliency_rows(digits: np.ndarray, maps: dict[str, np.ndarray], captions: list[str], title: str) -> Figure:
    """A column per digit: the digit as the model saw it, then each map (by name) over it."""
    rows = 1 + len(maps)
    figure = Figure(figsize=(1.7 * max(len(digits), 2), 1.8 * rows), layout="constrained")
    cells = np.asarray(figure.subplots(rows, max(len(digits), 2))).reshape(rows, -1)
    for column, (digit, caption) in enumerate(zip(digits, captions, strict=True)):
        cells[0, column].imshow(digit, cmap="gray_r", vmin=0, vmax=255)
        cells[0, column].set_title(caption, fontsize=8)
        for row, (name, saliency) in enumerate(maps.items(), start=1):
            overlay(cells[row, column], digit, saliency[column])
            cells[row, column].set_title(name, fontsize=8)
    for axes in figure.axes:
        axes.set_axis_off()
    figure.suptitle(title)
    return figure


def overlay(axes: Axes, digit: np.ndarray, saliency: np.ndarray) -> None:
    """`saliency` ([0, 1], 28x28) in warm colours over the grey `digit`."""
    axes.imshow(digit, cmap="gray_r", vmin=0, vmax=255)
    axes.imshow(saliency, cmap="inferno", alpha=0.6 * saliency, vmin=0, vmax=1)


def explained_number(
    photo: np.ndarray, number: dict, digits: list[np.ndarray], maps: np.ndarray, map_name: str
) -> Figure:
    """An image with a box round each digit found, above each digit as the model saw it with its map."""
    columns = max(len(digits), 2)
    figure = Figure(figsize=(max(1.8 * columns, 5), 5.2), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.4, 1])
    axes = top.subplots()
    axes.imshow(photo, cmap="gray", vmin=0, vmax=1)
    for read in number["digits"]:
        left, upper, right, lower = read["box"]
        axes.add_patch(Rectangle((left, upper), right - left, lower - upper, fill=False, color="tab:red", lw=1.5))
        axes.text(left, upper, str(read["digit"]), color="tab:red", va="bottom", fontsize=12, weight="bold")
    axes.set_title(f"read {number['number']} ({number['confidence']:.1%})")
    axes.set_axis_off()
    for cell, digit, saliency, read in zip(
        np.atleast_1d(bottom.subplots(1, columns)), digits, maps, number["digits"], strict=False
    ):
        overlay(cell, digit, saliency)
        cell.set_title(f"{read['digit']} ({read['confidence']:.1%})", fontsize=9)
    for cell in bottom.axes:
        cell.set_axis_off()
    bottom.suptitle(f"{map_name} map: where the model looked", fontsize=10)
    return figure


def comparison(error_rates: pd.DataFrame, noun: str) -> Figure:
    """Test error rate per class (rows, by name, each a `noun`: "digit", "class"), one bar per model (columns),
    on a log scale."""
    figure = Figure(figsize=(8, 3.5), layout="constrained")
    axes = figure.add_subplot()
    _grouped_bars(axes, {model: error_rates[model].to_numpy() for model in error_rates.columns})
    _class_ticks(axes, list(error_rates.index), noun)
    axes.set(ylabel="test error (%)", yscale="log", title=f"Test error per {noun}")
    _plain_log_ticks(axes)
    axes.legend()
    return figure


def _long(names: list[str]) -> bool:
    """Whether class names need tilting to fit side by side (digits do not)."""
    return any(len(name) > 2 for name in names)


def _class_ticks(axes: Axes, names: list[str], noun: str) -> None:
    axes.set(xticks=range(len(names)), xticklabels=names, xlabel=noun)
    if _long(names):
        axes.tick_params(axis="x", labelrotation=30)


def _grouped_bars(axes: Axes, series: dict[str, np.ndarray]) -> None:
    """One group of bars per position, one bar per series within it."""
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        axes.bar(np.arange(len(values)) + offset, values, width, label=label)


def _plain_log_ticks(*axes: Axes) -> None:
    """Log-scale y ticks as plain numbers (0.1, 0.2, 0.5, 1, 2, 5, 10), not powers of ten."""
    for each in axes:
        each.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        each.yaxis.set_minor_formatter(ticker.FuncFormatter(_two_and_five))


def _two_and_five(value: float, _position: int) -> str:
    """Labels the minor ticks at 2 and 5 times a power of ten only, so labels never crowd."""
    return f"{value:g}" if round(value / 10 ** math.floor(math.log10(value))) in (2, 5) else ""
