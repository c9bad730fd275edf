"""Fine-tuning baselines: Baseline and Baseline++ (Chen, Liu, Kira, Wang & Huang, ICLR 2019, "A
Closer Look at Few-shot Classification", arXiv:1904.04232).

Training is not episodic: the backbone f and a head over all C training classes learn as an
ordinary classifier, on minibatches of labelled training images
(:class:`tfmeta.data.batches.ClassBatchSampler`; the trainer's checkpoints, exact resume and
validation on episodes of the validation classes, as for every learner)::

    minimise cross-entropy(head(f(x)), y) over minibatches (x, y) of every training class
    Baseline:   head(z) = W z + b                              (a linear layer)
    Baseline++: head(z) = scale * cos(z, w_c) for each class c   (a cosine classifier)

Adapting to a support set drops the training head and fits a new one of the same kind on the
support features, f frozen (the paper: 100 SGD epochs; here full-batch gradient steps, see
``fit_linear_head`` / ``fit_cosine_head``)::

    Baseline:   W, b = argmin  mean cross-entropy(W f(x_s) + b, y_s) + head_l2 / 2 ||W, b||^2
    Baseline++: w_c starts at the mean direction of class c's support features, then
                ``steps`` gradient steps of the cosine classifier's support loss on the sphere

The fit is a graph of fixed size (a ``tf.while_loop``), so the adapted classifier, its exports and
``fewshot_logits`` refit the head from the support features they hold, with the same answer.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfmeta.errors import ConfigError
from tfmeta.learners.losses import accuracy, cross_entropy
from tfmeta.learners.metric import MetricLearner, embed
from tfmeta.learners.registry import register


@dataclasses.dataclass
class BaselineConfig:
    """Attributes:
        classes: training classes of the classifier head (0: a run fills in its number of
            training classes; ``create`` needs it).
        steps: gradient steps of the head fitted to a support set.
        head_l2: Baseline's L2 penalty of that fit (the paper's SGD weight decay, 0.001).
        scale: Baseline++'s cosine scale, in training and in the fitted head (the paper: 10 for
            more than 200 training classes, else 2).
    """

    classes: int = 0
    steps: int = 100
    head_l2: float = 1e-3
    scale: float = 10.0

    def __post_init__(self):
        if self.classes < 0 or self.steps < 1 or self.head_l2 < 0 or self.scale <= 0:
            raise ValueError("classes must be >= 0, steps positive, head_l2 >= 0 and "
                             "scale positive")


def fit_linear_head(features, labels, ways, steps: int, l2: float):
    """Multinomial logistic regression by Nesterov's accelerated gradient: ``(W [tasks, D, ways],
    b [tasks, ways])`` minimising the mean cross-entropy of ``features [tasks, S, D]`` plus
    ``l2 / 2 (||W||^2 + ||b||^2)``, from zero. The gradient is the formula's
    (``X^T (softmax(X W) - Y) / S + l2 W``); the step is ``1 / L`` with ``L`` the loss's
    smoothness bound (half the largest squared feature norm, plus ``l2``) and the momentum of a
    ``l2``-strongly convex function, so it never diverges, whatever the features' scale; it
    converges within ``steps`` when ``L / l2`` is moderate, and otherwise stops early, as the
    paper's 100 epochs of SGD do."""
    x = tf.concat([features, tf.ones_like(features[..., :1])], -1)      # the bias as a feature
    targets = tf.one_hot(labels, ways, dtype=x.dtype)
    count = tf.cast(tf.shape(x)[1], x.dtype)
    l2 = tf.cast(l2, x.dtype)
    smooth = 0.5 * tf.reduce_max(tf.reduce_sum(tf.square(x), -1), -1) + l2   # [tasks]
    rate = (1.0 / smooth)[:, None, None]
    root = tf.sqrt(smooth / tf.maximum(l2, 1e-12))
    momentum = tf.where(l2 > 0, (root - 1.0) / (root + 1.0), 0.9)[:, None, None]

    def gradient(w):
        errors = tf.nn.softmax(tf.einsum("tsd,tdw->tsw", x, w)) - targets
        return tf.einsum("tsd,tsw->tdw", x, errors) / count + l2 * w

    def step(i, w, look):
        new = look - rate * gradient(look)
        return i + 1, new, new + momentum * (new - w)

    zeros = tf.zeros(tf.concat([tf.shape(x)[:1], tf.shape(x)[2:], [ways]], 0), x.dtype)
    _, w, _ = tf.while_loop(lambda i, *_: i < steps, step, (tf.constant(0), zeros, zeros))
    return w[:, :-1], w[:, -1]


def linear_logits(query, head):
    weights, bias = head
    return tf.einsum("tqd,tdw->tqw", query, weights) + bias[:, None]


def fit_cosine_head(features, labels, ways, steps: int, scale: float):
    """Unit class vectors ``[tasks, ways, D]`` of a cosine classifier
    (``logits = scale * normalize(z) . w_c``) for ``features [tasks, S, D]``: from the normalised
    mean of each class's normalised features, ``steps`` steps of the support cross-entropy's
    gradient projected on the sphere, of size ``2 / scale^2`` (its smoothness bound)."""
    z = tf.math.l2_normalize(features, -1)
    targets = tf.one_hot(labels, ways, dtype=z.dtype)
    count = tf.cast(tf.shape(z)[1], z.dtype)
    start = tf.math.l2_normalize(tf.einsum("tsw,tsd->twd", targets, z), -1)
    rate = 2.0 / scale ** 2

    def step(i, w):
        errors = tf.nn.softmax(scale * tf.einsum("tsd,twd->tsw", z, w)) - targets
        g = scale * tf.einsum("tsw,tsd->twd", errors, z) / count
        g -= tf.reduce_sum(g * w, -1, keepdims=True) * w   # along the sphere
        return i + 1, tf.math.l2_normalize(w - rate * g, -1)

    _, w = tf.while_loop(lambda i, *_: i < steps, step, (tf.constant(0), start))
    return w


def cosine_logits(query, vectors, scale: float):
    return scale * tf.einsum("tqd,twd->tqw", tf.math.l2_normalize(query, -1), vectors)


class ClassifierTraining(MetricLearner):
    """What the fine-tuning baselines share: a classifier head over every training class, trained
    on minibatches in the support slot (:mod:`tfmeta.data.batches`), and dropped at adaptation;
    subclasses define ``training_logits`` and ``score`` (the head fitted to a support set)."""

    episodic = False
    adversarial_queries = False  # its batches have no queries to attack
    head_bias = True  # the training head's bias (a cosine classifier has none)

    @classmethod
    def options_from_data(cls, options: dict, source) -> dict:
        """The number of training classes of the head, from the training data (a head of fewer
        classes than the data has is one clear error)."""
        classes = options.get("classes") or source.num_classes
        if classes < source.num_classes:
            raise ConfigError(f"learner.classes is {classes} but the training data has "
                              f"{source.num_classes} classes: leave it out (0), the run fills "
                              "it in")
        return {**options, "classes": classes}

    def build_parts(self) -> dict:
        if self.model is None:  # an adapted classifier's head: no training head
            return {}
        if self.config.classes < 2:
            raise ConfigError(f"{self.name} trains a classifier of every training class: give "
                              "their number (classes=C; a run fills it in from the data)")
        self.training_head = self.new_training_head("training_head")
        return {}

    def new_training_head(self, name: str) -> tf.Module:
        """A classifier head over every training class, freshly initialised."""
        head = tf.Module(name=name)
        features = int(np.prod(self.feature_shape))
        head.kernel = tf.Variable(keras.initializers.GlorotUniform()(
            (features, self.config.classes)), name="kernel")
        if self.head_bias:
            head.bias = tf.Variable(tf.zeros([self.config.classes]), name="bias")
        return head

    @property
    def meta_variables(self) -> list:
        return super().meta_variables + list(self.training_head.trainable_variables)

    def checkpoint_items(self) -> dict:
        return {**super().checkpoint_items(), "training_head": self.training_head}

    def task_losses(self, support_x, support_y, query_x, query_y, task_index=0):
        """Cross-entropy of the training head on a minibatch of images (``support_x``) labelled
        with their training class (``support_y``); the empty query slot is not read."""
        logits = self.training_logits(embed(self.model, support_x, training=True),
                                      self.training_head)
        return (cross_entropy(logits, support_y, axis=-1, smoothing=self.label_smoothing),
                accuracy(logits, support_y, axis=-1))

    def training_logits(self, features, head):
        """Logits of every training class from ``head`` (the training head, or a teacher's)."""
        raise NotImplementedError


@register
class Baseline(ClassifierTraining):
    """Baseline: a linear classifier in training, a linear head fitted to each support set."""

    name = "baseline"
    config_class = BaselineConfig

    def training_logits(self, features, head):
        return features @ head.kernel + head.bias

    def score(self, support, support_y, query, ways, training=False):
        head = fit_linear_head(support, support_y, ways, self.config.steps,
                               self.config.head_l2)
        return linear_logits(query, head)


@register(name="baseline++")
class BaselinePlusPlus(ClassifierTraining):
    """Baseline++: a cosine classifier in training and fitted to each support set."""

    name = "baseline++"
    config_class = BaselineConfig
    head_bias = False

    def training_logits(self, features, head):
        vectors = tf.math.l2_normalize(head.kernel, 0)
        return self.config.scale * tf.math.l2_normalize(features, -1) @ vectors

    def score(self, support, support_y, query, ways, training=False):
        vectors = fit_cosine_head(support, support_y, ways, self.config.steps, self.config.scale)
        return cosine_logits(query, vectors, self.config.scale)

