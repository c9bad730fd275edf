"""Test-time augmentation that ships (Simard et al. 2003's translations; as measured for few-shot
learning in issue 28): shifted copies of the support images join the support set as extra shots,
and each query is answered by the mean of its shifted copies' logits.

    S' = {shift_d(x) : x in S, d in D}                      # extra shots, same labels
    z(q) = mean_{d in D} z(shift_d(q); S')                  # the answer's logits, averaged

The logits are averaged, not the probabilities: on omniglot-small's validation classes both gave
the same accuracy with Prototypical Networks (99.44 % 5-way, 84.19 % 15-way within an alphabet,
1-shot), and the mean logit keeps the scale the unknown score reads (minus the largest logit;
AUROC 0.974 / 0.799 against 0.890 / 0.618 from mean probabilities;
``benchmarks/unknown_scores.py RUN --tta``).

with D a 3x3 grid of shifts by -s, 0, +s pixels (``shift``); the image's border is mirrored into
the space a shift opens (``tf.pad`` SYMMETRIC, which TFLite and ONNX run). The adapted classifier
(:func:`adapt_with_tta`) does it inside its graph, so every export answers the same; evaluation
(:func:`tta_test_step`) measures it as deployed, episode by episode, through ``fewshot_logits``.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfmeta.errors import ConfigError
from tfmeta.learners.losses import accuracy, cross_entropy


@dataclasses.dataclass(frozen=True)
class TestTimeAugmentation:
    """Attributes:
        shift: pixels of the shifts (a 3x3 grid of -shift, 0, +shift in each direction).
        support: shifted support images as extra shots.
        query: the answer averaged over the shifted copies of each query.
    """

    __test__ = False  # not a test class (pytest collects names that start with "Test")
    shift: int = 1
    support: bool = True
    query: bool = True

    def __post_init__(self):
        if not isinstance(self.shift, int) or self.shift < 1:
            raise ConfigError(f"the test-time shift must be a positive number of pixels, got "
                              f"{self.shift!r}")
        if not (self.support or self.query):
            raise ConfigError("test-time augmentation needs support copies, query copies or both")

    @property
    def offsets(self) -> list:
        s = self.shift
        return [(dy, dx) for dy in (-s, 0, s) for dx in (-s, 0, s)]


def shifted(images, dy: int, dx: int, shift: int):
    """``images`` ``[n, H, W, C]`` moved by ``dy`` rows and ``dx`` columns, the opened border
    mirrored from the image's own edge."""
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]], mode="SYMMETRIC")
    return padded[:, shift - dy:shift - dy + height, shift - dx:shift - dx + width, :]


def augmented_support(support_x, support_y, tta: TestTimeAugmentation):
    """The support set with its shifted copies as extra shots (labels repeated)."""
    if not tta.support:
        return support_x, support_y
    copies = [shifted(support_x, dy, dx, tta.shift) for dy, dx in tta.offsets]
    return tf.concat(copies, 0), tf.tile(support_y, [len(copies)])


def mean_probability_logits(logits_per_copy):
    """``log(mean softmax)`` over the first axis: logits whose softmax is the mean probability."""
    probabilities = tf.nn.softmax(tf.cast(logits_per_copy, tf.float32), -1)
    return tf.math.log(tf.reduce_mean(probabilities, 0) + 1e-12)


def tta_logits(learner, support_x, support_y, query_x, tta: TestTimeAugmentation,
               answer=None):
    """Logits ``[Q, n]`` of one episode with test-time augmentation, through the learner's
    ``fewshot_logits`` (one adaptation; the query copies go through it as one batch), or through
    ``answer(support_x, support_y, query_x)``: ``learner.refined_logits`` answers the queries
    together (Prototypical Networks' soft k-means, every shifted copy of every query refining the
    prototypes of the augmented support set)."""
    answer = answer or learner.fewshot_logits
    support_x, support_y = augmented_support(support_x, support_y, tta)
    if not tta.query:
        return answer(support_x, support_y, query_x)
    copies = [shifted(query_x, dy, dx, tta.shift) for dy, dx in tta.offsets]
    logits = answer(support_x, support_y, tf.concat(copies, 0))
    queries = tf.shape(query_x)[0]
    return tf.reduce_mean(tf.reshape(logits, [len(copies), queries, -1]), 0)


def tta_test_step(learner, batch, tta: TestTimeAugmentation, cache: dict) -> dict:
    """Per-episode ``{"accuracy", "loss"}`` of a meta-batch with test-time augmentation, as
    deployed, and ``transductive_accuracy`` for a learner that reports one from the queries
    answered together (``refined_logits``; ``cache`` keeps the compiled step per
    augmentation)."""
    learner.check_ways(batch[1])
    step = cache.get(tta)
    if step is None:
        transductive = getattr(learner, "refined_logits", None) is not None and getattr(
            learner.config, "refine_steps", 0) > 0

        def episodes(support_x, support_y, query_x, query_y):
            accuracies, losses, together = [], [], []
            for i in range(support_x.shape[0]):
                logits = tta_logits(learner, support_x[i], support_y[i], query_x[i], tta)
                accuracies.append(accuracy(logits, query_y[i]))
                losses.append(cross_entropy(logits, query_y[i]))
                if transductive:
                    together.append(accuracy(tta_logits(
                        learner, support_x[i], support_y[i], query_x[i], tta,
                        answer=learner.refined_logits), query_y[i]))
            result = {"accuracy": tf.stack(accuracies), "loss": tf.stack(losses)}
            if transductive:
                result["transductive_accuracy"] = tf.stack(together)
            return result

        step = cache[tta] = tf.function(episodes) if learner.compiled else episodes
    return step(*batch)


@keras.saving.register_keras_serializable(package="tfmeta")
class Shift(keras.layers.Layer):
    """:func:`shifted` as a layer of the adapted classifier."""

    def __init__(self, dy: int, dx: int, shift: int, **kwargs):
        super().__init__(**kwargs)
        self.dy, self.dx, self.shift = int(dy), int(dx), int(shift)

    def call(self, images):
        return shifted(images, self.dy, self.dx, self.shift)

    def get_config(self):
        return dict(super().get_config(), dy=self.dy, dx=self.dx, shift=self.shift)


@keras.saving.register_keras_serializable(package="tfmeta")
class MeanLogits(keras.layers.Layer):
    """The mean of a list of logits (their first ``classes`` units), as a layer."""

    def __init__(self, classes: int, **kwargs):
        super().__init__(**kwargs)
        self.classes = int(classes)

    def call(self, logits):
        return tf.reduce_mean(tf.stack(logits, 0)[..., :self.classes], 0)

    def get_config(self):
        return dict(super().get_config(), classes=self.classes)


@keras.saving.register_keras_serializable(package="tfmeta")
class MeanProbability(keras.layers.Layer):
    """:func:`mean_probability_logits` of a list of logits (their first ``classes`` units), as a
    layer."""

    def __init__(self, classes: int, **kwargs):
        super().__init__(**kwargs)
        self.classes = int(classes)

    def call(self, logits):
        return mean_probability_logits(tf.stack(logits, 0)[..., :self.classes])

    def get_config(self):
        return dict(super().get_config(), classes=self.classes)


def adapt_with_tta(learner, support_x, support_y, tta: TestTimeAugmentation) -> keras.Model:
    """``learner.adapt`` to the augmented support set, wrapped so that each image is answered by
    the mean of its shifted copies' logits."""
    support_x = tf.convert_to_tensor(support_x, tf.float32)
    support_x, support_y = augmented_support(support_x, tf.convert_to_tensor(support_y, tf.int32),
                                             tta)
    classifier = learner.adapt(support_x.numpy(), support_y.numpy())
    if not tta.query:
        return classifier
    inputs = keras.Input(learner.input_shape, name="images")
    logits = [classifier(Shift(dy, dx, tta.shift, name=f"shift_{i}")(inputs))
              for i, (dy, dx) in enumerate(tta.offsets)]
    classes = int(tf.reduce_max(support_y)) + 1
    return keras.Model(inputs, MeanLogits(classes, name="mean_logits")(logits),
                       name=f"{classifier.name}_tta")
