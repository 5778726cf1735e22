"""export stage: the ONNX model matches Keras on every test image, and a mismatch leaves nothing behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipeline import PipelineError, paths
from pipeline.files import save_npz
from pipeline.inference import keras_predictor, onnx_predictor
from pipeline.stages import export
from tests.digits import font_mnist
from tests.mnist_files import REPO

pytestmark = pytest.mark.slow  # uses the session's trained digit model


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return font_mnist(300, seed=3)


@pytest.fixture
def stage_dir(tmp_path, monkeypatch, digit_model, test_set):
    """A working directory holding what the export stage reads: params, test split, model, hand-over."""
    shutil.copy(REPO / "params.yaml", tmp_path)
    monkeypatch.chdir(tmp_path)
    images, labels = test_set
    save_npz(paths.split_file("test"), {"x": images, "y": labels})
    paths.CNN_MODEL.parent.mkdir()
    shutil.copy(digit_model.keras_path, paths.CNN_MODEL)
    paths.CNN_RUN.parent.mkdir(parents=True)
    paths.CNN_RUN.write_text(json.dumps({"run_id": "0" * 32, "model_name": "m", "model_version": None}))
    return tmp_path


def test_onnx_export_agrees_with_keras(digit_model, test_set):
    images, labels = test_set
    report = export.parity(
        labels, keras_predictor(digit_model.model)(images), onnx_predictor(digit_model.onnx_path)(images)
    )
    assert report["agreement"] == 1.0
    assert report["onnx_accuracy"] == report["keras_accuracy"] >= 0.9
    assert report["max_probability_difference"] < 1e-4


def test_stage_writes_the_export_and_its_figures(stage_dir):
    export.main()
    report, speed = (json.loads(path.read_text()) for path in (paths.EXPORT_METRICS, paths.EXPORT_SPEED))
    assert report["agreement"] == 1.0 and report["onnx_accuracy"] == report["keras_accuracy"]
    for model in ("keras", "onnx"):
        assert speed[f"{model}_throughput_images_per_s"] > 0 and speed[f"{model}_latency_ms_p50"] > 0
    assert paths.ONNX_MODEL.is_file()


def test_a_mismatching_export_fails_and_leaves_no_file(stage_dir, monkeypatch):
    real_parity = export.parity
    monkeypatch.setattr(export, "parity", lambda *args: real_parity(*args) | {"agreement": 0.99})
    with pytest.raises(PipelineError, match=r"ONNX export differs from Keras: same digit on 99.0000% of test images"):
        export.main()
    assert list(paths.ONNX_MODEL.parent.iterdir()) == [paths.CNN_MODEL]  # no export, no temp file
    assert not paths.EXPORT_METRICS.exists() and not paths.EXPORT_SPEED.exists()
