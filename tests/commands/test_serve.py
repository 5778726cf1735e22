"""The registered model served over REST by `mlflow models serve`, for real: start, ask, check, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest

from pipeline import environment
from tests.digits import font_mnist
from tests.mnist_files import REPO
from tests.servers import free_port, wait_until_up

pytestmark = pytest.mark.slow


def test_registered_model_serves_predictions_over_rest(digit_model, tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("serve")
    images, labels = font_mnist(50, seed=11)
    with mlflow.start_run():
        info = mlflow.keras.log_model(
            digit_model.model,
            name="model",
            signature=mlflow.models.infer_signature(
                images[:2].astype("float32"), digit_model.model.predict(images[:2], verbose=0)
            ),
            registered_model_name="mnist-cnn",  # params.yaml's mlflow.cnn_model_name,
        )
    mlflow.MlflowClient().set_registered_model_alias("mnist-cnn", "champion", info.registered_model_version)

    url, log = f"http://127.0.0.1:{free_port()}", tmp_path / "serve.log"
    command = [sys.executable, "-m", "pipeline", "serve", "--port", url.rsplit(":", 1)[1]]  # the user's command
    with open(log, "w") as output:
        server = subprocess.Popen(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=environment(), start_new_session=True
        )
    try:
        wait_until_up(f"{url}/ping", server, log)
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"inputs": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = np.array(json.loads(response.read())["predictions"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert served.shape == (50, 10)
    assert np.array_equal(served.argmax(1), digit_model.model.predict(images, verbose=0).argmax(1))
    assert np.mean(served.argmax(1) == labels) >= 0.9
