"""MNIST's published file formats (Fashion-MNIST's too) decoded into the Keras layout: x_train, y_train,
x_test, y_test (uint8).

npz (Keras' mnist.npz), idx (LeCun's four gzipped files), pickle (the classic (train, valid, test) of
float pixels, unpickled with numpy arrays allowed and nothing else, so no code from the file runs).
"""

from __future__ import annotations

import codecs
import gzip
import math
import pickle
import typing
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.infra.files import load_npz

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


def _decode_npz(files: dict[str, Path]) -> dict[str, np.ndarray]:
    (path,) = files.values()
    arrays = load_npz(path)
    return {name: arrays[name] for name in ARRAY_NAMES}


def _decode_idx(files: dict[str, Path]) -> dict[str, np.ndarray]:
    by_name = {path.name: path for path in files.values()}  # a package may hold them in a folder
    return {
        "x_train": _read_idx(by_name["train-images-idx3-ubyte.gz"]),
        "y_train": _read_idx(by_name["train-labels-idx1-ubyte.gz"]),
        "x_test": _read_idx(by_name["t10k-images-idx3-ubyte.gz"]),
        "y_test": _read_idx(by_name["t10k-labels-idx1-ubyte.gz"]),
    }


def _read_idx(path: Path) -> np.ndarray:
    """One gzipped IDX file of unsigned bytes (http://yann.lecun.com/exdb/mnist/ format)."""
    with gzip.open(path) as file:
        data = file.read()
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(shape):
        raise ValueError(f"{path.name} holds {len(body)} bytes, its header promises {math.prod(shape)}")
    return np.frombuffer(body, np.uint8).reshape(shape)


def _decode_pickle(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """The classic (train, valid, test) pickle of float32 pixels = uint8 / 256; train + valid = 60k."""
    (path,) = files.values()
    with gzip.open(path) as file:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = _NumpyOnlyUnpickler(file, encoding="latin1").load()
    return {
        "x_train": _pixels_from_floats(np.concatenate([x_train, x_valid])),
        "y_train": np.concatenate([y_train, y_valid]).astype(np.uint8),
        "x_test": _pixels_from_floats(x_test),
        "y_test": y_test.astype(np.uint8),
    }


def _pixels_from_floats(x: np.ndarray) -> np.ndarray:
    """Recover the original bytes from pixels stored as uint8 / 256, refusing anything else."""
    pixels = np.rint(x * 256)
    if pixels.max() > 255 or not np.array_equal(pixels / 256, x):
        raise ValueError("pickled pixels are not exact multiples of 1/256 below 1")
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else, so a pickle can never run arbitrary code."""

    _ALLOWED: typing.ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at protocol 2
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return self._ALLOWED[module, name]


DECODERS: dict[str, Callable[[dict[str, Path]], dict[str, np.ndarray]]] = {
    "npz": _decode_npz,
    "idx": _decode_idx,
    "pickle": _decode_pickle,
}
