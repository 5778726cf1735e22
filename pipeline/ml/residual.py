"""Pre-activation residual blocks (He et al. 2016, "Identity Mappings in Deep Residual Networks"), each
a small Keras model of Keras' own layers nested in the network, so that `model.arch: resnet` stays a
list of layers like every other architecture and its saved file loads with plain Keras (no class of
this project to register: `mlflow models serve` and any other process load it as they load the rest).
"""

from __future__ import annotations

import keras
from keras import layers

FEATURE_SIZE = 28  # the images' side where the blocks start (no pooling before them)


def residual_blocks(widths: tuple[int, ...], per_width: int, channels: int) -> list[keras.Model]:
    """`per_width` blocks at each of `widths` filters, the first of each wider one halving the image,
    starting from `channels` feature maps of FEATURE_SIZE x FEATURE_SIZE."""
    blocks, size = [], FEATURE_SIZE
    for width in widths:
        for index in range(per_width):
            stride = 2 if index == 0 and width != channels else 1
            blocks.append(pre_activation_block((size, size, channels), width, stride, name=f"block_{len(blocks) + 1}"))
            size, channels = -(-size // stride), width
    return blocks


def pre_activation_block(shape: tuple[int, int, int], filters: int, stride: int, name: str) -> keras.Model:
    """BatchNorm, ReLU, 3x3 convolution, twice, added to the input; the first convolution strides by
    `stride`, and where that or the width changes, the shortcut is a 1x1 convolution of the normalised input."""
    inputs = keras.Input(shape)
    activated = layers.ReLU()(layers.BatchNormalization()(inputs))
    inner = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)(activated)
    inner = layers.ReLU()(layers.BatchNormalization()(inner))
    inner = layers.Conv2D(filters, 3, padding="same", use_bias=False)(inner)
    shortcut = inputs
    if stride != 1 or shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False)(activated)
    return keras.Model(inputs, layers.Add()([inner, shortcut]), name=name)
