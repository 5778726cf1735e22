"""`python -m pipeline tune`: bad search files refused before any work; a real search of DVC experiments
on the tiny repo, killed, resumed and joined from a clone, with pruned trials."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
import yaml

from pipeline import PipelineError, environment
from pipeline.commands import tune as tune_command
from pipeline.search.space import load_search
from pipeline.search.trials import open_storage
from tests import architecture
from tests.mnist_files import REPO, params_with
from tests.repos import make_repo, run

LOSING_RATE = 1e-6  # the tiny model learns nothing in an epoch at this rate: the threshold pruner stops it


def search_file(folder: Path, **changes: Any) -> Path:
    """A search of the tiny repo: 3 trials of a grid of 4 points, 2 epochs each, those at LOSING_RATE pruned
    after one (any 3 of the 4 points hold a losing and a winning rate)."""
    search = {
        "study": "s",
        "objective": {"metric": "CNN/val_accuracy", "direction": "maximize"},
        "budget": {"trials": 3, "minutes": None},
        "sampler": {"name": "grid", "seed": 0},
        "pruner": {"name": "threshold", "lower": 0.15},  # chance is 0.1
        "storage": None,
        "fixed": {"train.epochs": 2},
        "space": {"train.learning_rate": {"choices": [LOSING_RATE, 0.01]}, "train.batch_size": {"choices": [32, 64]}},
    } | changes
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    return path


# What a trial does not change: the stages that do not follow training, done once before the search.
UPSTREAM_OF_TRAINING = sorted(set(architecture.stages()) - architecture.downstream({"train"}) - {"train"})


def search_repo(tmp_path: Path, http_server: tuple, repo_params: dict) -> Path:
    """The tiny repo with every stage before or beside training done, as after `make repro`: the
    stages every trial shares are done once, not by trials at once (parallel experiments that both
    run a stage anew can clash over its run cache)."""
    repo = make_repo(tmp_path, http_server, repo_params)
    run(repo, "dvc", "repro", *UPSTREAM_OF_TRAINING)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "data")
    return repo


def tune(search: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "pipeline", "tune", "--file", str(search), "--jobs", str(jobs)]


def experiments(repo: Path) -> set[str]:
    return set(run(repo, "dvc", "exp", "list", "--name-only").stdout.split())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"space": {"train.lerning_rate": {"low": 0.001, "high": 0.01}}}, "unknown key 'train.lerning_rate'"),
        ({"space": {"train.learning_rate": {"low": 0.01, "high": 0.001}}}, "empty range"),
        ({"space": {"preprocess.val_fraction": {"low": 0.1, "high": 1.5}}}, "preprocess.val_fraction = 1.5"),
        ({"space": {"train.batch_size": {"choices": []}}}, "at least two different choices"),
        ({"objective": {"metric": "CNN/test_accuracy", "direction": "maximize"}}, "a validation metric"),
        ({"objective": {"metric": "CNN/val_loss", "direction": "maximize"}}, "cannot be maximized"),
        ({"budget": {"trials": None, "minutes": None}}, "expected a number of trials, minutes, or both"),
    ],
    ids=["unknown key", "empty range", "out of schema", "no choices", "test metric", "wrong direction", "no budget"],
)
def test_a_bad_search_file_is_refused_in_one_line(tmp_path, change, expected):
    with pytest.raises(PipelineError) as refused:
        load_search(search_file(tmp_path, **change), params_with({}))
    message = str(refused.value)
    assert expected in message and message.startswith(str(tmp_path / "search.yaml")) and "\n" not in message


def test_tune_refuses_a_bad_search_file_before_any_experiment(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    bad = search_file(tmp_path, space={"preprocess.val_fraction": {"low": 0.1, "high": 1.5}})
    result = subprocess.run(
        tune(bad, 1), cwd=tmp_path, env=environment(PYTHONPATH=str(REPO)), capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: space.preprocess.val_fraction: preprocess.val_fraction = 1.5: expected a fraction in (0, 1)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "search.yaml"]  # no store, no study


class StoreDown(Exception):
    """What closing the study run raises when its store went away."""


def closing_that_fails(closed: list[str]):
    def close(status: str) -> None:
        closed.append(status)
        raise StoreDown("MLflow store is not usable")

    return close


@pytest.mark.parametrize(
    ("raised", "status"), [(KeyboardInterrupt(), "KILLED"), (PipelineError("dvc exp run failed"), "FAILED")]
)
def test_a_study_run_that_cannot_be_closed_never_hides_why_the_search_stopped(raised, status, caplog):
    closed, cancelled = [], []

    def work() -> None:
        raise raised

    with pytest.raises(type(raised)) as stopped:
        tune_command.run_then_close(work, lambda: cancelled.append(True), closing_that_fails(closed))
    assert stopped.value is raised and closed == [status]
    assert cancelled == ([True] if status == "KILLED" else [])
    assert "the study run could not be closed: MLflow store is not usable" in caplog.text


def test_a_finished_search_that_cannot_close_its_study_run_says_so():
    closed = []
    with pytest.raises(StoreDown):
        tune_command.run_then_close(lambda: None, lambda: None, closing_that_fails(closed))
    assert closed == ["FINISHED"]


def queued_and_running(repo: Path, names: set[str]) -> bool:
    """Whether every experiment of `names` is in DVC's queue and one of them runs."""
    status = run(repo, "dvc", "queue", "status").stdout
    return "Running" in status and all(name in status.split() for name in names)


def wait_until(condition, timeout_s: float, what: str, every_s: float = 1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {timeout_s:.0f} s for {what}"
        time.sleep(every_s)


@pytest.mark.e2e
@pytest.mark.reliability  # a killed search; trials of two processes and two clones on one SQLite store
def test_a_search_killed_then_resumed_and_joined_from_a_clone_runs_each_trial_once_nested_under_one_study_run(
    tmp_path, http_server, repo_params
):
    repo = search_repo(tmp_path, http_server, repo_params)
    clone = tmp_path / "clone"  # a second machine: its own clone, the same study storage and MLflow store
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    for key, value in (("user.name", "test"), ("user.email", "test@localhost")):
        run(clone, "git", "config", key, value)
    storage = tmp_path / "study.journal"
    search = search_file(tmp_path, storage=str(storage))
    store = f"sqlite:///{repo / 'mlflow.db'}"  # one store, as a team server is: the repo's own, which the clone names
    env = {repo: environment(), clone: environment(MLFLOW_TRACKING_URI=store)}
    first = subprocess.Popen(
        tune(search, 2), cwd=repo, env=env[repo], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(  # every 3 s: each look is a DVC process, a second of CPU the trials need
            lambda: queued_and_running(repo, {"s-0", "s-1"}), 300, "both trials queued, one running", every_s=3
        )
    finally:
        first.kill()  # SIGKILL: no chance to clean up; its queued experiments run on
        first.wait()
    # The clone asks for the study's last trial while the killed process's two are still held (their
    # heartbeat is fresh); then the repo's rerun takes those two over.  In this order, not by a race.
    searches = [subprocess.Popen(tune(search, 1), cwd=clone, env=env[clone], stdout=subprocess.PIPE, text=True)]
    study = optuna.load_study(study_name="s", storage=open_storage(str(storage)))
    wait_until(lambda: len(study.get_trials(deepcopy=False)) == 3, 300, "the clone's trial")
    searches.append(subprocess.Popen(tune(search, 2), cwd=repo, env=env[repo], stdout=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=900)[0] for process in searches]
    assert [process.returncode for process in searches] == [0, 0], outputs

    study = optuna.load_study(study_name="s", storage=open_storage(str(storage)))
    assert [t.number for t in study.trials] == [0, 1, 2]  # none repeated, none lost to the kill
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 3
    states = {t.number: t.state for t in study.trials}
    losing = {t.number for t in study.trials if t.params["train.learning_rate"] == LOSING_RATE}
    assert {n for n, state in states.items() if state == optuna.trial.TrialState.PRUNED} == losing
    assert {n for n, state in states.items() if state == optuna.trial.TrialState.COMPLETE} == {0, 1, 2} - losing
    assert losing and len(losing) < 3
    names = {f"s-{n}" for n in range(3)}
    ran = {r: experiments(r) for r in (repo, clone)}
    assert ran == {repo: {"s-0", "s-1"}, clone: {"s-2"}}
    pruned = f"s-{min(losing)}"
    holder = repo if pruned in ran[repo] else clone
    shown = json.loads(run(holder, "git", "show", f"{_ref(holder, pruned)}:metrics/CNN/train.json").stdout)
    assert shown["pruned"] is True and shown["epochs_run"] == 1
    run(clone, "dvc", "exp", "push", "--no-cache", "origin", *ran[clone])  # as the README's second machine does
    assert experiments(repo) == names

    # The repo's trials ran as queued experiments, in copies under .dvc/tmp, on the default store: the repo's
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["mnist"], output_format="list")
    (study_run,) = [r for r in runs if r.data.tags.get("pipeline.role") == "study"]
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == study_run.info.run_id]
    assert sorted(r.info.run_name for r in nested) == sorted(names)
    assert {r.info.run_name for r in nested if r.data.metrics["CNN/train/pruned"] == 1} == {f"s-{n}" for n in losing}
    assert study_run.data.tags[f"trial.{min(losing)}"].startswith("PRUNED")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(study_run.info.run_id, "study")}
    assert {"study/trials.csv", "study/optimization_history.png", "study/parallel_coordinate.png"} <= artifacts
    assert all("Best: trial" in output for output in outputs)
    assert any("test accuracy (reported only)" in output for output in outputs)

    run(holder, "dvc", "exp", "apply", pruned)  # as the README says: the pruned trial, trained in full
    assert "up to date" in run(holder, "dvc", "status").stdout  # its params and outputs agree: DVC needs --force
    run(holder, "dvc", "repro", "--force", "--single-item", "train")  # the stage the assertion reads
    assert json.loads((holder / "metrics/CNN/train.json").read_text()) | {"params": 0} == {
        "epochs_run": 2,
        "kept_epoch": 2,
        "params": 0,
        "members": 1,
        "pruned": False,
    }


def _ref(repo: Path, name: str) -> str:
    refs = run(repo, "git", "for-each-ref", "--format=%(refname)", "refs/exps/").stdout.split()
    return next(r for r in refs if r.endswith(f"/{name}"))
