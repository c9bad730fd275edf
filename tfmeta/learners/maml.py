"""MAML: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017, arXiv:1703.03400).

For each task i of a meta-batch (Algorithm 2 of the paper)::

    phi_i = theta - alpha * grad_theta L_support_i(theta)          # inner loop, `inner_steps` times
    theta <- theta - beta * grad_theta sum_i L_query_i(phi_i)      # outer loop (Keras optimizer)

The outer gradient flows through the inner updates, so it holds the second-order term
(Hessian-vector products); nested ``tf.GradientTape`` s compute it exactly. ``first_order=True``
drops that term (first-order MAML, section 5.2 of the paper): inner gradients are constants.

BatchNorm, as in the paper's code: batch statistics of the batch at hand (support in the inner
loop, query in the outer loss), no running statistics during meta-training. Keras'
BatchNormalization would drop part of the second-order term (``tf.nn.moments`` stops the gradient
of the mean inside the variance); the learner makes its moments twice differentiable
(:func:`tfmeta.learners.batchnorm.exact_batchnorm_moments`) on the support passes of the inner
loop, the ones differentiated twice; the query pass, differentiated once, runs TensorFlow's fused
BatchNorm kernel (:meth:`outer_forward`), as every pass of first-order MAML does
(:func:`tfmeta.learners.batchnorm.fused_batchnorm`). Evaluation reports the accuracy as
deployed (BatchNorm frozen at the support set's statistics, what ``adapt`` returns) and the
paper's transductive accuracy (query batch statistics).
"""

from __future__ import annotations

import dataclasses

import keras

import tensorflow as tf

from tfmeta.learners.base import accuracy, cross_entropy
from tfmeta.learners.batchnorm import batchnorm_layers
from tfmeta.learners.optimization import OptimizationLearner
from tfmeta.learners.prototype_head import PrototypeHead
from tfmeta.learners.inner import check_inner_options, sgd_inner_loop
from tfmeta.learners.registry import register
from tfmeta.settings import setting

PROTOTYPE_HEADS = ("off", "test", "always")


@dataclasses.dataclass
class MAMLConfig:
    """Attributes:
        inner_steps: gradient steps on the support set per task while meta-training.
        inner_lr: inner-loop learning rate alpha.
        first_order: first-order MAML (no second-order term).
        test_inner_steps: inner steps at evaluation and in ``adapt`` (the paper uses more than in
            training); ``None``: ``inner_steps``.
        test_inner_lr: the inner learning rate at evaluation and in ``adapt``; ``None``:
            ``inner_lr``. A model meta-trained on one-shot tasks can need a smaller step on
            five-shot ones (Proto-MAML on omniglot-small: its preset).
        recompute_inner: gradient checkpointing of the inner loop: the outer backward pass
            recomputes each inner step's activations (same meta-gradients, tested), so the
            meta-step's tensors no longer grow with ``inner_steps`` (benchmarks/maml_memory.py).
        prototype_head: where each task's head starts. ``"off"``: at the meta-learned head, which
            has the model's ``ways`` units. ``"test"``: meta-trained so; at test (evaluation,
            ``adapt``, every export) at the support set's prototypes, as wide as the support has
            classes (:mod:`tfmeta.learners.prototype_head`), so a 5-way-trained model answers
            20-way tasks. ``"always"``: at the prototypes in meta-training too (Proto-MAML,
            Triantafillou et al. 2020; ``protomaml`` fixes it).
        inner_reduction: the support loss of the inner loop. ``"mean"`` (default): the mean
            cross-entropy. ``"sum/shots"`` is the MAML code's: per-image cross-entropy summed over
            the N*K support images and divided by K, i.e. N times the mean, so alpha = 0.4 is the
            paper's step (an effective step of 2.0 on the mean loss in 5-way).

    Defaults are the paper's 5-way Omniglot settings (section 5.2: one inner step of alpha = 0.4
    while meta-training, three at test; its 20-way setting is 5 steps of alpha = 0.1) but for the
    inner loss: the paper's effective step (``inner_reduction="sum/shots"``) needs its meta-batch
    of 32 and tens of thousands of steps, and stays at chance in a short run (omniglot-small, 2,500
    steps: 25.7 % against 80.7 % with the mean loss; README); the mean loss learns in hundreds
    (tests/test_learning.py runs the defaults). The paper's presets set ``"sum/shots"``.
    """

    inner_steps: int = setting(1, "inner-loop steps while meta-training", "inner-steps")
    inner_lr: float = setting(0.4, "inner-loop learning rate", "inner-lr")
    first_order: bool = False
    test_inner_steps: int | None = setting(3, "inner-loop steps at test", "test-inner-steps")
    test_inner_lr: float | None = setting(None, "inner-loop learning rate at test (default: "
                                                "inner_lr)", "test-inner-lr")
    inner_reduction: str = "mean"
    recompute_inner: bool = False
    prototype_head: str = setting("off", "where each task's head starts: off (the meta-learned "
                                  "head), test (the support's prototypes at test: any number of "
                                  "classes) or always (Proto-MAML)", "prototype-head")

    def __post_init__(self):
        check_inner_options(self.inner_steps, self.test_inner_steps, self.inner_reduction)
        if self.inner_lr <= 0 or (self.test_inner_lr is not None and self.test_inner_lr <= 0):
            raise ValueError(f"inner_lr and test_inner_lr must be positive, got {self.inner_lr} "
                             f"and {self.test_inner_lr}")
        if self.prototype_head not in PROTOTYPE_HEADS:
            raise ValueError(f"prototype_head must be one of {', '.join(PROTOTYPE_HEADS)}, got "
                             f"{self.prototype_head!r}")


@register(name="fomaml", first_order=True)  # first-order MAML
@register
class MAML(PrototypeHead, OptimizationLearner):
    """MAML / first-order MAML over any Keras classifier (see the module docstring)."""

    name = "maml"
    config_class = MAMLConfig

    def __init__(self, model: keras.Model, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        if self.prototype_mode != "off":
            self.init_prototype_head()

    @property
    def prototype_mode(self) -> str:
        """``prototype_head`` (a subclass whose options have none, Meta-SGD's: ``"off"``)."""
        return getattr(self.config, "prototype_head", "off")

    @classmethod
    def check_test_episode(cls, train, test, config=None) -> None:
        """A prototype head at test is as wide as the test task: any ways."""
        if getattr(config, "prototype_head", "off") == "off":
            super().check_test_episode(train, test, config)

    @property
    def max_ways(self) -> int | None:
        return None if self.prototype_mode != "off" else super().max_ways

    def task_start(self, theta, support_x, support_y, training: bool) -> list:
        """Where one task's inner loop starts: theta, or theta with the head at the support
        set's prototypes (``prototype_head``; in meta-training as wide as the model's head)."""
        mode = self.prototype_mode
        if mode == "always" or (mode == "test" and not training):
            return self.prototype_head(theta, support_x, support_y,
                                       self.head_units if training else None)
        return theta

    def test_adaptation(self, theta, support_x, support_y):
        theta = self.task_start(theta, support_x, support_y, training=False)
        rate = getattr(self.config, "test_inner_lr", None)  # Meta-SGD's options have none
        if rate is None:
            return self.inner_loop(theta, support_x, support_y, self.test_inner_steps,
                                   differentiable=False)
        return self.inner_loop(theta, support_x, support_y, self.test_inner_steps,
                               differentiable=False, learning_rate=rate)

    @property
    def second_order(self) -> bool:
        return not self.config.first_order

    def xla_problem(self, model: keras.Model, config) -> str | None:
        """XLA's second-order meta-gradient through BatchNorm is off the exact one (measured
        2.7-4.5 % in norm on Conv4, where float32 without XLA is within 1e-4 of float64;
        tests/test_xla.py), so second-order learners on a model with BatchNorm are refused."""
        config = config if config is not None else self.config_class()
        if not config.first_order and batchnorm_layers(model):
            return ("its second-order meta-gradient through BatchNorm comes out a few percent off "
                    "the exact one under XLA (tests/test_xla.py); or use its first-order form")
        return None

    def meta_gradients(self, support_x, support_y, query_x, query_y):
        """``(gradients, loss, accuracy)``: the exact gradient (second order unless
        ``first_order``) of the mean query loss over the meta-batch with respect to
        ``meta_variables``, without applying it.

        Arguments are one meta-batch (``support_x [B, N*K, H, W, C]``, ``support_y [B, N*K]``,
        ``query_x [B, N*Q, ...]``, ``query_y [B, N*Q]``). Public so that anyone can check the
        meta-gradient, e.g. against finite differences of the meta-objective
        ``mean_i L_query_i(inner_loop(theta))`` (``tests/test_maml_math.py`` does, in float64, on
        Conv4 with BatchNorm).
        """
        gradients, losses, accuracies = self.outer_gradients(support_x, support_y, query_x,
                                                             query_y)
        return gradients, tf.reduce_mean(losses), tf.reduce_mean(accuracies)

    def inner_loss(self, logits, labels):
        """The support loss the inner loop descends: mean cross-entropy, times the number of
        ways with ``inner_reduction="sum/shots"`` (the MAML code's sum over the support set
        divided by the shots, which its step size alpha is tuned for)."""
        loss = cross_entropy(logits, labels)
        if self.config.inner_reduction == "sum/shots":
            loss *= tf.cast(tf.reduce_max(labels) + 1, loss.dtype)
        return loss

    def inner_loop(self, theta, x, y, steps, differentiable=True, learning_rate=None):
        """Adapted weights phi from theta on one task's data: plain SGD on the support loss, at
        ``learning_rate`` (default ``inner_lr``)."""
        return sgd_inner_loop(self.forward, theta, x, y, steps,
                              learning_rate or self.config.inner_lr,
                              differentiable=differentiable, first_order=self.config.first_order,
                              loss_fn=self.inner_loss, loss_scale=self.inner_loss_scale(),
                              recompute=self.config.recompute_inner)

    def task_loss(self, theta, support_x, support_y, query_x, query_y):
        """One task: adapt theta on the support set (inner loop), then the query loss."""
        theta = self.task_start(theta, support_x, support_y, training=True)
        phi = self.inner_loop(theta, support_x, support_y, self.config.inner_steps)
        logits = self.outer_forward(phi, query_x)
        return (cross_entropy(logits, query_y, smoothing=self.label_smoothing),
                accuracy(logits, query_y))
