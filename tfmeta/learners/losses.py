"""Episode losses and metrics."""

import tensorflow as tf


def cross_entropy(logits, labels, axis=None):
    """Mean softmax cross-entropy of integer ``labels`` (over ``axis``; ``None``: all)."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=full_precision(logits)), axis)


def accuracy(logits, labels, axis=None):
    """Fraction of ``labels`` that are the ``logits``' argmax (over ``axis``; ``None``: all)."""
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype),
                                           labels), tf.float32), axis)


def full_precision(x):
    """``x`` in float32 if it is float16 / bfloat16 (a mixed-precision model's output), else as
    it is: losses, softmaxes, distances and closed-form heads run in full precision."""
    return tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x
