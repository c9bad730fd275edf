"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017, arXiv:1703.05175).

For each task (Algorithm 1 of the paper)::

    c_k = mean of f(x) over the support images of class k          # prototypes
    p(y = k | x) = softmax_k(-d(f(x), c_k))                          # d: squared Euclidean
    minimise the query cross-entropy by gradient descent on f

``distance="cosine"`` uses scaled cosine similarity instead. Training episodes may have more ways
than test episodes (the paper trains 60-way for 5-way tests): the head works for any ways.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.registry import register


@dataclasses.dataclass
class ProtoNetConfig:
    """Attributes:
        distance: ``euclidean`` (squared, the paper's) or ``cosine``.
        cosine_scale: temperature multiplying cosine similarities.
    """

    distance: str = "euclidean"
    cosine_scale: float = 10.0

    def __post_init__(self):
        if self.distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be euclidean or cosine, got {self.distance!r}")


def prototypes(support, support_y, ways):
    """Class means ``[tasks, ways, D]`` of support embeddings ``[tasks, S, D]``."""
    one_hot = tf.one_hot(support_y, ways, dtype=support.dtype)               # [tasks, S, ways]
    sums = tf.einsum("tsw,tsd->twd", one_hot, support)
    return sums / tf.reduce_sum(one_hot, axis=1)[..., None]


@register
class ProtoNet(MetricLearner):
    """Prototypical Networks over any Keras embedding model."""

    name = "protonet"
    config_class = ProtoNetConfig

    def score(self, support, support_y, query, ways, training=False):
        centres = prototypes(support, support_y, ways)
        if self.config.distance == "cosine":
            q = tf.math.l2_normalize(query, -1)
            c = tf.math.l2_normalize(centres, -1)
            return self.config.cosine_scale * tf.einsum("tqd,twd->tqw", q, c)
        return -tf.reduce_sum(tf.square(query[:, :, None] - centres[:, None]), -1)
