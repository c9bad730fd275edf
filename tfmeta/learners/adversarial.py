"""Adversarial querying (Goldblum, Fowl and Goldstein, 2020, "Adversarially Robust Few-Shot
Learning: A Meta-Learning Approach", NeurIPS): meta-train on query images perturbed to raise the
loss of the adapted model, within an L-infinity ball of radius epsilon; the support set stays
clean. The same attack measures robust accuracy at test time, through the adaptation: the
adversary sees the classifier that adaptation to the clean support set returns.

    x_0 = x (FGSM) or x + U(-epsilon, epsilon) (PGD, Madry et al. 2018)
    x_{t+1} = clip_[0, 1](clip_[x - epsilon, x + epsilon](x_t + alpha * sign(grad_x L(x_t))))

FGSM is one step of alpha = epsilon from x; PGD takes ``steps`` steps of alpha = 2.5 epsilon /
steps. Images are the preprocessed ones, in [0, 1].
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfmeta.errors import ConfigError

ATTACKS = ("fgsm", "pgd")
EPSILON = 8 / 255  # the attacks' default radius (common in the literature)
STEPS = 7  # PGD's default steps


@dataclasses.dataclass(frozen=True)
class Attack:
    """Attributes:
        kind: ``"fgsm"`` or ``"pgd"``.
        epsilon: radius of the L-infinity ball, in image units ([0, 1]; 8/255 is common).
        steps: PGD steps (FGSM: 1).
    """

    kind: str = "pgd"
    epsilon: float = EPSILON
    steps: int = STEPS

    def __post_init__(self):
        if self.kind not in ATTACKS:
            raise ConfigError(f"unknown attack '{self.kind}': use {' or '.join(ATTACKS)}")
        if not 0 < self.epsilon <= 1:
            raise ConfigError(f"epsilon must be in (0, 1] (images are in [0, 1]), got "
                              f"{self.epsilon}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"attack steps must be a positive integer, got {self.steps!r}")

    @property
    def step_size(self) -> float:
        return self.epsilon if self.kind == "fgsm" else 2.5 * self.epsilon / self.steps

    @property
    def iterations(self) -> int:
        return 1 if self.kind == "fgsm" else self.steps


def perturb(loss_of, images, attack: Attack, seed):
    """``images`` moved within ``attack``'s ball to raise ``loss_of(images)`` (a scalar); no
    gradient flows back through the result. ``seed``: a stateless seed for PGD's random start."""
    images = tf.stop_gradient(images)
    epsilon = tf.cast(attack.epsilon, images.dtype)
    adversarial = images
    if attack.kind == "pgd":
        adversarial = images + tf.random.stateless_uniform(tf.shape(images), seed, -epsilon,
                                                           epsilon, dtype=images.dtype)
        adversarial = tf.clip_by_value(adversarial, 0.0, 1.0)
    for _ in range(attack.iterations):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(adversarial)
            loss = loss_of(adversarial)
        step = attack.step_size * tf.sign(tape.gradient(loss, adversarial))
        adversarial = tf.clip_by_value(
            tf.clip_by_value(adversarial + step, images - epsilon, images + epsilon), 0.0, 1.0)
    return tf.stop_gradient(adversarial)
