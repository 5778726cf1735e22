"""DVC experiments through DVC's own command line: queue them, follow the queue, read what they committed."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline import PipelineError, environment
from pipeline.adapters import dvc_executors
from pipeline.infra import metric_names, paths
from pipeline.infra.params import Value


def as_override(key: str, value: Value) -> str:
    """`key=value` for `dvc exp run -S`, the value written as YAML reads it back (floats keep a dot)."""
    return f"{key}={yaml.safe_dump([value], default_flow_style=True, width=1000).strip()[1:-1]}"


@dataclass(frozen=True)
class QueueStatus:
    """What `dvc queue status` says: each task's state by experiment name (see Queue.status), and
    how many workers are alive."""

    states: dict[str, str]
    workers: int


class Queue:
    """DVC's experiment queue, through its command line: trials in, their states out.  In the DVC
    repository at `root` (the working directory by default)."""

    def __init__(self, jobs: int, root: Path = Path()) -> None:
        self.jobs, self.root = jobs, root

    def _dvc(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["dvc", *args], cwd=self.root, capture_output=True, text=True, env=environment(), check=False
        )
        if check and result.returncode != 0:
            raise PipelineError(f"dvc {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def submit(self, name: str, overrides: dict[str, Value]) -> None:
        self._dvc(
            "exp", "run", "--queue", "-n", name, *(f for k, v in overrides.items() for f in ("-S", as_override(k, v)))
        )
        self.start()

    def start(self) -> None:
        """Start the workers that are missing.  Their output goes nowhere: a worker lives on, detached,
        and would hold a pipe open until it stops."""
        command = ["dvc", "queue", "start", "-j", str(self.jobs)]
        status = subprocess.run(
            command, cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(), check=False
        )
        if status.returncode:
            raise PipelineError(f"{' '.join(command)} failed: see dvc queue status")

    def status(self) -> QueueStatus:
        """Each task's state by experiment name: Queued, Running, Success, Failed, or Starting, which
        DVC calls Running though no executor has begun it: a task about to run, or one a worker took
        and lost when it stopped (treeverse/dvc#10562), which stays so; and the workers alive."""
        status = self._dvc("queue", "status")
        workers = re.search(r"Worker status: (\d+) active, (\d+) idle", status)
        alive = sum(map(int, workers.groups())) if workers else 0
        return QueueStatus(task_states(status, dvc_executors.begun_tasks(self.root)), alive)

    def states(self) -> dict[str, str]:
        """`status()`'s states, the workers restarted when tasks wait and none is left."""
        status = self.status()
        if "Queued" in status.states.values() and status.workers == 0:
            self.start()
        return status.states

    def cancel(self, name: str) -> None:
        self._dvc("queue", "kill", name, check=False)
        self._dvc("queue", "remove", name, check=False)


def task_states(status: str, executing: list[str]) -> dict[str, str]:
    """The state of each experiment name in `dvc queue status` output, given the tasks' folders that
    `executing` names (see Queue.states).  Active tasks come first: a name queued again shows its new task."""
    states: dict[str, str] = {}
    for task, name, state in re.findall(
        r"^(\S+)\s+(\S+)\s+.*?\b(Queued|Running|Success|Failed)\s*$", status, re.MULTILINE
    ):
        starting = state == "Running" and not any(folder.startswith(task) for folder in executing)
        states.setdefault(name, "Starting" if starting else state)
    return states


def experiment_refs(root: Path = Path()) -> dict[str, str]:
    """Each DVC experiment's git ref (refs/exps/...) by its name, in the repository at `root`: an
    experiment has one once it finished.  Read by git in milliseconds, where `dvc queue status` costs a
    DVC process (a second of CPU)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {ref.rsplit("/", 1)[-1]: ref for ref in refs}


def experiment_file(name: str, path: Path) -> str | None:
    """File `path` as DVC experiment `name` committed it, or None when there is no such experiment."""
    ref = experiment_refs().get(name)
    if ref is None:
        return None
    return subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True, text=True, check=True).stdout


def experiment_metrics(name: str) -> dict[str, float] | None:
    """The CNN's metrics (CNN/val_accuracy, CNN/train/pruned, ...) of DVC experiment `name`, or None."""
    texts = {path: experiment_file(name, path) for path in (paths.CNN_METRICS, paths.TRAIN_METRICS)}
    if None in texts.values():
        return None
    return metric_names.metrics_of({path: json.loads(text) for path, text in texts.items()})
