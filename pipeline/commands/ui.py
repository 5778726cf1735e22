"""`python -m pipeline ui`: serve the MLflow UI on this pipeline's store, and say where its runs are.

A fresh browser opens `mlflow ui` on its GenAI overview, not on training runs, so this prints the
direct address of the experiment's runs table before starting the server, in MLflow's model-training
mode (`workflowType`: the UI's GenAI / Model training switch, which a browser otherwise keeps at
GenAI).  That address opens a view shared through MLflow's own mechanism (an experiment tag
`mlflow.sharedViewState.<key>`, named by the URL's `viewStateShareKey`), whose runs table shows the
CNN's test and validation accuracy beside each run.  The chart groups need no view: metric names put
the CNN's first (`metric_names.metrics_of`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import mlflow

from pipeline import environment
from pipeline.commands import add_address
from pipeline.infra import metric_names, paths, tracking
from pipeline.infra.mlflow_servers import WITHOUT_GENAI_JOBS
from pipeline.infra.params import load_params

SHARED_VIEW_TAG = "mlflow.sharedViewState."
MODEL_TRAINING = "workflowType=machine_learning"  # the UI's mode, in the address's query
COLUMNS = [  # the runs table's columns, beyond its name, start and duration: MLflow's `<type>.`<key>`` names
    f"metrics.`{metric_names.metric_name(paths.CNN_METRICS, key)}`" for key in ("test_accuracy", "val_accuracy")
]


def runs_view() -> tuple[str, str]:
    """The shared view's key and state: the runs table with COLUMNS, newest run first."""
    state = json.dumps({"selectedColumns": COLUMNS, "orderByKey": "attributes.start_time", "orderByAsc": False})
    return hashlib.sha256(state.encode()).hexdigest()[:16], state


def share_runs_view(experiment_id: str) -> str:
    """Store the view in the experiment (once per content) and return the runs table's path with it."""
    key, state = runs_view()
    mlflow.MlflowClient().set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, state)
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={key}&{MODEL_TRAINING}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address(parser, 5000)


def main(host: str = "127.0.0.1", port: int = 5000) -> None:
    experiment_id = tracking.use_experiment(load_params().mlflow.experiment)
    mlflow.MlflowClient().set_experiment_tag(experiment_id, *tracking.EXPERIMENT_KIND)  # (a store made before it)
    print(f"MLflow runs: http://{host}:{port}/{share_runs_view(experiment_id)}", flush=True)
    command = ["mlflow", "ui", "--backend-store-uri", tracking.tracking_uri(), "--host", host, "--port", str(port)]
    os.execve(sys.executable, [sys.executable, "-m", *command], environment(**WITHOUT_GENAI_JOBS))
