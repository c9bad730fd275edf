"""Episode losses and metrics."""

import tensorflow as tf


def cross_entropy(logits, labels, axis=None, smoothing: float = 0.0):
    """Mean softmax cross-entropy of integer ``labels`` (over ``axis``; ``None``: all).

    ``smoothing`` (label smoothing, Szegedy et al. 2016): the target is ``1 - smoothing`` on the
    label plus ``smoothing / classes`` on every class (Keras' ``label_smoothing``)."""
    logits = full_precision(logits)
    if not smoothing:
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits), axis)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
        labels=smoothed_one_hot(labels, tf.shape(logits)[-1], smoothing), logits=logits), axis)


def smoothed_one_hot(labels, classes, smoothing: float = 0.0, dtype=tf.float32):
    """One-hot targets of ``labels`` over ``classes``, smoothed: ``1 - smoothing`` on the label
    plus ``smoothing / classes`` everywhere."""
    targets = tf.one_hot(labels, classes, dtype=dtype)
    if not smoothing:
        return targets
    return targets * (1.0 - smoothing) + smoothing / tf.cast(classes, dtype)


def accuracy(logits, labels, axis=None):
    """Fraction of ``labels`` that are the ``logits``' argmax (over ``axis``; ``None``: all)."""
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype),
                                           labels), tf.float32), axis)


def full_precision(x):
    """``x`` in float32 if it is float16 / bfloat16 (a mixed-precision model's output), else as
    it is: losses, softmaxes, distances and closed-form heads run in full precision."""
    return tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x
