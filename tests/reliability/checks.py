"""Checks that a fault lost no data; a failing one says DATA LOST, which the reliability count reports."""

from __future__ import annotations

from pathlib import Path

DATA_LOST = "DATA LOST"


def assert_no_partial_files(*folders: Path) -> None:
    """No temp file of an interrupted atomic write (hidden `.name.*`) is left in `folders`."""
    leftovers = [p for folder in folders if folder.exists() for p in folder.rglob(".*") if p.is_file()]
    assert not leftovers, f"{DATA_LOST}: partial files left behind: {leftovers}"


def assert_unchanged(path: Path, before: bytes | None) -> None:
    """`path` holds exactly what it held before the fault (None: it did not exist, and still does not)."""
    after = path.read_bytes() if path.exists() else None
    assert after == before, f"{DATA_LOST}: {path} was {'damaged' if after else 'removed'} by the fault"
