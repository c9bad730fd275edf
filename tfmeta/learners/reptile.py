"""Reptile (Nichol, Achiam & Schulman, 2018, "On First-Order Meta-Learning Algorithms",
arXiv:1803.02999).

For each task i of a meta-batch (Algorithm 2 of the paper, batched version)::

    phi_i = SGD on task i's data for `inner_steps` steps, starting from theta
    theta <- theta + epsilon * (mean_i(phi_i) - theta)

Task i's data while meta-training is its support and query images together (``train_on_query``):
the paper meta-trains with more shots than it tests with (10 "train shots" for 1-shot Omniglot);
evaluation and ``adapt`` use the support set only. The query metrics reported while training are
then training-set figures; validation and test use unseen query images.

with epsilon annealed linearly from ``epsilon`` to 0 over training, as in the paper. The update is
given to the outer Keras optimizer as the "gradient" ``theta - mean_i(phi_i)``: with the default
``SGD(learning_rate=epsilon, linearly decayed)`` this is exactly the formula above; another
optimizer (Adam, say) treats it as a gradient, a variant the paper also discusses.

BatchNorm uses batch statistics throughout (the paper's transductive setting); ``adapt`` stores
the support set's statistics in the returned classifier.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfmeta.learners.base import OptimizationLearner, accuracy, cross_entropy


@dataclasses.dataclass
class ReptileConfig:
    """Attributes:
        inner_steps: SGD steps on the support set per task while meta-training.
        inner_lr: inner SGD learning rate.
        epsilon: initial outer step size, annealed linearly to 0 over training.
        test_inner_steps: inner steps at evaluation and in ``adapt``; ``None``: ``inner_steps``.
        train_on_query: while meta-training, the inner loop trains on support and query images.
    """

    inner_steps: int = 5
    inner_lr: float = 0.4
    epsilon: float = 1.0
    test_inner_steps: int | None = 10
    train_on_query: bool = True

    def __post_init__(self):
        if self.inner_steps < 1 or (self.test_inner_steps is not None and self.test_inner_steps < 1):
            raise ValueError("inner steps must be at least 1")
        if self.inner_lr <= 0 or self.epsilon <= 0:
            raise ValueError("inner_lr and epsilon must be positive")


class Reptile(OptimizationLearner):
    """Reptile over any Keras classifier (see the module docstring)."""

    name = "reptile"
    config_class = ReptileConfig

    @classmethod
    def default_optimizer(cls, config, total_steps: int | None = None,
                          learning_rate: float | None = None):
        """SGD with rate epsilon, annealed linearly to 0 over ``total_steps``."""
        rate = config.epsilon
        if total_steps:
            rate = keras.optimizers.schedules.PolynomialDecay(rate, total_steps, 0.0, power=1.0)
        return keras.optimizers.SGD(rate)

    def _adapt_all(self, support_x, support_y, query_x, query_y, steps, with_query=False):
        theta = self.weights()
        phis, losses, accuracies = [], [], []
        for i in range(support_x.shape[0]):
            x, y = support_x[i], support_y[i]
            if with_query:
                x, y = tf.concat([x, query_x[i]], 0), tf.concat([y, query_y[i]], 0)
            phi = self.inner_loop(theta, x, y, steps, differentiable=False)
            logits = self.forward(phi, query_x[i])
            phis.append(phi)
            losses.append(cross_entropy(logits, query_y[i]))
            accuracies.append(accuracy(logits, query_y[i]))
        return theta, phis, losses, accuracies

    def _meta_train_step(self, support_x, support_y, query_x, query_y):
        theta, phis, losses, accuracies = self._adapt_all(
            support_x, support_y, query_x, query_y, self.config.inner_steps,
            with_query=self.config.train_on_query)
        mean_phi = [tf.add_n(list(ws)) / len(phis) for ws in zip(*phis)]
        pseudo_gradients = [t - m for t, m in zip(theta, mean_phi)]
        self.optimizer.apply_gradients(zip(pseudo_gradients, self.model.trainable_variables))
        return {"loss": tf.add_n(losses) / len(losses),
                "accuracy": tf.add_n(accuracies) / len(accuracies)}

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        _, _, losses, accuracies = self._adapt_all(
            support_x, support_y, query_x, query_y, self.test_inner_steps)
        return {"loss": tf.stack(losses), "accuracy": tf.stack(accuracies)}
