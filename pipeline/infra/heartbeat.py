"""Liveness of open MLflow runs, judged by age: a run's process beats while it holds the run open.

A run this pipeline opens gets the tag `pipeline.heartbeat` (seconds since the epoch), rewritten every
BEAT_S by a thread of the process that holds it, until it closes the run.  A run still RUNNING whose
last beat is older than STALE_AFTER_S belongs to a process that died (SIGKILL, power loss, a machine
gone): the next stage to open the experiment, on any machine, marks it KILLED.  No host name or
process id is trusted: two containers may share a host name, and a process id is reused.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Self

import mlflow

log = logging.getLogger(__name__)
HEARTBEAT_TAG = "pipeline.heartbeat"
BEAT_S = 5  # a beat is one tag write: negligible beside a stage's own logging
STALE_AFTER_S = 30  # six beats missed: the process is gone (a live one beats even mid-epoch, from its thread)


def beat_tags() -> dict[str, str]:
    """The tag of a run opened now."""
    return {HEARTBEAT_TAG: f"{time.time():.0f}"}


def is_stale(tags: dict[str, str], start_time_ms: int, now: float | None = None) -> bool:
    """Whether a RUNNING run with `tags` has missed its beats (one that never beat: judged by its start)."""
    now = time.time() if now is None else now
    last = float(tags.get(HEARTBEAT_TAG, start_time_ms / 1000))
    return now - last > STALE_AFTER_S


class Heartbeat:
    """While entered, rewrites the run's heartbeat tag every `every_s` seconds from a daemon thread."""

    def __init__(self, run_id: str, every_s: float = BEAT_S) -> None:
        self.run_id, self.every_s = run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        client = mlflow.MlflowClient()
        while not self._stop.wait(self.every_s):
            try:
                client.set_tag(self.run_id, HEARTBEAT_TAG, beat_tags()[HEARTBEAT_TAG])
            except Exception as error:  # noqa: BLE001 - a store briefly busy: the next beat retries
                log.debug("heartbeat of run %s not written: %s", self.run_id, error)
