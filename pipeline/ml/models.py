"""The architecture registry: `model.arch` names a builder of the layers between input and softmax.

Every model takes raw pixels, shape (N, 28, 28) with values 0-255 (what data/processed holds and
what a user has), scales them itself, and ends in a 10-way softmax.  The presets are the seed
projects' recipes, kept so `dvc exp run -S model.arch=...` can compare them; `default` and `fast`
are this project's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from keras import layers

from pipeline.infra.params import AugmentParams
from pipeline.ml.residual import residual_blocks

INPUT_SHAPE = (28, 28)
AUGMENTATION = (
    layers.RandomFlip,
    layers.RandomRotation,
    layers.RandomTranslation,
    layers.RandomZoom,
    layers.RandomErasing,
)
ERASED_AREA = (0.02, 0.33)  # Keras' default, the random-erasing paper's: a rectangle of 2% to 33% of the image


def tiny() -> list[layers.Layer]:
    """Seed 1: two small convolutions, 2,864 parameters."""
    return [
        layers.Conv2D(8, 4, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(4),
        layers.Flatten(),
        layers.Dense(10, activation="relu"),
    ]


def simple() -> list[layers.Layer]:
    """Seed 2: conv 32 / 64 and a dense 64 (the Keras tutorial shape)."""
    return [
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
    ]


def lenet5() -> list[layers.Layer]:
    """Seed 3: LeCun et al. 1998, with ReLU and max pooling."""
    return [
        layers.Conv2D(6, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(120, activation="relu"),
        layers.Dense(84, activation="relu"),
    ]


def bn() -> list[layers.Layer]:
    """Seed 4: three convolutions 32 / 64 / 64 with BatchNorm, dense 128, dropout; 459,210 parameters."""
    return [
        *_seed_conv(32),
        layers.MaxPooling2D(2),
        *_seed_conv(64),
        layers.MaxPooling2D(2),
        *_seed_conv(64),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
    ]


def deep() -> list[layers.Layer]:
    """Seed 5: conv blocks 32 / 64 / 128 with BatchNorm and dropout 0.3, dense 512 with dropout 0.5."""
    blocks = [[*_seed_conv(f), *_seed_conv(f), layers.MaxPooling2D(2), layers.Dropout(0.3)] for f in (32, 64, 128)]
    return [
        *(layer for block in blocks for layer in block),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(0.5),
    ]


def default() -> list[layers.Layer]:
    """This project's recipe: three convolutions 32 / 64 / 128, each halving the image, dense 128.

    No BatchNorm: on two CPU cores it cost a third more time per epoch and, trained the same way,
    ended lower (99.37% against 99.48% test accuracy after 12 epochs; docs/history.md, "Choosing the default").
    """
    return [
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.3),
    ]


def fast() -> list[layers.Layer]:
    """One epoch to 99%, after tuomaso/train_mnist_fast: convolutions 24@5x5 and 32@3x3, each pooled
    before its ReLU (a quarter of the activations to compute), dense 256; 215,194 parameters."""
    return [
        layers.Conv2D(24, 5),
        layers.MaxPooling2D(2),
        layers.ReLU(),
        layers.Conv2D(32, 3),
        layers.MaxPooling2D(2),
        layers.ReLU(),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
    ]


def deotte() -> list[layers.Layer]:
    """cdeotte/MNIST-CNN-99.75's net: two 3x3 convolutions and a strided 5x5 one (for pooling) at 32 and
    64 filters, a 4x4 convolution of 128, BatchNorm after each and dropout 0.4; 327,242 parameters."""
    blocks = [
        [
            *_batch_normed(f, 3),
            *_batch_normed(f, 3),
            *_batch_normed(f, 5, strides=2, padding="same"),
            layers.Dropout(0.4),
        ]
        for f in (32, 64)
    ]
    return [
        *(layer for block in blocks for layer in block),
        *_batch_normed(128, 4),
        layers.Flatten(),
        layers.Dropout(0.4),
    ]


def resnet() -> list[layers.Layer]:
    """A small pre-activation residual network: a 3x3 convolution of 32, then two residual blocks at
    each of 32, 64 and 128 filters (the first of each wider stage halving the image), BatchNorm and ReLU,
    global average pooling; 697,514 parameters and about 80.5M multiply-adds an image (`default`: 7.6M);
    for data whose classes differ in texture and shape, not only in strokes."""
    return [
        layers.Conv2D(32, 3, padding="same", use_bias=False),
        *residual_blocks(widths=(32, 64, 128), per_width=2, channels=32),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.GlobalAveragePooling2D(),
    ]


def _batch_normed(filters: int, size: int, **conv) -> list[layers.Layer]:
    """A convolution with ReLU, then BatchNorm."""
    return [layers.Conv2D(filters, size, activation="relu", **conv), layers.BatchNormalization()]


def _seed_conv(filters: int) -> list[layers.Layer]:
    """The seeds' convolution: 3x3 'same' with ReLU, then BatchNorm."""
    return _batch_normed(filters, 3, padding="same")


ARCHITECTURES: dict[str, Callable[[], list[layers.Layer]]] = {
    f.__name__: f for f in (tiny, simple, lenet5, bn, deep, default, fast, deotte, resnet)
}


def build(arch: str, augment: AugmentParams) -> keras.Model:
    """The named architecture between raw-pixel input (with augmentation, active only in training) and softmax."""
    augmentation = []
    if augment.enabled:
        augmentation = [
            *([layers.RandomFlip("horizontal")] if augment.flip else []),
            layers.RandomRotation(augment.rotation_deg / 360, fill_mode="constant"),
            layers.RandomTranslation(augment.shift, augment.shift, fill_mode="constant"),
            layers.RandomZoom(augment.zoom, fill_mode="constant"),
            *([layers.RandomErasing((augment.erasing,) * 2, ERASED_AREA)] if augment.erasing else []),
        ]
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, name="pixels"),
            layers.Reshape((28, 28, 1)),
            *augmentation,
            layers.Rescaling(1 / 255),
            *ARCHITECTURES[arch](),
            layers.Dense(10, activation="softmax", name="probabilities"),
        ],
        name=arch,
    )


def inference_model(model: keras.Sequential, test_time_shift: int = 0, name: str | None = None) -> keras.Model:
    """`model` as it is saved and served: its weights, without augmentation layers or optimizer state,
    and with `test_time_shift` > 0, the mean of its probabilities for the image and its four copies
    shifted that many pixels up, down, left and right (five predictions an image).  `name` defaults to
    the architecture's."""
    kept = [layer for layer in model.layers if not isinstance(layer, AUGMENTATION)]
    inference = keras.Sequential([keras.Input(INPUT_SHAPE, name="pixels"), *kept], name=name or model.name)
    return _called(_shift_average(inference, test_time_shift) if test_time_shift else inference)


def ensemble(members: list[keras.Model]) -> keras.Model:
    """One model whose probabilities are the mean of `members`' (inference models of distinct names):
    one file, one ONNX graph, served like a single model.  A single member is returned as it is."""
    if len(members) == 1:
        return members[0]
    pixels = keras.Input(INPUT_SHAPE, name="pixels")
    average = layers.Average(name="probabilities")([member(pixels) for member in members])
    return _called(keras.Model(pixels, average, name="ensemble"))


def load(path: Path) -> keras.Model:
    """A saved inference model, ready to export."""
    return _called(keras.saving.load_model(path, safe_mode=True))


def _called(model: keras.Model) -> keras.Model:
    model.predict(np.zeros((1, *INPUT_SHAPE), np.float32), verbose=0)  # the ONNX export wants a called model
    return model


def _shift_average(model: keras.Sequential, shift: int) -> keras.Model:
    """`model`'s probabilities averaged over the image and its four `shift`-pixel shifts (zeros shifted in),
    built of Keras' own layers, so saving, loading and the ONNX export need nothing from this project."""
    pixels = keras.Input(INPUT_SHAPE, name="pixels")
    padded = layers.ZeroPadding2D(shift)(layers.Reshape((*INPUT_SHAPE, 1))(pixels))
    views = [pixels]
    for down, right in ((shift, 0), (-shift, 0), (0, shift), (0, -shift)):
        view = layers.Cropping2D(((shift - down, shift + down), (shift - right, shift + right)))(padded)
        views.append(layers.Reshape(INPUT_SHAPE)(view))
    return keras.Model(pixels, layers.Average(name="probabilities")([model(view) for view in views]), name=model.name)
