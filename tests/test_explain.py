"""Saliency maps: shapes, and the deletion test's direction on a model that reads digits and on one that does not."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.infra.params import AugmentParams, load_params
from pipeline.ml import explain, models
from pipeline.ml.predictors import keras_predictor, onnx_predictor
from tests.digits import font_mnist

pytestmark = pytest.mark.e2e  # trains the digit model once per session
SETTINGS = load_params().evaluate  # the maps as the evaluate stage draws them
SQUARE = (SETTINGS.occlusion_patch, SETTINGS.occlusion_stride)


@pytest.fixture(scope="module")
def unseen() -> np.ndarray:
    return font_mnist(40, seed=21)[0]


def _deletion(predictor, model, digits: np.ndarray) -> dict:
    classes = predictor(digits).argmax(axis=1)
    maps = {
        "occlusion": explain.occlusion(predictor, digits, classes, *SQUARE),
        "grad_cam": explain.grad_cam(model, digits, classes),
    }
    assert all(m.shape == digits.shape and m.min() >= 0 and m.max() == pytest.approx(1) for m in maps.values())
    return explain.deletion_test(predictor, digits, classes, maps, SETTINGS.explain_seed, SETTINGS.deletion_steps)


def test_hiding_the_salient_ink_first_lowers_the_probability_faster_than_random(digit_model, unseen):
    result = _deletion(keras_predictor(digit_model.model), digit_model.model, unseen)
    assert result["start_probability"] > 0.8
    assert result["occlusion_deletion_auc"] < 0.75 * result["random_deletion_auc"]
    assert result["grad_cam_deletion_auc"] < result["random_deletion_auc"]


def test_an_untrained_model_s_maps_do_not_pass(unseen):
    untrained = models.inference_model(
        models.build("default", AugmentParams(enabled=False, flip=False, rotation_deg=0, shift=0, zoom=0, erasing=0))
    )
    result = _deletion(keras_predictor(untrained), untrained, unseen)
    assert result["occlusion_deletion_auc"] > 0.9 * result["random_deletion_auc"]  # no better than chance


def test_occlusion_works_on_the_onnx_export_as_on_keras(digit_model, unseen):
    classes = np.arange(5)
    by_onnx = explain.occlusion(onnx_predictor(digit_model.onnx_path), unseen[:5], classes, *SQUARE)
    by_keras = explain.occlusion(keras_predictor(digit_model.model), unseen[:5], classes, *SQUARE)
    np.testing.assert_allclose(by_onnx, by_keras, atol=1e-3)


def test_deletion_auc_is_the_area_under_the_curve():
    assert explain.deletion_auc(np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)
    assert explain.deletion_auc(np.ones(21)) == pytest.approx(1.0)


def test_no_digits_have_no_maps(digit_model):
    """A model without a mistake has none to explain: the export stage explains an empty set."""
    none, classes = np.zeros((0, 28, 28), np.uint8), np.zeros(0, int)
    assert explain.occlusion(onnx_predictor(digit_model.onnx_path), none, classes, *SQUARE).shape == (0, 28, 28)
    assert explain.grad_cam(digit_model.model, none, classes).shape == (0, 28, 28)
