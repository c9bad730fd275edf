"""What gets served: ``tf.Module`` s whose signatures TF Serving, onnxruntime and TFLite run.

* :class:`ClassifierServable` -- an adapted classifier for fixed classes. ``serving_default``
  takes ``images`` (float32 ``[batch, H, W, C]`` in ``[0, 1]``, preprocessed as in training);
  ``serving_bytes`` takes ``image_bytes`` (encoded PNG / JPEG / BMP / GIF, one per image) and
  decodes, converts and resizes them inside the graph exactly as tfmeta's loaders do. Both return
  ``logits`` and ``probabilities`` ``[batch, classes]``, ``class_ids`` ``[batch]`` (int64) and
  ``class_names`` ``[batch]`` (the predicted class's name; the names are constants in the graph).
* :class:`FewShotServable` -- a meta-trained learner that adapts inside the graph, per request:
  ``serving_default`` takes ``support_images`` ``[S, H, W, C]``, ``support_labels`` ``[S]``
  (int32 ``0..n-1``, every label present) and ``query_images`` ``[Q, H, W, C]`` and returns
  ``logits``, ``probabilities`` ``[Q, n]`` and ``class_ids`` ``[Q]``. A request whose support
  images have the other polarity than the training images is inverted (support and query).
* :class:`EmbeddingServable` -- the meta-learned features: ``serving_default`` and ``embed`` take
  ``images`` (float32 ``[batch, H, W, C]`` in ``[0, 1]``) and return ``embeddings`` ``[batch, D]``.
"""

from __future__ import annotations

import tensorflow as tf

from tfmeta.data.images import decode_image, other_polarity  # noqa: F401  (decode_image: re-exported)
from tfmeta.learners.answers import unknown_scores

def _outputs(logits, unknown_threshold=None):
    """What a classifying signature answers; ``unknown_score`` as
    :func:`tfmeta.learners.answers.unknown_scores`, ``is_unknown`` above ``unknown_threshold``
    (``None``: a run not calibrated; nothing is unknown)."""
    class_ids = tf.argmax(logits, -1, output_type=tf.int64)
    scores = unknown_scores(logits)
    threshold = (float("inf") if unknown_threshold is None
                 else tf.cast(unknown_threshold, tf.float32))  # a float, or a tensor in a graph
    return {"logits": logits, "probabilities": tf.nn.softmax(logits), "class_ids": class_ids,
            "unknown_score": scores, "is_unknown": scores > threshold}


class ClassifierServable(tf.Module):
    """An adapted Keras classifier with its class names (see the module docstring)."""

    def __init__(self, classifier, class_names, unknown_threshold=None):
        super().__init__(name="classifier_servable")
        self.classifier = classifier
        self.unknown_threshold = unknown_threshold
        self.class_names = [str(name) for name in class_names]
        self.input_shape = tuple(int(d) for d in classifier.inputs[0].shape[1:])
        if len(self.class_names) > int(classifier.outputs[0].shape[-1]):
            raise ValueError(f"{len(self.class_names)} class names for a classifier with "
                             f"{classifier.outputs[0].shape[-1]} outputs")
        self.classify = tf.function(self._classify, input_signature=[
            tf.TensorSpec((None,) + self.input_shape, tf.float32, name="images")])
        self.classify_bytes = tf.function(self._classify_bytes, input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes")])

    def _classify(self, images):
        logits = self.classifier(images, training=False)[:, :len(self.class_names)]
        outputs = _outputs(logits, self.unknown_threshold)
        outputs["class_names"] = tf.gather(tf.constant(self.class_names), outputs["class_ids"])
        return outputs

    def _classify_bytes(self, image_bytes):
        height, width, channels = self.input_shape
        images = tf.map_fn(lambda encoded: decode_image(encoded, height, width, channels),
                           image_bytes, fn_output_signature=tf.TensorSpec(
                               self.input_shape, tf.float32))
        return self._classify(images)

    def signatures(self) -> dict:
        return {"serving_default": self.classify.get_concrete_function(),
                "serving_bytes": self.classify_bytes.get_concrete_function()}


class FewShotServable(tf.Module):
    """A learner that adapts to the support set of each request (see the module docstring)."""

    def __init__(self, learner):
        super().__init__(name="fewshot_servable")
        self.model = learner.model
        self.parts = dict(learner.parts)
        self._learner = learner
        self.input_shape = tuple(int(d) for d in learner.input_shape)
        image_spec = (None,) + self.input_shape
        self.classify = tf.function(self._classify, input_signature=[
            tf.TensorSpec(image_spec, tf.float32, name="support_images"),
            tf.TensorSpec([None], tf.int32, name="support_labels"),
            tf.TensorSpec(image_spec, tf.float32, name="query_images")])

    def _classify(self, support_images, support_labels, query_images):
        ways = tf.reduce_max(support_labels) + 1
        present = tf.size(tf.unique(support_labels).y)
        checks = [
            tf.debugging.assert_non_negative(support_labels, message="support_labels must be >= 0"),
            tf.debugging.assert_equal(present, ways, message=(
                "support_labels must use every label 0..n-1")),
            tf.debugging.assert_equal(tf.shape(support_labels)[0], tf.shape(support_images)[0],
                                      message="one support label per support image")]
        if self._learner.max_ways is not None:
            most = self._learner.max_ways
            checks.append(tf.debugging.assert_less_equal(ways, most, message=(
                f"this model was trained for at most {most} classes per request")))
        if self._learner.polarity is not None:  # bring the request to the training polarity
            other = other_polarity(support_images, self._learner.polarity)
            support_images = tf.where(other, 1.0 - support_images, support_images)
            query_images = tf.where(other, 1.0 - query_images, query_images)
        with tf.control_dependencies(checks):
            logits = self._learner.fewshot_logits(support_images, support_labels, query_images)
        # the threshold of the request's setting (the nearest calibrated one)
        return _outputs(logits, self._learner.support_calibration(support_labels)[1])

    def signatures(self) -> dict:
        return {"serving_default": self.classify.get_concrete_function()}


class EmbeddingServable(tf.Module):
    """A Keras embedding model (``Learner.embedding_model``; see the module docstring)."""

    def __init__(self, embedder):
        super().__init__(name="embedding_servable")
        self.embedder = embedder
        self.input_shape = tuple(int(d) for d in embedder.inputs[0].shape[1:])
        self.embed = tf.function(self._embed, input_signature=[
            tf.TensorSpec((None,) + self.input_shape, tf.float32, name="images")])

    def _embed(self, images):
        return {"embeddings": tf.cast(self.embedder(images, training=False), tf.float32)}

    def signatures(self) -> dict:
        embed = self.embed.get_concrete_function()
        return {"serving_default": embed, "embed": embed}
