"""Training killed mid-run (SIGKILL, as the OOM killer or a power cut would), then `dvc repro`: it
completes, no model is ever corrupt, MLflow shows the killed run as KILLED once its heartbeat is
stale; and the rerun gives results identical to the session's first run of the same params."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import keras
import mlflow
import pytest

from pipeline import environment
from pipeline.infra import heartbeat
from tests.reliability.checks import assert_no_partial_files
from tests.repos import run
from tests.tracked import runs_by_role

pytestmark = pytest.mark.e2e


def results(repo: Path) -> dict[str, str]:
    """Every metrics file but the timings (metrics/speed/), and the per-epoch history and per-image predictions."""
    files = list((repo / "metrics").glob("*.json"))
    files += [repo / "reports" / name for name in ("history.csv", "cnn_predictions.csv", "baseline_predictions.csv")]
    return {str(p.relative_to(repo)): p.read_text() for p in files}


def kill_during_training(repo: Path, epoch: int) -> None:
    """Start `dvc repro --force --single-item train`; SIGKILL it and the train stage (their whole process
    group) once `epoch` begins."""
    env = environment(PYTHONUNBUFFERED="1")
    repro = subprocess.Popen(
        ["dvc", "repro", "--force", "--single-item", "train"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    for line in repro.stdout:
        seen.append(line)
        if line.startswith(f"Epoch {epoch}/"):
            os.killpg(repro.pid, signal.SIGKILL)
            break
    repro.wait(timeout=60)
    assert repro.returncode == -signal.SIGKILL, (
        "training ended before it could be killed:\n"
        + "".join(line for line in seen if "Epoch" in line or "train" in line)[-3000:]
    )


def age_open_runs(store: str, seconds: float) -> None:
    """Move the last heartbeat of every run still RUNNING `seconds` into the past: what waiting would do."""
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("mnist").experiment_id
    for open_run in client.search_runs([experiment], "attributes.status = 'RUNNING'"):
        client.set_tag(open_run.info.run_id, heartbeat.HEARTBEAT_TAG, f"{time.time() - seconds:.0f}")


def test_killed_training_recovers_and_reruns_identically(reproduced, repo):
    first = results(reproduced.pristine)
    kill_during_training(repo, epoch=1)
    assert_no_partial_files(repo / "models")
    assert not (repo / "models/cnn.keras").exists()
    store = f"sqlite:///{repo}/mlflow.db"
    assert [r.info.status for r in runs_by_role(store)["cnn"]] == ["FINISHED", "RUNNING"], "judged dead too soon"
    # The recovery judges the killed run by its heartbeat's age; rather than wait STALE_AFTER_S, age it.
    age_open_runs(store, heartbeat.STALE_AFTER_S + 1)

    run(repo, "dvc", "repro")  # picks up where the pipeline stopped: train from the start, then the rest
    assert_no_partial_files(repo / "models", repo / "data", repo / "metrics", repo / "reports")
    for model in (repo / "models").glob("*.keras"):
        keras.saving.load_model(model, safe_mode=True)  # whole and loadable
    runs = runs_by_role(store)
    assert [r.info.status for r in runs["cnn"]] == ["FINISHED", "KILLED", "FINISHED"], "killed: KILLED, not RUNNING"
    assert len(runs["pipeline"]) == 2, "the killed execution recorded no pipeline run; the recovery one"

    second = results(repo)
    changed = [name for name in first if first[name] != second[name]]
    assert not changed, f"the same params gave different results in {changed}"
    assert {"metrics/CNN.json", "metrics/export.json", "metrics/photos.json", "metrics/compare.json"} <= set(first)
