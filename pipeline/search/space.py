"""tune.yaml, the search file of `python -m pipeline tune`: its schema, checked against params.yaml's
schema before any experiment, and the Optuna sampler it names.

Every key of `fixed` and `space` is a params.yaml key; each fixed value, range end and choice must
be a value params.yaml accepts there, so a search never queues an experiment that would fail on its
params.  The objective is a validation metric of the metrics files, never a test one: the test set chooses nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from pydantic import Field, model_validator

from pipeline import PipelineError, one_line
from pipeline.infra import tracking
from pipeline.infra.overrides import with_overrides
from pipeline.infra.params import Params, Section, Value, validate
from pipeline.infra.yaml_files import read_yaml
from pipeline.search.handover import PrunerSettings

SEARCH_FILE = Path("tune.yaml")
DEFAULT_STORAGE = "tune.journal"  # beside mlflow.db, at the repo root


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
        raise PipelineError(f"{path}: cannot read: {one_line(error)}") from None
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
