"""What every few-shot answerer offers its user, given ``input_shape``, ``name``, ``adapt`` and
``_fewshot_logits``: a learner (:class:`tfmeta.learners.base.Learner`) or an ensemble of them
(:class:`tfmeta.ensemble.Ensemble`). Support sets of numpy images of any size and any labels in,
labels and probabilities out (calibrated by the run's temperature); a support set of more classes
than it can tell apart is one clear error."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfmeta.calibration import nearest_setting
from tfmeta.data.images import to_uint8_images
from tfmeta.errors import ConfigError, DataError


class Answers:
    """``fewshot_logits``, ``predict`` and ``predict_proba`` over ``adapt``, with checked
    support sets, answering with ``logits / temperature``."""

    # The temperature of the answers (:mod:`tfmeta.calibration`): 1, the logits as they are, until
    # a run's calibration.json sets the instance's (tfmeta.run.load) or tfmeta.calibration does.
    temperature = 1.0
    # The unknown score above which a query is "none of these" (predict(reject=True)); a run's
    # calibration.json sets it, fitted on validation classes (tfmeta.calibration); None: none.
    unknown_threshold = None
    # Per-setting calibrations, ({"ways", "shots", "temperature", "unknown_threshold"}, ...),
    # fitted on validation episodes of each setting: a support set is answered with the one of
    # the nearest setting (nearest_setting); none: temperature and unknown_threshold for all.
    calibrations = ()

    def setting_calibration(self, ways: int, shots: float) -> tuple:
        """``(temperature, unknown_threshold)`` for support sets of ``ways`` classes and
        ``shots`` images per class: the nearest calibrated setting's, else the run's."""
        if not self.calibrations:
            return self.temperature, self.unknown_threshold
        entry = self.calibrations[nearest_setting(self.calibrations, ways, shots)]
        return entry["temperature"], entry["unknown_threshold"]

    def support_calibration(self, support_y) -> tuple:
        """``setting_calibration`` of the support set labelled ``support_y`` (``0..n-1``);
        as tensors when ``support_y`` is a symbolic tensor (in a graph)."""
        if not self.calibrations:
            return self.temperature, self.unknown_threshold
        if isinstance(support_y, tf.Tensor) and not tf.executing_eagerly():
            ways = tf.cast(tf.reduce_max(support_y) + 1, tf.float64)
            shots = tf.cast(tf.size(support_y), tf.float64) / ways
            table = [(e["ways"], e["shots"]) for e in self.calibrations]
            distance = tf.stack([tf.abs(tf.math.log(ways / w)) + tf.abs(tf.math.log(shots / k))
                                 for w, k in table])
            which = tf.argmin(distance)
            thresholds = [e["unknown_threshold"] for e in self.calibrations]
            return (tf.gather([float(e["temperature"]) for e in self.calibrations], which),
                    None if None in thresholds else tf.gather(thresholds, which))
        labels = np.asarray(support_y)
        ways = int(labels.max()) + 1
        return self.setting_calibration(ways, labels.size / ways)

    def calibrated(self, logits, support_y=None):
        """``logits / temperature`` (of ``support_y``'s setting, where it is given)."""
        temperature = (self.temperature if support_y is None
                       else self.support_calibration(support_y)[0])
        if isinstance(temperature, float) and temperature == 1.0:
            return logits
        return logits / tf.cast(temperature, logits.dtype)

    def calibrated_classifier(self, classifier: keras.Model, support_y=None) -> keras.Model:
        """``classifier`` answering with its logits divided by the temperature of the setting of
        the support set ``support_y`` (one ``Rescaling`` layer after it, so every export of it does
        too)."""
        temperature = (self.temperature if support_y is None
                       else self.support_calibration(support_y)[0])
        if temperature == 1.0:
            return classifier
        inputs = keras.Input(self.input_shape, name="images")
        logits = keras.layers.Rescaling(1.0 / temperature, name="temperature")(
            classifier(inputs))
        return keras.Model(inputs, logits, name=f"{classifier.name}_calibrated")

    def fewshot_logits(self, support_x, support_y, query_x):
        """Logits ``[Q, n]`` of ``query_x`` after adapting to one support set (``support_x``
        ``[S, H, W, C]`` preprocessed, ``support_y`` ``[S]`` labels ``0..n-1``), as one graph:
        the same answers as ``adapt(support_x, support_y)(query_x)``. A support set of more
        classes than the learner was built for is refused (``check_ways``; in a graph, an
        assertion with the same message), never answered for the first classes only."""
        if tf.executing_eagerly():
            self.check_ways(np.asarray(support_y))
            return self.calibrated(self._fewshot_logits(support_x, support_y, query_x), support_y)
        if self.max_ways is None:
            return self.calibrated(self._fewshot_logits(support_x, support_y, query_x), support_y)
        with tf.control_dependencies([tf.debugging.assert_less_equal(
                tf.reduce_max(support_y) + 1, self.max_ways, message=self.ways_message("n"))]):
            return self.calibrated(self._fewshot_logits(support_x, support_y, query_x), support_y)

    def _fewshot_logits(self, support_x, support_y, query_x):
        """``fewshot_logits`` once the support's classes are checked."""
        raise NotImplementedError

    @property
    def max_ways(self) -> int | None:
        """The most classes one support set may have (``None``: no limit)."""
        return None

    def check_ways(self, labels) -> None:
        """One clear error if support labels ``0..n-1`` (of one support set or a meta-batch of
        them) have more classes than the learner can tell apart, instead of silently dropping
        classes or failing deep inside TensorFlow."""
        n = int(np.max(np.asarray(labels))) + 1
        if self.max_ways is not None and n > self.max_ways:
            raise DataError(self.ways_message(n))

    def ways_message(self, n) -> str:
        return (f"{self.name} was built for at most {self.max_ways} classes but the support has "
                f"{n}; train with --ways {n} or more")

    def preprocess(self, images) -> tf.Tensor:
        """Numpy images of any size (uint8, or float in [0, 1]) -> float32 model inputs."""
        height, _, channels = self.input_shape
        return tf.constant(to_uint8_images(images, height, channels), tf.float32) / 255.0

    def prepare_support(self, support_x, support_y):
        """``(images, labels, classes)``: preprocessed support images, labels ``0..n-1`` and the
        class of each label (sorted ``support_y`` values), ready for ``adapt``."""
        support_y = np.asarray(support_y)
        if support_y.ndim != 1 or len(support_y) != len(np.asarray(support_x)):
            raise DataError(f"support_y must be one label per support image, got shape "
                            f"{support_y.shape} for {len(np.asarray(support_x))} images")
        classes, labels = np.unique(support_y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"the support set needs at least 2 classes, got {len(classes)}")
        self.check_ways(labels)
        return self.preprocess(support_x), tf.constant(labels, tf.int32), classes

    def answer(self, support_x, support_y, query_x) -> tuple:
        """``(classes, logits [Q, len(classes)])``: the classes of the support set (sorted
        ``support_y`` values) and the adapted classifier's logits for each query image."""
        x, y, classes = self.prepare_support(support_x, support_y)
        classifier = self.adapt(x, y)
        return classes, classifier(self.preprocess(query_x), training=False)[:, :len(classes)]

    def predict_proba(self, support_x, support_y, query_x):
        """``(classes, probabilities [Q, len(classes)])`` for each query image."""
        classes, logits = self.answer(support_x, support_y, query_x)
        return classes, tf.nn.softmax(logits).numpy()

    def unknown_scores(self, support_x, support_y, query_x) -> np.ndarray:
        """One score per query image, higher meaning none of the support set's classes: minus
        the largest logit of the answer (the max-logit score, Vaze et al. 2022; for Prototypical
        Networks, the squared distance to the nearest prototype over the temperature)."""
        return unknown_scores(self.answer(support_x, support_y, query_x)[1]).numpy()

    def transductive_unknown_scores(self, support_x, support_y, query_x) -> np.ndarray:
        """Scores of a batch of queries answered together (:func:`query_rank_scores`): each
        depends on the whole batch; higher, less like any support class."""
        return query_rank_scores(self.answer(support_x, support_y, query_x)[1])

    def predict(self, support_x, support_y, query_x, reject: bool = False,
                threshold: float | None = None) -> np.ndarray:
        """The label (one of ``support_y``) of each query image; with ``reject``, -1 for those
        whose unknown score (:meth:`unknown_scores`) is above ``threshold`` (default: the one
        the run fitted on validation classes)."""
        classes, logits = self.answer(support_x, support_y, query_x)
        labels = classes[np.asarray(tf.argmax(logits, -1))]
        if not reject:
            return labels
        if threshold is None:  # the run's, for this support set's setting
            ways = len(classes)
            threshold = self.setting_calibration(ways, len(np.asarray(support_y)) / ways)[1]
        unknown = self.is_unknown(unknown_scores(logits).numpy(), threshold)
        return np.where(unknown, -1, labels if labels.dtype.kind in "iu" else labels.astype(object))

    def is_unknown(self, scores, threshold: float | None = None) -> np.ndarray:
        """Whether each unknown score is above ``threshold`` (default: the run's)."""
        threshold = self.unknown_threshold if threshold is None else threshold
        if threshold is None:
            raise ConfigError(f"{self.name} has no threshold for unknown queries: calibrate the "
                              "run (tfmeta calibrate --checkpoint RUN) or pass threshold=")
        return np.asarray(scores) > threshold


def unknown_scores(logits):
    """Minus the largest logit of each answer ``logits [Q, n]``: higher, less like any class."""
    return -tf.reduce_max(tf.cast(logits, tf.float32), -1)


def query_rank_scores(logits) -> np.ndarray:
    """Transductive unknown scores of queries ``logits [Q, n]`` answered together: for each query,
    how many queries of the batch its answer's class scores higher than it, ties broken by its
    max-logit score (scaled into [0, 1)). A known query ranks among its class's own queries, near
    the top; an unknown one is answered with a class whose own queries outrank it. Chosen on
    omniglot-small's validation classes (``python benchmarks/unknown_scores.py RUN`` on a 600-step
    ProtoNet run, 200 episodes of 1 shot and 5 queries a class): AUROC 0.802 (max-logit) -> 0.885
    within an alphabet (15 known and 5 unknown classes), 0.966 -> 0.976 with 5 + 5."""
    logits = np.asarray(logits, np.float64)
    answer = logits.argmax(-1)
    own = logits[np.arange(len(logits)), answer]                   # [Q]
    rank = (logits[:, answer] > own[None]).sum(0)                  # [j, i] -> per query i
    spread = own.max() - own.min()
    tie = 0.999 * (own.max() - own) / spread if spread > 0 else np.zeros_like(own)
    return rank + tie
