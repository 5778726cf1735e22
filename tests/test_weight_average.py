"""pipeline.ml.weight_average: the averaged weights validate with BatchNorm statistics of their own."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.infra.overrides import with_overrides
from pipeline.ml import models, training
from pipeline.ml.weight_average import BatchStatistics
from tests.mnist_files import learnable_mnist
from tests.test_training import CONFIG, RecordWeights, assert_same_steps

AUGMENTED = {"enabled": True, "flip": False, "rotation_deg": 10, "shift": 0.1, "zoom": 0.1, "erasing": 0}
BATCH_NORMED = with_overrides(CONFIG, {"model.arch": "bn", "train.epochs": 2, "train.augment": AUGMENTED})


@pytest.fixture(scope="module")
def data():
    return learnable_mnist(400, seed=0), learnable_mnist(100, seed=1)


def test_each_batchnorm_gets_the_mean_of_its_batch_statistics_as_the_model_infers():
    """The first BatchNorm's input is the convolution's on the raw images: no augmentation drawn."""
    model = models.build("bn", BATCH_NORMED.train.augment)
    images = learnable_mnist(96, seed=2)[0]
    first = next(i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.BatchNormalization))
    before_first = keras.Sequential(
        [layer for layer in model.layers[:first] if not isinstance(layer, models.AUGMENTATION)]
    )
    batches = [keras.ops.convert_to_numpy(before_first(images[i : i + 32].astype("float32"))) for i in (0, 32, 64)]
    BatchStatistics(model, images, batch_size=32)()
    norm = model.layers[first]
    np.testing.assert_allclose(norm.moving_mean, np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0), rtol=1e-4)
    np.testing.assert_allclose(
        norm.moving_variance, np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0), rtol=1e-3
    )
    assert norm.momentum == 0.99  # as training left it


def test_the_average_validates_as_kept_and_leaves_training_and_its_statistics_alone(data):
    plain, averaged = RecordWeights(), RecordWeights()
    running, _ = training.fit(
        *data, BATCH_NORMED.model, BATCH_NORMED.train.model_copy(update={"ema_momentum": 0}), [plain]
    )
    model, history = training.fit(
        *data, BATCH_NORMED.model, BATCH_NORMED.train.model_copy(update={"ema_momentum": 0.9}), [averaged]
    )
    assert_same_steps(averaged, plain)
    loss, accuracy = model.evaluate(*data[1], verbose=0)
    assert [loss, accuracy] == pytest.approx(history[["val_loss", "val_accuracy"]].iloc[-1].tolist(), rel=1e-5)
    moving_mean = next(w for w in model.weights if "moving_mean" in w.path)
    assert not np.allclose(moving_mean, next(w for w in running.weights if "moving_mean" in w.path))
