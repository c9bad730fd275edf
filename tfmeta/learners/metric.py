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


def embed(model, images, training):
    """``[tasks, n, H, W, C]`` images -> ``[tasks, n, features]`` (flattened) embeddings."""
    tasks, n = tf.shape(images)[0], tf.shape(images)[1]
    flat = tf.reshape(images, tf.concat([[tasks * n], tf.shape(images)[2:]], 0))
    features = model(flat, training=training)
    return tf.reshape(features, [tasks, n, -1])


class SupportHead(keras.layers.Layer):
    """A Keras layer holding an adapted support set: ``query embeddings -> logits``.

    ``score(support_embeddings [1, S, D], support_labels [1, S], query [1, Q, D], ways)`` is the
    learner's head; support embeddings and labels are stored as (non-trainable) weights, so the
    adapted classifier is a self-contained Keras model (and exports as one).
    """

    def __init__(self, score, support_embeddings, support_labels, ways, **kwargs):
        super().__init__(**kwargs)
        self.score = score
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
        q = tf.reshape(query_embeddings, [1, tf.shape(query_embeddings)[0], -1])
        s = tf.convert_to_tensor(self.support_embeddings)[None]
        y = tf.convert_to_tensor(self.support_labels)[None]
        return self.score(s, y, q, self.ways)[0]


class MetricLearner(Learner):
    """Base of metric learners: subclasses define ``score`` (and may override ``loss``)."""

    def score(self, support, support_y, query, ways):
        """Logits ``[tasks, Q, ways]`` of queries ``[tasks, Q, D]`` given support ``[tasks, S, D]``."""
        raise NotImplementedError

    def loss(self, logits, labels, ways):
        return cross_entropy(logits, labels)

    @staticmethod
    def ways_of(support_y):
        return tf.reduce_max(support_y) + 1

    def episode_logits(self, support_x, support_y, query_x, training):
        tasks, s = tf.shape(support_x)[0], tf.shape(support_x)[1]
        images = tf.concat([support_x, query_x], axis=1)  # one pass through the model
        features = embed(self.model, images, training)
        return self.score(features[:, :s], support_y, features[:, s:], self.ways_of(support_y))

    def _meta_train_step(self, support_x, support_y, query_x, query_y):
        with tf.GradientTape() as tape:
            logits = self.episode_logits(support_x, support_y, query_x, training=True)
            loss = self.loss(logits, query_y, self.ways_of(support_y))
        grads = tape.gradient(loss, self.meta_variables)
        self.optimizer.apply_gradients(zip(grads, self.meta_variables))
        return {"loss": loss, "accuracy": accuracy(logits, query_y)}

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        logits = self.episode_logits(support_x, support_y, query_x, training=False)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=query_y, logits=logits)
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=query_y.dtype), query_y),
                       tf.float32)
        return {"loss": tf.reduce_mean(losses, -1), "accuracy": tf.reduce_mean(hits, -1)}

    def adapt(self, support_x, support_y):
        """A Keras classifier: the embedding network followed by the support set's head."""
        support_x = tf.convert_to_tensor(support_x, tf.float32)
        support_y = tf.convert_to_tensor(support_y, tf.int32)
        ways = int(tf.reduce_max(support_y)) + 1
        features = tf.reshape(self.model(support_x, training=False), [len(support_x), -1])
        head = SupportHead(self.score, features, support_y, ways, name="support_head")
        inputs = keras.Input(self.input_shape, name="images")
        outputs = head(keras.layers.Flatten()(self.model(inputs)))
        return keras.Model(inputs, outputs, name=f"{self.name}_classifier")
