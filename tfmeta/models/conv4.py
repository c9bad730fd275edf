"""Conv4: the four-block CNN of Vinyals et al. (2016), used by MAML (Finn et al., 2017) and
Prototypical Networks (Snell et al., 2017).

Each block is conv 3x3 (``width`` filters, same padding) -> BatchNorm -> ReLU -> max-pool 2x2
(-> dropout, optional: a regulariser of the robustness chapter, not in the papers' network).
28x28 inputs end at 1x1x64 (64 features), 84x84 at 5x5x64 (1600 features).
"""

from __future__ import annotations

import keras


def conv4(input_shape=(28, 28, 1), outputs: int | None = None, width: int = 64, blocks: int = 4,
          pooled_blocks: int | None = None, flatten: bool = True, dropout: float = 0.0,
          name: str = "conv4") -> keras.Model:
    """Conv4 as a Keras model; with ``outputs`` a linear classifier head is added on top.

    Args:
        input_shape: ``(height, width, channels)``.
        outputs: units of the final ``Dense`` layer (the ways, for MAML / Reptile); ``None`` leaves
            the flattened embedding as the output (metric learners).
        width: filters per convolution (64 in the papers; 32 for a quick run).
        blocks: number of conv blocks (4 in the papers).
        pooled_blocks: how many of the first blocks end in max-pooling (``None``: all; Relation
            Networks pool only the first two, to keep feature maps for the relation module).
        flatten: flatten the output; ``False`` returns feature maps (no head allowed).
        dropout: rate of a ``Dropout`` layer ending each block (0: no such layer, the papers'
            network; active only while meta-training).
    """
    if outputs is not None and not flatten:
        raise ValueError("a classifier head needs flatten=True")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    pooled_blocks = blocks if pooled_blocks is None else pooled_blocks
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for i in range(blocks):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
        if i < pooled_blocks:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"drop{i + 1}")(x)
    if flatten:
        x = keras.layers.Flatten(name="flatten")(x)
    if outputs is not None:
        x = keras.layers.Dense(outputs, name="head")(x)
    return keras.Model(inputs, x, name=name)
