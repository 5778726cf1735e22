"""`python -m pipeline ui` in a real headless browser (Debian's chromium, driven by Playwright): a run's
metrics tab and the chart comparison open on the CNN's figures, then its curves, and the printed
address shows the CNN's accuracy in the runs table.  The browser checks run on the tiny reproduced
repo (tests/stages/test_pipeline.py); this module holds them and checks the view itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow

from pipeline import environment
from pipeline.commands import ui
from tests.servers import free_port, listening_addresses, wait_until_up

CNN_CHARTS = [
    "CNN/errors_test",
    "CNN/errors_val",
    "CNN/test_accuracy",
    "CNN/test_loss",
    "CNN/val_accuracy",
    "CNN/val_loss",
]
SECTION_HEADER = "[data-testid='experiment-view-compare-runs-section-header']"
CHART_TITLE = "h4[title]"  # each chart's title, the full metric name in its `title`
PLOT, BAR, BAR_LABEL = "js-plotly-plot", ".trace.bars .point path", ".trace.bars .bartext"  # Plotly's
ASSISTANT_CLOSE = "[data-component-id='mlflow.assistant.chat_panel.close']"


def test_the_shared_view_shows_the_cnn_accuracy_columns_and_is_named_by_its_content():
    key, state = ui.runs_view()
    assert json.loads(state)["selectedColumns"] == ["metrics.`CNN/test_accuracy`", "metrics.`CNN/val_accuracy`"]
    assert ui.runs_view() == (key, state) and len(key) == 16


@contextlib.contextmanager
def running_ui(repo: Path) -> Iterator[str]:
    """`python -m pipeline ui` in `repo` on a free port: the address it prints."""
    port = free_port()
    log = repo / "ui.log"
    with open(log, "w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "ui", "--port", str(port)],
            cwd=repo,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
    try:
        printed = process.stdout.readline()
        assert printed.startswith(f"MLflow runs: http://127.0.0.1:{port}/#/experiments/"), printed + log.read_text()
        wait_until_up(f"http://127.0.0.1:{port}/health", process, log)
        assert listening_addresses(port) == {"127.0.0.1"}, "the UI listens beyond this machine"
        yield printed.split(": ", 1)[1].strip()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def chart_groups(page) -> tuple[list[str], list[str]]:
    """The chart groups' titles, top to bottom, and the chart titles in order."""
    page.locator(CHART_TITLE).first.wait_for(timeout=60_000)
    sections = [header.split("\n")[0] for header in page.locator(SECTION_HEADER).all_inner_texts()]
    return sections, [title.get_attribute("title") for title in page.locator(CHART_TITLE).all()]


def first_chart_s_labels(page) -> list[str]:
    """The labels of the first chart's bars (a run each), once Plotly has drawn them, not only the title."""
    chart = page.locator(CHART_TITLE).first.locator(f"xpath=ancestor::*[.//*[contains(@class, '{PLOT}')]][1]")
    chart.locator(BAR).first.wait_for(timeout=60_000)
    return chart.locator(BAR_LABEL).all_text_contents()


def close_the_assistant(page) -> None:
    """MLflow's Assistant panel opens by itself on a browser's first visit, over a third of the page."""
    close = page.locator(ASSISTANT_CLOSE)
    if close.count():
        close.first.click()
        close.first.wait_for(state="detached")


def assert_ui_opens_on_the_cnn(repo: Path, browser, run_id: str, screenshots: Path | None = None) -> None:
    """The three screens a newcomer opens, in a real browser, in model-training mode, each once its
    charts or rows have drawn; with `screenshots`, saved there as PNG."""
    errors = mlflow.MlflowClient().get_run(run_id).data.metrics["CNN/errors_test"]  # the run shown, its count
    with running_ui(repo) as address:
        assert address.endswith(f"&{ui.MODEL_TRAINING}")
        base, experiment = address.split("#")[0], address.split("/experiments/")[1].split("/")[0]
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        screens = {
            "mlflow-model-metrics": f"{base}#/experiments/{experiment}/runs/{run_id}/model-metrics?{ui.MODEL_TRAINING}",
            "mlflow-chart-comparison": f"{base}#/experiments/{experiment}/runs?compareRunsMode=CHART&{ui.MODEL_TRAINING}",
        }
        for name, url in screens.items():
            page.goto(url)
            sections, charts = chart_groups(page)
            assert sections[:2] == ["CNN", "CNN/epoch"], f"{name}: groups {sections}"
            assert charts[: len(CNN_CHARTS)] == CNN_CHARTS, f"{name}: charts {charts}"
            assert f"{errors:.2f}" in first_chart_s_labels(page), f"{name}: the test errors"  # not 1.00 for 99.5%
            close_the_assistant(page)
            assert "Evaluation runs" not in page.locator("body").inner_text(), f"{name}: in GenAI mode"
            if screenshots:
                page.screenshot(path=screenshots / f"{name}.png")
        page.goto(address)
        for metric in ("CNN/test_accuracy", "CNN/val_accuracy"):  # the runs table's columns
            page.locator(f"[data-testid='sort-header-{metric}']").wait_for(timeout=60_000)
        page.locator(".ag-row").first.wait_for(timeout=60_000)  # and its runs
        close_the_assistant(page)
        if screenshots:
            page.screenshot(path=screenshots / "mlflow-runs.png")
        page.close()


if __name__ == "__main__":  # README's screenshots from this repo's own store: python -m tests.commands.test_ui docs
    from playwright.sync_api import sync_playwright

    from pipeline.infra import tracking
    from tests.mnist_files import REPO
    from tests.tracked import runs_by_role

    repros = [r for r in runs_by_role(tracking.tracking_uri())["pipeline"] if r.info.run_name.startswith("repro-")]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        assert_ui_opens_on_the_cnn(REPO, chromium, repros[-1].info.run_id, screenshots=Path(sys.argv[1]))  # the last
        chromium.close()
