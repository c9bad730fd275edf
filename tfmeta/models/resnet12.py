"""ResNet-12, the backbone of TADAM (Oreshkin et al., 2018) and MetaOptNet (Lee et al., 2019).

Four residual blocks; each is three 3x3 conv -> BatchNorm -> LeakyReLU(0.1) layers (the last
without its activation until after the residual sum), a 1x1 conv + BatchNorm shortcut, then 2x2
max-pooling. Widths 64-160-320-640. DropBlock (Ghiasi, Lin & Le, NeurIPS 2018) is optional, as in
MetaOptNet, on the last two blocks.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfmeta")
class DropBlock(keras.layers.Layer):
    """Drops contiguous ``block_size`` x ``block_size`` regions of feature maps while training."""

    def __init__(self, rate: float = 0.1, block_size: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.block_size = int(block_size)

    def call(self, x, training=False):
        if not training or self.rate <= 0:
            return x
        height, width = x.shape[1], x.shape[2]
        block = min(self.block_size, height, width)
        # gamma makes the expected dropped fraction `rate` (equation 1 of the paper).
        gamma = (self.rate / block ** 2) * (height * width) / (
            max(height - block + 1, 1) * max(width - block + 1, 1))
        centres = tf.cast(tf.random.uniform(tf.shape(x)) < gamma, x.dtype)
        dropped = tf.nn.max_pool2d(centres, block, 1, "SAME")
        keep = 1.0 - dropped
        scale = tf.cast(tf.size(keep), x.dtype) / (tf.reduce_sum(keep) + 1e-6)
        return x * keep * scale

    def get_config(self):
        return dict(super().get_config(), rate=self.rate, block_size=self.block_size)


def resnet12(input_shape=(84, 84, 3), outputs: int | None = None,
             widths=(64, 160, 320, 640), dropblock: float = 0.0, pooling: str = "avg",
             name: str = "resnet12") -> keras.Model:
    """ResNet-12 as a Keras model.

    Args:
        input_shape: ``(height, width, channels)``.
        outputs: units of a final ``Dense`` head (MAML family); ``None``: embedding only.
        widths: filters of the four blocks.
        dropblock: DropBlock rate on blocks 3 and 4 (0 disables it; MetaOptNet uses 0.1).
        pooling: ``avg`` (global average, 640 features), ``flatten``, or ``none`` (feature maps,
            for Relation Networks; no head allowed).
    """
    if pooling not in ("avg", "flatten", "none"):
        raise ValueError(f"pooling must be avg, flatten or none, got {pooling!r}")
    if pooling == "none" and outputs is not None:
        raise ValueError("a classifier head needs pooled features")
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for b, width in enumerate(widths):
        shortcut = keras.layers.Conv2D(width, 1, use_bias=False, name=f"block{b + 1}_short")(x)
        shortcut = keras.layers.BatchNormalization(name=f"block{b + 1}_short_bn")(shortcut)
        for c in range(3):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                    name=f"block{b + 1}_conv{c + 1}")(x)
            x = keras.layers.BatchNormalization(name=f"block{b + 1}_bn{c + 1}")(x)
            if c < 2:
                x = keras.layers.LeakyReLU(0.1)(x)
        x = keras.layers.LeakyReLU(0.1)(keras.layers.Add()([x, shortcut]))
        x = keras.layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(x)
        if dropblock > 0 and b >= 2:
            x = DropBlock(dropblock, block_size=5 if b == 2 else 1, name=f"block{b + 1}_drop")(x)
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif pooling == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    if outputs is not None:
        x = keras.layers.Dense(outputs, name="head")(x)
    return keras.Model(inputs, x, name=name)
