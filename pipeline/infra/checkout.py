"""A copy of a git checkout as a fresh clone would have it, plus work not yet committed: what the
tests' temp repos and `make bench-loop` start from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def copy_checkout(root: Path, target: Path) -> None:
    """Make `target` hold the files of the checkout at `root`: tracked ones and untracked ones that git
    does not ignore, as they stand, and not those deleted there (ignored files, such as data and
    models, stay behind).  `target` may be empty, or a clone of `root`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source, copy = root / name, target / name
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
        elif copy.exists():  # deleted in the checkout
            copy.unlink()
