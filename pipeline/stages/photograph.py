"""photograph stage: test digits as a user would photograph them, read back as `predict` normalises a digit.

Each chosen test digit is rendered as a photo (dark ink on tinted paper, a random size and place on
a page of random size, uneven light, sensor noise, JPEG at a random quality), written to disk, and
read back and normalised by `pipeline.images.load_digit`, the single-digit reading of `predict`'s
(which also looks for several digits and cuts touching ones, with a model; this stage needs none); on a
dataset whose classes are not digits, as one item per image (`pipeline.images.items.load_item`).
The normalised digits go to data/photos.npz for the photos stage, which classifies them.  Nothing
here depends on the model, so DVC reruns this stage only when the test set, the `photos` params or
the image code change, not on every training.  Photos are rendered in parallel, each from its own
seeded generator, so the result does not depend on the number of cores.
"""

from __future__ import annotations

import concurrent.futures
import logging
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.images.camera import photograph
from pipeline.images.digits import ImageError, load_digit
from pipeline.images.items import load_item
from pipeline.infra import paths
from pipeline.infra.cpus import usable_cpus
from pipeline.infra.files import save_npz
from pipeline.infra.params import load_params
from pipeline.report import plots

log = logging.getLogger(__name__)
SHOWN = 8  # photos in the report figure
UNREADABLE = np.zeros((28, 28), np.uint8)  # what a photo with no digit found stands as


def photo_file(folder: Path, index: int) -> Path:
    """Where test digit `index`'s photo is written."""
    return folder / f"test-{index:05d}.jpg"


def photograph_and_read(
    digit: np.ndarray, index: int, seed: int, folder: Path, digits: bool = True
) -> tuple[np.ndarray, bool]:
    """Test image `index` photographed (its own generator: `seed`, `index`), saved as JPEG and read
    back as `predict` reads it (a digit, or with `digits` false one item): the normalised image, and
    whether one was found."""
    rng = np.random.default_rng([seed, index])
    path = photo_file(folder, index)
    photograph(digit, rng).save(path, quality=int(rng.integers(60, 95)))
    try:
        return (load_digit if digits else load_item)(path), True
    except ImageError:
        return UNREADABLE, False


def photograph_all(
    images: np.ndarray, indices: np.ndarray, seed: int, folder: Path, digits: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """`photograph_and_read` for each test image of `indices`, on every core: (images read, readable)."""
    with concurrent.futures.ProcessPoolExecutor(usable_cpus()) as pool:
        results = list(
            pool.map(
                photograph_and_read,
                images[indices],
                indices,
                [seed] * len(indices),
                [folder] * len(indices),
                [digits] * len(indices),
                chunksize=32,
            )
        )
    digits, readable = zip(*results, strict=True)
    return np.stack(digits), np.array(readable)


def main() -> None:
    everything = load_params()
    params, dataset = everything.photos, everything.data.current
    images, actual = paths.load_split("test")
    chosen = np.sort(
        np.random.default_rng(params.seed).choice(len(actual), min(params.count, len(actual)), replace=False)
    )
    with tempfile.TemporaryDirectory() as folder:
        digits, readable = photograph_all(images, chosen, params.seed, Path(folder), dataset.digits)
        shown = [np.asarray(Image.open(photo_file(Path(folder), i))) for i in chosen[:SHOWN]]
    save_npz(paths.PHOTOS, {"x": digits, "y": actual[chosen], "index": chosen, "readable": readable})
    captions = [f"test {dataset.noun} {dataset.classes[label]}" for label in actual[chosen][:SHOWN]]
    plots.save(plots.photos(shown, list(digits[:SHOWN]), captions, dataset.noun), paths.PHOTOS_PLOT)
    log.info(
        "%d test %ss photographed and read back, %d with none found", len(chosen), dataset.noun, int(np.sum(~readable))
    )
