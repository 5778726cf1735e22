"""`python -m pipeline ui` in a real headless browser (Debian's chromium, driven by Playwright): a run's
metrics tab and the chart comparison open on the CNN's figures, then its curves, and the printed
address shows the CNN's accuracy in the runs table.  The browser checks run on the tiny reproduced
repo (tests/stages/test_pipeline.py); this module holds them and checks the view itself."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from pipeline import environment
from pipeline.commands import ui
from tests.servers import free_port, wait_until_up

CNN_CHARTS = ["CNN/test_accuracy", "CNN/test_loss", "CNN/val_accuracy", "CNN/val_loss"]
SECTION_HEADER = "[data-testid='experiment-view-compare-runs-section-header']"
CHART_TITLE = "h4[title]"  # each chart's title, the full metric name in its `title`


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
        yield printed.split(": ", 1)[1].strip()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def chart_groups(page) -> tuple[list[str], list[str]]:
    """The chart groups' titles, top to bottom, and the chart titles in order."""
    page.locator(CHART_TITLE).first.wait_for(timeout=60_000)
    sections = [header.split("\n")[0] for header in page.locator(SECTION_HEADER).all_inner_texts()]
    return sections, [title.get_attribute("title") for title in page.locator(CHART_TITLE).all()]


def assert_ui_opens_on_the_cnn(repo: Path, browser, run_id: str, screenshots: Path | None = None) -> None:
    """The three screens a newcomer opens, in a real browser; with `screenshots`, saved there as PNG."""
    with running_ui(repo) as address:
        base, experiment = address.split("#")[0], address.split("/experiments/")[1].split("/")[0]
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        screens = {
            "mlflow-model-metrics": f"{base}#/experiments/{experiment}/runs/{run_id}/model-metrics",
            "mlflow-chart-comparison": f"{base}#/experiments/{experiment}/runs?compareRunsMode=CHART",
        }
        for name, url in screens.items():
            page.goto(url)
            sections, charts = chart_groups(page)
            assert sections[:2] == ["CNN", "CNN/epoch"], f"{name}: groups {sections}"
            assert charts[:4] == CNN_CHARTS, f"{name}: charts {charts}"
            if screenshots:
                page.screenshot(path=screenshots / f"{name}.png")
        page.goto(address)
        for metric in ("CNN/test_accuracy", "CNN/val_accuracy"):  # the runs table's columns
            page.locator(f"[data-testid='sort-header-{metric}']").wait_for(timeout=60_000)
        page.locator(".ag-row").first.wait_for(timeout=60_000)  # and its runs
        if screenshots:
            page.screenshot(path=screenshots / "mlflow-runs.png")
        page.close()
