"""Where the model looked: saliency maps of its predictions, and a deletion test that they mean something.

Two maps, both 28x28, in [0, 1], for a digit and the class it was read as:
- `occlusion`: how much that class's probability falls when a square of the digit (`patch` pixels a
  side) is hidden (set to background), each square `stride` pixels from the last, averaged over the squares
  covering each pixel (Zeiler and Fergus, 2014).  It needs only the model's outputs, so it works on
  the ONNX export that `predict` and the draw page use, and it resolves a few pixels: it is the map
  they show.
- `grad_cam`: Grad-CAM (Selvaraju et al., 2017, as keras.io's `examples/vision/grad_cam.py`) on the
  last convolution, upsampled.  That layer is only a few pixels wide (7x7 for the default model), so
  the map is coarse; it needs a Keras model and TensorFlow, and appears beside occlusion in the
  evaluate stage's figure of misclassified digits.

The deletion test (Petsiuk et al., 2018) hides a digit's ink pixels in order of saliency, most
salient first, and follows the probability of the class read: a map that means something makes it
fall faster than hiding them in random order.  The area under that curve (fraction hidden 0 to 1)
is reported beside the random order's.
"""

from __future__ import annotations

import numpy as np

from pipeline.ml.predictors import Predictor, predict_in_batches

BATCH = 1024  # images per prediction: the probabilities do not depend on it, the memory does


def occlusion(predictor: Predictor, digits: np.ndarray, classes: np.ndarray, patch: int, stride: int) -> np.ndarray:
    """Occlusion maps (N, 28, 28) of uint8 `digits` (N, 28, 28) for `classes` (N,), each scaled to [0, 1]:
    the drop in the class's probability when a black square of side `patch` hides a part, moved by `stride`."""
    if not len(digits):
        return np.zeros((0, 28, 28), np.float32)
    starts = range(0, 28 - patch + 1, stride)
    squares = [(top, left) for top in starts for left in starts]
    hidden = np.repeat(digits[:, None], len(squares), axis=1)
    for i, (top, left) in enumerate(squares):
        hidden[:, i, top : top + patch, left : left + patch] = 0
    before = _class_probability(predictor, digits, classes)
    inked = (hidden != digits[:, None]).any(axis=(2, 3))  # (N, squares): those hiding some ink; the rest change nothing
    drops = np.zeros(inked.shape, np.float32)
    drops[inked] = before.repeat(inked.sum(axis=1)) - _class_probability(
        predictor, hidden[inked], np.broadcast_to(classes[:, None], inked.shape)[inked]
    )
    total, cover = np.zeros((len(digits), 28, 28)), np.zeros((28, 28))
    for i, (top, left) in enumerate(squares):
        total[:, top : top + patch, left : left + patch] += drops[:, i, None, None]
        cover[top : top + patch, left : left + patch] += 1
    return _unit(np.clip(total / cover, 0, None))


def grad_cam(model, digits: np.ndarray, classes: np.ndarray) -> np.ndarray:  # model: keras.Model
    """Grad-CAM maps (N, 28, 28) on the last convolution of Keras `model` (the plain network inside a
    test-time-shift average; an ensemble's, the mean of its members' maps), upsampled bilinearly, each
    scaled to [0, 1]."""
    if not len(digits):
        return np.zeros((0, 28, 28), np.float32)
    return _unit(np.mean([_grad_cam(network, digits, classes) for network in _networks(model)], axis=0))


def _networks(model) -> list:
    """The networks (`models.build`'s layer lists, Sequential) inside `model`: itself, or those nested in it."""
    import keras

    if isinstance(model, keras.Sequential):
        return [model]
    return [network for layer in model.layers if isinstance(layer, keras.Model) for network in _networks(layer)]


def _grad_cam(network, digits: np.ndarray, classes: np.ndarray) -> np.ndarray:
    import keras
    import tensorflow as tf

    feature_maps = (keras.layers.Conv2D, keras.Model)  # a model nested in a network is a residual block
    last_conv = [layer for layer in network.layers if isinstance(layer, feature_maps)][-1]
    outputs = tf.convert_to_tensor(digits, tf.float32)
    with tf.GradientTape() as tape:
        for layer in network.layers:  # layer by layer, keeping the last convolution's output
            outputs = layer(outputs, training=False)
            if layer is last_conv:
                activations = outputs
        score = tf.gather(outputs, classes, axis=1, batch_dims=1)
    weights = tf.reduce_mean(tape.gradient(score, activations), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
    return _unit(tf.image.resize(cam, (28, 28)).numpy()[..., 0])


def deletion_curve(
    predictor: Predictor, digits: np.ndarray, classes: np.ndarray, maps: np.ndarray, steps: int
) -> np.ndarray:
    """The mean probability of `classes` as each digit's ink is hidden, most salient on `maps` first:
    `steps` + 1 points, from nothing hidden to all of it."""
    hidden = np.repeat(digits[:, None], steps + 1, axis=1)
    for i, (digit, saliency) in enumerate(zip(digits, maps, strict=True)):
        ink = np.flatnonzero(digit)
        order = ink[np.argsort(-saliency.ravel()[ink], kind="stable")]
        for step in range(1, steps + 1):
            hidden[i, step].ravel()[order[: round(step / steps * len(order))]] = 0
    probabilities = _class_probability(predictor, hidden.reshape(-1, 28, 28), np.repeat(classes, steps + 1))
    return probabilities.reshape(len(digits), steps + 1).mean(axis=0)


def deletion_auc(curve: np.ndarray) -> float:
    """The area under a deletion curve over the fraction of ink hidden, 0 to 1: lower, the map found what mattered."""
    return float(np.trapezoid(curve, dx=1 / (len(curve) - 1)))


def deletion_test(
    predictor: Predictor, digits: np.ndarray, classes: np.ndarray, maps: dict[str, np.ndarray], seed: int, steps: int
) -> dict:
    """For each map (by name) and for a random order (seeded), the area under the deletion curve of
    `classes` (the digits as read); and their mean probability before anything is hidden."""
    random_maps = np.random.default_rng(seed).random(digits.shape)
    curves = {
        name: deletion_curve(predictor, digits, classes, m, steps)
        for name, m in (maps | {"random": random_maps}).items()
    }
    return {"images": len(digits), "start_probability": float(curves["random"][0])} | {
        f"{name}_deletion_auc": deletion_auc(curve) for name, curve in curves.items()
    }


def _class_probability(predictor: Predictor, digits: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return predict_in_batches(predictor, digits, BATCH)[np.arange(len(digits)), classes]


def _unit(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum (an all-zero map stays zero)."""
    top = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, top, out=np.zeros_like(maps, dtype=np.float32), where=top > 0).astype(np.float32)
