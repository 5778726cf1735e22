"""Files only their owner can read (0600): the team server's passwords, keys and settings."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def secret(path: Path) -> tuple[str, bool]:
    """The secret kept in `path` (0600), generated there first if missing; and whether it was."""
    if path.exists():
        return path.read_text().strip(), False
    write_private(path, value := secrets.token_urlsafe(24))
    return value, True


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only, from the moment it exists."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(text)
