"""Differentiable closed-form ridge-regression head: R2-D2 (Bertinetto, Henriques, Torr & Vedaldi,
ICLR 2019, arXiv:1805.08136) and MetaOptNet-RR (Lee, Maji, Ravichandran & Soatto, CVPR 2019,
arXiv:1904.03758).

For each task, with support embeddings X [S, D] and one-hot labels Y [S, ways]::

    W = argmin ||X W - Y||^2 + lambda ||W||^2
      = X^T (X X^T + lambda I_S)^-1 Y       if S < D   (Woodbury identity: an S x S solve)
      = (X^T X + lambda I_D)^-1 X^T Y       otherwise  (a D x D solve)
    logits = scale * (X_query W)            # scale meta-learned (R2-D2's bias is a softmax no-op)

Defaults are MetaOptNet-RR's (lambda = 50, scale starting at 1); ``learn_l2=True`` meta-learns
lambda as R2-D2 does (through log lambda, starting at ``l2``).

The solve is differentiable, so the query loss trains the embedding through the head.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from tfmeta.learners.metric import CalibratedMetricLearner
from tfmeta.learners.registry import register


@dataclasses.dataclass
class RidgeConfig:
    """Attributes:
        l2: the ridge penalty lambda (50 in MetaOptNet-RR); the initial one with ``learn_l2``.
        learn_l2: meta-learn lambda, as R2-D2 does.
        scale: initial output scale (meta-learned; 1 in MetaOptNet's code).

    Label smoothing, as for every learner: ``train.label_smoothing`` (``create(label_smoothing=)``).
    """

    l2: float = 50.0
    learn_l2: bool = False
    scale: float = 1.0

    def __post_init__(self):
        if self.l2 <= 0:
            raise ValueError(f"l2 must be positive, got {self.l2}")


def ridge_weights(support, targets, l2):
    """Closed-form ridge solution ``W [tasks, D, ways]`` for ``support [tasks, S, D]``."""
    shots, dim = support.shape[-2], support.shape[-1]

    def woodbury():  # solve in S x S
        n = tf.shape(support)[-2] if shots is None else shots
        gram = tf.einsum("tsd,trd->tsr", support, support) + l2 * tf.eye(n, dtype=support.dtype)
        return tf.einsum("tsd,tsw->tdw", support, tf.linalg.solve(gram, targets))

    def primal():  # solve in D x D
        d = tf.shape(support)[-1] if dim is None else dim
        gram = tf.einsum("tsd,tse->tde", support, support) + l2 * tf.eye(d, dtype=support.dtype)
        return tf.linalg.solve(gram, tf.einsum("tsd,tsw->tdw", support, targets))

    if shots is not None and dim is not None:
        return woodbury() if shots < dim else primal()
    return tf.cond(tf.shape(support)[-2] < tf.shape(support)[-1], woodbury, primal)


@register
class RidgeHead(CalibratedMetricLearner):
    """A ridge-regression head on any Keras embedding model."""

    name = "ridge"
    config_class = RidgeConfig

    def build_parts(self) -> dict:
        parts = super().build_parts()
        if self.config.learn_l2:
            self.calibration.log_l2 = tf.Variable(math.log(self.config.l2), name="log_l2")
        return parts

    @property
    def l2(self):
        if self.config.learn_l2:
            return tf.exp(self.calibration.log_l2)
        return self.config.l2

    def score(self, support, support_y, query, ways, training=False):
        targets = tf.one_hot(support_y, ways, dtype=support.dtype)
        weights = ridge_weights(support, targets, self.l2)
        return self.calibrate(tf.einsum("tqd,tdw->tqw", query, weights))
