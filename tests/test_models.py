"""The architecture registry: every preset builds, takes raw pixels, and has the seeds' size."""

from __future__ import annotations

import inspect
import re
import typing

import keras
import numpy as np
import pytest

from pipeline.infra.params import AugmentParams, ModelParams
from pipeline.ml import explain, models

NO_AUGMENT = AugmentParams(enabled=False, flip=False, rotation_deg=0, shift=0, zoom=0, erasing=0)
AUGMENT = AugmentParams(enabled=True, flip=False, rotation_deg=15, shift=0.1, zoom=0.1, erasing=0)


def test_registry_and_params_schema_name_the_same_architectures():
    assert set(models.ARCHITECTURES) == set(typing.get_args(typing.get_type_hints(ModelParams)["arch"]))


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_every_architecture_maps_raw_pixels_to_probabilities(arch):
    model = models.build(arch, AUGMENT)
    probabilities = keras.ops.convert_to_numpy(model(np.full((3, 28, 28), 255, np.uint8), training=False))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


# Exact counts guard against accidental changes; the seed projects (and tuomaso/train_mnist_fast) published rounded figures.
PARAMETERS = {
    "tiny": (2_864, 2_900),
    "bn": (459_210, 459_000),
    "deep": (885_738, 905_000),
    "fast": (215_194, 215_000),
    "deotte": (327_242, 327_242),
}


@pytest.mark.parametrize("arch", PARAMETERS)
def test_presets_have_the_seeds_parameter_counts(arch):
    exact, published = PARAMETERS[arch]
    count = models.build(arch, NO_AUGMENT).count_params()
    assert count == exact
    assert abs(count - published) / published < 0.025


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_a_parameter_count_in_an_architecture_s_docstring_is_its_own(arch):
    stated = re.findall(r"([\d,]+) parameters", inspect.getdoc(models.ARCHITECTURES[arch]) or "")
    assert [int(n.replace(",", "")) for n in stated] in ([], [models.build(arch, NO_AUGMENT).count_params()])


def test_augmentation_distorts_in_training_only():
    keras.utils.set_random_seed(0)
    model = models.build("tiny", AUGMENT)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    inference = [keras.ops.convert_to_numpy(model(images, training=False)) for _ in range(2)]
    training = keras.ops.convert_to_numpy(model(images, training=True))
    np.testing.assert_array_equal(inference[0], inference[1])
    assert not np.allclose(training, inference[0])
    assert len(models.build("tiny", NO_AUGMENT).layers) == len(model.layers) - 3


def test_test_time_shift_averages_the_image_and_its_four_shifts(tmp_path):
    """Saved with Keras' own layers (loads with safe_mode, exports to ONNX) and equal to the mean
    of the plain model over the image moved one pixel each way, zeros shifted in."""
    from pipeline.ml.predictors import onnx_predictor

    plain = models.inference_model(models.build("tiny", AUGMENT))
    models.inference_model(models.build("tiny", AUGMENT), test_time_shift=1).save(tmp_path / "cnn.keras")
    shifted = models.load(tmp_path / "cnn.keras")
    shifted.get_layer("tiny").set_weights(plain.get_weights())
    images = np.pad(np.random.default_rng(0).integers(0, 256, (5, 26, 26)), 1).astype(np.float32)
    views = [np.roll(images, step, axis) for axis in (1, 2) for step in (1, -1)]
    expected = np.mean([plain.predict(view, verbose=0) for view in (images, *views)], axis=0)
    np.testing.assert_allclose(shifted.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(expected, plain.predict(images, verbose=0), atol=1e-4)
    shifted.export(str(tmp_path / "cnn.onnx"), format="onnx", verbose=False)
    np.testing.assert_allclose(onnx_predictor(tmp_path / "cnn.onnx")(images), expected, rtol=1e-4, atol=1e-6)


def test_an_ensemble_is_one_model_averaging_its_members(tmp_path):
    """Saved and loaded as one file, exported as one ONNX graph, its probabilities the members' mean;
    Grad-CAM on it is the mean of its members' maps."""
    from pipeline.ml import explain
    from pipeline.ml.predictors import onnx_predictor

    keras.utils.set_random_seed(0)
    members = [models.inference_model(models.build("tiny", AUGMENT), 1, f"tiny_{k}") for k in (1, 2, 3)]
    assert models.ensemble(members[:1]) is members[0]
    models.ensemble(members).save(tmp_path / "cnn.keras")
    loaded = models.load(tmp_path / "cnn.keras")
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.float32)
    expected = np.mean([member.predict(images, verbose=0) for member in members], axis=0)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-7)
    assert loaded.count_params() == 3 * members[0].count_params()
    loaded.export(str(tmp_path / "cnn.onnx"), format="onnx", verbose=False)
    np.testing.assert_allclose(onnx_predictor(tmp_path / "cnn.onnx")(images), expected, rtol=1e-4, atol=1e-6)
    classes = expected.argmax(axis=1)
    maps = [explain.grad_cam(member, images, classes) for member in members]
    np.testing.assert_allclose(
        explain.grad_cam(loaded, images, classes), explain._unit(np.mean(maps, axis=0)), atol=1e-5
    )


def test_a_flip_mirrors_training_images_only_and_only_when_asked():
    flipping = models.build("tiny", AUGMENT.model_copy(update={"flip": True}))
    assert any(isinstance(layer, keras.layers.RandomFlip) for layer in flipping.layers)
    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in models.build("tiny", AUGMENT).layers)
    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in models.inference_model(flipping).layers)


def test_erasing_replaces_one_rectangle_of_training_images_only_and_only_when_asked():
    """With probability 1, each training image has one rectangle of 2% to 33% of its area replaced (by
    noise, so a few of its pixels may keep their value) and the rest untouched; the saved model erases nothing."""
    keras.utils.set_random_seed(0)
    erasing = models.build("tiny", NO_AUGMENT.model_copy(update={"enabled": True, "erasing": 1.0}))
    (layer,) = [layer for layer in erasing.layers if isinstance(layer, keras.layers.RandomErasing)]
    images = np.full((64, 28, 28, 1), 128, np.float32)
    erased = keras.ops.convert_to_numpy(layer(images, training=True))[..., 0] != 128
    for changed in erased:
        rows, columns = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        box = np.zeros_like(changed)
        box[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1] = True
        assert not (changed & ~box).any(), "pixels changed outside one rectangle"
        assert changed.sum() <= 0.33 * 28 * 28 + 2 * 28  # (the box's sides are rounded to whole pixels)
    assert erased.any(axis=(1, 2)).all() and np.mean(erased) > 0.02
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    assert not any(isinstance(layer, keras.layers.RandomErasing) for layer in models.build("tiny", AUGMENT).layers)
    assert not any(isinstance(layer, keras.layers.RandomErasing) for layer in models.inference_model(erasing).layers)


def _every_layer(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _every_layer(layer)


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_every_architecture_is_made_of_keras_own_layers(arch):
    """So that a saved model loads in any process, `mlflow models serve`'s included, with nothing of
    this project imported or registered."""
    model = models.ensemble([models.inference_model(models.build(arch, AUGMENT), name=f"m{i}") for i in (1, 2)])
    foreign = {type(layer).__module__ for layer in _every_layer(model)} - {"keras"}
    assert not {module for module in foreign if not module.startswith("keras.")}


def test_a_residual_network_saves_loads_safely_and_explains_its_last_block(tmp_path):
    network = models.inference_model(models.build("resnet", NO_AUGMENT))
    assert 300_000 < network.count_params() < 3_000_000
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.float32)
    network.save(tmp_path / "resnet.keras")
    loaded = keras.saving.load_model(tmp_path / "resnet.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), network.predict(images, verbose=0), atol=1e-6)
    maps = explain.grad_cam(loaded, images, np.zeros(4, int))
    assert maps.shape == (4, 28, 28) and np.isfinite(maps).all()
