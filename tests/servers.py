"""For tests that start real servers on this machine: a free port, and waiting until one answers."""

from __future__ import annotations

import contextlib
import functools
import http.server
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import environment
from tests.mnist_files import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(
    url: str,
    process: subprocess.Popen,
    log: Path | None = None,
    timeout_s: float = 180,
    context: ssl.SSLContext | None = None,
) -> None:
    """Return once GET `url` answers (over HTTPS, trusting `context`); fail the test, with the log's
    tail, if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5, context=context):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-3000:] if log else ""
                pytest.fail(f"{' '.join(map(str, process.args))} not answering at {url}:\n{tail}")
            time.sleep(0.5)


def served_predictions(folder: Path, images: np.ndarray) -> np.ndarray:
    """`python -m pipeline serve` (the champion of MLFLOW_TRACKING_URI's registry) started, asked for
    `images`' probabilities over REST, and stopped; its log in `folder`."""
    url, log = f"http://127.0.0.1:{free_port()}", folder / "serve.log"
    command = [sys.executable, "-m", "pipeline", "serve", "--port", url.rsplit(":", 1)[1]]  # the user's command
    with open(log, "w") as output:
        server = subprocess.Popen(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=environment(), start_new_session=True
        )
    try:
        wait_until_up(f"{url}/ping", server, log)
        assert listening_addresses(int(url.rsplit(":", 1)[1])) == {"127.0.0.1"}, "serve listens beyond this machine"
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"inputs": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return np.array(json.loads(response.read())["predictions"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def listening_addresses(port: int) -> set[str]:
    """The addresses with a socket listening on TCP `port`, from the kernel's tables (/proc/net/tcp*)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                packed = bytes.fromhex(address)
                words = [packed[i : i + 4][::-1] for i in range(0, len(packed), 4)]  # little-endian 32-bit words
                addresses.add(str(ipaddress.ip_address(b"".join(words))))
    return addresses


def assert_database_stopped(folder: Path, port: int) -> None:
    """The PostgreSQL cluster in `folder`/postgres is down: nothing listens on `port` and the
    postmaster's lock file, which a running server holds, is gone."""
    assert listening_addresses(port) == set(), f"PostgreSQL still listening on port {port}"
    assert not (folder / "postgres" / "postmaster.pid").exists(), "PostgreSQL still running"


class _FolderHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /truncated/<file> promises the whole file but sends half of it; /trickle/ sends
    a byte every 0.1 s for a minute, never slow enough for a per-operation timeout."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.startswith("/trickle/"):
            return self._trickle()
        if not self.path.startswith("/truncated/"):
            return super().do_GET()
        body = Path(self.directory, self.path.removeprefix("/truncated/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """`root` (made here) served over HTTP on 127.0.0.1: (the folder, its base URL, the paths requested)."""
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_FolderHandler, directory=str(root)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", server.requests
    server.shutdown()
    server.server_close()
