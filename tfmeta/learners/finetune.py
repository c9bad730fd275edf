"""Test-time fine-tuning: the backbone fine-tuned on the support set before it answers (Dhillon,
Chaudhari, Ravichandran & Soatto, ICLR 2020, "A Baseline for Few-Shot Image Classification"; Hu,
Li, Stühmer, Kim & Hospedales, CVPR 2022, "Pushing the Limits of Simple Pipelines for Few-Shot
Learning" (P>M>F): augmented copies of the support images are classified against the support set
by the learner's own head, and the backbone takes Adam steps on that loss)::

    w = the meta-trained backbone's weights
    for step in 1..steps:
        S~ = augment(S)                                     # fresh distortions every step
        w = Adam(w, grad_w cross-entropy(head(f_w(S), y_S; f_w(S~)), y_S))
    answer a query q with head(f_w(S), y_S; f_w(q))

BatchNorm keeps its meta-trained statistics (inference mode), so the classifier answers each image
on its own. The fine-tuned weights are computed functionally (``stateless_call``): the learner is
left as it was. The adapted classifier (:func:`adapt_finetuned`) holds the fine-tuned weights, so
every export answers with them; evaluation (:func:`finetune_test_step`) measures it as deployed.

The optimisation learners (the MAML family, Reptile) have no separate head: ``w`` starts from
their own test-time adaptation ``phi`` (``test_inner_steps`` on the support set), every weight
is fine-tuned, and the answers come from the network as deployed (BatchNorm at the support set's
statistics)::

    w = phi = test_adaptation(theta, S)
    for step in 1..steps:
        w = Adam(w, grad_w cross-entropy(f_w(augment(S) | BatchNorm of S), y_S))
    answer a query q with f_w(q | BatchNorm of S)

With test-time augmentation too, their support set is the augmented one (its shifted copies as
extra shots, as their ``adapt`` with ``tta`` adapts to), before fine-tuning.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.augment import augment_images, check_augment
from tfmeta.errors import ConfigError
from tfmeta.learners.layers import stochastic_layers_off
from tfmeta.learners.losses import accuracy, cross_entropy, full_precision


# Chosen on the validation characters of omniglot-small with Prototypical Networks' run (README).
STEPS = 10
LEARNING_RATE = 1e-4


@dataclasses.dataclass(frozen=True)
class TestTimeFineTuning:
    """Attributes:
        steps: Adam steps on the support set.
        learning_rate: their learning rate.
        augment: the distortions of the support copies (a policy of :mod:`tfmeta.data.augment`).
        seed: of the distortions (the same support set is fine-tuned the same every time).
    """

    __test__ = False  # not a test class (pytest collects names that start with "Test")
    steps: int = STEPS
    learning_rate: float = LEARNING_RATE
    augment: str = "affine"
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ConfigError(f"fine-tuning steps must be a positive integer, got {self.steps!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"the fine-tuning learning rate must be positive, got "
                              f"{self.learning_rate}")
        check_augment(self.augment)


def adapts_all_weights(learner) -> bool:
    """Whether ``learner`` adapts its whole network at test time (the optimisation learners)
    rather than a head on backbone features (the metric learners and the baselines)."""
    from tfmeta.learners.optimization import OptimizationLearner

    return isinstance(learner, OptimizationLearner)


def check_learner(learner) -> None:
    """One clear line if ``learner`` cannot be fine-tuned this way."""
    from tfmeta.learners.metric import MetricLearner

    if not (isinstance(learner, MetricLearner) or adapts_all_weights(learner)):
        raise ConfigError(f"test-time fine-tuning is for learners with a network to fine-tune "
                          f"on the support set; {learner.name} has none")
    if not learner.model.trainable_variables:
        raise ConfigError(f"{learner.name}'s backbone is frozen: nothing to fine-tune")


def _embed_with(learner, weights, images):
    """``[n, ...]`` features of ``images`` by the backbone with trainable ``weights``."""
    model = learner.model
    features, _ = model.stateless_call(weights, [v.value for v in model.non_trainable_variables],
                                       images, training=False)
    features = full_precision(features)
    if learner.flatten_features:
        features = tf.reshape(features, [tf.shape(images)[0], -1])
    return features


def logits_with(learner, weights, support_x, support_y, query_x):
    """Logits ``[Q, ways]`` of one episode by the learner's head on the backbone with
    ``weights`` (an optimisation learner: by its network with ``weights``, as deployed)."""
    ways = tf.reduce_max(support_y) + 1
    if adapts_all_weights(learner):
        return learner.deployed_forward(weights, support_x, query_x)[:, :ways]
    support = _embed_with(learner, weights, support_x)
    query = _embed_with(learner, weights, query_x)
    return learner.score(support[None], support_y[None], query[None], ways)[0]


def finetuned_weights(learner, support_x, support_y, tuning: TestTimeFineTuning, seed=None):
    """The backbone's trainable weights (tensors) after ``tuning.steps`` Adam steps on one
    support set (``seed``: a ``[2]`` key of the distortions; default ``(tuning.seed, 0)``)."""
    if adapts_all_weights(learner):
        with stochastic_layers_off(learner.model):
            weights = learner.test_adaptation(learner.weights(), support_x, support_y)
    else:
        weights = [tf.convert_to_tensor(v.value) for v in learner.model.trainable_variables]
    key = tf.constant([tuning.seed, 0], tf.int64) if seed is None else tf.cast(seed, tf.int64)
    beta1, beta2, epsilon = 0.9, 0.999, 1e-7  # Keras' Adam

    def step(i, weights, first, second):
        copies = augment_images(tuning.augment, support_x,
                                tf.random.experimental.stateless_fold_in(key, i))
        with tf.GradientTape() as tape:
            tape.watch(weights)
            loss = cross_entropy(logits_with(learner, weights, support_x, support_y, copies),
                                 support_y)
        gradients = tape.gradient(loss, weights)
        t = tf.cast(i + 1, weights[0].dtype)
        rate = tuning.learning_rate * tf.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
        first = [beta1 * m + (1 - beta1) * g for m, g in zip(first, gradients)]
        second = [beta2 * v + (1 - beta2) * tf.square(g) for v, g in zip(second, gradients)]
        weights = [w - rate * m / (tf.sqrt(v) + epsilon)
                   for w, m, v in zip(weights, first, second)]
        return i + 1, weights, first, second

    zeros = [tf.zeros_like(w) for w in weights]
    _, weights, _, _ = tf.while_loop(lambda i, *_: i < tuning.steps, step,
                                     (tf.constant(0), weights, zeros, zeros))
    return weights


def adapt_finetuned(learner, support_x, support_y, tuning: TestTimeFineTuning,
                    tta=None) -> keras.Model:
    """``learner.adapt`` with its backbone fine-tuned on the support set first (and ``tta``,
    test-time augmentation, on top): the classifier holds the fine-tuned weights; the learner's
    own weights are put back."""
    check_learner(learner)
    support_x = tf.convert_to_tensor(support_x, tf.float32)
    support_y = tf.convert_to_tensor(support_y, tf.int32)
    learner.check_ways(support_y.numpy())
    if adapts_all_weights(learner):
        if tta is not None:  # fine-tuned on the augmented support set
            from tfmeta.learners.tta import adapt_with_tta

            return adapt_with_tta(_FineTuning(learner, tuning), support_x, support_y, tta)
        tuned = tf.function(finetuned_weights)(learner, support_x, support_y, tuning)
        return learner.calibrated_classifier(learner.adapted_classifier(tuned, support_x),
                                             support_y)
    tuned = tf.function(finetuned_weights)(learner, support_x, support_y, tuning)
    variables = learner.model.trainable_variables
    original = [np.array(v.numpy()) for v in variables]
    try:
        for variable, value in zip(variables, tuned):
            variable.assign(value)
        return learner.adapt(support_x, support_y, tta=tta)
    finally:
        for variable, value in zip(variables, original):
            variable.assign(value)


class _FineTuning:
    """An optimisation learner whose ``adapt`` fine-tunes (for :mod:`tfmeta.learners.tta`, which
    adapts to the augmented support set)."""

    def __init__(self, learner, tuning: TestTimeFineTuning):
        self.learner, self.tuning = learner, tuning
        self.input_shape = learner.input_shape

    def adapt(self, support_x, support_y):
        return adapt_finetuned(self.learner, support_x, support_y, self.tuning)


class _Tuned:
    """A learner's ``fewshot_logits`` with other backbone weights (for :mod:`tfmeta.learners.tta`
    on a fine-tuned backbone)."""

    def __init__(self, learner, weights):
        self.learner, self.weights = learner, weights

    def fewshot_logits(self, support_x, support_y, query_x):
        return logits_with(self.learner, self.weights, support_x, support_y, query_x)


def finetune_test_step(learner, batch, tuning: TestTimeFineTuning, cache: dict,
                       tta=None) -> dict:
    """Per-episode ``{"accuracy", "loss"}`` of a meta-batch answered by the fine-tuned backbone
    (with ``tta``: and test-time augmentation), as deployed; episode ``i`` of the meta-batch is
    distorted with key ``(tuning.seed, i)``. ``cache`` keeps the compiled step."""
    check_learner(learner)
    learner.check_ways(batch[1])
    key = (tuning, tta)
    step = cache.get(key)
    if step is None:
        def episodes(support_x, support_y, query_x, query_y):
            from tfmeta.learners.tta import augmented_support, tta_logits

            accuracies, losses = [], []
            for i in range(support_x.shape[0]):
                support = (support_x[i], support_y[i])
                if tta is not None and adapts_all_weights(learner):
                    support = augmented_support(*support, tta)  # as adapt_finetuned does
                weights = finetuned_weights(learner, *support, tuning,
                                            tf.constant([tuning.seed, i], tf.int64))
                if tta is None:
                    logits = logits_with(learner, weights, support_x[i], support_y[i],
                                         query_x[i])
                else:
                    logits = tta_logits(_Tuned(learner, weights), support_x[i], support_y[i],
                                        query_x[i], tta)
                accuracies.append(accuracy(logits, query_y[i]))
                losses.append(cross_entropy(logits, query_y[i]))
            return {"accuracy": tf.stack(accuracies), "loss": tf.stack(losses)}

        step = cache[key] = tf.function(episodes) if learner.compiled else episodes
    return step(*batch)
