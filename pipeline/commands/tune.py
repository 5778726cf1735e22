"""`python -m pipeline tune`: a hyperparameter search, each trial a DVC experiment tracked in MLflow.

Optuna's ask-and-tell drives it.  The search asks the study for a trial's params, queues them as a
DVC experiment named `<study>-<trial number>` (`dvc exp run --queue -S key=value`), reads the
objective, a validation metric, from that experiment's metrics files, and tells the study.  Each
trial is exactly one pipeline run in MLflow, nested under the search's one study run.

Parallel trials (`--jobs N`) run in DVC's queue with N workers, DVC's own way to run experiments at
once, not as N `dvc exp run --temp`: each of those holds DVC's repository lock while it stashes and
collects its experiment, and another waits for that lock 3 s (dvc/lock.py) before it fails with
"Unable to acquire lock", a wait a loaded machine can outlast.  Queued experiments also outlive a
killed search, which takes them over when rerun.

The study lives in Optuna's storage (tune.yaml `storage`): a journal file at the repo root by
default, or a database such as the team server's.  Every process on it shares its trials and its
budget: a trial's number is given out once, by the storage.  A trial records the host and process
and clone that run it and their heartbeat; a rerun in that clone takes over the trials of a process
that died (a queued or running experiment is waited for, a finished one read), and marks failed,
uncounted, one whose process is gone and whose experiment is not; any process marks so a trial of
another clone or host whose heartbeat stopped.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import signal
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import mlflow
import optuna
import sqlalchemy
import yaml
from optuna.trial import FrozenTrial, TrialState

from pipeline import PipelineError, one_line, paths, tracking
from pipeline.params import PARAMS_FILE, Params, YamlLoader, load_params, read_yaml
from pipeline.files import save_json
from pipeline.experiments import Queue, experiment_file, experiment_metrics
from pipeline.search import SEARCH_FILE, SearchFile, load_search, make_sampler
from pipeline.trials import TrialContext, context_file, make_pruner, open_storage

log = logging.getLogger(__name__)
POLL_S = 5  # how often the queue is read
HEARTBEAT_S = 30  # how often a running trial's heartbeat is written ...
STALE_AFTER_S = 600  # ... and how long after the last one another host may mark it failed
LOST_AFTER_S = 120  # a task DVC calls running but has not begun for this long was lost by its worker
UNCOUNTED = ("killed", "over budget")  # outcomes of trials whose experiment never finished
PRUNED, EPOCHS_RUN = (tracking.metric_name(paths.TRAIN_METRICS, key) for key in ("pruned", "epochs_run"))


@dataclass
class Search:
    """One process's part in a study: its trials in flight, told as they finish."""

    search: SearchFile
    params: Params
    study: optuna.Study
    queue: Queue
    run_id: str
    active: dict[str, FrozenTrial | optuna.Trial] = field(default_factory=dict)  # by experiment name
    starting: dict[str, float] = field(default_factory=dict)  # since when DVC has not begun each active trial
    started: float = field(default_factory=time.monotonic)
    beat: float = 0.0

    @property
    def name(self) -> str:
        return self.search.study

    def experiment(self, trial: FrozenTrial) -> str:
        return f"{self.name}-{trial.number}"

    def counted(self) -> list[FrozenTrial]:
        """The trials that use the budget: all but those killed before their experiment finished,
        and those asked for when another process had just taken the last one."""
        return [t for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get("outcome") not in UNCOUNTED]

    def budget_left(self) -> bool:
        budget = self.search.budget
        if budget.minutes is not None and time.monotonic() - self.started > 60 * budget.minutes:
            return False
        limit = self.search.trial_limit()
        return limit is None or len(self.counted()) < limit

    def note(self, trial: FrozenTrial | optuna.Trial, **attrs: Any) -> None:
        """Record `attrs` on `trial` in the storage, where every process sharing the study reads them."""
        for key, value in attrs.items():
            self.study._storage.set_trial_user_attr(trial._trial_id, key, value)

    def own(self, trial: FrozenTrial | optuna.Trial) -> None:
        """Mark `trial` as run by this process, in this clone (whose DVC queue holds its experiment)."""
        self.note(trial, **where(), pid=os.getpid(), heartbeat=time.time())

    def launch(self) -> bool:
        """Ask for a trial and queue its experiment; False when the budget is spent."""
        if not self.budget_left():
            return False
        self.study.sampler = make_sampler(self.search)
        trial = self.study.ask()
        limit = self.search.trial_limit()
        earlier = [t for t in self.counted() if t.number < trial.number]
        if limit is not None and len(earlier) >= limit:  # another process took the last one
            self.note(trial, outcome="over budget")
            self.study.tell(trial, state=TrialState.FAIL)
            return False
        self.study.sampler = make_sampler(self.search, trial.number)
        chosen = {key: dimension.suggest(trial, key) for key, dimension in self.search.space.items()}
        name = self.experiment(trial)
        self.note(trial, experiment=name)
        self.own(trial)
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
        save_json(context_file(name), context.model_dump())
        self.queue.submit(name, self.search.fixed | chosen)
        self.active[name] = trial
        log.info("trial %d queued as experiment %s: %s", trial.number, name, _params_text(chosen))
        return True

    def poll(self) -> None:
        """Tell the study of the trials that finished, queue again those DVC lost; keep the others' heartbeat."""
        states = self.queue.states()
        for name, trial in list(self.active.items()):
            state = states.get(name)
            if state in ("Success", "Failed") or state is None:
                self.finish(name, trial, state == "Success")
            elif state != "Starting":
                self.starting.pop(name, None)
            elif time.monotonic() - self.starting.setdefault(name, time.monotonic()) > LOST_AFTER_S:
                log.warning("trial %d (%s): DVC's queue lost its task; queued again", trial.number, name)
                self.queue.cancel(name)
                self.queue.submit(name, self.search.fixed | trial.params)
                del self.starting[name]
        if time.monotonic() - self.beat > HEARTBEAT_S:
            for trial in self.active.values():
                self.note(trial, heartbeat=time.time())
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
        self.note(trial, outcome=outcome)
        if epochs is not None:
            self.note(trial, epochs_run=epochs)
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
            here = {key: attrs.get(key) for key in ("host", "workspace")} == where()
            if here and tracking.process_alive(attrs.get("pid", 0)):
                continue
            if not here and time.time() - attrs.get("heartbeat", 0) < STALE_AFTER_S:
                continue
            name = attrs.get("experiment", self.experiment(trial))
            if here and states.get(name) in ("Queued", "Starting", "Running", "Success"):
                log.info("trial %d (%s) was left by a process that died: taken over", trial.number, name)
                self.own(trial)
                self.active[name] = trial
                continue
            self.fail_killed(trial, name if here else None)
            log.warning("trial %d (%s) was left by a process that died: marked failed, not counted", trial.number, name)

    def cancel_all(self) -> None:
        for name, trial in list(self.active.items()):
            self.queue.cancel(name)
            self.fail_killed(trial, name)
            del self.active[name]

    def fail_killed(self, trial: FrozenTrial | optuna.Trial, name: str | None) -> None:
        """Tell `trial` failed, uncounted: its experiment will never finish.  With its experiment's
        `name` (a trial of this clone), remove its hand-over file too."""
        self.note(trial, outcome="killed")
        self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        if name:
            context_file(name).unlink(missing_ok=True)

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
        counts = ", ".join(f"{n} {state.lower()}" for state, n in states.items())
        note = f"Study {self.name}: {counts or 'no trial yet'}; each trial's pipeline run is nested under this run."
        tags = {"study.trials": counts}
        if best := self.best():
            tags |= {
                "best.trial": best.number,
                "best.experiment": self.experiment(best),
                "best.value": best.value,
                "best.params": json.dumps(best.params),
            }
            note += f" Best, on {self.search.objective.metric}: trial {best.number} ({self.experiment(best)}), {best.value:.4f}."
        for key, value in (tags | {"mlflow.note.content": note}).items():
            client.set_tag(self.run_id, key, str(value))


def where() -> dict[str, str]:
    """This host and clone: the trials this process queues run in this clone's DVC queue."""
    return {"host": socket.gethostname(), "workspace": str(tracking.repo_root())}


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
        settings = search.model_dump(exclude={"storage", "study"})  # space.<key>.low, fixed.<key>, ...
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
        return "No trial completed: nothing to apply."
    name, metric = search.experiment(best), search.search.objective.metric
    lines = [f"Best: trial {best.number} ({name}), {metric} {best.value:.4f}, chosen on validation."]
    params = experiment_file(name, PARAMS_FILE)
    if params is None:
        return "\n".join(
            [
                *lines,
                f"  {_params_text(best.params)}",
                f"It ran in another clone: dvc exp pull <git remote> {name} && dvc exp apply {name}",
            ]
        )
    ours, theirs = (  # key by key, in params.yaml's order: DVC rewrites the file in its own layout
        [f"{key}: {value}" for key, value in tracking.flatten(parsed).items()]
        for parsed in (read_yaml(PARAMS_FILE), yaml.load(params, Loader=YamlLoader))
    )
    diff = difflib.unified_diff(ours, theirs, "params.yaml", f"{name}/params.yaml", n=0, lineterm="")
    found, current = experiment_metrics(name), json.loads(paths.CNN_METRICS.read_text())
    return "\n".join(
        [
            *lines,
            *diff,
            f"Apply it: dvc exp apply {name}",
            f"  {'':<22}{'validation accuracy':>20}{'test accuracy (reported only)':>32}",
            f"  {name:<22}{found['CNN/val_accuracy']:>20.4f}{found['CNN/test_accuracy']:>32.4f}",
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
    if jobs > 1 and not paths.split_file("train").exists():
        log.warning(
            "%s is missing: each trial will download and split the data itself, and two doing so at once can "
            "clash in DVC's run cache; run `make repro` (or `dvc pull`) first",
            paths.split_file("train"),
        )
    run_id = open_study_run(search, file, experiment_id, jobs)
    driver = Search(search, params, study, Queue(jobs), run_id)
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
