"""Who holds a running trial, judged by its heartbeat's age: no host name or process id is trusted.

The process that runs a trial notes on it (user attributes, in the study's storage) its `owner` (a
random id of the process), its `clone` (a random id kept in the clone's `.dvc/tmp/`, whose DVC queue
holds the trial's experiment) and a `heartbeat` (seconds since the epoch), rewritten every HEARTBEAT_S
while the trial runs.  Two containers may share a host name and a path, and a process id is reused;
these ids are neither.  A trial whose heartbeat is older than STALE_AFTER_S was left by a process that
died: a search in its clone takes it over while its experiment can still finish there (queued, running
or finished), and fails it, uncounted, otherwise; a search elsewhere fails it after
ELSEWHERE_STALE_AFTER_S.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pipeline.infra.tracking import repo_root

HEARTBEAT_S = 10  # how often a running trial's heartbeat is written ...
STALE_AFTER_S = 60  # ... and how long after the last one its process counts as gone, judged in its clone
ELSEWHERE_STALE_AFTER_S = 600  # ... judged from another clone, maybe another machine: clocks differ, networks pause
OWNER = uuid.uuid4().hex  # this process
CLONE_FILE = Path(".dvc/tmp/search-clone")  # under the repo root, git-ignored: this clone's id
RESUMABLE = ("Queued", "Starting", "Running", "Success")  # DVC queue states of an experiment that can finish

Verdict = Literal["mine", "alive", "take over", "fail"]


def clone_id() -> str:
    """This clone's id, made on first use."""
    path = repo_root() / CLONE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x") as file:  # exclusive: two searches starting at once agree on one id
            file.write(uuid.uuid4().hex)
    except FileExistsError:
        pass
    return path.read_text().strip()


def holder() -> dict[str, Any]:
    """The attributes a trial's holder notes on it: this process, this clone, a heartbeat now."""
    return {"owner": OWNER, "clone": clone_id(), "heartbeat": time.time()}


def verdict(attrs: dict[str, Any], queue_state: str | None, clone: str, now: float) -> Verdict:
    """What a search in `clone` does with a RUNNING trial noted `attrs`, whose experiment is in state
    `queue_state` in this clone's DVC queue (None: not there; it counts only for a trial of this clone)."""
    if attrs.get("owner") == OWNER:
        return "mine"
    here = attrs.get("clone") == clone
    if now - attrs.get("heartbeat", 0) < (STALE_AFTER_S if here else ELSEWHERE_STALE_AFTER_S):
        return "alive"
    return "take over" if here and queue_state in RESUMABLE else "fail"
