"""Writing outputs safely and reproducibly: atomic writes, byte-stable npz, content digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

Arrays = Mapping[str, np.ndarray]
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a private temp path beside `path`; on success move it into place, else delete it.

    Readers see either the old file or the whole new one, never a partial write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # hidden, unique, and with the target's suffix (some writers, like Keras, insist on it)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        tmp.chmod(0o644)  # mkstemp makes it private (0600); outputs are ordinary shared files
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npz(path: Path, arrays: Arrays) -> None:
    """Write `arrays` as an uncompressed .npz, atomically, with byte-identical output for equal input.

    (np.savez stamps each member with the current time, so its bytes, and DVC's hash, change on
    every run.)
    """
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            with archive.open(member, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an .npz into memory (no pickled objects allowed)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def save_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def content_digest(arrays: Arrays) -> str:
    """sha256 over names, dtypes, shapes and bytes of `arrays`: equal digests mean equal data."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.data)
    return f"sha256:{digest.hexdigest()}"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of the file at `path` (algorithm: sha256 or md5)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest()
