"""MAML: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017, arXiv:1703.03400).

For each task i of a meta-batch (Algorithm 2 of the paper)::

    phi_i = theta - alpha * grad_theta L_support_i(theta)          # inner loop, `inner_steps` times
    theta <- theta - beta * grad_theta sum_i L_query_i(phi_i)      # outer loop (Keras optimizer)

The outer gradient flows through the inner updates, so it holds the second-order term
(Hessian-vector products); nested ``tf.GradientTape`` s compute it exactly. ``first_order=True``
drops that term (first-order MAML, section 5.2 of the paper): inner gradients are constants.

BatchNorm, as in the paper's code: batch statistics of the batch at hand (support in the inner
loop, query in the outer loss and at evaluation: transductive), no running statistics during
meta-training. ``adapt`` returns a classifier whose BatchNorm layers hold the support set's
statistics, so that it can classify one image at a time.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.base import OptimizationLearner, accuracy, cross_entropy


@dataclasses.dataclass
class MAMLConfig:
    """Attributes:
        inner_steps: gradient steps on the support set per task while meta-training.
        inner_lr: inner-loop learning rate alpha.
        first_order: first-order MAML (no second-order term).
        test_inner_steps: inner steps at evaluation and in ``adapt`` (the paper uses more than in
            training); ``None``: ``inner_steps``.
    """

    inner_steps: int = 1
    inner_lr: float = 0.4
    first_order: bool = False
    test_inner_steps: int | None = 3

    def __post_init__(self):
        if self.inner_steps < 1 or (self.test_inner_steps is not None and self.test_inner_steps < 1):
            raise ValueError("inner steps must be at least 1")
        if self.inner_lr <= 0:
            raise ValueError(f"inner_lr must be positive, got {self.inner_lr}")


class MAML(OptimizationLearner):
    """MAML / first-order MAML over any Keras classifier (see the module docstring)."""

    name = "maml"
    config_class = MAMLConfig

    def meta_gradients(self, support_x, support_y, query_x, query_y):
        """``(gradients, loss, accuracy)`` of the mean query loss over the meta-batch."""
        variables = self.meta_variables
        with tf.GradientTape() as outer:
            theta = self.weights()
            losses, accuracies = [], []
            for i in range(support_x.shape[0]):  # static meta-batch: tasks run in parallel
                phi = self.inner_loop(theta, support_x[i], support_y[i], self.config.inner_steps)
                logits = self.forward(phi, query_x[i])
                losses.append(cross_entropy(logits, query_y[i]))
                accuracies.append(accuracy(logits, query_y[i]))
            loss = tf.add_n(losses) / len(losses)
        return outer.gradient(loss, variables), loss, tf.add_n(accuracies) / len(accuracies)

    def _meta_train_step(self, support_x, support_y, query_x, query_y):
        grads, loss, acc = self.meta_gradients(support_x, support_y, query_x, query_y)
        self.optimizer.apply_gradients(zip(grads, self.meta_variables))
        return {"loss": loss, "accuracy": acc}

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        theta = self.weights()
        losses, accuracies = [], []
        for i in range(support_x.shape[0]):
            phi = self.inner_loop(theta, support_x[i], support_y[i], self.test_inner_steps,
                                  differentiable=False)
            logits = self.forward(phi, query_x[i])
            losses.append(cross_entropy(logits, query_y[i]))
            accuracies.append(accuracy(logits, query_y[i]))
        return {"loss": tf.stack(losses), "accuracy": tf.stack(accuracies)}
