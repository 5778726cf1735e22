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
budget: a trial's number is given out once, by the storage.  A trial records the process and clone
that run it and their heartbeat (`pipeline.search.liveness`: by age, never by host name or process
id); a rerun in that clone waits for the trials of a process whose heartbeat stopped and takes them
over (a queued or running experiment is waited for, a finished one read), and marks failed,
uncounted, one whose experiment is gone; any process marks so a trial of another clone whose
heartbeat stopped ten minutes ago.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import optuna
import sqlalchemy

from pipeline import PipelineError, one_line
from pipeline.infra import paths, tracking
from pipeline.infra.heartbeat import Heartbeat
from pipeline.infra.params import load_params
from pipeline.search.driver import Search
from pipeline.search.dvc_queue import Queue
from pipeline.search.outcome import outcome
from pipeline.search.space import SEARCH_FILE, load_search
from pipeline.search.study_run import open_study_run
from pipeline.search.trials import make_pruner, open_storage

log = logging.getLogger(__name__)


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

    def close(status: str) -> None:
        driver.summarize()
        mlflow.MlflowClient().set_terminated(run_id, status)

    def work() -> None:
        with Heartbeat(run_id):  # the study run is alive while the search runs
            driver.run(jobs)

    try:
        run_then_close(work, driver.cancel_all, close)
    except KeyboardInterrupt:
        raise PipelineError(f"interrupted: its trials were stopped; rerun to continue study {search.study}") from None
    print(outcome(driver))


def run_then_close(work: Callable[[], None], cancel: Callable[[], None], close: Callable[[str], None]) -> None:
    """`work`, then `close` the study run FINISHED; on Ctrl-C, `cancel` and close it KILLED, on another
    error FAILED.  When closing fails beside an error already raised, the closing's is logged and the
    first error (or the Ctrl-C) is the one that propagates."""
    try:
        work()
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt)
        if interrupted:
            cancel()
        try:
            close("KILLED" if interrupted else "FAILED")
        except Exception as closing:  # noqa: BLE001 - whatever closing raised, the first error propagates
            log.warning("the study run could not be closed: %s", one_line(closing))
        raise
    close("FINISHED")
