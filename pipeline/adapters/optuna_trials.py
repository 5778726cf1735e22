"""Optuna's trials by id, across processes: the search asks for a trial in one process, and the
trial's train and record stages (other processes, under DVC) report to it and note on it.

Optuna's public API does not serve: a trial is public only as the `Trial` that `study.ask()` returns
to the process that asked, or as a `FrozenTrial` copy (`study.get_trials()`), whose user attributes
are not written to the storage (optuna#1583); there is no public lookup of a trial by id
(optuna#6365).  So the storage's own id of a trial (`_trial_id`), the study's storage (`_storage`)
and `Trial`'s constructor (documented, "not recommended") are used here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """The storage's id of `trial` (unique across studies; a trial's `number` is only within its study)."""
    return trial._trial_id


def note(study: optuna.Study, trial: FrozenTrial | optuna.Trial, key: str, value: Any) -> None:
    """Set user attribute `key` of `trial` in the study's storage, finished or not, live or a copy."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def resume(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """The running trial `trial_id` of `study`, as the `Trial` its asker holds: to report to and prune."""
    return optuna.trial.Trial(study, trial_id)
