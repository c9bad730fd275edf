"""RFS: "Rethinking Few-Shot Image Classification: a Good Embedding Is All You Need?" (Tian, Wang,
Krishnan, Tenenbaum & Isola, ECCV 2020, arXiv:2003.11539).

The embedding trains as Baseline's does (:mod:`tfmeta.learners.baseline`): one linear classifier
of every training class, on minibatches, no episodes. A support set gets a logistic regression on
L2-normalised features (the paper: scikit-learn's, whose objective is the summed cross-entropy
plus ``||W||^2 / (2 C)``, C = 1)::

    z = f(x) / ||f(x)||
    W, b = argmin  sum over support of cross-entropy(W z + b, y) + ||W, b||^2 / (2 C)
    logits of a query = W z_query + b

Self-distillation generations (RFS-distill, the paper's section 3.2 and its code's settings): a
run with ``teacher=RUN`` trains the same network anew, from scratch, on the training classes with
the previous generation (``RUN``'s best checkpoint, frozen, in inference mode) as teacher::

    t = teacher's logits of x,  s = the student's
    loss = (1 - w) cross-entropy(s, y) + w T^2 KL(softmax(t / T) || softmax(s / T))

with ``w = distill_weight`` (0.5) and ``T = temperature`` (4). Generation k+1 takes generation k's
run as its teacher; the paper stops after two.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfmeta.checkpoints import checkpoint_path, read_checkpoint
from tfmeta.errors import ConfigError
from tfmeta.learners.baseline import Baseline, fit_linear_head, linear_logits
from tfmeta.learners.losses import accuracy, cross_entropy, full_precision
from tfmeta.learners.metric import embed
from tfmeta.learners.registry import register


@dataclasses.dataclass
class RFSConfig:
    """Attributes:
        classes: training classes of the classifier head (0: a run fills in its number of
            training classes; ``create`` needs it).
        steps: gradient steps of the logistic regression fitted to a support set.
        inverse_l2: scikit-learn's ``C``, the inverse of the regression's L2 penalty (1.0).
        teacher: the run directory of the previous generation to distill from ("": none).
        distill_weight: the distillation term's weight ``w`` in the training loss.
        temperature: the softmax temperature ``T`` of the distillation term.
    """

    classes: int = 0
    steps: int = 100
    inverse_l2: float = 1.0
    teacher: str = ""
    distill_weight: float = 0.5
    temperature: float = 4.0

    def __post_init__(self):
        if self.classes < 0 or self.steps < 1 or self.inverse_l2 <= 0:
            raise ValueError("classes must be >= 0, steps and inverse_l2 positive")
        if not 0 <= self.distill_weight <= 1 or self.temperature <= 0:
            raise ValueError("distill_weight must be in [0, 1] and temperature positive")


def distillation_loss(student_logits, teacher_logits, temperature: float, axis=None):
    """Hinton et al.'s (2015) ``T^2 KL(softmax(t / T) || softmax(s / T))``, averaged over
    ``axis`` (``None``: all) of the examples (the classes are the last axis)."""
    s = full_precision(student_logits) / temperature
    t = full_precision(teacher_logits) / temperature
    kl = tf.reduce_sum(tf.nn.softmax(t) * (tf.nn.log_softmax(t) - tf.nn.log_softmax(s)), -1)
    return temperature ** 2 * tf.reduce_mean(kl, axis)


@register
class RFS(Baseline):
    """RFS: Baseline's training, a logistic regression on normalised features at adaptation."""

    name = "rfs"
    config_class = RFSConfig

    @classmethod
    def options_from_data(cls, options: dict, source) -> dict:
        teacher = options.get("teacher")
        if teacher and checkpoint_path(teacher) is None:
            raise ConfigError(f"learner.teacher={teacher}: no checkpoint there; give the run "
                              "directory of a trained rfs run (the previous generation)")
        return super().options_from_data(options, source)

    def build_parts(self) -> dict:
        """The training head and, with ``teacher``, the previous generation (not trained, not
        in this run's checkpoints)."""
        parts = super().build_parts()
        self.teacher = None
        path = self.config.teacher and self.model is not None and checkpoint_path(
            self.config.teacher)
        if path:  # a run read back after its teacher moved away still loads, without it
            self.teacher = tf.Module(name="teacher")
            self.teacher.model = keras.models.clone_model(self.model)
            self.teacher.training_head = self.new_training_head("teacher_head")
            read_checkpoint(tf.train.Checkpoint(model=self.teacher.model,
                                                training_head=self.teacher.training_head),
                            path, exact=True)
        return parts

    def task_losses(self, support_x, support_y, query_x, query_y, task_index=0):
        """Baseline's loss; with a teacher, mixed with the distillation term (module docstring)."""
        if not self.config.teacher:
            return super().task_losses(support_x, support_y, query_x, query_y, task_index)
        if self.teacher is None:
            raise ConfigError(f"learner.teacher={self.config.teacher}: no checkpoint there to "
                              "distill from")
        logits = self.training_logits(embed(self.model, support_x, training=True),
                                      self.training_head)
        taught = tf.stop_gradient(self.training_logits(
            embed(self.teacher.model, support_x, training=False), self.teacher.training_head))
        w = self.config.distill_weight
        loss = ((1.0 - w) * cross_entropy(logits, support_y, axis=-1,
                                          smoothing=self.label_smoothing)
                + w * distillation_loss(logits, taught, self.config.temperature, axis=-1))
        return loss, accuracy(logits, support_y, axis=-1)

    def score(self, support, support_y, query, ways, training=False):
        support, query = tf.math.l2_normalize(support, -1), tf.math.l2_normalize(query, -1)
        count = tf.cast(tf.shape(support)[1], support.dtype)
        head = fit_linear_head(support, support_y, ways, self.config.steps,
                               1.0 / (self.config.inverse_l2 * count))  # the mean's penalty
        return linear_logits(query, head)
