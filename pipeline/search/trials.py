"""Optuna's side of a trial: the study's storage and pruner, and the reporter that train loads by name
(`pipeline.search.handover.open_reporter`) to report each epoch and hear whether to stop."""

from __future__ import annotations

import optuna

from pipeline.adapters import optuna_trials
from pipeline.search.handover import PrunerSettings, TrialContext


def make_pruner(settings: PrunerSettings, max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's pruner for `settings`, its epochs counted from 1 to `max_epochs`."""
    first = settings.min_epochs
    return {
        "hyperband": lambda: optuna.pruners.HyperbandPruner(first, max_epochs, settings.reduction_factor),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(first, settings.reduction_factor),
        "median": lambda: optuna.pruners.MedianPruner(n_warmup_steps=first - 1),
        "threshold": lambda: optuna.pruners.ThresholdPruner(settings.lower, settings.upper, first - 1),
        "none": optuna.pruners.NopPruner,
    }[settings.name]()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The study storage at `url`: a database URL (postgresql://..., sqlite:///...) or a journal file's path."""
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))


class TrialReporter:
    """Reports a running trial's epochs to its study and asks its pruner (handover.EpochReporter)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial, self.number = trial, trial.number

    def report(self, epoch: int, value: float) -> bool:
        self.trial.report(value, step=epoch)
        return self.trial.should_prune()


def open_reporter(context: TrialContext) -> TrialReporter:
    """The reporter of the running trial `context` names, its study opened with the search's pruner."""
    study = optuna.load_study(
        study_name=context.study,
        storage=open_storage(context.storage),
        pruner=make_pruner(context.pruner, context.max_epochs),
    )
    return TrialReporter(optuna_trials.resume(study, context.trial_id))
