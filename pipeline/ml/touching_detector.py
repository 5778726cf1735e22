"""The touching-digits detector: does a blob of ink hold one digit, or several touching?

The digit model is sure of itself on the halves of a single digit cut in two as on two touching
digits, so it cannot tell which a blob is.  This small CNN can: it sees a blob normalised as
`predict` normalises a digit (its aspect kept), and learns from blobs of one digit and of two or
three touching digits (`pipeline.images.detector_examples`), composed of MNIST *training* digits as the
compose stage composes test ones.  The segmenter stage trains it and exports it to ONNX; `pipeline.images.segmentation`
asks it whether to cut a blob, and the digit model where.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from pipeline.images.detector_examples import SINGLE, TOUCHING, examples
from pipeline.infra.params import SegmenterParams


def build() -> keras.Model:
    """Two small convolutions and a dense layer (about 50k parameters): one digit or several."""
    return keras.Sequential(
        [
            keras.Input((28, 28), name="pixels"),
            layers.Reshape((28, 28, 1)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(2, activation="softmax", name="probabilities"),
        ],
        name="touching",
    )


def train(train_images: np.ndarray, val_images: np.ndarray, params: SegmenterParams) -> tuple[keras.Model, dict]:
    """The detector fitted on blobs of `train_images`, and its accuracy on blobs of `val_images`."""
    keras.utils.set_random_seed(params.seed)
    x, y = examples(train_images, params.examples, (params.seed, 0))
    val_x, val_y = examples(val_images, max(params.examples // 5, 2), (params.seed, 1))
    model = build()
    model.compile(keras.optimizers.Adam(params.learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=params.batch_size, epochs=params.epochs, verbose=2, validation_data=(val_x, val_y))
    predicted = model.predict(val_x, batch_size=1000, verbose=0).argmax(axis=1)
    return model, {
        "examples": len(x),
        "val_examples": len(val_x),
        "val_accuracy": float(np.mean(predicted == val_y)),
        "val_single_kept": float(np.mean(predicted[val_y == SINGLE] == SINGLE)),
        "val_touching_found": float(np.mean(predicted[val_y == TOUCHING] == TOUCHING)),
    }
