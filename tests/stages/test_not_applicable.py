"""Whole numbers on a dataset whose classes are not digits: the four stages say so, leave every output
DVC expects, read no data and start no TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from PIL import Image

from pipeline.infra import metric_names, paths
from pipeline.infra.files import load_npz
from pipeline.stages import compose, cut, numbers, segmenter
from tests.mnist_files import REPO

REASON = "fashion_mnist's classes are not digits"


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    """A folder holding only params.yaml, set for Fashion-MNIST."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["dataset"] = "fashion_mnist"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    for folder in ("metrics", "models", "data", "reports"):
        (tmp_path / folder).mkdir()
    return tmp_path


def test_the_number_stages_leave_their_outputs_saying_why_without_data_or_tensorflow(fashion):
    for stage in (segmenter, compose, cut, numbers):
        stage.main()
    for metrics in (paths.SEGMENTER_METRICS, paths.NUMBERS_METRICS):
        assert json.loads(metrics.read_text()) == {"not_applicable": REASON}
    assert paths.TOUCHING_MODEL.read_bytes() == b"" and paths.NUMBERS_READ.read_bytes() == b""
    assert load_npz(paths.NUMBER_PHOTOS) == {} and load_npz(paths.OUTSIDE_PHOTOS) == {}
    assert load_npz(paths.CUT_DIGITS) == {}
    assert Image.open(paths.NUMBERS_PLOT).format == "PNG"
    files = {paths.NUMBERS_METRICS: {"not_applicable": REASON, "numbers": 3}}
    assert metric_names.notes_of(files) == {"numbers/not_applicable": REASON}
    assert metric_names.metrics_of(files) == {"numbers/numbers": 3.0}


def test_on_digits_the_stages_do_their_work(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):  # it goes for the test split: no such file here
        compose.main()
    assert not list(tmp_path.glob("data/*.npz"))


def test_the_detector_stage_does_not_import_keras_on_another_dataset(fashion):
    code = "import sys; from pipeline.stages import segmenter; segmenter.main(); print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    ran = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert ran.stdout.strip() == "[]"
