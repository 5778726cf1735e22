"""The search's engine: one process's part in a study, its trials asked for, queued as DVC
experiments, polled, told and taken over (see pipeline.commands.tune for the whole story)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline import PipelineError
from pipeline.adapters import optuna_trials
from pipeline.infra import metric_names, paths
from pipeline.infra.files import save_json
from pipeline.infra.params import Params
from pipeline.search import liveness, study_run
from pipeline.search.dvc_queue import Queue, experiment_metrics, experiment_refs
from pipeline.search.handover import TrialContext, context_file
from pipeline.search.space import SearchFile, make_sampler

log = logging.getLogger(__name__)
POLL_S = 5  # how often git's refs are read for the experiments that finished (milliseconds) ...
STATUS_S = 30  # ... and DVC's queue status for those that failed or were lost (a DVC process: 1 s of CPU)
LOST_AFTER_S = 120  # a task DVC calls running but has not begun for this long was lost by its worker
UNCOUNTED = ("killed", "over budget")  # outcomes of trials whose experiment never finished
PRUNED, EPOCHS_RUN = (metric_names.metric_name(paths.TRAIN_METRICS, key) for key in ("pruned", "epochs_run"))


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
    status_read: float = 0.0

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
            optuna_trials.note(self.study, trial, key, value)

    def own(self, trial: FrozenTrial | optuna.Trial) -> None:
        """Mark `trial` as run by this process, in this clone (whose DVC queue holds its experiment)."""
        self.note(trial, **liveness.holder())

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
        if name in experiment_refs():  # DVC would run it, then fail to commit it under a name taken
            self.note(trial, outcome="failed")
            self.study.tell(trial, state=TrialState.FAIL)
            raise PipelineError(f"DVC experiment {name} exists already: dvc exp remove {name}, or name the study anew")
        self.note(trial, experiment=name)
        self.own(trial)
        context = TrialContext(
            storage=self.search.storage_url(),
            study=self.name,
            trial_id=optuna_trials.trial_id(trial),
            number=trial.number,
            pruner=self.search.pruner,
            max_epochs=self.search.max_epochs(self.params),
            epoch_metric=self.search.objective.epoch_metric,
            study_run_id=self.run_id,
        )
        save_json(context_file(name), context.model_dump())
        self.queue.submit(name, self.search.fixed | chosen)
        self.active[name] = trial
        log.info("trial %d queued as experiment %s: %s", trial.number, name, params_text(chosen))
        return True

    def poll(self) -> None:
        """Tell the study of the trials whose experiment finished; every STATUS_S, of those that failed,
        queue again those DVC lost, and take over this clone's trials left by a process that died;
        keep the others' heartbeat."""
        finished = experiment_refs()
        for name in [name for name in self.active if name in finished]:
            self.finish(name, self.active[name], True)
        if time.monotonic() - self.status_read > STATUS_S:
            self.check_queue()
        if time.monotonic() - self.beat > liveness.HEARTBEAT_S:
            for trial in self.active.values():
                self.note(trial, heartbeat=time.time())
            self.beat = time.monotonic()

    def check_queue(self) -> None:
        """Read DVC's queue once (a DVC process): follow this process's trials, take over this clone's left ones."""
        states = self.queue.states()
        self.status_read = time.monotonic()
        self.follow_queue(states)
        self.take_over(states)

    def follow_queue(self, states: dict[str, str]) -> None:
        """The trials whose task DVC's queue failed or lost (`states`: the queue's): told failed, or queued again."""
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
            f"{trial.user_attrs.get('epochs_run', '-')} epochs  {seconds / 60:4.1f} min  {params_text(trial.params)}"
            f"  | best: {f'trial {best.number}, {best.value:.4f}' if best else '-'}"
        )
        print(line, flush=True)
        study_run.log_trial(self.run_id, trial, self.experiment(trial), value, shown, best)

    def best(self) -> FrozenTrial | None:
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return self.study.best_trial if complete else None

    def take_over(self, states: dict[str, str]) -> None:
        """Trials left running by a process that died (`liveness`): in this clone, wait for their
        experiments (`states`: the queue's) and read the finished ones; fail, uncounted, the others."""
        clone, now = liveness.clone_id(), time.time()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            name = trial.user_attrs.get("experiment", self.experiment(trial))
            verdict = liveness.verdict(trial.user_attrs, states.get(name), clone, now)
            if verdict == "take over":
                log.info("trial %d (%s) was left by a process that died: taken over", trial.number, name)
                self.own(trial)
                self.active[name] = trial
            elif verdict == "fail":
                self.fail_killed(trial, name if trial.user_attrs.get("clone") == clone else None)
                log.warning("trial %d (%s) was left by a process that died: failed, not counted", trial.number, name)

    def left_here(self) -> bool:
        """Whether this clone has trials held by another process: alive, or not yet judged dead."""
        clone = liveness.clone_id()
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return any(t.user_attrs.get("clone") == clone and t.user_attrs.get("owner") != liveness.OWNER for t in running)

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
        """Launch trials while the budget lasts and follow them; wait for this clone's trials held by
        another process, to take them over if it died."""
        self.check_queue()  # (no trial of this process yet: only the take-over)
        while True:
            while len(self.active) < jobs and self.launch():
                pass
            if not self.active and not self.left_here():
                return
            time.sleep(POLL_S)
            self.poll()

    def summarize(self) -> None:
        """The study run's record of the whole study (pipeline.search.study_run.summarize)."""
        study_run.summarize(self.run_id, self.study, self.search.objective.metric, self.best(), self.experiment)


def params_text(params: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
    )
