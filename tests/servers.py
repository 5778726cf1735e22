"""For tests that start real servers on this machine: a free port, and waiting until one answers."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path | None = None, timeout_s: float = 180) -> None:
    """Return once GET `url` answers; fail the test, with the log's tail, if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-3000:] if log else ""
                pytest.fail(f"{' '.join(map(str, process.args))} not answering at {url}:\n{tail}")
            time.sleep(0.5)
