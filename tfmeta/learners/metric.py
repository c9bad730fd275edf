"""What metric-based learners share: embed every image of a meta-batch in one pass, then score each
task's queries against its support set with a head that has no trainable inner loop.

The model is an embedding network (images -> features; ``conv4`` without a head). The meta-batch
stays a tensor dimension end to end: support and query images of all tasks go through the model as
one batch, and heads work on ``[tasks, ...]`` tensors. BatchNorm behaves as in ordinary training
(batch statistics and running averages while meta-training, running averages at test time), so an
adapted classifier answers each image on its own.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfmeta.learners.base import Learner, accuracy, cross_entropy


def embed(model, images, training, flatten=True):
    """``[tasks, n, H, W, C]`` images -> ``[tasks, n, features]`` embeddings (flattened), or
    ``[tasks, n, ...]`` feature maps with ``flatten=False``."""
    tasks, n = tf.shape(images)[0], tf.shape(images)[1]
    flat = tf.reshape(images, tf.concat([[tasks * n], tf.shape(images)[2:]], 0))
    features = model(flat, training=training)
    size = features.shape[1:].num_elements()  # static, so heads see the feature dimension
    shape = ([-1 if size is None else size]) if flatten else list(features.shape[1:])
    return tf.reshape(features, tf.concat([[tasks, n], shape], 0))


class SupportHead(keras.layers.Layer):
    """A Keras layer holding an adapted support set: ``query embeddings -> logits``.

    ``score(support_embeddings [1, S, D], support_labels [1, S], query [1, Q, D], ways)`` is the
    learner's head; support embeddings and labels are stored as (non-trainable) weights, and the
    modules the head uses (``parts``: a relation module, a calibration) are tracked, so the
    adapted classifier is a self-contained Keras model (and exports as one).
    """

    def __init__(self, score, support_embeddings, support_labels, ways, parts=None, **kwargs):
        super().__init__(**kwargs)
        self.score = score
        self.head_parts = tf.Module(name="head_parts")
        for name, part in (parts or {}).items():
            setattr(self.head_parts, name, part)
        self.ways = int(ways)
        self.support_embeddings = self.add_weight(
            shape=support_embeddings.shape, initializer="zeros", trainable=False,
            name="support_embeddings")
        self.support_embeddings.assign(support_embeddings)
        self.support_labels = self.add_weight(shape=support_labels.shape, initializer="zeros",
                                              dtype="int32", trainable=False,
                                              name="support_labels")
        self.support_labels.assign(support_labels)

    def call(self, query_embeddings):
        q = query_embeddings[None]
        s = tf.convert_to_tensor(self.support_embeddings)[None]
        y = tf.convert_to_tensor(self.support_labels)[None]
        return self.score(s, y, q, self.ways)[0]


class MetricLearner(Learner):
    """Base of metric learners: subclasses define ``score`` (and may override ``episode_loss``).

    ``flatten_features = False`` keeps the model's feature maps (Relation Networks).
    """

    flatten_features = True

    def score(self, support, support_y, query, ways, training=False):
        """Logits ``[tasks, Q, ways]`` of queries ``[tasks, Q, D]`` given support ``[tasks, S, D]``."""
        raise NotImplementedError

    def episode_loss(self, support, support_y, query, query_y, ways):
        """``(losses [tasks], logits)`` of a meta-batch while training: each task's query
        cross-entropy under ``score``."""
        logits = self.score(support, support_y, query, ways, training=True)
        return cross_entropy(logits, query_y, axis=-1), logits

    @staticmethod
    def ways_of(support_y):
        return tf.reduce_max(support_y) + 1

    def embed_episodes(self, support_x, query_x, training):
        """Support and query embeddings of every task, from one pass through the model."""
        s = tf.shape(support_x)[1]
        features = embed(self.model, tf.concat([support_x, query_x], axis=1), training,
                         self.flatten_features)
        return features[:, :s], features[:, s:]

    def episode_logits(self, support_x, support_y, query_x, training):
        support, query = self.embed_episodes(support_x, query_x, training)
        return self.score(support, support_y, query, self.ways_of(support_y), training=training)

    def task_losses(self, support_x, support_y, query_x, query_y):
        """All tasks at once: one pass of the model over every image of the meta-batch."""
        support, query = self.embed_episodes(support_x, query_x, training=True)
        losses, logits = self.episode_loss(support, support_y, query, query_y,
                                           self.ways_of(support_y))
        return losses, accuracy(logits, query_y, axis=-1)

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        logits = self.episode_logits(support_x, support_y, query_x, training=False)
        return {"loss": cross_entropy(logits, query_y, axis=-1),
                "accuracy": accuracy(logits, query_y, axis=-1)}

    def fewshot_logits(self, support_x, support_y, query_x):
        return self.episode_logits(support_x[None], support_y[None], query_x[None],
                                   training=False)[0]

    def _adapt(self, support_x, support_y):
        """A Keras classifier: the embedding network followed by the support set's head."""
        support_x = tf.convert_to_tensor(support_x, tf.float32)
        support_y = tf.convert_to_tensor(support_y, tf.int32)
        self.check_ways(support_y.numpy())
        ways = int(tf.reduce_max(support_y)) + 1
        features = self.model(support_x, training=False)
        if self.flatten_features:
            features = tf.reshape(features, [len(support_x), -1])
        head = SupportHead(self.score, features, support_y, ways, self.parts,
                           name="support_head")
        inputs = keras.Input(self.input_shape, name="images")
        embedded = self.model(inputs)
        if self.flatten_features:
            embedded = keras.layers.Flatten()(embedded)
        outputs = head(embedded)
        return keras.Model(inputs, outputs, name=f"{self.name}_classifier")


class CalibratedMetricLearner(MetricLearner):
    """A metric learner whose logits get a meta-learned scale: ``scale * s`` (R2-D2, MetaOptNet;
    their bias, one number added to every class's logit, is dropped: softmax cannot see it).
    ``config.scale`` is the initial scale; ``config.label_smoothing`` (if any) smooths the
    meta-training loss."""

    def build_parts(self) -> dict:
        self.calibration = tf.Module(name="calibration")
        self.calibration.scale = tf.Variable(float(self.config.scale), name="scale")
        return {"calibration": self.calibration}

    def calibrate(self, scores):
        return self.calibration.scale * scores

    def episode_loss(self, support, support_y, query, query_y, ways):
        logits = self.score(support, support_y, query, ways, training=True)
        smoothing = getattr(self.config, "label_smoothing", 0.0)
        if not smoothing:
            return cross_entropy(logits, query_y, axis=-1), logits
        targets = tf.one_hot(query_y, tf.shape(logits)[-1], dtype=logits.dtype)
        return tf.reduce_mean(keras.losses.categorical_crossentropy(
            targets, logits, from_logits=True, label_smoothing=smoothing), -1), logits
