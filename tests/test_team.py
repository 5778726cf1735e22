"""A team's setup, for real: a throwaway PostgreSQL cluster and MLflow server (`python -m pipeline
server`), a tiny `dvc repro` and a queued grid of two logged through it and read back through it, and
a DVC remote (a local folder) that a fresh clone pulls from.  No mocks; everything is stopped and
removed afterwards."""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pytest
from PIL import Image

from pipeline import environment, paths
from pipeline.trials import open_storage
from pipeline.files import load_npz
from pipeline.inference import keras_predictor, load_touching, predict_files
from tests.mnist_files import REPO
from tests.repos import make_repo, run, wait_for_queue
from tests.servers import free_port, wait_until_up
from tests.stages.test_pipeline import assert_grid_is_one_run_per_experiment
from tests.tracked import assert_run_matches_outputs, runs_by_role, snapshot

pytestmark = pytest.mark.slow


@pytest.fixture
def team_server(monkeypatch):
    """A fresh `python -m pipeline server` (PostgreSQL + served artifacts): its MLFLOW_TRACKING_URI (`uri`,
    set for the test) and the search storage it offers (`study_storage`)."""
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
        for listening in (port, db_port):  # MLflow's and PostgreSQL's sockets: this machine only
            assert listening_addresses(listening) == {"127.0.0.1"}
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        yield SimpleNamespace(uri=uri, study_storage=f"postgresql+psycopg2://mlflow@127.0.0.1:{db_port}/optuna")
    finally:
        server.send_signal(signal.SIGTERM)  # stops mlflow server, then PostgreSQL
        server.wait(timeout=60)
        stopped = subprocess.run(["pgrep", "-f", f"-p {db_port} "], capture_output=True, check=False).returncode != 0
        shutil.rmtree(folder, ignore_errors=True)
        assert stopped, "PostgreSQL still running after the server stopped"


def listening_addresses(port: int) -> set[str]:
    """The addresses with a socket listening on TCP `port`, from the kernel's tables (/proc/net/tcp*)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                packed = bytes.fromhex(address)
                words = [packed[i : i + 4][::-1] for i in range(0, len(packed), 4)]  # little-endian 32-bit words
                addresses.add(str(ipaddress.ip_address(b"".join(words))))
    return addresses


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

    first = runs_by_role(team_server.uri)["pipeline"][0]
    assert_run_matches_outputs(first, repo)
    before = snapshot(first.info.run_id)
    run(repo, "dvc", "exp", "run", "--queue", "-S", "train.epochs=3,4")  # two writers at once
    run(repo, "dvc", "queue", "start", "-j", "2")
    wait_for_queue(repo)
    assert not (repo / "mlflow.db").exists(), "nothing went to the embedded store"
    assert_grid_is_one_run_per_experiment(repo, team_server.uri, "train.epochs", ["3", "4"])
    assert snapshot(first.info.run_id) == before, "the first run was written to"
    runs = runs_by_role(team_server.uri)
    assert [len(runs[role]) for role in ("pipeline", "cnn", "baseline")] == [3, 3, 1], "the baseline not rerun"
    assert all(r.info.status == "FINISHED" for role in runs.values() for r in role)
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for role in runs.values() for r in role)
    downloaded = mlflow.MlflowClient().download_artifacts(first.info.run_id, "metrics/CNN.json", str(tmp_path))
    assert json.loads(Path(downloaded).read_text()) == json.loads(
        run(repo, "git", "show", "HEAD:metrics/CNN.json").stdout
    )  # served back as the first run's outputs were

    promoted = run(repo, "python", "-m", "pipeline", "promote").stdout
    champion = mlflow.MlflowClient().get_model_version_by_alias("mnist-cnn", "champion")
    assert promoted.startswith(f"mnist-cnn@champion -> version {champion.version}: val accuracy")
    images = load_npz(repo / paths.split_file("test"))["x"]
    Image.fromarray(255 - images[0]).save(repo / "digit.png")
    by_registry = run(
        repo, "python", "-m", "pipeline", "predict", "digit.png", "--json", "--model", "models:/mnist-cnn@champion"
    )
    champion_model = keras_predictor(mlflow.keras.load_model("models:/mnist-cnn@champion"))
    detector = load_touching(repo / paths.TOUCHING_MODEL)
    (from_cli,), (in_process,) = (
        json.loads(by_registry.stdout),
        predict_files([repo / "digit.png"], champion_model, detector),
    )
    assert from_cli["digits"] == in_process["digits"]

    # A search's study lives in the server's `optuna` database, beside MLflow's, both on alembic's default table
    study = optuna.create_study(study_name="team", storage=open_storage(team_server.study_storage))
    study.tell(study.ask(), 0.5)
    again = optuna.load_study(study_name="team", storage=open_storage(team_server.study_storage))
    assert [t.value for t in again.trials] == [0.5]
    assert runs_by_role(team_server.uri)["pipeline"], "MLflow's database still serves its runs"
