"""Metrics files and params as MLflow names them: the same names in every run, so runs compare exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic

from pipeline.infra.paths import METRICS_DIR

EPOCH_SECTION = "CNN/epoch"  # the per-epoch curves' metric names


def metrics_of(files: dict[Path, dict]) -> dict[str, float]:
    """Metrics files' contents as MLflow metrics, named by their path in metrics/ and their keys, joined
    by `/`: metrics/CNN.json's `test_accuracy` is `CNN/test_accuracy`, metrics/speed/train.json's
    `train_seconds` is `speed/train/train_seconds`.  The MLflow UI groups charts by the name up to the
    last `/` and sorts the groups by character code, capitals first: the CNN's files (metrics/CNN.json,
    metrics/CNN/) come before the baseline's and the rest.  Booleans count 1 or 0; words (a stage's
    `not_applicable` reason) are no metric: `notes_of` has them."""
    return {name: float(value) for name, value in _named_leaves(files).items() if not isinstance(value, str)}


def notes_of(files: dict[Path, dict]) -> dict[str, str]:
    """The words in metrics files (a stage's `not_applicable` reason), named as `metrics_of` names a
    metric: the pipeline run's tags."""
    return {name: value for name, value in _named_leaves(files).items() if isinstance(value, str)}


def _named_leaves(files: dict[Path, dict]) -> dict[str, Any]:
    """Every value in metrics files, by its MLflow name (`metric_name`)."""
    return {
        metric_name(path, *keys): value for path, content in files.items() for keys, value in _leaves(content).items()
    }


def metric_name(path: Path, *keys: str) -> str:
    """The MLflow name of the value at `keys` in metrics file `path` (see metrics_of)."""
    return "/".join([*path.relative_to(METRICS_DIR).with_suffix("").parts, *keys])


def epoch_metrics(logs: dict[str, float]) -> dict[str, float]:
    """One epoch's Keras logs (accuracy, val_loss, ...) as MLflow metrics of the `CNN/epoch` section,
    the group right after the CNN's headline figures."""
    return {f"{EPOCH_SECTION}/{name}": float(value) for name, value in logs.items() if name != "epoch"}


def flatten(params: Any) -> dict[str, str]:
    """Params (a pydantic model, or a dict of them) as MLflow params: nested keys joined with dots."""
    return {
        ".".join(keys): json.dumps(value) if value is None or isinstance(value, bool) else str(value)
        for keys, value in _leaves(params).items()
    }


def run_params(raw: dict) -> dict[str, str]:
    """params.yaml (`raw`) as a pipeline run's params: `flatten`ed, of `data.datasets` only the one
    `data.dataset` names (the others are choices the run did not use)."""
    data = raw["data"]
    chosen = {data["dataset"]: data["datasets"][data["dataset"]]}
    return flatten(raw | {"data": data | {"datasets": chosen}})


def _leaves(value: Any, keys: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every leaf of nested pydantic models, dicts and lists, keyed by its path."""
    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {keys: value}
    return {path: leaf for name, item in items for path, leaf in _leaves(item, (*keys, str(name))).items()}
