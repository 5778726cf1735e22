"""The touching-digits detector: does a blob of ink hold one digit, or several touching?

The digit model is sure of itself on the halves of a single digit cut in two as on two touching
digits, so it cannot tell which a blob is.  This small CNN can: it sees a blob normalised as
`predict` normalises a digit (its aspect kept), and learns from blobs of one digit and of two or
three touching digits, composed of MNIST *training* digits by `pipeline.composition` as the numbers
stage composes test ones.  The segmenter stage trains it and exports it to ONNX; `pipeline.images`
asks it whether to cut a blob, and the digit model where.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from pipeline.composition import compose
from pipeline.images import blob_images
from pipeline.params import SegmenterParams

SINGLE, TOUCHING = 0, 1


def examples(images: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` blobs (uint8 (count, 28, 28)) and their labels: alternately one digit of `images`, and two
    or three of them touching; each the largest blob `pipeline.images` finds in the composed number.
    (Photographed first, as the numbers stage does, the blobs were learnt less well: thresholding a
    photo sometimes parts two touching digits, which then teaches the detector a single digit as two.)"""
    blobs, labels = [], []
    for i in range(count):
        digits = 1 if i % 2 == 0 else int(rng.integers(2, 4))
        chosen = images[rng.choice(len(images), digits, replace=False)]
        number = compose(chosen, np.ones(digits - 1, bool), rng)
        blobs.append(max(blob_images(1 - number.astype(np.float32) / 255), key=lambda blob: int(blob.sum())))
        labels.append(SINGLE if digits == 1 else TOUCHING)
    return np.stack(blobs), np.array(labels)


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
    rng = np.random.default_rng(params.seed)
    x, y = examples(train_images, params.examples, rng)
    val_x, val_y = examples(val_images, max(params.examples // 5, 2), rng)
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
