"""A team's setup, for real: a throwaway PostgreSQL cluster and MLflow server (`python -m pipeline
server`), a tiny `dvc repro` and a queued grid of two ensembles logged through it and read back through
it, `promote` choosing among them on validation, and a DVC remote (a local folder) that a fresh clone
pulls from.  No mocks; everything is stopped and removed afterwards.

The server, the reproduced repo, the grid and the promotion are built once for the module (module-scoped
fixtures, in that order); each test checks one concern of them, so a red run names what broke."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import optuna
import pytest
import yaml
from PIL import Image

from pipeline import PipelineError, environment
from pipeline.infra import metric_names, paths, tracking
from pipeline.infra.files import load_npz
from pipeline.ml.predictors import keras_predictor
from pipeline.reading.numbers import load_touching, predict_files
from pipeline.search.trials import open_storage
from pipeline.team.postgres import DATABASES, postgres_tool
from tests.mnist_files import REPO
from tests.repos import make_repo, run, wait_for_queue
from tests.servers import (
    assert_database_stopped,
    free_port,
    listening_addresses,
    serve_folder,
    served_predictions,
    wait_until_up,
)
from tests.tracked import assert_run_matches_outputs, runs_by_role, snapshot

pytestmark = pytest.mark.e2e


def start_server(folder: Path, *options: str) -> tuple[subprocess.Popen, Path]:
    """`python -m pipeline server --dir folder *options` in the background, and its output's file."""
    log = folder.parent / f"{folder.name}-output.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "server", "--dir", str(folder), *options],
            cwd=REPO,
            env=environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return server, log


def stop_server(server: subprocess.Popen, folder: Path, db_port: int) -> None:
    server.send_signal(signal.SIGTERM)  # stops mlflow server, then PostgreSQL
    server.wait(timeout=60)
    assert_database_stopped(folder, db_port)


def add_user(folder: Path, name: str, permission: str) -> str:
    """`server user add` (the administrator's command): the password it shows once."""
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "server",
            "--dir",
            str(folder),
            "user",
            "add",
            name,
            "--permission",
            permission,
        ],
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.search(r"password \(shown once\): (\S+)", added).group(1)


@pytest.fixture(scope="module")
def team_server():
    """A fresh `python -m pipeline server --self-signed` (PostgreSQL + served artifacts + MLflow's auth
    app, over HTTPS), a teammate who may edit and one who may only read."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-team-"))  # under /tmp: reachable by the postgres user
    folder.chmod(0o755)
    port, db_port = free_port(), free_port()
    server, log = start_server(folder / "server", "--self-signed", "--port", str(port), "--db-port", str(db_port))
    uri, cert = f"https://127.0.0.1:{port}", folder / "server" / "tls" / "server.crt"
    try:
        for _ in range(120):  # the certificate is made first, before the database starts
            if cert.exists() or server.poll() is not None:
                break
            time.sleep(0.5)
        trusting = ssl.create_default_context(cafile=cert)
        wait_until_up(f"{uri}/health", server, log, context=trusting)
        admin = re.search(r"password \(shown once, kept in \S+\): (\S+)", log.read_text()).group(1)
        passwords = {"admin": admin} | {
            name: add_user(folder / "server", name, permission)
            for name, permission in (("editor", "edit"), ("reader", "read"))
        }
        yield SimpleNamespace(
            uri=uri,
            port=port,
            cert=cert,
            trusting=trusting,
            folder=folder / "server",
            log=log,
            db_port=db_port,
            passwords=passwords,
            study_storage=f"postgresql+psycopg2://mlflow@127.0.0.1:{db_port}/optuna",
        )
    finally:
        try:
            stop_server(server, folder / "server", db_port)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def editing(server: SimpleNamespace, patch: pytest.MonkeyPatch) -> None:
    """Point MLflow's clients (this process's and the commands') at `server` as the teammate who may
    edit, trusting its certificate as MLflow's clients do."""
    patch.setenv("MLFLOW_TRACKING_URI", server.uri)
    patch.setenv("MLFLOW_TRACKING_USERNAME", "editor")
    patch.setenv("MLFLOW_TRACKING_PASSWORD", server.passwords["editor"])
    patch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(server.cert))


@pytest.fixture
def team(team_server, monkeypatch) -> SimpleNamespace:
    """The module's server, this test's MLflow clients pointed at it as the editor."""
    editing(team_server, monkeypatch)
    return team_server


@pytest.fixture(scope="module")
def shared(team_server, tmp_path_factory) -> SimpleNamespace:
    """A tiny repo reproduced through the server and pushed to a folder remote, then a queued grid of
    EXPLORATION's two ensembles on two workers, then `promote`: what the tests below read."""
    folder = tmp_path_factory.mktemp("team")
    with pytest.MonkeyPatch.context() as patch, serve_folder(folder / "served") as served:
        editing(team_server, patch)
        repo = make_repo(folder, served, copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text())))
        run(repo, "dvc", "repro")
        run(repo, "dvc", "remote", "add", "--default", "team", str(folder / "remote"))  # as S3, GCS, SSH, ...
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-qm", "results")
        run(repo, "dvc", "push")
        first = runs_by_role(team_server.uri)["pipeline"][0]
        before = snapshot(first.info.run_id)
        for arch, overrides in EXPLORATION.items():  # two writers at once, each on data and seeds of its own
            grid = ["-S", "train.epochs=1", "-S", f"model.ensemble_size={MEMBERS}", "-S", f"model.arch={arch}"]
            run(repo, "dvc", "exp", "run", "--queue", *grid, *overrides)
        run(repo, "dvc", "queue", "start", "-j", "2")
        wait_for_queue(repo)
        after = snapshot(first.info.run_id)
        promoted = run(repo, "python", "-m", "pipeline", "promote").stdout
    return SimpleNamespace(folder=folder, repo=repo, first=first, before=before, after=after, promoted=promoted)


def assert_a_fresh_clone_pulls_everything(repo: Path, clone: Path) -> None:
    """git clone + dvc pull from the remote: data and models back, nothing to rerun."""
    run(repo.parent, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "pull")
    assert (clone / paths.CNN_MODEL).read_bytes() == (repo / paths.CNN_MODEL).read_bytes()
    assert run(clone, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    assert "Data and pipelines are up to date." in run(clone, "dvc", "repro").stdout


def assert_grid_is_one_run_per_experiment(repo: Path, store_uri: str, key: str, values: list[str]) -> None:
    """`dvc exp show`'s experiments and the pipeline runs: the same names, params and metrics."""
    shown = json.loads(run(repo, "dvc", "exp", "show", "--json").stdout)
    experiments = {exp["name"]: exp["revs"][0]["data"] for commit in shown for exp in (commit.get("experiments") or [])}
    runs = {r.info.run_name: r for r in runs_by_role(store_uri)["pipeline"] if "dvc_exp_name" in r.data.tags}
    assert set(runs) == set(experiments) and len(runs) == len(values)
    for name, data in experiments.items():
        pipeline_run = runs[name]
        files = {Path(path): content["data"] for path, content in data["metrics"].items()}
        assert {k: pipeline_run.data.metrics[k] for k in metric_names.metrics_of(files)} == metric_names.metrics_of(
            files
        )
    assert sorted(r.data.params[key] for r in runs.values()) == values


# The queued grid: other architectures at 1 epoch, as ensembles of two (weak models, and every experiment
# finishes, its members in its one training run, its ensemble exported and read by every stage), each on
# a small subset and seeds of its own.  Every architecture's training and export, in-process:
# tests/stages/test_export.py::test_every_architecture_trains_an_epoch_and_exports_as_the_pipeline_does.
EXPLORATION = {
    "fast": ["-S", "preprocess.subset=150", "-S", "preprocess.seed=8", "-S", "train.seed=7", "-S", "numbers.seed=9"],
    "deep": ["-S", "preprocess.subset=100", "-S", "preprocess.seed=5", "-S", "train.seed=9"],
}
MEMBERS = 2


def assert_each_explores_its_own_data_and_seeds(runs: dict[str, list]) -> None:
    """EXPLORATION's experiments finished, each on its own data or seed, read by every stage."""
    pipelines = {r.data.params["model.arch"]: r for r in runs["pipeline"] if "dvc_exp_name" in r.data.tags}
    for arch, overrides in EXPLORATION.items():
        logged = pipelines[arch].data
        for key, value in (override.split("=") for override in overrides[1::2]):
            assert logged.params[key] == value
        assert logged.metrics["data/train"] + logged.metrics["data/val"] == int(logged.params["preprocess.subset"])
        assert logged.metrics["numbers/numbers"] == 4


def assert_each_ensemble_is_one_training_run(runs: dict[str, list]) -> None:
    """The grid's experiments each trained one ensemble of MEMBERS in one training run, with each member's curve."""
    trained = [r for r in runs["cnn"] if r.data.params["model.ensemble_size"] == str(MEMBERS)]
    assert len(trained) == len(EXPLORATION) and all(r.data.metrics["CNN/train/members"] == MEMBERS for r in trained)
    client = mlflow.MlflowClient()
    for member in range(1, MEMBERS + 1):
        curves = [client.get_metric_history(r.info.run_id, f"CNN/epoch/member_{member}/val_accuracy") for r in trained]
        assert [len(curve) for curve in curves] == [1] * len(EXPLORATION)


SEARCH_EXPERIMENTS = "/api/2.0/mlflow/experiments/search?max_results=5"


def rest(
    server: SimpleNamespace, path: str, credentials: tuple[str, str] | None = None, body: dict | None = None
) -> int:
    """The HTTP status of GET (or, with `body`, POST) `path` on the team server, as `credentials` (user, password)."""
    request = urllib.request.Request(
        f"{server.uri}{path}", data=json.dumps(body).encode() if body is not None else None
    )
    request.add_header("Content-Type", "application/json")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(credentials).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30, context=server.trusting) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_server_and_its_database_listen_on_this_machine_only(team_server):
    for listening in (team_server.port, team_server.db_port):  # MLflow's and PostgreSQL's sockets
        assert listening_addresses(listening) == {"127.0.0.1"}


def test_the_server_refuses_requests_without_the_right_credentials_or_certificate(team):
    assert rest(team, SEARCH_EXPERIMENTS) == 401  # no credentials
    assert rest(team, SEARCH_EXPERIMENTS, ("editor", "not-the-password")) == 401
    with (
        pytest.raises(PipelineError, match="certificate verify failed.*MLFLOW_TRACKING_SERVER_CERT_PATH"),
        pytest.MonkeyPatch.context() as untrusting,  # a client that does not trust the certificate
    ):
        untrusting.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
        tracking._check_server(team.uri)


def test_a_fresh_clone_pulls_data_and_models_from_the_remote(shared):
    assert_a_fresh_clone_pulls_everything(shared.repo, shared.folder / "clone")


def test_the_first_run_is_its_outputs_and_the_grid_never_writes_to_it(team, shared):
    assert_run_matches_outputs(shared.first, shared.repo)
    assert shared.after == shared.before, "the first run was written to"


def test_a_queued_grid_is_one_run_per_experiment_on_the_server_only(team, shared):
    assert not (shared.repo / "mlflow.db").exists(), "nothing went to the embedded store"
    assert_grid_is_one_run_per_experiment(shared.repo, team.uri, "model.arch", sorted(EXPLORATION))
    runs = runs_by_role(team.uri)
    assert [len(runs[role]) for role in ("pipeline", "cnn", "baseline")] == [3, 3, 3], "a new split, a new baseline"
    assert all(r.info.status == "FINISHED" for role in runs.values() for r in role)
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for role in runs.values() for r in role)


def test_each_grid_experiment_explores_its_own_data_in_one_training_run(team, shared):
    runs = runs_by_role(team.uri)
    assert_each_explores_its_own_data_and_seeds(runs)
    assert_each_ensemble_is_one_training_run(runs)


def test_artifacts_are_served_back_as_they_were_logged(team, shared, tmp_path):
    downloaded = mlflow.MlflowClient().download_artifacts(shared.first.info.run_id, "metrics/CNN.json", str(tmp_path))
    assert json.loads(Path(downloaded).read_text()) == json.loads(
        run(shared.repo, "git", "show", "HEAD:metrics/CNN.json").stdout
    )


def test_promote_chooses_among_versions_validated_on_the_current_split(team, shared):
    champion = mlflow.MlflowClient().get_model_version_by_alias("mnist-cnn", "champion")
    assert shared.promoted.startswith(f"mnist-cnn@champion -> version {champion.version}: val accuracy")
    assert champion.run_id == shared.first.data.tags["cnn.run_id"], "the grid's runs validated on other splits"
    assert f"Not compared: {len(EXPLORATION)} validated on another split" in shared.promoted


def test_predict_and_serve_use_the_registry_s_champion(team, shared, tmp_path):
    images = load_npz(shared.repo / paths.split_file("test"))["x"]
    Image.fromarray(255 - images[0]).save(shared.repo / "digit.png")
    by_registry = run(
        shared.repo,
        "python",
        "-m",
        "pipeline",
        "predict",
        "digit.png",
        "--json",
        "--model",
        "models:/mnist-cnn@champion",
    )
    champion_model = keras_predictor(mlflow.keras.load_model("models:/mnist-cnn@champion"))
    detector = load_touching(shared.repo / paths.TOUCHING_MODEL)
    (from_cli,), (in_process,) = (
        json.loads(by_registry.stdout),
        predict_files([shared.repo / "digit.png"], champion_model, detector),
    )
    assert from_cli["digits"] == in_process["digits"]
    served = served_predictions(tmp_path, images[:20])  # `serve` deploys the champion from the authenticated registry
    assert np.array_equal(served.argmax(1), champion_model(images[:20]).argmax(1))


def test_a_reader_may_read_everything_and_change_nothing(team, shared, browser):
    reader = ("reader", team.passwords["reader"])
    experiment_id = shared.first.info.experiment_id
    assert rest(team, SEARCH_EXPERIMENTS, reader) == 200
    assert rest(team, "/api/2.0/mlflow/runs/search", reader, {"experiment_ids": [experiment_id]}) == 200
    refused = {
        "/api/2.0/mlflow/runs/create": {"experiment_id": experiment_id},
        "/api/2.0/mlflow/runs/delete": {"run_id": shared.first.info.run_id},
        "/api/2.0/mlflow/registered-models/alias": {"name": "mnist-cnn", "alias": "champion", "version": "1"},
    }
    assert {path: rest(team, path, reader, body) for path, body in refused.items()} == dict.fromkeys(refused, 403)
    assert_a_reader_browses_the_runs(browser, team.uri, reader, shared.first)


def test_a_search_s_study_lives_beside_mlflow_s_runs(team, shared, monkeypatch):
    """In the server's `optuna` database, both on alembic's default version table."""
    monkeypatch.setenv("PGPASSFILE", str(team.folder / "pgpass"))  # its password, as README says
    study = optuna.create_study(study_name="team", storage=open_storage(team.study_storage))
    study.tell(study.ask(), 0.5)
    again = optuna.load_study(study_name="team", storage=open_storage(team.study_storage))
    assert [t.value for t in again.trials] == [0.5]
    assert runs_by_role(team.uri)["pipeline"], "MLflow's database still serves its runs"


def test_postgresql_wants_a_password(team):
    assert_postgresql_wants_a_password(team)


def test_no_secret_is_readable_or_written_anywhere(team, shared):
    """Last: after everything above wrote to the databases, the artifacts, the log and the repo."""
    assert_no_secret_is_readable_or_written_anywhere(team, shared.repo)


def assert_a_reader_browses_the_runs(browser, uri: str, reader: tuple[str, str], run) -> None:
    """The server's own UI in headless chromium: refused without a password, the runs table with one."""
    anonymous = browser.new_context(ignore_https_errors=True)  # (the certificate is checked in Python)
    assert anonymous.request.get(uri).status == 401  # (chromium itself shows no page: it aborts the navigation)
    anonymous.close()
    context = browser.new_context(
        http_credentials={"username": reader[0], "password": reader[1]}, ignore_https_errors=True
    )
    page = context.new_page()
    page.goto(f"{uri}/#/experiments/{run.info.experiment_id}/runs")
    page.locator(".ag-row").first.wait_for(timeout=60_000)  # the runs table, filled
    page.get_by_text(run.info.run_name).first.wait_for(timeout=60_000)
    if folder := os.environ.get("SCREENSHOTS"):  # for the README: SCREENSHOTS=docs pytest tests/test_team.py
        page.set_viewport_size({"width": 1600, "height": 900})
        page.wait_for_timeout(2000)
        page.screenshot(path=Path(folder) / "mlflow-team-reader.png")
    context.close()


SECRET_FILES = ("admin-password", "postgres-password", "pgpass", "basic_auth.ini", "flask-secret-key")


def assert_postgresql_wants_a_password(server: SimpleNamespace) -> None:
    """No connection without the password, over TCP or the cluster's socket, where the same connection
    with it succeeds: judged by psql's exit code (2: no connection), not by its words, which follow the locale."""
    password = (server.folder / "postgres-password").read_text().strip()
    for host in ("127.0.0.1", str(server.folder / "postgres")):
        psql = [postgres_tool("psql"), "-h", host, "-p", str(server.db_port), "-U", "mlflow", "-d", "mlflow", "-w"]
        without, given = (
            subprocess.run(
                [*psql, "-tAc", "SELECT 1"],
                env=environment(PGPASSFILE=os.devnull, **passwords),
                capture_output=True,
                text=True,
                check=False,
            )
            for passwords in ({}, {"PGPASSWORD": password})
        )
        assert without.returncode == 2, without
        assert (given.returncode, given.stdout.strip()) == (0, "1"), given


def assert_no_secret_is_readable_or_written_anywhere(server: SimpleNamespace, repo: Path) -> None:
    """The secret files are the owner's alone and git-ignored; no password, the users' or the
    database's, is in the databases (the auth store keeps hashes), the artifacts, the server's log
    or the project's repo."""
    for name in SECRET_FILES:
        assert (server.folder / name).stat().st_mode & 0o777 == 0o600, name
        assert (
            subprocess.run(["git", "check-ignore", "-q", f".mlflow-server/{name}"], cwd=REPO, check=False).returncode
            == 0
        )
    secrets = [*server.passwords.values(), (server.folder / "postgres-password").read_text().strip()]  # admin first
    texts = {
        f"pg_dump {database}": subprocess.run(
            [postgres_tool("pg_dump"), "-h", "127.0.0.1", "-p", str(server.db_port), "-U", "mlflow", database],
            env=environment(PGPASSFILE=str(server.folder / "pgpass")),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for database in DATABASES.values()
    }
    assert all(len(dump) > 1000 for dump in texts.values())  # users and permissions, runs, the study
    files = [path for folder in (server.folder / "artifacts", repo) for path in folder.rglob("*") if path.is_file()]
    texts |= {str(path): path.read_bytes().decode("latin-1") for path in files}
    leaks = [(where, secrets.index(secret)) for where, text in texts.items() for secret in secrets if secret in text]
    assert not leaks, f"passwords (by index) in {leaks}"
    log = server.log.read_text()  # the admin's, shown once on first start; no other
    assert log.count(server.passwords["admin"]) == 1 and not any(secret in log for secret in secrets[1:])


def test_beyond_this_machine_only_with_tls():
    """--host 0.0.0.0 without a certificate is refused in one line, before anything starts (the team
    test's server runs with --self-signed: its clients trust the certificate, one that does not is refused)."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-tls-"))
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "pipeline", "server", "--dir", str(folder / "server"), "--host", "0.0.0.0"],
            cwd=REPO,
            env=environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert not (folder / "server" / "postgres").exists()
    finally:
        shutil.rmtree(folder)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: --host 0.0.0.0 serves beyond this machine: that needs TLS, so that passwords never cross the "
        "network in clear (give --cert and --key, or --self-signed)"
    )


def test_a_server_that_fails_after_its_database_started_stops_the_database():
    """A failure between PostgreSQL's start and MLflow's (here: `artifacts` is a file) leaves no cluster running."""
    folder = Path(tempfile.mkdtemp(prefix="mlflow-failing-"))  # under /tmp: reachable by the postgres user
    folder.chmod(0o755)
    server = folder / "server"
    server.mkdir()
    (server / "artifacts").write_text("a file where the artifacts' folder goes")
    db_port = free_port()
    try:
        failed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "server",
                "--dir",
                str(server),
                "--port",
                str(free_port()),
                "--db-port",
                str(db_port),
            ],
            cwd=REPO,
            env=environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert failed.returncode == 1 and "File exists" in failed.stderr.strip().splitlines()[-1], failed.stderr
        assert (server / "postgres" / "PG_VERSION").exists(), "the database was created and started"
        assert_database_stopped(server, db_port)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
