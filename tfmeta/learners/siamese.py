"""Siamese networks for one-shot recognition (Koch, Zemel & Salakhutdinov, ICML Deep Learning
Workshop 2015).

A twin network f embeds both images of a pair; a learned weighted L1 distance gives the probability
that they show the same class::

    p(same | x1, x2) = sigmoid(w . |f(x1) - f(x2)| + b)
    training: balanced binary cross-entropy over every (query, support) pair of an episode
    one-shot classification: the class of the most similar support image

The class logit of a query is the largest pair logit over that class's support images, so
``argmax`` of the logits is the paper's nearest-support rule.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfmeta.learners.metric import MetricLearner
from tfmeta.learners.registry import register


def class_logits(pairs, support_y, ways):
    """``[tasks, Q, ways]``: for each class, the largest pair logit over its support images."""
    member = tf.one_hot(support_y, ways, on_value=True, off_value=False)      # [tasks, S, ways]
    masked = tf.where(member[:, None], pairs[..., None], pairs.dtype.min)     # [tasks, Q, S, ways]
    return tf.reduce_max(masked, axis=2)


@dataclasses.dataclass
class SiameseConfig:
    """No options yet; kept for the common learner interface."""


@register
class SiameseNetwork(MetricLearner):
    """Siamese networks over any Keras embedding model."""

    name = "siamese"
    config_class = SiameseConfig

    def build_parts(self) -> dict:
        self.pair_head = keras.layers.Dense(1, name="siamese_l1_head")
        self.pair_head.build((None, int(self.feature_shape[-1])))
        return {"pair_head": self.pair_head}

    def pair_logits(self, support, query):
        """``[tasks, Q, S]`` logits of p(same) for every (query, support) pair."""
        distance = tf.abs(query[:, :, None] - support[:, None])
        return self.pair_head(distance)[..., 0]

    def score(self, support, support_y, query, ways, training=False):
        return class_logits(self.pair_logits(support, query), support_y, ways)

    def episode_loss(self, support, support_y, query, query_y, ways):
        pairs = self.pair_logits(support, query)
        same = tf.cast(tf.equal(query_y[:, :, None], support_y[:, None]), pairs.dtype)
        # Balance same and different pairs (an N-way episode has N-1 times more different pairs).
        positives = tf.reduce_sum(same, [1, 2], keepdims=True)                 # per task
        negatives = tf.cast(tf.reduce_prod(tf.shape(same)[1:]), pairs.dtype) - positives
        weights = same / (2 * positives) + (1 - same) / (2 * negatives)
        targets = same * (1.0 - self.label_smoothing) + self.label_smoothing / 2  # smoothed
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=pairs)
        return tf.reduce_sum(weights * losses, [1, 2]), class_logits(pairs, support_y, ways)
