"""export stage: the ONNX model matches Keras on every test image, the int8 model nearly; the gates
pass an honest conversion of a weak model and stop a broken one, leaving nothing behind."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from pipeline import PipelineError
from pipeline.infra import paths
from pipeline.infra.files import load_npz, save_npz
from pipeline.ml import models, onnx_export, training
from pipeline.ml.predictors import keras_predictor, onnx_predictor
from pipeline.stages import export
from tests.digits import font_mnist
from tests.mnist_files import REPO, learnable_mnist, params_with

WRITTEN_AFTER_THE_GATES = (
    paths.EXPORT_METRICS,
    paths.EXPORT_SPEED,
    paths.CNN_SCORES,
    paths.EXPLAIN_METRICS,
    paths.INFERENCE_SPEED,
)
pytestmark = pytest.mark.e2e  # uses the session's trained digit model, or trains every architecture


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return font_mnist(300, seed=3)


@pytest.fixture
def stage_dir(tmp_path, monkeypatch, digit_model, test_set):
    """A working directory holding what the export stage reads: params, the splits, the model, hand-over."""
    shutil.copy(REPO / "params.yaml", tmp_path)
    monkeypatch.chdir(tmp_path)
    images, labels = test_set
    save_npz(paths.split_file("test"), {"x": images, "y": labels})
    save_npz(paths.split_file("train"), dict(zip("xy", font_mnist(200, seed=4), strict=True)))
    save_npz(paths.split_file("val"), dict(zip("xy", font_mnist(100, seed=5), strict=True)))
    paths.CNN_MODEL.parent.mkdir()
    shutil.copy(digit_model.keras_path, paths.CNN_MODEL)
    paths.CNN_RUN.parent.mkdir(parents=True)
    paths.CNN_RUN.write_text(json.dumps({"run_id": "0" * 32, "model_name": "m", "model_version": None}))
    return tmp_path


def test_onnx_export_agrees_with_keras(digit_model, test_set):
    images, labels = test_set
    report = export.parity(
        labels, keras_predictor(digit_model.model)(images), onnx_predictor(digit_model.onnx_path)(images), "onnx"
    )
    assert report["onnx_agreement"] == 1.0
    assert report["onnx_accuracy"] >= 0.9
    assert report["onnx_max_probability_difference"] < 1e-4


def test_int8_model_has_int8_weights_per_channel_and_nearly_the_same_answers(digit_model, test_set):
    images, labels = test_set  # digit_model.int8_path: export.quantize of its ONNX model
    graph = onnx.load(digit_model.int8_path).graph
    weights = [w for w in graph.initializer if w.data_type == onnx.TensorProto.INT8 and len(w.dims) > 1]
    assert len(weights) >= 3  # every convolution's and dense layer's kernel
    scales = {w.name: w for w in graph.initializer if w.name.endswith("_scale")}
    assert any(len(scale.dims) == 1 and scale.dims[0] > 1 for scale in scales.values())  # one scale per channel
    assert {node.op_type for node in graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    reference = keras_predictor(digit_model.model)(images)
    report = export.parity(labels, reference, onnx_predictor(digit_model.int8_path)(images), "int8")
    assert report["int8_agreement"] >= 0.98
    assert abs(report["int8_accuracy"] - np.mean(reference.argmax(1) == labels)) <= 0.01


def test_stage_writes_both_exports_and_their_figures(stage_dir, digit_model, test_set):
    export.main()
    scores = load_npz(paths.CNN_SCORES)  # Keras scored once, for the evaluate stage
    np.testing.assert_allclose(scores["test"], keras_predictor(digit_model.model)(test_set[0]), atol=1e-6)
    assert scores["val"].shape == (100, 10)
    mistakes, wrong = scores["mistakes"], scores["test"].argmax(1) != test_set[1]
    assert len(mistakes) == min(wrong.sum(), 8) and wrong[mistakes].all()  # evaluate.explained_mistakes: 8
    assert scores["grad_cam"].shape == scores["occlusion"].shape == (len(mistakes), 28, 28)
    assert set(json.loads(paths.EXPLAIN_METRICS.read_text())) >= {
        "occlusion_deletion_auc",
        "grad_cam_deletion_auc",
        "random_deletion_auc",
    }
    assert json.loads(paths.INFERENCE_SPEED.read_text())["throughput_images_per_s"] > 0
    report, speed = (json.loads(path.read_text()) for path in (paths.EXPORT_METRICS, paths.EXPORT_SPEED))
    assert report["onnx_agreement"] == 1.0 and report["onnx_accuracy"] == report["keras_accuracy"]
    assert report["int8_added_errors"] <= 1 and report["int8_agreement"] >= 0.99
    for model in ("onnx", "int8"):
        assert speed[f"{model}_throughput_images_per_s"] > 0 and speed[f"{model}_latency_ms_p50"] > 0
    ratio = speed["int8_throughput_images_per_s"] / speed["onnx_throughput_images_per_s"]
    assert speed["int8_vs_onnx_throughput"] == round(ratio, 2)
    assert paths.ONNX_MODEL.is_file() and paths.INT8_MODEL.is_file()


@pytest.mark.parametrize(
    ("model", "damage", "message"),
    [
        ("onnx", {"onnx_agreement": 0.99}, r"ONNX export differs from Keras: same digit on 99.0000% of test images"),
        (
            "int8",
            {"int8_added_errors": 9},
            (
                r"int8 ONNX model is broken: it gets 9 test images wrong that Keras gets right, more than the \d+ allowed "
                r"\(export.int8_max_added_errors 0.5 of Keras' \d+ errors\)"
            ),
        ),
    ],
)
def test_a_mismatching_export_fails_and_leaves_no_file(stage_dir, monkeypatch, model, damage, message):
    real_parity = export.parity
    monkeypatch.setattr(export, "parity", lambda *args: real_parity(*args) | (damage if args[-1] == model else {}))
    with pytest.raises(PipelineError, match=message):
        export.main()
    assert list(paths.ONNX_MODEL.parent.iterdir()) == [paths.CNN_MODEL]  # no export, no temp file
    assert not any(path.exists() for path in WRITTEN_AFTER_THE_GATES)


def test_an_int8_model_calibrated_on_blank_images_is_stopped_in_one_line(stage_dir):
    save_npz(paths.split_file("train"), {"x": np.zeros((200, 28, 28), np.uint8), "y": np.zeros(200, np.uint8)})
    with pytest.raises(PipelineError, match=r"^int8 ONNX model is broken: it gets \d+ test images wrong") as error:
        export.main()
    assert "\n" not in str(error.value)
    assert list(paths.ONNX_MODEL.parent.iterdir()) == [paths.CNN_MODEL]
    assert not any(path.exists() for path in WRITTEN_AFTER_THE_GATES)


@pytest.mark.parametrize(
    ("keras_errors", "images", "allowed"),
    [
        (57, 10_000, 29),  # a finished model: half its 57 errors, rounded up
        (4_686, 10_000, 2_343),  # a 1-epoch model at 53%: honest quantization flips many uncertain images
        (3, 10_000, 10),  # a near-perfect one: the floor, the 0.1% float32 may disagree on
        (0, 300, 1),  # never less than one image
    ],
)
def test_int8_may_add_a_share_of_keras_errors_with_the_float_tolerance_as_floor(keras_errors, images, allowed):
    params = params_with({}).export
    assert (params.int8_max_added_errors, params.min_agreement) == (0.5, 0.999)
    assert export.allowed_added_errors(keras_errors, images, params) == allowed


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_every_architecture_trains_an_epoch_and_exports_as_the_pipeline_does(arch, tmp_path):
    """Exploration never fails, per architecture, in-process: one epoch of the default recipe on a few
    images (a weak model), exported to ONNX and int8 as the export stage does, the ONNX model agreeing
    with Keras and int8 giving probabilities.  (The team test's queued grid, tests/test_team.py, runs
    some architectures through every stage; what follows the export does not depend on the architecture.)"""
    params = params_with({"model.arch": arch, "train.epochs": 1, "train.batch_size": 64})
    x, y = learnable_mnist(300, seed=3)
    trained = training.train(params, (x[:250], y[:250]), (x[250:], y[250:]))
    assert len(trained.history) == 1
    fp32, int8 = tmp_path / "cnn.onnx", tmp_path / "cnn-int8.onnx"
    onnx_export.export(trained.model, fp32, int8, x, params)
    keras_probabilities = trained.model.predict(x[250:], verbose=0)
    np.testing.assert_allclose(onnx_predictor(fp32)(x[250:]), keras_probabilities, atol=1e-4)
    quantized = onnx_predictor(int8)(x[250:])
    step = 1 / 255  # the uint8 output's largest step (probabilities calibrated to at most 1): each of 10 rounds by half
    assert quantized.shape == (50, 10) and np.allclose(quantized.sum(axis=1), 1, atol=10 * step / 2)
