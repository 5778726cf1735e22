"""`python -m pipeline ui`: serve the MLflow UI on this pipeline's store, and say where its runs are.

A fresh browser opens `mlflow ui` on its GenAI overview, not on training runs, so this prints the
direct address of the experiment's runs table before starting the server.
"""

from __future__ import annotations

import os
import sys

from pipeline import tracking
from pipeline.params import load_params


def main(host: str = "127.0.0.1", port: int = 5000) -> None:
    experiment_id = tracking.use_experiment(load_params().mlflow.experiment)
    print(f"MLflow runs: http://{host}:{port}/#/experiments/{experiment_id}/runs", flush=True)
    command = ["mlflow", "ui", "--backend-store-uri", tracking.tracking_uri(), "--host", host, "--port", str(port)]
    os.execv(sys.executable, [sys.executable, "-m", *command])
