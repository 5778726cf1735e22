"""The weight average training validates, keeps and reports (`train.ema_momentum`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class WeightAverage(keras.callbacks.Callback):
    """Keeps a bias-corrected moving average of the weights; validation and early stopping see it.

    After step t the average is the `momentum`-weighted mean of the weights of steps 1 to t, as Adam
    corrects its moments (Keras' own `use_ema` starts from the initial weights, which still make up
    82% of it after 100 steps at 0.998).  The average is copied in for each validation, with BatchNorm
    statistics of its own (`BatchStatistics`: the running weights' ones describe other weights), and
    stays in for the callbacks after this one at the epoch's end, so early stopping records and
    restores it; the running weights and statistics are copied back, exactly, before training goes on.
    """

    def __init__(self, momentum: float, images: np.ndarray, batch_size: int) -> None:
        """`images`: the training images whose batch statistics, `batch_size` at a time, become the
        average's BatchNorm statistics."""
        super().__init__()
        self.momentum, self.images, self.batch_size = momentum, images, batch_size

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._steps, self._running = 0, None
        self._average = [keras.Variable(w, trainable=False) for w in self.model.trainable_weights]
        self._batch_statistics = BatchStatistics(self.model, self.images, self.batch_size)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._steps += 1
        m, t = self.momentum, self._steps
        momentum = m * (1 - m ** (t - 1)) / (1 - m**t)  # 0 at the first step, tends to m
        for average, weight in zip(self._average, self.model.trainable_weights, strict=True):
            average.assign(momentum * average + (1 - momentum) * weight)

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._running is None:
            self._running = [keras.ops.copy(w) for w in self.model.weights]
            for weight, average in zip(self.model.trainable_weights, self._average, strict=True):
                weight.assign(average)
            self._batch_statistics()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._running is not None:
            for weight, running in zip(self.model.weights, self._running, strict=True):
                weight.assign(running)
            self._running = None


class BatchStatistics:
    """Sets each BatchNorm layer's moving mean and variance to the mean of its batch statistics over
    `images`, as the model infers (no augmentation, no dropout, so no random draw): SWA's BatchNorm
    update (Izmailov et al. 2018).  Calling it on a model without BatchNorm does nothing."""

    def __init__(self, model: keras.Sequential, images: np.ndarray, batch_size: int) -> None:
        self.layers = model.layers
        self.norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        self.statistics = [variable for norm in self.norms for variable in (norm.moving_mean, norm.moving_variance)]
        self.batches = [tf.constant(images[i : i + batch_size], tf.float32) for i in range(0, len(images), batch_size)]
        self.of_batch = tf.function(self.of_batch)  # traced once, at the first call

    def of_batch(self, activations: tf.Tensor) -> list[tf.Tensor]:
        """The statistics of one batch (each BatchNorm's momentum at 0, so its call sets them to the batch's)."""
        for layer in self.layers:
            activations = layer(activations, training=layer in self.norms)
        return [keras.ops.copy(variable) for variable in self.statistics]

    def __call__(self) -> None:
        if not self.norms:
            return
        momenta = [norm.momentum for norm in self.norms]
        for norm in self.norms:
            norm.momentum = 0.0
        batches = [self.of_batch(batch) for batch in self.batches]
        for variable, values in zip(self.statistics, zip(*batches, strict=True), strict=True):
            variable.assign(keras.ops.mean(keras.ops.stack(values), axis=0))
        for norm, momentum in zip(self.norms, momenta, strict=True):
            norm.momentum = momentum
