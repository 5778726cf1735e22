"""Temp git copies of this repo, fed from a local server, and commands run in them (the integration tests' ground)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import environment
from pipeline.infra.checkout import copy_checkout
from pipeline.search.dvc_queue import Queue, experiment_refs
from tests.mnist_files import REPO, repo_mnist, sha256, url_source, write_npz


def run(repo: Path, *command: str, check: bool = True, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """`command` in `repo`, failing the test (never hanging it) on a non-zero exit or after `timeout_s`."""
    env = environment(  # the stages' `python` is this interpreter
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@localhost",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@localhost",
    )
    try:
        result = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as timeout:
        pytest.fail(f"{' '.join(command)} still running after {timeout_s:.0f} s:\n{timeout.stdout}\n{timeout.stderr}")
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def make_repo(tmp_path: Path, http_server: tuple, repo_params: dict[str, Any]) -> Path:
    """A git repo holding a copy of this one, set for a tiny run, whose sources are a dead URL, then
    a local server."""
    root, url, _ = http_server
    mnist = write_npz(root, repo_mnist())
    files = {mnist.name: sha256(mnist)}
    repo_params["data"]["datasets"]["mnist"]["sources"] = [
        url_source("dead", "npz", f"{url}/missing", files),
        url_source("local", "npz", url, files),
    ]
    repo_params["model"]["arch"] = "tiny"
    repo_params["train"] |= {"epochs": 2, "batch_size": 64}  # 2: Keras prints "Epoch 1/2" as training starts
    repo_params["evaluate"] |= {"batch_size": 100, "latency_runs": 5, "explain_images": 8}
    repo_params["photos"]["count"] = 30
    repo_params["segmenter"] |= {"examples": 60, "epochs": 1}
    repo_params["numbers"] |= {"count": 4, "outside_numbers": 3, "outside_digits": 4}
    repo = tmp_path / "repo"
    copy_checkout(REPO, repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(repo_params, sort_keys=False))
    run(repo, "git", "init", "-q")
    run(repo, "git", "config", "user.name", "test")  # dvc exp commits need an identity of their own
    run(repo, "git", "config", "user.email", "test@localhost")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "copy")
    return repo


def set_params(repo: Path, section: str, **values: Any) -> None:
    """Change params of `repo` and commit them (so DVC experiments start from them)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section] |= values
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "commit", "-qam", f"{section}: {values}")


def wait_for_queue(repo: Path, timeout_s: float = 900) -> None:
    """Poll DVC's queue (the search's own reading of it) until no task is queued or running; fail on a
    failed task or at the deadline.

    Workers that stop while tasks are still queued are started again, the workaround DVC documents for
    treeverse/dvc#10562.  (`dvc exp run --run-all` would wait forever on a task lost to a worker race.)
    """
    queue = Queue(jobs=2, root=repo)
    deadline = time.monotonic() + timeout_s
    idle_reads = 0
    while True:
        status = queue.status()
        states = set(status.states.values())
        if "Failed" in states or time.monotonic() > deadline:
            worker_logs = "\n".join(p.read_text() for p in (repo / ".dvc/tmp/exps/celery").glob("*.out"))
            pytest.fail(f"the queue did not complete:\n{status}\nworker logs (tail):\n{worker_logs[-5000:]}")
        if not states & {"Queued", "Running", "Starting"}:
            return
        idle_reads = idle_reads + 1 if "Queued" in states and status.workers == 0 else 0
        if idle_reads == 2:  # twice with work waiting and no worker: not one still starting
            queue.start()
            idle_reads = 0
        waiting = {name for name, state in status.states.items() if state in ("Queued", "Running", "Starting")}
        wait_for_experiments(repo, waiting, QUEUE_READ_S)


QUEUE_READ_S = 15  # how often the tests read DVC's queue (a DVC process, a second of CPU) while it works


def wait_for_experiments(repo: Path, names: set[str], timeout_s: float) -> None:
    """Until every experiment of `names` finished (git refs, read in milliseconds) or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while not names <= set(experiment_refs(repo)) and time.monotonic() < deadline:
        time.sleep(1)


def stage(work: Path, name: str, max_file_bytes: int | None = None, **env: str) -> subprocess.CompletedProcess:
    """`python -m pipeline <name>` in `work`; `max_file_bytes` caps every file it writes (a full disk)."""

    def limit() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "pipeline", name],
        cwd=work,
        env=os.environ | {"PYTHONPATH": str(REPO), "HOME": str(work.parent)} | env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
        check=False,
    )


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]
