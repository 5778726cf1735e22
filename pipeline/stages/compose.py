"""compose stage: whole numbers of test digits, composed and photographed once, for the numbers stage to read.

Each number is `min_digits` to `max_digits` distinct test digits side by side (pipeline.images.composition):
their empty margins cropped, each a pixel or two up or down; a `touching` share of adjacent pairs
are moved together until their strokes join, the others are 2 to 6 pixels apart.  The number is
photographed as the photograph stage photographs a digit and encoded as JPEG at a random quality:
the bytes a user's file would hold.  Nothing here depends on a model, so an experiment that retrains
the CNN reuses it; the numbers stage reads the photos with the model.  Numbers are rendered in
parallel, each from its own seeded generator, so the result does not depend on the number of cores.

It also makes the held-out material (data/outside.npz): numbers of test digits and single digits
(test digits, and UCI's 8x8 digits by other writers) written and photographed by
`pipeline.images.other_hands`, which shares no code with the composition, the camera or the
touching-digits detector's examples, so that the numbers stage sees a change that reads the project's
own numbers better and other people's worse.
"""

from __future__ import annotations

import concurrent.futures
import io
import logging
from collections.abc import Callable, Iterable

import numpy as np

from pipeline import PipelineError
from pipeline.images import other_hands
from pipeline.images.camera import photograph
from pipeline.images.composition import compose
from pipeline.infra import paths
from pipeline.infra.cpus import usable_cpus
from pipeline.infra.files import save_npz
from pipeline.infra.params import NumbersParams, load_params
from pipeline.stages import not_applicable

log = logging.getLogger(__name__)


def draw_numbers(labels: np.ndarray, params: NumbersParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each number, the indices of its digits (distinct, drawn at random) and which pairs touch."""
    if len(labels) < params.max_digits:
        raise PipelineError(
            f"numbers.max_digits = {params.max_digits} needs at least that many test images, "
            f"the test split has {len(labels)}"
        )
    rng = np.random.default_rng(params.seed)
    numbers = []
    for _ in range(params.count):
        length = int(rng.integers(params.min_digits, params.max_digits + 1))
        numbers.append((rng.choice(len(labels), length, replace=False), rng.random(length - 1) < params.touching))
    return numbers


def photo_of_number(digits: np.ndarray, touching: np.ndarray, index: int, seed: int) -> bytes:
    """Number `index` composed and photographed (its own generator: `seed`, `index`), as JPEG bytes."""
    rng = np.random.default_rng([seed, index])
    photo = io.BytesIO()
    photograph(compose(digits, touching, rng), rng).save(photo, "JPEG", quality=int(rng.integers(60, 95)))
    return photo.getvalue()


def compose_all(images: np.ndarray, labels: np.ndarray, params: NumbersParams) -> dict[str, np.ndarray]:
    """Every number of `draw_numbers`, photographed on every core, as the arrays of data/numbers.npz:
    the JPEG files one after another (`jpeg`, number i's bytes ending at `ends[i]`), each number's
    digits as a string (`truth`) and its count of touching pairs."""
    numbers = draw_numbers(labels, params)
    photos = _on_every_core(
        photo_of_number,
        [images[digits] for digits, _ in numbers],
        [touching for _, touching in numbers],
        range(len(numbers)),
        [params.seed] * len(numbers),
    )
    return _packed(photos) | {
        "truth": np.array(["".join(map(str, labels[digits])) for digits, _ in numbers]),
        "touching_pairs": np.array([int(touching.sum()) for _, touching in numbers]),
    }


def outside_all(images: np.ndarray, labels: np.ndarray, params: NumbersParams) -> dict[str, np.ndarray]:
    """The held-out material of data/outside.npz, photographed on every core: `outside_numbers` numbers of
    distinct test digits, then `outside_digits` single digits (the first half test digits, the rest UCI's),
    as `compose_all`'s arrays, with each photo's `material` ("number", "test digit" or "UCI digit")."""
    rng = np.random.default_rng([params.seed, 1])
    lengths = rng.integers(params.min_digits, params.max_digits + 1, params.outside_numbers)
    from sklearn.datasets import load_digits  # a second to import: only where the material is made

    uci = load_digits()
    half = params.outside_digits // 2
    singles = rng.choice(len(labels), half), rng.choice(len(uci.target), params.outside_digits - half)
    written = [(images[chosen], labels[chosen]) for chosen in (rng.choice(len(labels), n, False) for n in lengths)]
    written += [(images[[i]], labels[[i]]) for i in singles[0]] + [
        (uci.images[[i]], uci.target[[i]]) for i in singles[1]
    ]
    photos = _on_every_core(
        outside_photo, [glyphs for glyphs, _ in written], range(len(written)), [params.seed] * len(written)
    )
    return _packed(photos) | {
        "truth": np.array(["".join(map(str, digits)) for _, digits in written]),
        "material": np.repeat(["number", "test digit", "UCI digit"], [len(lengths), half, len(singles[1])]),
    }


def outside_photo(glyphs: np.ndarray, index: int, seed: int) -> bytes:
    """Held-out photo `index` of `glyphs` (its own generator: `seed`, 2, `index`), as JPEG bytes."""
    return other_hands.photo(list(glyphs), np.random.default_rng([seed, 2, index]))


def _on_every_core(function: Callable[..., bytes], *arguments: Iterable) -> list[bytes]:
    """`function` mapped over `arguments` in a process pool of every usable core, in order."""
    with concurrent.futures.ProcessPoolExecutor(usable_cpus()) as pool:
        return list(pool.map(function, *arguments, chunksize=16))


def _packed(photos: list[bytes]) -> dict[str, np.ndarray]:
    """JPEG files one after another (`jpeg`), file i's bytes ending at `ends[i]`."""
    return {"jpeg": np.frombuffer(b"".join(photos), np.uint8), "ends": np.cumsum([len(photo) for photo in photos])}


def main() -> None:
    everything = load_params()
    if not_applicable.skip(everything, None, (paths.NUMBER_PHOTOS, paths.OUTSIDE_PHOTOS)):
        return
    params = everything.numbers
    images, labels = paths.load_split("test")
    numbers = compose_all(images, labels, params)
    save_npz(paths.NUMBER_PHOTOS, numbers)
    outside = outside_all(images, labels, params)
    save_npz(paths.OUTSIDE_PHOTOS, outside)
    log.info(
        "%d numbers of %d-%d test digits photographed, %d with a touching pair (%.1f MB of JPEG)",
        len(numbers["truth"]),
        params.min_digits,
        params.max_digits,
        int(np.sum(numbers["touching_pairs"] > 0)),
        numbers["jpeg"].size / 1e6,
    )
    log.info(
        "held-out material: %d numbers and %d single digits written another way",
        params.outside_numbers,
        params.outside_digits,
    )
