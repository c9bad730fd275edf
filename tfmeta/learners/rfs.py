"""RFS: "Rethinking Few-Shot Image Classification: a Good Embedding Is All You Need?" (Tian, Wang,
Krishnan, Tenenbaum & Isola, ECCV 2020, arXiv:2003.11539).

The embedding trains as Baseline's does (:mod:`tfmeta.learners.baseline`): one linear classifier
of every training class, on minibatches, no episodes. A support set gets a logistic regression on
L2-normalised features (the paper: scikit-learn's, whose objective is the summed cross-entropy
plus ``||W||^2 / (2 C)``, C = 1)::

    z = f(x) / ||f(x)||
    W, b = argmin  sum over support of cross-entropy(W z + b, y) + ||W, b||^2 / (2 C)
    logits of a query = W z_query + b

Left out: the paper's self-distillation generations (RFS-distill).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.baseline import Baseline, fit_linear_head, linear_logits
from tfmeta.learners.registry import register


@dataclasses.dataclass
class RFSConfig:
    """Attributes:
        classes: training classes of the classifier head (0: a run fills in its number of
            training classes; ``create`` needs it).
        steps: gradient steps of the logistic regression fitted to a support set.
        inverse_l2: scikit-learn's ``C``, the inverse of the regression's L2 penalty (1.0).
    """

    classes: int = 0
    steps: int = 100
    inverse_l2: float = 1.0

    def __post_init__(self):
        if self.classes < 0 or self.steps < 1 or self.inverse_l2 <= 0:
            raise ValueError("classes must be >= 0, steps and inverse_l2 positive")


@register
class RFS(Baseline):
    """RFS: Baseline's training, a logistic regression on normalised features at adaptation."""

    name = "rfs"
    config_class = RFSConfig

    def score(self, support, support_y, query, ways, training=False):
        support, query = tf.math.l2_normalize(support, -1), tf.math.l2_normalize(query, -1)
        count = tf.cast(tf.shape(support)[1], support.dtype)
        head = fit_linear_head(support, support_y, ways, self.config.steps,
                               1.0 / (self.config.inverse_l2 * count))  # the mean's penalty
        return linear_logits(query, head)
