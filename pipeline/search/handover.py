"""A DVC experiment run as a trial of a hyperparameter search (`python -m pipeline tune`).

Before it queues a trial's experiment, the search writes the trial's context (storage, study, trial,
pruner, study run) to `.dvc/tmp/trials/<experiment name>.json` at the repo root.  Two stages read it:
train reports each epoch's validation figure to the trial and stops when the pruner says so, and
record nests the pipeline run under the study run.  Outside a search there is no such file and both
behave as ever.  The file is a hand-over, not an input: a pruned trial's own outputs say that it was
pruned and after how many epochs (metrics/CNN/train.json).

This module is the whole interface the stages import, and it imports no search library: train reports
through `open_reporter`, which loads the search's reporter (`REPORTER`, Optuna's side) by name, in a
trial only.  So neither Optuna nor the search's code is a cache key of training: an edit to them
reruns no stage.  (Whether a trial is pruned depends on the other trials anyway, never on the code
alone, and its outputs say so.)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Literal, Protocol

from pydantic import Field, model_validator

from pipeline.infra.params import Section
from pipeline.infra.tracking import repo_root

TRIALS_DIR = Path(".dvc/tmp/trials")  # under the repo root; .dvc/tmp is DVC's own git-ignored scratch space


class PrunerSettings(Section):
    """Which trials to stop early, judged on the epochs' validation figures."""

    name: Literal["hyperband", "successive_halving", "median", "threshold", "none"]
    min_epochs: int = Field(default=1, ge=1, description="epochs every trial runs before it may be pruned (>= 1)")
    reduction_factor: int = Field(default=3, ge=2, description="hyperband, successive_halving: an integer >= 2")
    lower: float | None = None  # threshold: prune a trial whose epoch figure is below this ...
    upper: float | None = None  # ... or above this

    @model_validator(mode="after")
    def _threshold(self) -> PrunerSettings:
        if (self.name == "threshold") != (self.lower is not None or self.upper is not None):
            raise ValueError("'lower' or 'upper' goes with the threshold pruner, and only with it")
        return self


REPORTER = "pipeline.search.trials"  # its open_reporter(context) -> EpochReporter


class EpochReporter(Protocol):
    """A trial's side of the search, as train sees it."""

    number: int  # the trial's number in its study

    def report(self, epoch: int, value: float) -> bool:
        """Record the epoch's figure; True when the pruner says the trial should stop here."""


class TrialContext(Section):
    """What a trial's stages need to know of the search that runs it."""

    storage: str
    study: str
    trial_id: int
    number: int
    pruner: PrunerSettings
    max_epochs: int
    epoch_metric: str  # the Keras log the trial reports each epoch: val_accuracy or val_loss
    study_run_id: str  # the MLflow run the trial's pipeline run is nested under


def context_file(experiment: str) -> Path:
    return repo_root() / TRIALS_DIR / f"{experiment}.json"


def open_reporter(context: TrialContext) -> EpochReporter:
    """The reporter of the trial `context` names (the search's code, loaded by name: see the module's doc)."""
    return importlib.import_module(REPORTER).open_reporter(context)


def current_trial() -> TrialContext | None:
    """The context of the trial this DVC experiment runs, or None outside a search."""
    experiment = os.environ.get("DVC_EXP_NAME")
    path = context_file(experiment) if experiment else None
    return TrialContext.model_validate_json(path.read_text()) if path and path.exists() else None
