"""Meta-SGD (Li, Zhou, Chen & Li, 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot
Learning", arXiv:1707.09835).

MAML whose inner learning rate is a vector alpha with one entry per weight, meta-learned with the
weights (Algorithm 1 of the paper)::

    phi_i = theta - alpha * grad_theta L_support_i(theta)             # elementwise product
    (theta, alpha) <- (theta, alpha) - beta * grad_(theta, alpha) sum_i L_query_i(phi_i)

alpha starts at ``inner_lr`` everywhere and is saved in checkpoints beside the model.
"""

from __future__ import annotations

import tensorflow as tf

from tfmeta.learners.inner import sgd_inner_loop
from tfmeta.learners.maml import MAML, MAMLConfig


class MetaSGD(MAML):
    """Meta-SGD over any Keras classifier."""

    name = "metasgd"
    config_class = MAMLConfig

    def build_parts(self) -> dict:
        self.rates = tf.Module(name="meta_sgd_rates")
        self.rates.alpha = [
            tf.Variable(tf.fill(v.shape, tf.cast(self.config.inner_lr, v.dtype)), name=f"alpha_{i}")
            for i, v in enumerate(self.model.trainable_variables)]
        return {"rates": self.rates}

    def inner_loop(self, theta, x, y, steps, differentiable=True):
        alpha = [tf.convert_to_tensor(a) for a in self.rates.alpha]
        return sgd_inner_loop(self.forward, theta, x, y, steps, alpha,
                              differentiable=differentiable, first_order=self.config.first_order)
