"""MLflow glue: where the store is, the experiment, run names and tags, metric names, hand-overs.

Three stages talk to MLflow: train and baseline each open a training run, and record opens the
execution's one pipeline run (see pipeline/stages/record.py); the others write files only.

The store is MLFLOW_TRACKING_URI when set, else `sqlite:///<repo root>/mlflow.db` with artifacts in
`<repo root>/mlartifacts`, so `mlflow ui` at the repo root shows every run.  The repo root comes
from DVC_ROOT when DVC runs the stage: `dvc exp run --queue/--temp` executes in a copy under
.dvc/tmp/exps, where a relative path would lose the run.

A store that cannot be used (a tracking server that is down, a locked or read-only database) stops
a stage in one line before any work.  A run beats while its process holds it open
(`pipeline.infra.heartbeat`), so a run whose process was killed (SIGKILL, power loss) is marked
KILLED by the next stage, on any machine, instead of showing as running forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from pipeline import PipelineError, one_line
from pipeline.adapters import mlflow_rest
from pipeline.infra import heartbeat
from pipeline.infra.files import content_digest, save_json

log = logging.getLogger(__name__)
NETWORK_CAUSE = r"\[Errno -?\d+\] [^'\")]+|Read timed out|certificate verify failed[^'\"(]*"  # in requests' error chain
# MLflow's UI shows an experiment without a kind as a GenAI one (traces, evaluations): this one is
# machine learning, opened on its runs, model metrics and charts.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# A tracking server that does not answer a first request within this many seconds (or MLflow's own
# MLFLOW_HTTP_REQUEST_TIMEOUT, where that is shorter) is down: a stage asks before any work, so this
# bounds how long a dead server holds it (not data.timeout_s, which bounds each download operation).
# It changes no result.
SERVER_TIMEOUT_S = 10
ROLE_TAG, EXPERIMENT_TAG = "pipeline.role", "dvc_exp_name"


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
                    mlflow.create_experiment(name, artifact_location=artifacts, tags=dict([EXPERIMENT_KIND]))
                except MlflowException as error:  # created meanwhile by a client of a shared server: fine
                    if error.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
        experiment_id = mlflow.set_experiment(name).experiment_id
        close_dead_runs(experiment_id)
    except (MlflowException, SQLAlchemyError, OSError) as error:
        raise _store_error(error) from None
    return experiment_id


@contextlib.contextmanager
def start_run(run_name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """mlflow.start_run as a context, beating while open; failing in one line (before any work) when
    the store refuses the new run."""
    try:
        active = mlflow.start_run(run_name=run_name, tags=tags | heartbeat.beat_tags())
    except (MlflowException, SQLAlchemyError, OSError) as error:
        raise _store_error(error) from None
    with active, heartbeat.Heartbeat(active.info.run_id):
        yield active


def _store_error(error: Exception) -> PipelineError:
    """The store's error in one line, without SQLAlchemy's statement, parameters and links."""
    noise = ("[SQL:", "[parameters:", "(Background on", "(raised as a result")
    lines = [line for line in str(error).splitlines() if line.strip() and not line.startswith(noise)]
    return PipelineError(f"MLflow store {tracking_uri()} is not usable: {one_line(' '.join(lines) or error)}")


def _check_server(uri: str) -> None:
    """Fail fast, in one line, on a tracking server that is down or refuses this client's credentials
    (MLflow's own client retries for minutes).  The credentials are MLflow's own settings:
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or ~/.mlflow/credentials, and a self-signed
    server's certificate in MLFLOW_TRACKING_SERVER_CERT_PATH."""
    try:
        response = mlflow_rest.request(
            uri,
            "/api/2.0/mlflow/experiments/search",
            "GET",
            max_retries=0,
            timeout=min(SERVER_TIMEOUT_S, MLFLOW_HTTP_REQUEST_TIMEOUT.get()),
            raise_on_status=False,
            params={"max_results": 1},
        )
    except MlflowException as error:
        cause = re.search(NETWORK_CAUSE, error.message)
        reason = cause.group(0).strip() if cause else one_line(error.message)
        if reason.startswith("certificate verify failed"):
            reason += " (a self-signed server's certificate goes in MLFLOW_TRACKING_SERVER_CERT_PATH)"
        raise PipelineError(f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) does not answer: {reason}") from None
    if response.status_code in (401, 403):
        user = mlflow_rest.username(uri)
        who = f"user {user!r}" if user else "no user given"
        raise PipelineError(
            f"MLflow tracking server {uri} refused the credentials ({who}, HTTP {response.status_code}): "
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"
        )


def close_dead_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the experiment's runs still RUNNING whose heartbeat stopped; return their ids."""
    client = mlflow.MlflowClient()
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
    dead = [run.info.run_id for run in running if heartbeat.is_stale(run.data.tags, run.info.start_time)]
    for run_id in dead:
        client.set_terminated(run_id, status="KILLED")
        log.warning("MLflow run %s stopped beating (its process died): marked KILLED", run_id)
    return dead


@contextlib.contextmanager
def _embedded_store_lock() -> Iterator[None]:
    """Serialise creating the SQLite store and experiment across parallel queued experiments."""
    with open(repo_root() / "mlflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def git_commit() -> str | None:
    """The checked-out commit, or None outside a git repository."""
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def run_tags(role: str) -> dict[str, str]:
    """Tags tying a run to its role (pipeline, cnn, baseline), its code and its DVC experiment."""
    tags = {ROLE_TAG: role}
    if commit := git_commit():
        tags["git_commit"] = tags["mlflow.source.git.commit"] = commit
    if experiment := os.environ.get("DVC_EXP_NAME"):
        tags[EXPERIMENT_TAG] = experiment
    return tags


def run_name(role: str | None = None) -> str:
    """The DVC experiment's name when there is one (so MLflow and `dvc exp show` agree), else
    `repro-<short commit>`; a training run adds its role: `<name>-cnn`."""
    name = os.environ.get("DVC_EXP_NAME")
    if not name:
        commit = git_commit()
        name = f"repro-{commit[:7]}" if commit else "repro"
    return f"{name}-{role}" if role else name


def log_dataset(x: np.ndarray, y: np.ndarray, name: str, source: Path, context: str) -> str:
    """Record a dataset the run used (mlflow.log_input); return its content digest."""
    digest = content_digest({"x": x, "y": y})
    hex_digest = digest.split(":")[1]
    with warnings.catch_warnings():  # MLflow registers two equivalent local sources and warns that it picked one
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_numpy(x, targets=y, name=name, source=str(source), digest=hex_digest[:32])
    mlflow.log_input(dataset, context=context)
    return digest


def save_handover(path: Path, run: mlflow.ActiveRun, model_name: str | None, model_version: str | None) -> None:
    """Name the run (and registered model version) that produced this stage's outputs, for record."""
    save_json(path, {"run_id": run.info.run_id, "model_name": model_name, "model_version": model_version})
