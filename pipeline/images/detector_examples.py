"""The touching-digits detector's examples: blobs of one digit, and of two or three touching.

Each is composed of MNIST digits by `pipeline.images.composition`, as the compose stage composes test
numbers, and is the largest blob `pipeline.images.segmentation` finds in the number, normalised as `predict`
normalises a digit.  (Photographed first, as the numbers stage's are, the blobs were learnt less well:
thresholding a photo sometimes parts two touching digits, which then teaches the detector a single
digit as two.)  Example i comes from its own generator, so the examples do not depend on the number
of cores that make them.  No TensorFlow here: the pool's workers start in a fraction of a second.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Sequence

import numpy as np

from pipeline.images.composition import compose
from pipeline.images.segmentation import largest_blob
from pipeline.infra.cpus import usable_cpus

SINGLE, TOUCHING = 0, 1
PER_WORKER = 2000  # examples worth a process of their own (a worker takes about half a second to start)
_images: np.ndarray  # each worker's copy of the digits to compose


def examples(images: np.ndarray, count: int, seed: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """`count` blobs (uint8 (count, 28, 28)) of `images`' digits and their labels, alternately SINGLE
    and TOUCHING; example i from the generator (*seed, i)."""
    workers = min(usable_cpus(), -(-count // PER_WORKER))
    if workers == 1:
        _share(images)
        made = [_example(i, seed) for i in range(count)]
    else:
        spawn = multiprocessing.get_context("spawn")  # not fork: the parent may hold TensorFlow's threads
        with concurrent.futures.ProcessPoolExecutor(workers, spawn, initializer=_share, initargs=(images,)) as pool:
            made = list(pool.map(_example, range(count), [seed] * count, chunksize=256))
    blobs, labels = zip(*made, strict=True)
    return np.stack(blobs), np.array(labels)


def _share(images: np.ndarray) -> None:
    global _images
    _images = images


def _example(index: int, seed: Sequence[int]) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng([*seed, index])
    digits = 1 if index % 2 == 0 else int(rng.integers(2, 4))
    chosen = _images[rng.choice(len(_images), digits, replace=False)]
    number = compose(chosen, np.ones(digits - 1, bool), rng)
    return largest_blob(1 - number.astype(np.float32) / 255), SINGLE if digits == 1 else TOUCHING
