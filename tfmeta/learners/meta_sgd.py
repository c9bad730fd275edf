"""Meta-SGD (Li, Zhou, Chen & Li, 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot
Learning", arXiv:1707.09835).

MAML whose inner learning rate is a vector alpha with one entry per weight, meta-learned with the
weights (Algorithm 1 of the paper)::

    phi_i = theta - alpha * grad_theta L_support_i(theta)             # one step, elementwise
    (theta, alpha) <- (theta, alpha) - beta * grad_(theta, alpha) sum_i L_query_i(phi_i)

As in the paper, adaptation is one step, in meta-training and at test (alpha is learned for one
step), on the mean support loss, and alpha starts uniformly random in [0.005, 0.1] (section 4.1).
alpha is saved in checkpoints beside the model.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.inner import check_inner_options, sgd_inner_loop
from tfmeta.learners.maml import MAML
from tfmeta.learners.registry import register
from tfmeta.settings import setting


@dataclasses.dataclass
class MetaSGDConfig:
    """Attributes (defaults: the paper's):
        inner_steps: inner steps while meta-training (1: alpha is learned for one step).
        test_inner_steps: inner steps at test (1); ``None``: ``inner_steps``.
        initial_rates: ``(low, high)``: alpha's entries start uniform in this range ([0.005, 0.1]).
        first_order: drop the second-order term of the meta-gradient.
        inner_reduction: the inner loss, ``"mean"`` cross-entropy (or MAML's ``"sum/shots"``).
    """

    inner_steps: int = setting(1, "inner-loop steps while meta-training", "inner-steps")
    test_inner_steps: int | None = setting(1, "inner-loop steps at test", "test-inner-steps")
    initial_rates: tuple = (0.005, 0.1)
    first_order: bool = False
    inner_reduction: str = "mean"

    def __post_init__(self):
        check_inner_options(self.inner_steps, self.test_inner_steps, self.inner_reduction)
        low, high = self.initial_rates
        if not 0 < low <= high:
            raise ValueError(f"initial_rates must be 0 < low <= high, got {self.initial_rates}")


@register
class MetaSGD(MAML):
    """Meta-SGD over any Keras classifier."""

    name = "metasgd"
    config_class = MetaSGDConfig

    def build_parts(self) -> dict:
        low, high = (float(r) for r in self.config.initial_rates)
        self.rates = tf.Module(name="meta_sgd_rates")
        self.rates.alpha = [
            tf.Variable(tf.random.uniform(v.shape, low, high, dtype=v.dtype), name=f"alpha_{i}")
            for i, v in enumerate(self.model.trainable_variables)]
        return {"rates": self.rates}

    def inner_loop(self, theta, x, y, steps, differentiable=True):
        alpha = [tf.convert_to_tensor(a) for a in self.rates.alpha]
        return sgd_inner_loop(self.forward, theta, x, y, steps, alpha,
                              differentiable=differentiable, first_order=self.config.first_order,
                              loss_fn=self.inner_loss, loss_scale=self.inner_loss_scale())
