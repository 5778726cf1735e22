"""Training killed mid-epoch (SIGKILL, as the OOM killer or a power cut would), then `dvc repro`: it
completes, no model is ever corrupt, MLflow shows the killed run as KILLED; and rerun with the same
params, the pipeline gives identical metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import keras
import mlflow
import pytest

from pipeline import environment
from tests.reliability.checks import assert_no_partial_files
from tests.repos import make_repo, run, set_params

pytestmark = pytest.mark.slow
TIMED = {"train_speed.json", "inference_speed.json", "baseline_speed.json", "export_speed.json"}  # seconds vary


def results(repo: Path) -> dict[str, str]:
    """Every metrics file but the timings, and the per-epoch history and per-image predictions."""
    files = [p for p in (repo / "metrics").glob("*.json") if p.name not in TIMED]
    files += [repo / "reports" / name for name in ("history.csv", "cnn_predictions.csv", "baseline_predictions.csv")]
    return {str(p.relative_to(repo)): p.read_text() for p in files}


def kill_during_training(repo: Path, epoch: int) -> None:
    """Start `dvc repro`; SIGKILL it and the train stage (their whole process group) once `epoch` begins."""
    env = environment(PYTHONUNBUFFERED="1")
    repro = subprocess.Popen(
        ["dvc", "repro"],
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


def test_killed_training_recovers_and_reruns_identically(tmp_path, http_server, repo_params):
    repo = make_repo(tmp_path, http_server, repo_params)
    set_params(repo, "train", epochs=12, early_stopping_patience=0)
    kill_during_training(repo, epoch=3)
    assert_no_partial_files(repo / "models")
    assert not (repo / "models/cnn.keras").exists()

    run(repo, "dvc", "repro")  # picks up where the pipeline stopped: train from the start, then the rest
    assert_no_partial_files(repo / "models", repo / "data", repo / "metrics", repo / "reports")
    for model in (repo / "models").glob("*.keras"):
        keras.saving.load_model(model, safe_mode=True)  # whole and loadable
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")
    cnn_runs = {
        r.info.status: r
        for r in mlflow.search_runs(
            experiment_names=["mnist"], filter_string="tags.`pipeline.role` = 'cnn'", output_format="list"
        )
    }
    assert sorted(cnn_runs) == ["FINISHED", "KILLED"], "the killed run is marked KILLED, not left RUNNING"
    first = results(repo)

    run(repo, "dvc", "repro", "--force")
    second = results(repo)
    changed = [name for name in first if first[name] != second[name]]
    assert not changed, f"the same params gave different results in {changed}"
    assert {"metrics/test.json", "metrics/export.json", "metrics/photos.json", "metrics/compare.json"} <= set(first)
    assert 0 <= json.loads(first["metrics/test.json"])["test_accuracy"] <= 1
