"""Relation Networks (Sung, Yang, Zhang, Xiang, Torr & Hospedales, CVPR 2018, arXiv:1711.06025).

An embedding module f keeps feature maps; a learned relation module g scores each (class, query)
pair (section 3.2 of the paper)::

    c_k = sum of f(x) over the support images of class k            # K-shot: summed feature maps
          (shot_pooling="mean": their mean, so one model serves every K)
    r_{k,q} = g(concat(c_k, f(x_q)))                                  # in (0, 1), a sigmoid
    minimise sum (r_{k,q} - [y_q == k])^2                            # MSE on one-hot targets

g is two conv blocks (conv 3x3 64, BatchNorm, ReLU, max-pool 2 where the map allows) and two
fully connected layers (8 units with ReLU, then 1 with a sigmoid). The embedding is Conv4 with
pooling in its first two blocks only (``conv4(flatten=False, pooled_blocks=2)``).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfmeta.learners.losses import smoothed_one_hot
from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.registry import register


@dataclasses.dataclass
class RelationConfig:
    """Attributes:
        width: filters of the relation module's convolutions (64 in the paper).
        hidden: units of its first fully connected layer (8 in the paper).
        shot_pooling: how a class's K support feature maps become one: ``"sum"`` (the paper,
            which trains one model per K) or ``"mean"`` (the same for 1-shot training; a model
            then meets maps of the same scale at any K it serves).
    """

    width: int = 64
    hidden: int = 8
    shot_pooling: str = "sum"

    def __post_init__(self):
        if self.shot_pooling not in ("sum", "mean"):
            raise ValueError(f"shot_pooling must be sum or mean, got {self.shot_pooling!r}")


def relation_module(feature_shape, width=64, hidden=8) -> keras.Model:
    """g: pairs of feature maps ``[h, w, 2c]`` -> relation score in (0, 1)."""
    height, breadth, channels = feature_shape
    inputs = keras.Input((height, breadth, 2 * channels), name="pair")
    x = inputs
    for i in range(2):
        x = keras.layers.Conv2D(width, 3, padding="same", name=f"rel_conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"rel_bn{i + 1}")(x)
        x = keras.layers.ReLU()(x)
        if x.shape[1] >= 2 and x.shape[2] >= 2:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hidden, activation="relu", name="rel_fc1")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="rel_fc2")(x)
    return keras.Model(inputs, outputs, name="relation_module")


@register
class RelationNetwork(MetricLearner):
    """Relation Networks over any Keras model that outputs feature maps ``[h, w, c]``."""

    name = "relation"
    config_class = RelationConfig
    flatten_features = False
    backbone_output = "feature_maps"

    def build_parts(self) -> dict:
        shape = self.feature_shape
        if len(shape) != 3:
            raise ValueError(f"Relation Networks need feature maps [h, w, c], the model gives "
                             f"{shape}; use conv4(..., flatten=False, pooled_blocks=2)")
        self.relation = relation_module(shape, self.config.width, self.config.hidden)
        return {"relation": self.relation}

    def score(self, support, support_y, query, ways, training=False):
        """Relation scores ``[tasks, Q, ways]`` in (0, 1)."""
        one_hot = tf.one_hot(support_y, ways, dtype=support.dtype)
        if self.config.shot_pooling == "mean":
            one_hot /= tf.maximum(tf.reduce_sum(one_hot, 1, keepdims=True), 1.0)
        classes = tf.einsum("tsk,tsxyc->tkxyc", one_hot, support)  # [tasks, ways, h, w, c]
        tasks, queries = tf.shape(query)[0], tf.shape(query)[1]
        pairs = tf.concat([
            tf.broadcast_to(classes[:, None], tf.concat([[tasks, queries, ways],
                                                         tf.shape(classes)[2:]], 0)),
            tf.broadcast_to(query[:, :, None], tf.concat([[tasks, queries, ways],
                                                          tf.shape(query)[2:]], 0))], axis=-1)
        flat = tf.reshape(pairs, tf.concat([[-1], tf.shape(pairs)[3:]], 0))
        scores = self.relation(flat, training=training)
        return tf.reshape(scores, [tasks, queries, ways])

    def episode_loss(self, support, support_y, query, query_y, ways):
        scores = self.score(support, support_y, query, ways, training=True)
        targets = smoothed_one_hot(query_y, ways, self.label_smoothing, scores.dtype)
        return tf.reduce_mean(tf.reduce_sum(tf.square(scores - targets), -1), -1), scores
