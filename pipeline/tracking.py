"""MLflow glue: where the store is, the experiment, run tags, and the run hand-over between stages.

The store is MLFLOW_TRACKING_URI when set, else `sqlite:///<repo root>/mlflow.db` with artifacts in
`<repo root>/mlartifacts`, so `mlflow ui` at the repo root shows every run.  The repo root comes
from DVC_ROOT when DVC runs the stage: `dvc exp run --queue/--temp` executes in a copy under
.dvc/tmp/exps, where a relative path would lose the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from mlflow.exceptions import MlflowException

from pipeline.files import content_digest, save_json

log = logging.getLogger(__name__)


def repo_root() -> Path:
    """The DVC repository's root: DVC_ROOT when DVC runs the stage, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def embedded_store() -> str:
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the embedded SQLite store at the repo root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_store()


def use_experiment(name: str) -> str:
    """Point MLflow at the store and at experiment `name`, created if missing; return its id."""
    embedded = tracking_uri() == embedded_store()
    mlflow.set_tracking_uri(tracking_uri())
    with _embedded_store_lock() if embedded else contextlib.nullcontext():
        if mlflow.get_experiment_by_name(name) is None:  # (creates the store's tables when new)
            artifacts = (repo_root() / "mlartifacts").as_uri() if embedded else None  # a server decides its own
            try:
                mlflow.create_experiment(name, artifact_location=artifacts)
            except MlflowException:  # created meanwhile by a client of a shared server
                pass
    return mlflow.set_experiment(name).experiment_id


@contextlib.contextmanager
def _embedded_store_lock() -> Iterator[None]:
    """Serialise creating the SQLite store and experiment across parallel queued experiments."""
    with open(repo_root() / "mlflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_tags(arch: str) -> dict[str, str]:
    """Tags tying a run to its code, its DVC experiment and the data stages that fed it."""
    tags = {"model.arch": arch}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if commit.returncode == 0:
        tags["git_commit"] = tags["mlflow.source.git.commit"] = commit.stdout.strip()
    if experiment := os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = experiment
    lock = Path("dvc.lock")
    stages = yaml.safe_load(lock.read_text()).get("stages", {}) if lock.exists() else {}
    for stage in ("download", "preprocess"):
        for out in stages.get(stage, {}).get("outs", []):
            tags[f"dvc.{stage}.{out['path']}"] = out["md5"]
    return tags


def run_name(default: str, role: str | None = None) -> str:
    """The DVC experiment's name (suffixed by `role`, if any) when there is one, so MLflow and
    `dvc exp show` agree; else `default`."""
    experiment = os.environ.get("DVC_EXP_NAME")
    if experiment is None:
        return default
    return f"{experiment}-{role}" if role else experiment


def flatten(params: Any) -> dict[str, str]:
    """Params (a dataclass, or a dict of them) as MLflow params: nested keys joined with dots."""
    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else name)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{key}.{i}")
        else:
            flat[key] = json.dumps(value) if value is None or isinstance(value, bool) else str(value)

    walk(params, "")
    return flat


def log_dataset(x: np.ndarray, y: np.ndarray, name: str, source: Path, context: str) -> str:
    """Record a dataset the run used (mlflow.log_input); return its content digest."""
    digest = content_digest({"x": x, "y": y})
    hex_digest = digest.split(":")[1]
    with warnings.catch_warnings():  # MLflow registers two equivalent local sources and warns that it picked one
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_numpy(x, targets=y, name=name, source=str(source), digest=hex_digest[:32])
    mlflow.log_input(dataset, context=context)
    return digest


def save_handover(path: Path, run: mlflow.ActiveRun, model_name: str, model_version: str | None) -> None:
    """Tell later stages which run (and registered model version) this pipeline run is."""
    save_json(path, {"run_id": run.info.run_id, "model_name": model_name, "model_version": model_version})


@contextlib.contextmanager
def resumed_run(path: Path, experiment: str) -> Iterator[dict[str, Any] | None]:
    """Reopen the run named in hand-over file `path` and yield the hand-over; yield None (with a
    warning) when this store lacks that run, as after a `dvc pull` of results computed elsewhere."""
    handover = json.loads(path.read_text())
    use_experiment(experiment)
    try:
        run = mlflow.start_run(run_id=handover["run_id"])
    except MlflowException:
        log.warning("MLflow run %s (from %s) is not in %s: not logging to it", handover["run_id"], path, tracking_uri())
        yield None
        return
    with run:
        yield handover
