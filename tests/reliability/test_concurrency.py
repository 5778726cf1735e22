"""Concurrency: two `predict` processes at once, and the MLflow UI reading the SQLite store while a run
writes to it.  (Queued experiments on two workers: the search's trials on one SQLite store,
tests/commands/test_tune.py, and the team test's grid on its server, tests/test_team.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from pipeline import environment
from pipeline.images.camera import photograph
from pipeline.infra.mlflow_servers import WITHOUT_GENAI_JOBS
from tests.digits import font_mnist
from tests.mnist_files import REPO
from tests.servers import free_port, wait_until_up

pytestmark = pytest.mark.e2e
STEPS = 100  # metric values the writer logs, one database write each


def test_two_predict_processes_at_once(digit_model, tmp_path):
    digits, labels = font_mnist(30, seed=21)
    rng = np.random.default_rng(21)
    for i, digit in enumerate(digits):
        photograph(digit, rng).save(tmp_path / f"{i:02d}.jpg")
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "predict",
        str(tmp_path),
        "--json",
        "--model",
        str(digit_model.onnx_path),
    ]
    both = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    first, second = (json.loads(stdout) for stdout, _ in outputs)
    assert first == second and len(first) == 30
    assert np.mean([row["number"] for row in first] == labels.astype(str)) >= 0.9


WRITER = """
import sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("concurrent")
with mlflow.start_run() as run:
    print(run.info.run_id, flush=True)
    for step in range(int(sys.argv[2])):
        mlflow.log_metric("loss", 1 / (step + 1), step=step)
"""


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_ui_reads_while_a_run_writes(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = environment(**WITHOUT_GENAI_JOBS)  # as `make ui` runs it
    subprocess.run([sys.executable, "-c", WRITER, store, "1"], env=env, check=True, capture_output=True)  # the tables
    url = f"http://127.0.0.1:{free_port()}"
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            url.rsplit(":", 1)[1],
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_up(f"{url}/health", ui)
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, store, str(STEPS)], env=env, stdout=subprocess.PIPE, text=True
        )
        run_id = writer.stdout.readline().strip()
        reads = 0
        while writer.poll() is None:  # the UI's own query for the runs table, as fast as it answers
            _post(f"{url}/api/2.0/mlflow/runs/search", {"experiment_ids": ["1"], "max_results": 100})
            reads += 1
        assert writer.wait(timeout=120) == 0, "the writer failed while the UI was reading"
        print(f"{reads} reads of the runs table during {STEPS} metric writes")
        with urllib.request.urlopen(
            f"{url}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss", timeout=30
        ) as response:
            history = json.loads(response.read())["metrics"]
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
    assert reads >= 3, f"only {reads} reads overlapped the writes"
    assert sorted(point["step"] for point in history) == list(range(STEPS))
