"""Atomic writes, byte-stable npz files and content digests."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pipeline.infra.files import atomic_write, content_digest, load_npz, save_npz
from tests.mnist_files import fake_mnist


def test_npz_round_trips_and_is_byte_stable(tmp_path, monkeypatch):
    arrays = fake_mnist()
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)
    save_npz(tmp_path / "a.npz", arrays)
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # zip members record the time unless pinned
    save_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_npz(tmp_path / "a.npz")
    assert loaded.keys() == arrays.keys()
    assert all(np.array_equal(loaded[k], arrays[k]) and loaded[k].dtype == arrays[k].dtype for k in arrays)


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_written_file_is_readable_by_others(tmp_path):
    with atomic_write(tmp_path / "out.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_content_digest_sees_values_dtypes_and_shapes():
    x = np.arange(12, dtype=np.uint8)
    digests = {
        content_digest({"x": x}),
        content_digest({"x": x.reshape(3, 4)}),
        content_digest({"x": x.astype(np.int64)}),
        content_digest({"x": x + 1}),
        content_digest({"y": x}),
    }
    assert len(digests) == 5
    assert content_digest({"x": x, "y": x + 1}) == content_digest({"y": x + 1, "x": x})
