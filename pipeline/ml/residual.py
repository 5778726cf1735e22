"""A pre-activation residual block (He et al. 2016, "Identity Mappings in Deep Residual Networks") as
one Keras layer, so that `model.arch: resnet` stays a list of layers like every other architecture.

Registered with Keras' serialisation: a saved model loads with `safe_mode=True` wherever this module has
been imported (`pipeline.ml.models` imports it; so does every loader of a saved model).
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="pipeline")
class PreActivationBlock(layers.Layer):
    """BatchNorm, ReLU, 3x3 convolution, twice, added to the input; the first convolution strides by
    `stride`, and where that or the width changes, the shortcut is a 1x1 convolution of the normalised input."""

    def __init__(self, filters: int, stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride = filters, stride
        self.norm_in, self.norm_mid = layers.BatchNormalization(), layers.BatchNormalization()
        self.conv_in = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)
        self.conv_out = layers.Conv2D(filters, 3, padding="same", use_bias=False)
        self.projection: layers.Conv2D | None = None

    def build(self, input_shape: tuple) -> None:
        self.norm_in.build(input_shape)
        self.conv_in.build(input_shape)
        inner = self.conv_in.compute_output_shape(input_shape)
        self.norm_mid.build(inner)
        self.conv_out.build(inner)
        if self.stride != 1 or input_shape[-1] != self.filters:
            self.projection = layers.Conv2D(self.filters, 1, self.stride, use_bias=False)
            self.projection.build(input_shape)

    def call(self, inputs, training: bool = False):
        activated = ops.relu(self.norm_in(inputs, training=training))
        shortcut = inputs if self.projection is None else self.projection(activated)
        inner = ops.relu(self.norm_mid(self.conv_in(activated), training=training))
        return self.conv_out(inner) + shortcut

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self.conv_in.compute_output_shape(input_shape)

    def get_config(self) -> dict:
        return super().get_config() | {"filters": self.filters, "stride": self.stride}
