"""Shared fixtures: a local HTTP server and the repo's params; nothing here touches the network."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import settings

from tests.digits import font_mnist
from tests.mnist_files import REPO, params_with
from tests.reliability.checks import DATA_LOST
from tests.repos import make_repo, run
from tests.servers import serve_folder
from tests.xdist_scheduling import scheduling


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """(folder served, its base URL on 127.0.0.1, the list of paths requested)."""
    with serve_folder(tmp_path / "served") as served:
        yield served


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """One tiny `dvc repro` for the whole session (a local server as the data source), committed.

    `pristine` keeps it; the `repo` fixture restores it to `path` for each test, always at the same
    place, since the MLflow store records its artifacts' absolute location.
    """
    folder = tmp_path_factory.mktemp("reproduced")
    with serve_folder(folder / "served") as served:
        path = make_repo(folder, served, yaml.safe_load((REPO / "params.yaml").read_text()))
        output = run(path, "dvc", "repro")
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-qm", "results of dvc repro")
    pristine = folder / "pristine"
    shutil.copytree(path, pristine, symlinks=True)
    yield SimpleNamespace(path=path, pristine=pristine, output=output.stdout + output.stderr)


@pytest.fixture
def repo(reproduced) -> Path:
    """A fresh copy of the session's reproduced repo: results committed, one pipeline run in its store."""
    shutil.rmtree(reproduced.path)
    shutil.copytree(reproduced.pristine, reproduced.path, symlinks=True)
    return reproduced.path


@pytest.fixture
def repo_params() -> dict[str, Any]:
    """params.yaml of the repo as a plain dict, a fresh copy for each test to override."""
    return copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))


# Property tests draw new cases on every run on a developer's machine; in CI (CI=true) the same cases
# every run, so a failure there is reproducible as it stands.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# MLflow keeps one SQLAlchemy engine per store URI for the whole process, with pooled SQLite
# connections: without pooling, each read opens the file anew, so a store restored at the same path
# (the `repo` fixture) is read as it is now.
os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"


@pytest.fixture(autouse=True)
def _no_tracking_uri_leaks(monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: undo it after every test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")


def shared_folder(tmp_path_factory, name: str, build) -> Path:
    """A folder every pytest-xdist worker of the session shares, built once by whichever worker asks
    first (`build(folder)`), under a file lock, as pytest-xdist documents for session fixtures."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()  # under xdist, a worker's own folder in the session's
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def _train_digit_model(folder: Path) -> None:
    """The default CNN trained briefly on typeset digits, saved as .keras, ONNX and int8 ONNX, and a
    touching-digits detector trained on numbers of typeset digits, into `folder`."""
    from pipeline.ml import onnx_export, touching_detector, training  # TensorFlow: only for the tests that need it

    params = params_with(
        {
            "model.test_time_shift": 0,
            "train.epochs": 4,
            "train.batch_size": 64,
            "train.ema_momentum": 0.0,
            "train.early_stopping_patience": 0,
            "segmenter.examples": 4000,
            "segmenter.epochs": 4,
        },
    )
    model = training.train(params, font_mnist(2000, seed=0), font_mnist(200, seed=1)).model  # as the stage saves it
    model.save(folder / "cnn.keras")
    onnx_export.export(model, folder / "cnn.onnx", folder / "cnn-int8.onnx", font_mnist(200, seed=4)[0], params)
    detector, _ = touching_detector.train(font_mnist(500, seed=5)[0], font_mnist(100, seed=6)[0], params.segmenter)
    detector.export(str(folder / "touching.onnx"), format="onnx", verbose=False)


@pytest.fixture(scope="session")
def digit_model(tmp_path_factory) -> SimpleNamespace:
    """The default CNN trained briefly on typeset digits (tests.digits), saved as .keras, ONNX and int8 ONNX.

    It really reads digits (over 95% right on typeset digits it never saw), so tests of predict, the
    export, the REST server and the draw page can check answers, not just shapes.  Beside it, a
    touching-digits detector trained on numbers of typeset digits (pipeline.ml.touching_detector).
    Trained once per session and shared by the workers; each loads the saved model.
    """
    import keras

    folder = shared_folder(tmp_path_factory, "digit_model", _train_digit_model)
    return SimpleNamespace(
        model=keras.saving.load_model(folder / "cnn.keras", safe_mode=True),
        keras_path=folder / "cnn.keras",
        onnx_path=folder / "cnn.onnx",
        int8_path=folder / "cnn-int8.onnx",
        touching_path=folder / "touching.onnx",
    )


@pytest.fixture(scope="session")
def browser():
    """Debian's headless chromium, driven by Playwright (which cannot download a browser here)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "the browser tests need Debian's chromium: apt-get install chromium (make test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()


# The modules whose tests use the session's reproduced repo.  `make test` runs the suite on several
# pytest-xdist workers but these modules on one, so the tiny `dvc repro` is made once.
REPRODUCED_MODULES = ("tests/stages/test_pipeline.py", "tests/reliability/test_interrupted.py")
TEAM = ("tests/test_team.py",)  # its server, repo and grid: module fixtures, built once


# The longest units of work, started first so that none is left to run alone at the end: the
# reproduced repo's tests (one unit), then the longest single tests.
LONGEST_FIRST = (
    *REPRODUCED_MODULES,
    *TEAM,
    "tests/commands/test_tune.py::test_a_search_killed",
    "tests/test_bench.py::test_quick_bench",
    "tests/reliability/test_concurrency.py::test_ui_reads_while_a_run_writes",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the fault tests; put the longest units of work first (LONGEST_FIRST), and refuse a test
    using the reproduced repo outside REPRODUCED_MODULES."""
    for item in items:
        if "tests/reliability/" in item.nodeid:
            item.add_marker(pytest.mark.reliability)
        if "reproduced" in item.fixturenames and not item.nodeid.startswith(REPRODUCED_MODULES):
            raise pytest.UsageError(f"{item.nodeid} uses the reproduced repo: add its module to REPRODUCED_MODULES")

    def rank(item: pytest.Item) -> int:
        return next((i for i, start in enumerate(LONGEST_FIRST) if item.nodeid.startswith(start)), len(LONGEST_FIRST))

    items.sort(key=rank)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # log: xdist's Producer
    """Each test is a unit of its own, except REPRODUCED_MODULES, which are one unit, and TEAM, another."""
    return scheduling(config, log, (REPRODUCED_MODULES, TEAM))


def pytest_terminal_summary(terminalreporter) -> None:  # terminalreporter: pytest's TerminalReporter
    """The reliability count: kinds of fault (test functions marked `reliability`) and their cases
    (parametrized instances) tried, survived (passed), failed, and failed with data lost."""
    tried = [
        report
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if report.when == "call" and "reliability" in report.keywords
    ]
    if tried:
        kinds = {report.nodeid.split("[")[0] for report in tried}
        survived = sum(report.passed for report in tried)
        lost = sum(DATA_LOST in report.longreprtext for report in tried if report.failed)
        terminalreporter.write_line(
            f"reliability: {len(kinds)} kinds of fault in {len(tried)} cases tried, {survived} survived, "
            f"{len(tried) - survived} failed, {lost} with data lost"
        )
