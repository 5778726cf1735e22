"""Faults around the stages: a full disk, an unwritable output folder, a tracking server that is down
or silent, a locked or read-only store.  Each stage fails in one line and loses no data."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.infra import paths
from pipeline.infra.files import save_npz
from tests.mnist_files import fake_mnist, sha256, url_source, write_npz
from tests.reliability.checks import assert_no_partial_files, assert_unchanged
from tests.repos import last_line, stage

pytestmark = pytest.mark.e2e


@pytest.fixture
def work(tmp_path, http_server, repo_params) -> Path:
    """A stage's working folder: params (MNIST from a local server, one epoch) and processed splits."""
    root, url, _ = http_server
    mnist = write_npz(root, fake_mnist())
    repo_params["data"]["cache_dir"] = "cache"
    repo_params["data"]["datasets"]["mnist"]["sources"] = [url_source("local", "npz", url, {mnist.name: sha256(mnist)})]
    repo_params["train"] |= {"epochs": 1}
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "params.yaml").write_text(yaml.safe_dump(repo_params))
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("val", 50), ("test", 50)):
        arrays = {"x": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), "y": (np.arange(n) % 10).astype(np.uint8)}
        save_npz(folder / paths.split_file(split), arrays)
    return folder


@pytest.mark.parametrize("earlier_output", [True, False], ids=["over an earlier output", "no earlier output"])
def test_disk_full_while_writing_the_download(work, earlier_output):
    assert stage(work, "download").returncode == 0  # fills the download cache
    before = (work / paths.RAW_DATA).read_bytes() if earlier_output else None
    if not earlier_output:
        shutil.rmtree(work / "data/raw")
    result = stage(work, "download", max_file_bytes=50_000)  # the npz is 300 kB: the disk "fills up" mid-write
    assert result.returncode == 1
    assert last_line(result).startswith("error: [Errno 27] File too large")
    assert_unchanged(work / paths.RAW_DATA, before)
    assert_no_partial_files(work / "data", work / "cache")


def test_output_folder_not_writable(work):
    (work / "data").mkdir(exist_ok=True)
    (work / "data/raw").write_text("a file where the output folder should be")
    result = stage(work, "download")
    assert result.returncode == 1
    assert last_line(result) == "error: [Errno 17] File exists: 'data/raw'"
    assert_no_partial_files(work / "data", work / "cache")


def _silent_server() -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    return listener


@pytest.mark.parametrize(
    ("name", "server"), [("train", "down"), ("train", "silent"), ("baseline", "down"), ("record", "down")]
)
def test_tracking_server_unreachable_fails_fast_before_any_work(work, name, server):
    """Every stage that talks to MLflow checks the store first (record, in a folder without a single
    metrics file, fails on the store, not on the files)."""
    with _silent_server() as silent:
        port = silent.getsockname()[1]
        if server == "down":
            silent.close()  # nothing listens on the port any more
        start = time.monotonic()  # MLflow's own request timeout, where shorter, is the stage's too
        result = stage(work, name, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}", MLFLOW_HTTP_REQUEST_TIMEOUT="2")
        seconds = time.monotonic() - start
    assert result.returncode == 1
    reason = "Connection refused" if server == "down" else "timed out"
    assert last_line(result).startswith(f"error: MLflow tracking server http://127.0.0.1:{port} (MLFLOW_TRACKING_URI)")
    assert reason in last_line(result)
    assert seconds < 60, f"took {seconds:.1f} s to give up"  # MLflow's client alone retries for minutes
    assert not (work / "models").exists()


def _store(work: Path) -> Path:
    assert stage(work, "promote").returncode == 1  # creates the store (then finds no model to promote)
    return work / "mlflow.db"


def test_locked_store_fails_in_one_line_before_training(work):
    store = _store(work)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process is writing, for longer than the stage waits
    try:
        result = stage(work, "train")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1
    assert (
        last_line(result)
        == f"error: MLflow store sqlite:///{store} is not usable: (sqlite3.OperationalError) database is locked"
    )
    assert not (work / "models").exists()


def test_read_only_store_fails_in_one_line_before_training(work):
    store = _store(work)
    if os.geteuid() != 0:
        store.chmod(0o444)
    elif subprocess.run(["chattr", "+i", str(store)], capture_output=True, check=False).returncode != 0:
        pytest.skip("root ignores file modes, and chattr +i is not available here")
    try:
        result = stage(work, "train")
    finally:
        subprocess.run(["chattr", "-i", str(store)], capture_output=True, check=False)
        store.chmod(0o644)
    assert result.returncode == 1
    assert last_line(result) == (
        f"error: MLflow store sqlite:///{store} is not usable: (sqlite3.OperationalError) attempt to write a readonly database"
    )
    assert not (work / "models").exists()
