"""Episode losses and metrics."""

import tensorflow as tf


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer ``labels``."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits))


def accuracy(logits, labels):
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype),
                                           labels), tf.float32))
