"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016,
arXiv:1606.04080), without full context embeddings.

For each task (equations 1-2 of the paper)::

    a(x, x_i) = softmax_i(cos(f(x), g(x_i)))          # attention over the support set
    P(y = k | x, S) = sum_i a(x, x_i) * [y_i == k]    # attention-weighted support labels
    minimise -log P(y | x, S) over query images

with f = g = the embedding network. ``temperature`` scales the cosines before the softmax (the
paper's softmax is over raw cosines; a scale speeds up training). Full context embeddings (the
paper's LSTM re-embeddings of the support set) are not implemented yet.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.metric import MetricLearner


@dataclasses.dataclass
class MatchingConfig:
    """Attributes:
        temperature: multiplies cosine similarities before the attention softmax.
    """

    temperature: float = 10.0

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


def attention(support, query, temperature):
    """``a [tasks, Q, S]``: softmax over the support of scaled cosine similarities."""
    s = tf.math.l2_normalize(support, -1)
    q = tf.math.l2_normalize(query, -1)
    return tf.nn.softmax(temperature * tf.einsum("tqd,tsd->tqs", q, s), axis=-1)


class MatchingNetwork(MetricLearner):
    """Matching Networks over any Keras embedding model."""

    name = "matching"
    config_class = MatchingConfig

    def score(self, support, support_y, query, ways, training=False):
        """Log-probabilities ``[tasks, Q, ways]`` (softmax of them gives back P(y | x, S))."""
        a = attention(support, query, self.config.temperature)
        probabilities = tf.einsum("tqs,tsw->tqw", a, tf.one_hot(support_y, ways, dtype=a.dtype))
        return tf.math.log(probabilities + 1e-12)
