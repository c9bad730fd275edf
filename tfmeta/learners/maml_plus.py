"""MAML++ (Antoniou, Edwards & Storkey, ICLR 2019, "How to train your MAML",
arXiv:1810.09502): MAML with the paper's fixes for its instability, each an option.

For each task, with per-step learned rates alpha_{t,l} (LSLR, section 4)::

    phi_0 = theta
    phi_{t+1} = phi_t - alpha_t * grad L_support(phi_t)              # t = 0 .. N-1
    L_task = sum_t w_t(i) * L_query(phi_{t+1})                        # multi-step loss (MSL)
    theta, alpha <- Adam(grad_{theta, alpha} mean_tasks L_task)       # outer loop

* ``multi_step_loss``: the query loss after every inner step, weighted; the weights move
  linearly from uniform (1/N each) to the last step alone over the first ``msl_anneal`` of
  training (the paper anneals the earlier steps' weights over its first epochs);
* ``learned_rates``: one inner learning rate per weight tensor and per step, starting at
  ``inner_lr`` and meta-learned with the weights (LSLR); test steps beyond the trained ones use
  the last step's rates;
* ``first_order_share``: derivative-order annealing (DA): the first share of training is
  first-order, the rest second-order;
* ``per_step_batchnorm``: per-step BatchNorm weights (BNWB, section 4): the network after t inner
  steps normalises with its own meta-learned scale and offset ``gamma_t, beta_t`` (t = 0 .. N;
  test steps beyond N keep ``gamma_N, beta_N``), which the inner loop does not change (the
  paper's code leaves them out of the inner loop too); the adapted classifier holds the last
  step's;
* a cosine outer schedule: ``train.lr_schedule=cosine`` (the ``omniglot_small_mamlpp`` preset).

Per-step running statistics (BNRS) serve the paper's non-transductive test; here the classifier
``adapt`` returns normalises with its support set's statistics instead (as MAML's), so none are
kept: BatchNorm normalises with the statistics of the batch at hand while meta-training, as in
MAML. Defaults are the paper's Omniglot ones (5 inner steps of 0.1 at training and test, MSL,
LSLR) but for DA and BNWB, off by default.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.learners.batchnorm import batchnorm_layers
from tfmeta.learners.inner import sgd_inner_loop
from tfmeta.errors import ConfigError
from tfmeta.learners.losses import accuracy, cross_entropy
from tfmeta.learners.maml import MAML, MAMLConfig
from tfmeta.learners.registry import register
from tfmeta.settings import setting


@dataclasses.dataclass
class MAMLPlusPlusConfig(MAMLConfig):
    """MAML's options with the paper's defaults, and the MAML++ fixes (module docstring)."""

    inner_steps: int = setting(5, "inner-loop steps while meta-training", "inner-steps")
    inner_lr: float = setting(0.1, "inner-loop learning rate", "inner-lr")
    test_inner_steps: int | None = setting(5, "inner-loop steps at test", "test-inner-steps")
    multi_step_loss: bool = True
    msl_anneal: float = 0.1
    learned_rates: bool = True
    first_order_share: float = 0.0
    per_step_batchnorm: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.learned_rates and self.test_inner_lr is not None:
            raise ValueError("maml++ learns its inner rates (learned_rates): test_inner_lr is "
                             "for fixed ones")
        if self.recompute_inner:
            raise ValueError("maml++ takes its inner steps one at a time and does not recompute "
                             "them: leave recompute_inner off")
        for name in ("msl_anneal", "first_order_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share of training in [0, 1], got "
                                 f"{getattr(self, name)}")


@register
class MAMLPlusPlus(MAML):
    """MAML++ over any Keras classifier (see the module docstring)."""

    config_class = MAMLPlusPlusConfig  # MAML's options, the paper's defaults, its fixes
    name = "maml++"

    def build_parts(self) -> dict:
        """LSLR's rates (one per weight tensor and per step) and BNWB's per-step BatchNorm
        weights (one scale and offset per step taken, 0 .. inner_steps), as asked."""
        parts = {}
        if self.config.learned_rates:
            steps = max(self.config.inner_steps, self.config.test_inner_steps or 0)
            self.rates = tf.Module(name="lslr")
            self.rates.alpha = [tf.Variable(tf.fill([steps], tf.cast(self.config.inner_lr,
                                                                     v.dtype)),
                                            name=f"rates_{i}")
                                for i, v in enumerate(self.model.trainable_variables)]
            parts["rates"] = self.rates
        if self.config.per_step_batchnorm:
            positions = {id(v): i for i, v in enumerate(self.model.trainable_variables)}
            weights = [w for layer in batchnorm_layers(self.model)
                       for w in (layer.gamma if layer.scale else None,
                                 layer.beta if layer.center else None)
                       if w is not None and id(w) in positions]
            if not weights:
                raise ConfigError("per_step_batchnorm needs a model with trainable "
                                  "BatchNormalization layers")
            self.step_batchnorm = tf.Module(name="bnwb")
            self.step_batchnorm_positions = [positions[id(w)] for w in weights]
            self.step_batchnorm.weights = [
                tf.Variable(tf.repeat(tf.convert_to_tensor(w)[None], self.config.inner_steps + 1,
                                      0), name=f"bnwb_{i}") for i, w in enumerate(weights)]
            parts["step_batchnorm"] = self.step_batchnorm
        return parts

    def step_rates(self, t: int, learning_rate=None):
        """Step ``t``'s inner learning rates: one per weight tensor (LSLR), or ``learning_rate``
        (default ``inner_lr``); test steps beyond the trained ones take the last trained
        step's."""
        if not self.config.learned_rates:
            return learning_rate or self.config.inner_lr
        return [alpha[min(t, self.config.inner_steps - 1)] for alpha in self.rates.alpha]

    def with_step_batchnorm(self, phi: list, t: int) -> list:
        """``phi`` with the BatchNorm weights of the network after ``t`` inner steps (BNWB)."""
        if not self.config.per_step_batchnorm:
            return phi
        phi = list(phi)
        step = min(t, self.config.inner_steps)
        for position, weight in zip(self.step_batchnorm_positions, self.step_batchnorm.weights):
            phi[position] = tf.cast(weight[step], phi[position].dtype)
        return phi

    def training_share(self):
        """How far meta-training is, in [0, 1] (0 without a known number of steps)."""
        if not self.total_steps:
            return tf.constant(0.0)
        return tf.minimum(1.0, tf.cast(self.optimizer.iterations, tf.float32) / self.total_steps)

    def second_order_on(self):
        """1 once derivative-order annealing lets the second-order term in, else 0."""
        return tf.cast(self.training_share() >= self.config.first_order_share, tf.float32)

    def adapted_steps(self, theta, x, y, steps: int, differentiable: bool = True,
                      learning_rate=None) -> list:
        """``[phi_1, ..., phi_steps]``: the weights after each inner step."""
        phis, phi = [], self.with_step_batchnorm(theta, 0)
        for t in range(steps):
            phi = sgd_inner_loop(self.forward, phi, x, y, 1, self.step_rates(t, learning_rate),
                                 differentiable=differentiable,
                                 first_order=self.config.first_order, loss_fn=self.inner_loss,
                                 loss_scale=self.inner_loss_scale(),
                                 second_order=self.second_order_on() if differentiable else None)
            phi = self.with_step_batchnorm(phi, t + 1)
            phis.append(phi)
        return phis

    def inner_loop(self, theta, x, y, steps, differentiable=True, learning_rate=None):
        return self.adapted_steps(theta, x, y, steps, differentiable, learning_rate)[-1]

    def step_weights(self, steps: int):
        """The multi-step loss's weight of each step's query loss (they sum to 1)."""
        if not self.config.multi_step_loss or steps == 1:
            return [0.0] * (steps - 1) + [1.0]
        anneal = self.config.msl_anneal
        progress = (tf.minimum(1.0, self.training_share() / anneal) if anneal > 0
                    else tf.constant(1.0))
        early = (1.0 - progress) / steps
        return [early] * (steps - 1) + [1.0 - early * (steps - 1)]

    def task_loss(self, theta, support_x, support_y, query_x, query_y):
        """One task: the weighted query losses after each inner step (MSL)."""
        theta = self.task_start(theta, support_x, support_y, training=True)
        phis = self.adapted_steps(theta, support_x, support_y, self.config.inner_steps)
        weights = self.step_weights(len(phis))
        if not self.config.multi_step_loss:  # the last step's query loss alone
            phis, weights = phis[-1:], weights[-1:]
        logits = [self.outer_forward(phi, query_x) for phi in phis]
        losses = [cross_entropy(z, query_y, smoothing=self.label_smoothing) for z in logits]
        loss = tf.add_n([tf.cast(w, l.dtype) * l for w, l in zip(weights, losses)])
        return loss, accuracy(logits[-1], query_y)
