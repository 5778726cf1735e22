"""The bench's presets and data: a dataset's presets file, a preset's params, and the split every preset
of a dataset trains on (bench/bench.py, bench/ensembles.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

from pipeline.infra import paths
from pipeline.infra.files import load_npz, save_npz
from pipeline.infra.overrides import with_overrides
from pipeline.infra.params import Params, load_params

PRESETS_FILE = Path(__file__).with_name("presets.yaml")  # MNIST's
QUICK_IMAGES = 2000  # training images of a --quick run
SPLIT_KEYS = ("data.", "preprocess.")  # what a preset may not change: every preset of a dataset on one split


def named(stem: str, dataset: str) -> str:
    """A bench file's name for `dataset`: `stem` for MNIST (the first dataset's names stay), `stem-<dataset>` otherwise."""
    return stem if dataset == "mnist" else f"{stem}-{dataset}"


def presets_file(dataset: str) -> Path:
    """The presets of `dataset`: bench/presets.yaml for MNIST, bench/presets-<dataset>.yaml for another."""
    return PRESETS_FILE.with_name(f"{named('presets', dataset)}.yaml")


def load_presets(dataset: str) -> dict:
    """`dataset`'s presets (read_presets)."""
    file = presets_file(dataset)
    if not file.is_file():
        sys.exit(f"bench: no presets for dataset {dataset!r}: {file} does not exist")
    return read_presets(file)


def read_presets(file: Path) -> dict:
    """The presets of `file`, then those it takes from MNIST's file by name (`as_on_mnist`: the same params
    and seeds), each refused in one line if it changes the split."""
    content = yaml.safe_load(file.read_text())
    presets = content["presets"]
    if borrowed := content.get("as_on_mnist"):
        mnist = yaml.safe_load(PRESETS_FILE.read_text())["presets"]
        if unknown := [name for name in borrowed if name not in mnist or name in presets]:
            sys.exit(
                f"bench: {file}: as_on_mnist names {', '.join(unknown)}: each must be a preset of {PRESETS_FILE}, not of this file"
            )
        presets |= {name: mnist[name] for name in borrowed}
    for name, preset in presets.items():
        if changed := sorted(key for key in preset["params"] if key.startswith(SPLIT_KEYS)):
            sys.exit(f"bench: {file}: preset {name} sets {', '.join(changed)}: presets share one split")
    return presets


def preset_params(overrides: dict, seed: int, dataset: str = "mnist") -> Params:
    """params.yaml with `dataset`, a preset's overrides and `train.seed`, through the pipeline's validation."""
    changes = {"data.dataset": dataset, **overrides, "train.seed": seed}
    return with_overrides(load_params(), changes, origin=str(presets_file(dataset)))


def make_splits(dataset: str, folder: Path) -> None:
    """`dataset`'s train, val and test splits in `folder`, as the download and preprocess stages make them."""
    from pipeline.stages import download, preprocess

    params = preset_params({}, 0, dataset)
    arrays, _ = download.download(params.data)
    for name, (x, y) in preprocess.split(arrays, params.preprocess).items():
        save_npz(folder / f"{name}.npz", {"x": x, "y": y})


def load_splits(folder: Path, quick: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """The train, val and test splits `make_splits` wrote in `folder`; with `quick`, QUICK_IMAGES training images."""
    splits = [load_npz(folder / f"{name}.npz") for name in paths.SPLITS]
    (x, y), *others = [(split["x"], split["y"]) for split in splits]
    return [(x[:QUICK_IMAGES], y[:QUICK_IMAGES]) if quick else (x, y), *others]
