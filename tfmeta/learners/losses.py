"""Episode losses and metrics."""

import tensorflow as tf


def cross_entropy(logits, labels, axis=None):
    """Mean softmax cross-entropy of integer ``labels`` (over ``axis``; ``None``: all)."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits), axis)


def accuracy(logits, labels, axis=None):
    """Fraction of ``labels`` that are the ``logits``' argmax (over ``axis``; ``None``: all)."""
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype),
                                           labels), tf.float32), axis)
