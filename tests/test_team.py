"""A team's setup, for real: a throwaway PostgreSQL cluster and MLflow server (`python -m pipeline
server`), a tiny `dvc repro` and a queued grid of two logged through it and read back through it, and
a DVC remote (a local folder) that a fresh clone pulls from.  No mocks; everything is stopped and
removed afterwards."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import pytest
from PIL import Image

from pipeline import environment, paths
from pipeline.files import load_npz
from tests.mnist_files import REPO
from tests.repos import make_repo, run, wait_for_queue
from tests.servers import free_port, wait_until_up

pytestmark = pytest.mark.slow


@pytest.fixture
def team_server(monkeypatch):
    """MLFLOW_TRACKING_URI of a fresh `python -m pipeline server` (PostgreSQL + served artifacts)."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-team-"))  # under /tmp: reachable by the postgres user
    folder.chmod(0o755)
    port, db_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "server",
        "--dir",
        str(folder),
        "--port",
        str(port),
        "--db-port",
        str(db_port),
    ]
    env = environment()
    log = folder / "server-output.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{uri}/health", server, log)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri
    finally:
        server.send_signal(signal.SIGTERM)  # stops mlflow server, then PostgreSQL
        server.wait(timeout=60)
        stopped = subprocess.run(["pgrep", "-f", f"-p {db_port} "], capture_output=True, check=False).returncode != 0
        shutil.rmtree(folder, ignore_errors=True)
        assert stopped, "PostgreSQL still running after the server stopped"


def assert_a_fresh_clone_pulls_everything(repo: Path, clone: Path) -> None:
    """git clone + dvc pull from the remote: data and models back, nothing to rerun."""
    run(repo.parent, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "pull")
    assert (clone / paths.CNN_MODEL).read_bytes() == (repo / paths.CNN_MODEL).read_bytes()
    assert run(clone, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert "Data and pipelines are up to date." in run(clone, "dvc", "repro").stdout


def test_a_team_shares_runs_through_a_postgresql_server_and_data_through_a_remote(
    team_server, tmp_path, http_server, repo_params
):
    repo = make_repo(tmp_path, http_server, repo_params)
    run(repo, "dvc", "repro")
    run(repo, "dvc", "remote", "add", "--default", "team", str(tmp_path / "remote"))  # as S3, GCS, SSH, ...
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "results")
    run(repo, "dvc", "push")
    assert_a_fresh_clone_pulls_everything(repo, tmp_path / "clone")
    run(repo, "dvc", "exp", "run", "--queue", "-S", "train.batch_size=32,48")
    run(repo, "dvc", "queue", "start", "-j", "2")
    wait_for_queue(repo)
    assert not (repo / "mlflow.db").exists(), "nothing went to the embedded store"

    mlflow.set_tracking_uri(team_server)
    runs = mlflow.search_runs(experiment_names=["mnist"], output_format="list")
    cnn = [r for r in runs if r.data.tags["pipeline.role"] == "cnn"]
    assert len(cnn) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.params["train.batch_size"] for r in cnn} == {"32", "48", "64"}
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)  # stored through the server
    first = next(r for r in cnn if "dvc_exp_name" not in r.data.tags)
    test_metrics = json.loads((repo / paths.TEST_METRICS).read_text())
    assert first.data.metrics["test_accuracy"] == test_metrics["test_accuracy"]
    client = mlflow.MlflowClient()
    assert "reports/confusion_matrix.png" in {a.path for a in client.list_artifacts(first.info.run_id, "reports")}
    assert (
        json.loads(Path(client.download_artifacts(first.info.run_id, "metrics/test.json", str(tmp_path))).read_text())
        == test_metrics
    )

    promoted = run(repo, "python", "-m", "pipeline", "promote").stdout
    assert promoted.startswith("mnist-cnn@champion -> version ")
    images, labels = (load_npz(repo / paths.split_file("test"))[k] for k in ("x", "y"))
    Image.fromarray(255 - images[0]).save(repo / "digit.png")
    by_registry = run(
        repo, "python", "-m", "pipeline", "predict", "digit.png", "--json", "--model", "models:/mnist-cnn@champion"
    )
    assert json.loads(by_registry.stdout)[0]["digit"] in range(10)
    champion = mlflow.keras.load_model("models:/mnist-cnn@champion")
    best = max(cnn, key=lambda r: (r.data.metrics["test_accuracy"], -r.data.metrics["test_loss"]))
    assert (champion.predict(images, verbose=0).argmax(1) == labels).mean() == best.data.metrics["test_accuracy"]
