"""MLflow glue: where the store is, the experiment, run tags, and the run hand-over between stages.

The store is MLFLOW_TRACKING_URI when set, else `sqlite:///<repo root>/mlflow.db` with artifacts in
`<repo root>/mlartifacts`, so `mlflow ui` at the repo root shows every run.  The repo root comes
from DVC_ROOT when DVC runs the stage: `dvc exp run --queue/--temp` executes in a copy under
.dvc/tmp/exps, where a relative path would lose the run.

A store that cannot be used (a tracking server that is down, a locked or read-only database) stops
a stage in one line before any work.  Runs record the process and host that hold them open, so a
run whose process was killed (SIGKILL, power loss) is marked KILLED by the next stage on that host
instead of showing as running forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import socket
import subprocess
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from pipeline import PipelineError, one_line
from pipeline.files import content_digest, save_json

log = logging.getLogger(__name__)
SERVER_TIMEOUT_S = 3  # a tracking server that does not answer its health check within this is down
HOST_TAG, PID_TAG = "pipeline.host", "pipeline.pid"


def repo_root() -> Path:
    """The DVC repository's root: DVC_ROOT when DVC runs the stage, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def embedded_store() -> str:
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the embedded SQLite store at the repo root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_store()


def use_experiment(name: str) -> str:
    """Point MLflow at the store and at experiment `name`, created if missing; return its id.

    Raises PipelineError when the store cannot be used; marks this host's runs whose process died KILLED.
    """
    uri = tracking_uri()
    embedded = uri == embedded_store()
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    mlflow.set_tracking_uri(uri)
    try:
        with _embedded_store_lock() if embedded else contextlib.nullcontext():
            if mlflow.get_experiment_by_name(name) is None:  # (creates the store's tables when new)
                artifacts = (repo_root() / "mlartifacts").as_uri() if embedded else None  # a server decides its own
                try:
                    mlflow.create_experiment(name, artifact_location=artifacts)
                except MlflowException:  # created meanwhile by a client of a shared server
                    pass
        experiment_id = mlflow.set_experiment(name).experiment_id
        close_dead_runs(experiment_id)
    except (MlflowException, SQLAlchemyError, OSError) as error:
        raise _store_error(error) from None
    return experiment_id


def start_run(run_name: str, tags: dict[str, str]) -> mlflow.ActiveRun:
    """mlflow.start_run, failing in one line (before any work) when the store refuses the new run."""
    try:
        return mlflow.start_run(run_name=run_name, tags=tags)
    except (MlflowException, SQLAlchemyError, OSError) as error:
        raise _store_error(error) from None


def _store_error(error: Exception) -> PipelineError:
    """The store's error in one line, without SQLAlchemy's statement, parameters and links."""
    noise = ("[SQL:", "[parameters:", "(Background on", "(raised as a result")
    lines = [line for line in str(error).splitlines() if line.strip() and not line.startswith(noise)]
    return PipelineError(f"MLflow store {tracking_uri()} is not usable: {one_line(' '.join(lines) or error)}")


def _check_server(uri: str) -> None:
    """Fail fast on a tracking server that is down (MLflow's own client retries for minutes)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=SERVER_TIMEOUT_S):
            pass
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PipelineError(
            f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) does not answer: {one_line(reason)}"
        ) from None


def process_tags() -> dict[str, str]:
    """Tags naming the process that holds a run open (see close_dead_runs)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def close_dead_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the experiment's runs still RUNNING whose process on this host is gone; return their ids."""
    client = mlflow.MlflowClient()
    running = client.search_runs(
        [experiment_id], f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'"
    )
    dead = [run.info.run_id for run in running if not _alive(int(run.data.tags.get(PID_TAG, 0)))]
    for run_id in dead:
        client.set_terminated(run_id, status="KILLED")
        log.warning("MLflow run %s was left running by a process that died: marked KILLED", run_id)
    return dead


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def _embedded_store_lock() -> Iterator[None]:
    """Serialise creating the SQLite store and experiment across parallel queued experiments."""
    with open(repo_root() / "mlflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_tags(arch: str) -> dict[str, str]:
    """Tags tying a run to its code, its DVC experiment and the data stages that fed it."""
    tags = {"model.arch": arch} | process_tags()
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
        mlflow.set_tags(process_tags())  # this process holds the run open now
        yield handover
