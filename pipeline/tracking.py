"""MLflow glue: where the store is, the experiment, run tags, and the run hand-over between stages.

The store is MLFLOW_TRACKING_URI when set, else `sqlite:///<repo root>/mlflow.db` with artifacts in
`<repo root>/mlartifacts`, so `mlflow ui` at the repo root shows every run.  The repo root comes
from DVC_ROOT when DVC runs the stage: `dvc exp run --queue/--temp` executes in a copy under
.dvc/tmp/exps, where a relative path would lose the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import yaml
from mlflow.exceptions import MlflowException

from pipeline.files import content_digest, save_json


def repo_root() -> Path:
    """The DVC repository's root: DVC_ROOT when DVC runs the stage, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def use_experiment(name: str) -> str:
    """Point MLflow at the store and at experiment `name`, created if missing; return its id."""
    embedded = "MLFLOW_TRACKING_URI" not in os.environ  # (set_tracking_uri sets the variable)
    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(name) is None:
        artifacts = (repo_root() / "mlartifacts").as_uri() if embedded else None  # a server decides its own
        try:
            mlflow.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # created meanwhile by a parallel experiment
            pass
    return mlflow.set_experiment(name).experiment_id


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


def run_name(default: str) -> str:
    """The DVC experiment's name when there is one, so MLflow and `dvc exp show` agree."""
    return os.environ.get("DVC_EXP_NAME") or default


def flatten(params: Any) -> dict[str, str]:
    """params.yaml as MLflow params: nested keys joined with dots (data.sources.0.url ...)."""
    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else name)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{key}.{i}")
        else:
            flat[key] = json.dumps(value) if value is None or isinstance(value, bool) else str(value)

    walk(dataclasses.asdict(params), "")
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
    info = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "tracking_uri": tracking_uri()}
    save_json(path, info | {"model_name": model_name, "model_version": model_version})


def resume_run(path: Path) -> tuple[mlflow.ActiveRun, dict[str, Any]]:
    """Reopen the run written by `save_handover`, in the store it was created in."""
    handover = json.loads(path.read_text())
    mlflow.set_tracking_uri(handover["tracking_uri"])
    return mlflow.start_run(run_id=handover["run_id"]), handover
