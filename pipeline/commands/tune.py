"""`python -m pipeline tune`: a hyperparameter search, each trial a DVC experiment tracked in MLflow.

Optuna's ask-and-tell drives it.  The search asks the study for a trial's params, queues them as a
DVC experiment named `<study>-<trial number>` (`dvc exp run --queue -S key=value`), reads the
objective, a validation metric, from that experiment's metrics files, and tells the study.  Each
trial is exactly one pipeline run in MLflow, nested under the search's one study run.

Parallel trials (`--jobs N`) run in DVC's queue with N workers.  Not N `dvc exp run --temp` at once:
those take DVC's repository lock while they stash and collect their experiments, so two that meet
fail with "Unable to acquire lock"; the queue's workers were made to share a repository.

The study lives in Optuna's storage (tune.yaml `storage`): a journal file at the repo root by
default, or a database such as the team server's.  Every process on it shares its trials and its
budget: a trial's number is given out once, by the storage.  A trial records the host and process
that run it and their heartbeat; a rerun takes over the trials of a process that died on this host
(a queued or running experiment is waited for, a finished one read), and marks failed, uncounted,
one whose process is gone and whose experiment is not (or, on another host, whose heartbeat stopped).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib
import matplotlib.pyplot as plt
import mlflow
import optuna
import sqlalchemy
import yaml
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field, model_validator

from pipeline import PipelineError, environment, one_line, paths, tracking
from pipeline.params import PARAMS_FILE, Params, Section, load_params, read_yaml, validate, with_overrides
from pipeline.trials import PrunerSettings, TrialContext, context_file, make_pruner, open_storage

log = logging.getLogger(__name__)
SEARCH_FILE = Path("tune.yaml")
DEFAULT_STORAGE = "tune.journal"  # beside mlflow.db, at the repo root
POLL_S = 5  # how often the queue is read
HEARTBEAT_S = 30  # how often a running trial's heartbeat is written ...
STALE_AFTER_S = 600  # ... and how long after the last one another host may mark it failed
Value = bool | int | float | str | None


class Dimension(Section):
    """One params.yaml key of the search: a range (int or float, log scale or a step) or choices."""

    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = Field(default=None, gt=0, description="a step > 0")
    log: bool = False
    choices: list[Value] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("expected either choices or a range (low, high, step, log), not both")
            if len(set(map(json.dumps, self.choices))) != len(self.choices) or len(self.choices) < 2:
                raise ValueError("expected at least two different choices (a single value goes in 'fixed')")
            return self
        if self.low is None or self.high is None:
            raise ValueError("expected 'low' and 'high', or 'choices'")
        if not self.low < self.high:
            raise ValueError(f"empty range: expected low < high, got {self.low} and {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log range needs low > 0 and no step")
        return self

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and isinstance(self.step or 1, int)

    def bounds(self) -> list[Value]:
        """The values that must fit the params schema: the range's ends, or every choice."""
        return self.choices if self.choices is not None else [self.low, self.high]

    def grid(self) -> list[Value]:
        if self.choices is not None:
            return self.choices
        if self.step is None:
            raise ValueError("the grid sampler needs choices or a step")
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [self.low + i * self.step for i in range(count)]

    def suggest(self, trial: optuna.Trial, name: str) -> Value:
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if self.integer:
            return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


class Objective(Section):
    metric: Literal["CNN/val_accuracy", "CNN/val_loss"] = Field(
        description="a validation metric, CNN/val_accuracy or CNN/val_loss (the test set chooses nothing)"
    )
    direction: Literal["maximize", "minimize"]

    @model_validator(mode="after")
    def _sense(self) -> Objective:
        if self.direction != ("maximize" if self.metric.endswith("accuracy") else "minimize"):
            raise ValueError(f"{self.metric} cannot be {self.direction}d")
        return self

    @property
    def epoch_metric(self) -> str:
        """The Keras log of each epoch that goes with it."""
        return self.metric.rsplit("/", 1)[1]


class Budget(Section):
    trials: int | None = Field(ge=1, description="null or a number of trials >= 1")
    minutes: float | None = Field(gt=0, description="null or minutes > 0, after which no trial starts")

    @model_validator(mode="after")
    def _some(self) -> Budget:
        if self.trials is None and self.minutes is None:
            raise ValueError("expected a number of trials, minutes, or both")
        return self


class SamplerSettings(Section):
    name: Literal["tpe", "random", "grid"]
    seed: int


class SearchFile(Section):
    """tune.yaml: what to search, on what objective, for how long, with what, where it is kept."""

    study: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.]*(-[A-Za-z0-9_.]+)*$", description="a name for git refs")
    objective: Objective
    budget: Budget
    sampler: SamplerSettings
    pruner: PrunerSettings
    storage: str | None  # null = a journal file beside mlflow.db; or a database URL, e.g. the team server's
    fixed: dict[str, Value]
    space: dict[str, Dimension] = Field(min_length=1, description="at least one params.yaml key to search")

    def storage_url(self) -> str:
        return self.storage or str(tracking.repo_root() / DEFAULT_STORAGE)

    def trial_limit(self) -> int | None:
        """The budget's trials, and no more than the grid's points."""
        if self.sampler.name != "grid":
            return self.budget.trials
        points = math.prod(len(dimension.grid()) for dimension in self.space.values())
        return min(points, self.budget.trials or points)

    def max_epochs(self, params: Params) -> int:
        if "train.epochs" in self.space:
            return max(self.space["train.epochs"].bounds())
        return self.fixed.get("train.epochs", params.train.epochs)


def load_search(path: Path, params: Params) -> SearchFile:
    """tune.yaml validated, and every fixed value, range end and choice checked against the params schema."""
    try:
        raw = read_yaml(path)
    except (OSError, yaml.YAMLError) as error:
        raise PipelineError(f"{path}: cannot read: {error}") from None
    search = validate(SearchFile, raw, path)
    base = with_overrides(params, search.fixed, origin=f"{path}: fixed")
    for key, dimension in search.space.items():
        if key in search.fixed:
            raise PipelineError(f"{path}: space.{key}: the key is also fixed; keep one")
        for value in dimension.bounds():
            with_overrides(base, {key: value}, origin=f"{path}: space.{key}")
        if search.sampler.name == "grid":
            try:
                dimension.grid()
            except ValueError as error:
                raise PipelineError(f"{path}: space.{key}: {error}") from None
    return search


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid, for ask-and-tell: the search stops asking once every point has a trial
    (`SearchFile.trial_limit`), where Optuna's own would call `Study.stop`, which works only in `optimize`."""

    def after_trial(self, *args: Any) -> None:
        pass


def make_sampler(search: SearchFile, trial_number: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of tune.yaml for a trial: TPE and random draw with seed + the trial's number, so a
    search is reproducible and processes sharing a study never draw alike; the grid's order is the
    seed's.  TPE always lies about running trials (constant_liar): with trials in parallel, in this
    process or another, it spreads them out; with none running, it changes nothing."""
    seed = search.sampler.seed + trial_number
    if search.sampler.name == "grid":
        return GridSampler({k: d.grid() for k, d in search.space.items()}, seed=search.sampler.seed)
    if search.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def as_override(key: str, value: Value) -> str:
    """`key=value` for `dvc exp run -S`, the value written as YAML reads it back (floats keep a dot)."""
    return f"{key}={yaml.safe_dump([value], default_flow_style=True, width=1000).strip()[1:-1]}"


class Queue:
    """DVC's experiment queue, through its command line: trials in, their states out."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def _dvc(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["dvc", *args], capture_output=True, text=True, env=environment(), check=False)
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
        if subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment()).returncode:
            raise PipelineError(f"{' '.join(command)} failed: see dvc queue status")

    def states(self) -> dict[str, str]:
        """Each task's state (Queued, Running, Success, Failed) by experiment name; restarts the
        workers when tasks wait and none is left (treeverse/dvc#10562)."""
        status = self._dvc("queue", "status")
        states = dict(re.findall(r"^\S+\s+(\S+)\s+.*?\b(Queued|Running|Success|Failed)\s*$", status, re.MULTILINE))
        workers = re.search(r"Worker status: (\d+) active, (\d+) idle", status)
        if "Queued" in states.values() and workers and sum(map(int, workers.groups())) == 0:
            self.start()
        return states

    def cancel(self, name: str) -> None:
        self._dvc("queue", "kill", name, check=False)
        self._dvc("queue", "remove", name, check=False)


def experiment_file(name: str, path: Path) -> str | None:
    """File `path` as DVC experiment `name` committed it, or None when there is no such experiment."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"], capture_output=True, text=True, check=True
    ).stdout.split()
    ref = next((r for r in refs if r.rsplit("/", 1)[-1] == name), None)
    if ref is None:
        return None
    return subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True, text=True, check=True).stdout


def experiment_metrics(name: str) -> dict[str, float] | None:
    """The CNN's metrics (CNN/val_accuracy, CNN/train/pruned, ...) of DVC experiment `name`, or None."""
    texts = {path: experiment_file(name, path) for path in (paths.CNN_METRICS, paths.TRAIN_METRICS)}
    if None in texts.values():
        return None
    return tracking.metrics_of({path: json.loads(text) for path, text in texts.items()})


PRUNED, EPOCHS_RUN = (tracking.metric_name(paths.TRAIN_METRICS, key) for key in ("pruned", "epochs_run"))


@dataclass
class Search:
    """One process's part in a study: its trials in flight, told as they finish."""

    file: Path
    search: SearchFile
    params: Params
    study: optuna.Study
    queue: Queue
    run_id: str
    active: dict[str, FrozenTrial] = field(default_factory=dict)  # by experiment name
    started: float = field(default_factory=time.monotonic)
    beat: float = 0.0

    @property
    def name(self) -> str:
        return self.search.study

    def experiment(self, trial: FrozenTrial) -> str:
        return f"{self.name}-{trial.number}"

    def counted(self) -> list[FrozenTrial]:
        """The trials that use the budget: all but those killed before their experiment finished."""
        return [t for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get("outcome") != "killed"]

    def budget_left(self) -> bool:
        budget = self.search.budget
        if budget.minutes is not None and time.monotonic() - self.started > 60 * budget.minutes:
            return False
        limit = self.search.trial_limit()
        return limit is None or len(self.counted()) < limit

    def own(self, trial_id: int) -> None:
        for key, value in {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}.items():
            self.study._storage.set_trial_user_attr(trial_id, key, value)

    def launch(self) -> bool:
        """Ask for a trial and queue its experiment; False when the budget is spent."""
        if not self.budget_left():
            return False
        self.study.sampler = make_sampler(self.search)
        trial = self.study.ask()
        limit = self.search.trial_limit()
        earlier = [t for t in self.counted() if t.number < trial.number]
        if limit is not None and len(earlier) >= limit:  # another process took the last one
            self.study._storage.set_trial_user_attr(trial._trial_id, "outcome", "killed")
            self.study.tell(trial, state=TrialState.FAIL)
            return False
        self.study.sampler = make_sampler(self.search, trial.number)
        chosen = {key: dimension.suggest(trial, key) for key, dimension in self.search.space.items()}
        name = f"{self.name}-{trial.number}"
        self.study._storage.set_trial_user_attr(trial._trial_id, "experiment", name)
        self.own(trial._trial_id)
        context = TrialContext(
            storage=self.search.storage_url(),
            study=self.name,
            trial_id=trial._trial_id,
            number=trial.number,
            pruner=self.search.pruner,
            max_epochs=self.search.max_epochs(self.params),
            epoch_metric=self.search.objective.epoch_metric,
            study_run_id=self.run_id,
        )
        path = context_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(context.model_dump_json())
        self.queue.submit(name, self.search.fixed | chosen)
        self.active[name] = self.study._storage.get_trial(trial._trial_id)
        log.info("trial %d queued as experiment %s: %s", trial.number, name, _params_text(chosen))
        return True

    def poll(self) -> None:
        """Tell the study of the trials that finished; keep the others' heartbeat."""
        states = self.queue.states()
        for name, trial in list(self.active.items()):
            state = states.get(name)
            if state in ("Success", "Failed") or state is None:
                self.finish(name, trial, state == "Success")
        if time.monotonic() - self.beat > HEARTBEAT_S:
            for trial in self.active.values():
                self.study._storage.set_trial_user_attr(trial._trial_id, "heartbeat", time.time())
            self.beat = time.monotonic()

    def finish(self, name: str, trial: FrozenTrial, succeeded: bool) -> None:
        metrics = experiment_metrics(name) if succeeded else None
        if metrics is None:
            outcome, state, value, epochs = "failed", TrialState.FAIL, None, None
        else:
            pruned = bool(metrics[PRUNED])
            outcome = "pruned" if pruned else "complete"
            state = TrialState.PRUNED if pruned else TrialState.COMPLETE
            value, epochs = metrics[self.search.objective.metric], int(metrics[EPOCHS_RUN])
        self.study._storage.set_trial_user_attr(trial._trial_id, "outcome", outcome)
        if epochs is not None:
            self.study._storage.set_trial_user_attr(trial._trial_id, "epochs_run", epochs)
        told = self.study.tell(trial.number, value if state == TrialState.COMPLETE else None, state=state)
        del self.active[name]
        context_file(name).unlink(missing_ok=True)
        self.report(told, value)

    def report(self, trial: FrozenTrial, value: float | None) -> None:
        """One line per finished trial, and its state and value in the study run."""
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        best = self.best()
        shown = "-" if value is None else f"{value:.4f}"
        line = (
            f"trial {trial.number:>3}  {trial.state.name:<8} {self.search.objective.metric} {shown}  "
            f"{trial.user_attrs.get('epochs_run', '-')} epochs  {seconds / 60:4.1f} min  {_params_text(trial.params)}"
            f"  | best: {f'trial {best.number}, {best.value:.4f}' if best else '-'}"
        )
        print(line, flush=True)
        client = mlflow.MlflowClient()
        client.set_tag(self.run_id, f"trial.{trial.number}", f"{trial.state.name} {shown} ({self.experiment(trial)})")
        if value is not None:
            client.log_metric(self.run_id, "study/trial_value", value, step=trial.number)
        if best:
            client.log_metric(self.run_id, "study/best_value", best.value, step=trial.number)

    def best(self) -> FrozenTrial | None:
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return self.study.best_trial if complete else None

    def take_over(self) -> None:
        """Trials left running by a process that died: wait for their experiments, read the
        finished ones, fail (uncounted) those whose experiment is gone."""
        states = self.queue.states()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = trial.user_attrs
            here = attrs.get("host") == socket.gethostname()
            if here and tracking.process_alive(attrs.get("pid", 0)):
                continue
            if not here and time.time() - attrs.get("heartbeat", 0) < STALE_AFTER_S:
                continue
            name = attrs.get("experiment", self.experiment(trial))
            if here and states.get(name) in ("Queued", "Running", "Success"):
                log.info("trial %d (%s) was left by a process that died: taken over", trial.number, name)
                self.own(trial._trial_id)
                self.active[name] = trial
                continue
            self.study._storage.set_trial_user_attr(trial._trial_id, "outcome", "killed")
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            log.warning("trial %d (%s) was left by a process that died: marked failed, not counted", trial.number, name)

    def cancel_all(self) -> None:
        for name, trial in list(self.active.items()):
            self.queue.cancel(name)
            self.study._storage.set_trial_user_attr(trial._trial_id, "outcome", "killed")
            self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            context_file(name).unlink(missing_ok=True)
            del self.active[name]

    def run(self, jobs: int) -> None:
        self.take_over()
        while True:
            while len(self.active) < jobs and self.launch():
                pass
            if not self.active:
                return
            time.sleep(POLL_S)
            self.poll()

    def summarize(self) -> None:
        """The study run's record of the whole study: each trial, the best one, Optuna's figures."""
        client = mlflow.MlflowClient()
        frame = self.study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
        with tempfile.TemporaryDirectory() as folder:
            frame.to_csv(Path(folder, "trials.csv"), index=False)
            for name, figure in study_figures(self.study).items():
                figure.savefig(Path(folder, f"{name}.png"), dpi=120, bbox_inches="tight")
                plt.close(figure)
            client.log_artifacts(self.run_id, folder, "study")
        states = frame["state"].value_counts().to_dict() if len(frame) else {}
        client.set_tag(self.run_id, "study.trials", ", ".join(f"{n} {state.lower()}" for state, n in states.items()))
        if best := self.best():
            for key, value in {
                "best.trial": best.number,
                "best.experiment": self.experiment(best),
                "best.value": best.value,
                "best.params": json.dumps(best.params),
            }.items():
                client.set_tag(self.run_id, key, str(value))


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's figures of the study (matplotlib, headless), those its trials allow: importances
    need two finished trials, the others one."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return {}
    matplotlib.use("Agg")
    plots = {
        "optimization_history": optuna.visualization.matplotlib.plot_optimization_history,
        "param_importances": optuna.visualization.matplotlib.plot_param_importances,
        "parallel_coordinate": optuna.visualization.matplotlib.plot_parallel_coordinate,
    }
    figures = {}
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                figures[name] = plot(study).figure
            except (ValueError, RuntimeError) as error:
                log.info("no %s figure yet: %s", name, error)
    return figures


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
    )


def open_study_run(search: SearchFile, file: Path, experiment_id: str, jobs: int) -> str:
    """The study's run in MLflow: found by the study's name, else created with the search's settings."""
    client = mlflow.MlflowClient()
    found = client.search_runs(
        [experiment_id],
        f"tags.`{tracking.ROLE_TAG}` = 'study' and tags.`optuna.study` = '{search.study}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    if found:
        run = found[0]
        if run.info.status != "RUNNING":  # resumed: this process now holds it open
            client.update_run(run.info.run_id, status="RUNNING")
            for key, value in tracking.process_tags().items():
                client.set_tag(run.info.run_id, key, value)
    else:
        storage = search.storage_url()
        if "://" in storage:
            storage = sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
        tags = tracking.run_tags("study") | {"optuna.study": search.study, "optuna.storage": storage}
        run = client.create_run(experiment_id, run_name=search.study, tags=tags)
        settings = search.model_dump(exclude={"space", "fixed", "storage", "study"})
        client.log_batch(
            run.info.run_id,
            params=[
                mlflow.entities.Param(key, value)
                for key, value in (tracking.flatten(settings) | {"jobs": str(jobs)}).items()
            ],
        )
    client.log_artifact(run.info.run_id, str(file))
    return run.info.run_id


def outcome(search: Search) -> str:
    """The best trial as a params.yaml diff and the command that applies it, with its validation
    figure and, reported only, its test accuracy beside the workspace's current model."""
    best = search.best()
    if best is None:
        return "No trial finished: nothing to apply."
    name = search.experiment(best)
    found = experiment_file(name, PARAMS_FILE) or ""
    diff = difflib.unified_diff(
        PARAMS_FILE.read_text().splitlines(),
        found.splitlines(),
        "params.yaml",
        f"params.yaml of {name}",
        n=0,
        lineterm="",
    )
    ours, current = experiment_metrics(name), json.loads(paths.CNN_METRICS.read_text())
    metric = search.search.objective.metric
    return "\n".join(
        [
            f"Best: trial {best.number} ({name}), {metric} {best.value:.4f}, chosen on validation.",
            *diff,
            f"Apply it: dvc exp apply {name}",
            f"  {'':<22}{'validation accuracy':>20}{'test accuracy (reported only)':>32}",
            f"  {name:<22}{ours['CNN/val_accuracy']:>20.4f}{ours['CNN/test_accuracy']:>32.4f}",
            f"  {'current params.yaml':<22}{current['val_accuracy']:>20.4f}{current['test_accuracy']:>32.4f}",
        ]
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, default=SEARCH_FILE, help="the search file (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="trials at once: DVC queue workers (default: 1)")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(file: Path = SEARCH_FILE, jobs: int = 1) -> None:
    if jobs < 1:
        raise PipelineError(f"--jobs {jobs}: expected a number of trials at once >= 1")
    params = load_params()
    search = load_search(file, params)  # every bound checked before any experiment
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search prints a line per trial itself
    experiment_id = tracking.use_experiment(params.mlflow.experiment)  # created before queue workers start
    try:
        study = optuna.create_study(
            study_name=search.study,
            storage=open_storage(search.storage_url()),
            direction=search.objective.direction,
            pruner=make_pruner(search.pruner, search.max_epochs(params)),
            load_if_exists=True,
        )
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as error:
        raise PipelineError(f"study storage {search.storage_url()}: {one_line(error)}") from None
    run_id = open_study_run(search, file, experiment_id, jobs)
    driver = Search(file, search, params, study, Queue(jobs), run_id)
    print(
        f"Study {search.study}: {len(driver.counted())} trials so far, in {search.storage_url()}; MLflow run {run_id}"
    )
    signal.signal(signal.SIGTERM, _interrupt)
    status = "FINISHED"
    try:
        driver.run(jobs)
    except KeyboardInterrupt:
        driver.cancel_all()
        status = "KILLED"
        raise PipelineError(f"interrupted: its trials were stopped; rerun to continue study {search.study}") from None
    finally:
        driver.summarize()
        mlflow.MlflowClient().set_terminated(run_id, status)
    print(outcome(driver))
