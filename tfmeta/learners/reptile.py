"""Reptile (Nichol, Achiam & Schulman, 2018, "On First-Order Meta-Learning Algorithms",
arXiv:1803.02999), with the defaults of the paper's Omniglot code (github.com/openai/supervised-reptile).

For each task i of a meta-batch (Algorithm 2 of the paper, batched version)::

    D_i = train_shots images of each of the task's classes
    phi_i = theta, then `inner_steps` Adam steps (beta1 = 0) on minibatches of `inner_batch` from D_i
    theta <- theta + epsilon * (mean_i(phi_i) - theta)                # outer update

with epsilon annealed linearly from ``epsilon`` to 0 over training. While meta-training, ``D_i`` is
the task's support images followed by its query images, ``train_shots`` per class (10 in the
paper for Omniglot: it meta-trains on more shots than it tests with). At test time (evaluation,
``adapt``, served models) the inner loop runs ``test_inner_steps`` (50) steps on minibatches of
``test_inner_batch`` (5) support images.

The update is given to the outer Keras optimizer as the "gradient" ``theta - mean_i(phi_i)``: with
the default ``SGD(learning_rate=epsilon, linearly decayed)`` this is exactly the formula above.

Deviation from the paper's code, kept on purpose: the inner Adam's moments start from zero for
every task (the code shares one Adam across tasks, so its moments carry over from task to task);
fresh moments keep tasks independent and reproducible and let them run side by side.

BatchNorm uses batch statistics in the inner loop (the minibatch at hand). Evaluation reports the
accuracy as deployed (BatchNorm frozen at the support set's statistics, what ``adapt`` returns) and
the paper's transductive accuracy (all query images in one batch).
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
import tensorflow as tf

from tfmeta.errors import ConfigError
from tfmeta.learners.base import cross_entropy
from tfmeta.learners.optimization import OptimizationLearner
from tfmeta.learners.inner import adam_inner_loop, check_inner_options, sgd_inner_loop
from tfmeta.learners.registry import register
from tfmeta.settings import setting


@dataclasses.dataclass
class ReptileConfig:
    """Attributes (defaults: the paper's 5-way Omniglot settings):
        inner_steps: inner steps per task while meta-training (5).
        inner_lr: the inner optimizer's learning rate (Adam 0.001).
        inner_batch: minibatch size of the inner steps while meta-training (10); ``None``: all
            of the task's training images every step.
        train_shots: images per class the inner loop trains on while meta-training, support then
            query images (10); ``None``: the support set only.
        epsilon: initial outer step size, annealed linearly to 0 over training (1.0).
        test_inner_steps: inner steps at test time (50).
        test_inner_batch: minibatch size at test time (5); ``None``: the whole support set.
        inner_optimizer: ``"adam"`` (beta1 = 0, beta2 = 0.999, epsilon 1e-8, as in the paper's
            code) or ``"sgd"`` (plain gradient steps).
    """

    inner_steps: int = setting(5, "inner-loop steps while meta-training", "inner-steps")
    inner_lr: float = setting(0.001, "inner-loop learning rate", "inner-lr")
    inner_batch: int | None = 10
    train_shots: int | None = 10
    epsilon: float = 1.0
    test_inner_steps: int | None = setting(50, "inner-loop steps at test", "test-inner-steps")
    test_inner_batch: int | None = 5
    inner_optimizer: str = "adam"

    def __post_init__(self):
        check_inner_options(self.inner_steps, self.test_inner_steps)
        if self.inner_lr <= 0 or self.epsilon <= 0:
            raise ValueError("inner_lr and epsilon must be positive")
        for name in ("inner_batch", "train_shots", "test_inner_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None), got {value}")
        if self.inner_optimizer not in ("adam", "sgd"):
            raise ValueError(f"inner_optimizer must be 'adam' or 'sgd', got {self.inner_optimizer!r}")
        if self.inner_optimizer == "sgd" and (self.inner_batch, self.test_inner_batch) != (None, None):
            raise ValueError("inner_optimizer='sgd' trains full-batch: set inner_batch and "
                             "test_inner_batch to None")


@register
class Reptile(OptimizationLearner):
    """Reptile over any Keras classifier (see the module docstring)."""

    name = "reptile"
    xla_unsupported = "it picks each class's training images with shapes read from the labels"
    adversarial_queries = False  # no query loss to attack: its inner loop is its objective
    config_class = ReptileConfig
    @classmethod
    def default_optimizer(cls, config, total_steps: int | None = None,
                          learning_rate: float | None = None):
        """SGD with rate epsilon, annealed linearly to 0 over ``total_steps``; without
        ``total_steps`` epsilon cannot be annealed, and a one-line warning says so."""
        if learning_rate is not None:
            raise ConfigError("reptile has no outer learning rate: its outer step is the option "
                              "epsilon (--set learner.epsilon=VALUE)")
        rate = config.epsilon
        if not total_steps:
            warnings.warn(f"reptile: epsilon stays at {rate} (the paper anneals it linearly to 0 "
                          "over training): give total_steps (create(..., total_steps=N)) to "
                          "anneal it", stacklevel=2)
            return keras.optimizers.SGD(rate)
        return keras.optimizers.SGD(
            keras.optimizers.schedules.PolynomialDecay(rate, total_steps, 0.0, power=1.0))

    @classmethod
    def check_episode(cls, config: ReptileConfig, episode) -> None:
        have = episode.shots + episode.queries
        if config.train_shots is not None and config.train_shots > have:
            raise ConfigError(f"reptile trains on train_shots={config.train_shots} images per "
                              f"class but training episodes have shots + queries = {have}; "
                              "raise --queries or set learner.train_shots")

    def inner_loop(self, theta, x, y, steps, differentiable=False, batch_size=None, seed=(0, 0),
                   with_metrics=False, loss_fn=cross_entropy):
        """phi from theta: ``steps`` steps of the inner optimizer on minibatches of (x, y);
        ``with_metrics``: ``(phi, loss, accuracy)`` of the last step's minibatch."""
        if self.config.inner_optimizer == "sgd":  # full-batch (checked by the config)
            return sgd_inner_loop(self.forward, theta, x, y, steps, self.config.inner_lr,
                                  differentiable=False, with_metrics=with_metrics,
                                  loss_fn=loss_fn, loss_scale=self.inner_loss_scale())
        return adam_inner_loop(self.forward, theta, x, y, steps, self.config.inner_lr,
                               batch_size, seed, with_metrics=with_metrics, loss_fn=loss_fn,
                               loss_scale=self.inner_loss_scale())

    def test_adaptation(self, theta, support_x, support_y, seed=(0, 0)):
        return self.inner_loop(theta, support_x, support_y, self.test_inner_steps,
                               batch_size=self.config.test_inner_batch, seed=seed)

    def training_images(self, support_x, support_y, query_x, query_y):
        """A task's inner-loop data while meta-training: ``train_shots`` images of each class,
        its support images first, then its query images."""
        if self.config.train_shots is None:
            return support_x, support_y
        x, y = tf.concat([support_x, query_x], 0), tf.concat([support_y, query_y], 0)
        order = tf.argsort(y, stable=True)  # by class; support before query within a class
        ways = tf.reduce_max(y) + 1
        per_class = tf.shape(y)[0] // ways
        tf.debugging.assert_greater_equal(per_class, self.config.train_shots, message=(
            "reptile: train_shots is larger than the images per class (shots + queries)"))
        picks = tf.reshape(tf.reshape(order, [ways, per_class])[:, :self.config.train_shots], [-1])
        return tf.gather(x, picks), tf.gather(y, picks)

    def task_update(self, theta, support_x, support_y, query_x, query_y, seed):
        """``(phi, loss, accuracy)`` of one task: its adapted weights, and the loss and accuracy
        of the last inner step's minibatch (training figures, free: no extra forward pass;
        validation reports accuracy on held-out queries)."""
        x, y = self.training_images(support_x, support_y, query_x, query_y)
        return self.inner_loop(theta, x, y, self.config.inner_steps,
                               batch_size=self.config.inner_batch, seed=seed, with_metrics=True,
                               loss_fn=lambda logits, labels: cross_entropy(
                                   logits, labels, smoothing=self.label_smoothing))

    def task_gradient(self, support_x, support_y, query_x, query_y, index):
        """Reptile's "gradient" of one task, ``theta - phi_i`` (nothing is differentiated): its
        mean over the meta-batch, applied by the outer SGD with rate epsilon, is the
        interpolation above."""
        theta = self.weights()
        seed = tf.stack([tf.cast(self.optimizer.iterations, tf.int32), index])
        phi, loss, accuracy_ = self.task_update(theta, support_x, support_y, query_x, query_y,
                                                seed=seed)
        deltas = [t - p for t, p in zip(theta, phi)]
        scale = self.inner_loss_scale()  # a loss-scale optimizer unscales what it is given
        if scale is not None:
            deltas = [d * scale for d in deltas]
        return deltas, loss, accuracy_
