"""`python -m pipeline serve`: the registered CNN over REST, with `mlflow models serve`, on the pipeline's store.

Serves `models:/<mlflow.cnn_model_name>@<alias>` (champion by default; `promote` sets it) from
MLFLOW_TRACKING_URI or the embedded store, in this environment (`--env-manager local`).  Send
`POST /invocations` with `{"inputs": <images (N, 28, 28), 0-255>}`; the answer is
`{"predictions": <probabilities (N, 10)>}`.
"""

from __future__ import annotations

import argparse
import os
import sys

import mlflow
from mlflow.exceptions import MlflowException

from pipeline import PipelineError, environment
from pipeline.commands import add_address
from pipeline.infra import tracking
from pipeline.infra.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address(parser, 5001)
    parser.add_argument("--alias", default="champion", help="(default: %(default)s)")


def main(host: str = "127.0.0.1", port: int = 5001, alias: str = "champion") -> None:
    settings = load_params().mlflow
    name = settings.cnn_model_name
    model = f"models:/{name}@{alias}"
    tracking.use_experiment(settings.experiment)  # a store that cannot be used stops here
    try:
        mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        raise PipelineError(
            f"no model {name}@{alias} in {tracking.tracking_uri()}: run `python -m pipeline promote` first"
            " (it aliases the version best on validation)"
        ) from None
    print(f"Serving {model} from {tracking.tracking_uri()} at http://{host}:{port}/invocations", flush=True)
    command = ["mlflow", "models", "serve", "-m", model, "--env-manager", "local", "--host", host, "--port", str(port)]
    os.execve(
        sys.executable, [sys.executable, "-m", *command], environment(MLFLOW_TRACKING_URI=tracking.tracking_uri())
    )
