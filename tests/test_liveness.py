"""pipeline.search.liveness: a running trial's holder judged by its heartbeat's age, never by host or process id."""

from __future__ import annotations

import pytest

from pipeline.search import liveness

NOW = 1_800_000_000.0
CLONE, OTHER_CLONE = "clone-a", "clone-b"


def attrs(owner: str = "another process", clone: str = CLONE, age_s: float = 0, **more) -> dict:
    return {"owner": owner, "clone": clone, "heartbeat": NOW - age_s, **more}


@pytest.mark.parametrize(
    ("noted", "queue_state", "expected"),
    [
        (attrs(owner=liveness.OWNER, age_s=10_000), None, "mine"),
        (attrs(age_s=liveness.STALE_AFTER_S - 1), "Running", "alive"),
        (attrs(age_s=liveness.STALE_AFTER_S + 1), "Running", "take over"),
        (attrs(age_s=liveness.STALE_AFTER_S + 1), "Queued", "take over"),
        (attrs(age_s=liveness.STALE_AFTER_S + 1), "Success", "take over"),
        (attrs(age_s=liveness.STALE_AFTER_S + 1), "Failed", "fail"),
        (attrs(age_s=liveness.STALE_AFTER_S + 1), None, "fail"),  # its experiment is gone
        (attrs(clone=OTHER_CLONE, age_s=liveness.STALE_AFTER_S + 1), "Running", "alive"),  # another clock
        (attrs(clone=OTHER_CLONE, age_s=liveness.ELSEWHERE_STALE_AFTER_S + 1), None, "fail"),
        ({"host": "same-name", "pid": 1, "heartbeat": NOW - 10_000}, "Running", "fail"),  # an earlier version's
    ],
    ids=[
        "this process's",
        "beating",
        "silent, running here",
        "silent, queued here",
        "silent, finished here",
        "silent, failed here",
        "silent, experiment gone",
        "silent a minute, another clone",
        "silent ten minutes, another clone",
        "noted by host and pid",
    ],
)
def test_a_running_trial_is_judged_by_its_heartbeat_s_age_and_clone(noted, queue_state, expected):
    assert liveness.verdict(noted, queue_state, CLONE, NOW) == expected


def test_a_clone_keeps_one_id_and_another_clone_has_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "a"))
    first = liveness.clone_id()
    assert liveness.clone_id() == first and len(first) == 32
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "b"))
    assert liveness.clone_id() != first
    assert liveness.holder()["clone"] == liveness.clone_id() and liveness.holder()["owner"] == liveness.OWNER
