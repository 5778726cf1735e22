"""The compose stage's photographed numbers, cut into digits once and read with any digit model.

`segment` asks the digit model one thing only: where to cut a blob the touching-digits detector finds
several digits in.  Everything else (the ink, the blobs, the detector's verdicts, each digit's 28x28
image) depends on the photo and the detector alone.  `cut_all` does that part, once, for every photo
whose cutting needs no digit model; `read_all` then reads them with a digit model in one batch, and
segments again, with the model, only the photos marked `NEEDS_MODEL`.  A number reads the same either
way: the digits are the ones `segment` finds, classified by the same model.
"""

from __future__ import annotations

import concurrent.futures
import io
from pathlib import Path

import numpy as np

from pipeline import PipelineError
from pipeline.images.digits import ImageError, read_image
from pipeline.images.segmentation import segment
from pipeline.infra.cpus import usable_cpus
from pipeline.ml.predictors import Predictor, onnx_predictor, predict_in_batches
from pipeline.reading.numbers import read_number

CUT, UNREADABLE, NEEDS_MODEL = 0, 1, 2  # a photo's status in the cut digits
NO_DIGITS = np.zeros((0, 28, 28), np.uint8)
BATCH = 1024  # digits per prediction: the probabilities do not depend on it, the memory does
_models: list[Predictor | None] = [None, None]  # each worker process's digit model and touching-digits detector


class _NeedsDigitModel(Exception):
    """`segment` asked the digit model where to cut."""


def _refuse(_pieces: np.ndarray) -> np.ndarray:
    raise _NeedsDigitModel


def photo_bytes(photos: dict[str, np.ndarray], index: int) -> bytes:
    """Photo `index`'s JPEG file, from the compose stage's arrays (its bytes end at `ends[index]`)."""
    start = photos["ends"][index - 1] if index else 0
    return photos["jpeg"][start : photos["ends"][index]].tobytes()


def every_photo(*sets: dict[str, np.ndarray]) -> list[bytes]:
    """The JPEG files of each set of photos, one set after another."""
    return [photo_bytes(photos, i) for photos in sets for i in range(len(photos["truth"]))]


def _load(model: Path | None, touching: Path) -> None:
    _models[:] = (model and onnx_predictor(model, threads=1)), onnx_predictor(touching, threads=1)


def _cut(photo: bytes) -> tuple[int, np.ndarray]:
    """`photo`'s status and, when CUT, its digits left to right (none otherwise)."""
    try:
        digits = segment(read_image(io.BytesIO(photo)), _refuse, _models[1])
    except ImageError:
        return UNREADABLE, NO_DIGITS
    except _NeedsDigitModel:
        return NEEDS_MODEL, NO_DIGITS
    return CUT, np.stack([digit.image for digit in digits])


def _read(photo: bytes) -> str:
    """The number `predict` reads in `photo` ("" when no digit is found)."""
    try:
        return read_number(segment(read_image(io.BytesIO(photo)), *_models), _models[0])["number"]
    except ImageError:
        return ""


def _pool(model: Path | None, touching: Path) -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(usable_cpus(), initializer=_load, initargs=(model, touching))


def cut_all(photos: list[bytes], touching: Path) -> dict[str, np.ndarray]:
    """Each photo cut by `segment` with the `touching` detector, on every core: `status` per photo, and
    the digits of those CUT one after another (`digits`, uint8 (N, 28, 28)), photo i's ending at `ends[i]`."""
    with _pool(None, touching) as pool:
        cut = list(pool.map(_cut, photos, chunksize=16))
    digits = [pieces for _, pieces in cut]
    return {
        "status": np.array([status for status, _ in cut], np.uint8),
        "ends": np.cumsum([len(pieces) for pieces in digits], dtype=np.int64),
        "digits": np.concatenate([NO_DIGITS, *digits]),
    }


def read_all(photos: list[bytes], cut: dict[str, np.ndarray], model: Path, touching: Path) -> list[str]:
    """The number read in each photo with the digit `model`: the cut digits classified in one batch, the
    photos that need the model to be cut segmented again with it (and `touching`), on every core."""
    if len(cut["status"]) != len(photos):
        raise PipelineError(f"the cut digits describe {len(cut['status'])} photos, not the {len(photos)} given")
    digits = cut["digits"]
    read = predict_in_batches(onnx_predictor(model), digits, BATCH).argmax(axis=1).astype(str) if len(digits) else []
    starts = np.r_[0, cut["ends"][:-1]]
    numbers = ["".join(read[start:end]) for start, end in zip(starts, cut["ends"], strict=True)]
    again = np.flatnonzero(cut["status"] == NEEDS_MODEL)
    with _pool(model, touching) as pool:
        for index, number in zip(again, pool.map(_read, [photos[i] for i in again], chunksize=4), strict=True):
            numbers[index] = number
    return numbers
