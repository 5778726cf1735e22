"""Which of DVC's queued experiment tasks have begun to run: DVC's private layout, read here only.

`dvc queue status` calls a task Running from the moment a worker takes it, though it may never begin:
a worker that stops as it takes a task loses it, and it stays "Running" for ever (treeverse/dvc#10562).
A task that has begun has an executor folder, `.dvc/tmp/exps/run/<stash rev>...`.  The documented
`dvc exp show --json` is no way round: in DVC 3.67 it loads every active task's executor info file
unguarded (`dvc/repo/experiments/queue/celery.py`, `collect_active_data`), so it fails outright while
any task is taken but not yet begun, the very state to detect.
"""

from __future__ import annotations

from pathlib import Path

EXECUTORS = Path(".dvc/tmp/exps/run")  # under the repo root: a folder per task that has begun


def begun_tasks(root: Path = Path()) -> list[str]:
    """The names of the executor folders of the tasks that have begun to run in the repo at `root`."""
    folder = root / EXECUTORS
    return [entry.name for entry in folder.iterdir()] if folder.is_dir() else []
