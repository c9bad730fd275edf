"""BatchNorm as the optimisation-based learners need it.

* :func:`exact_batchnorm_moments` -- make every BatchNormalization layer of a model compute its
  batch moments so that they can be differentiated twice. Keras computes the variance with
  ``tf.nn.moments``, which puts a ``stop_gradient`` on the mean: the first derivative is still
  exact (the deviations from the mean sum to zero) but the second is not, and second-order MAML
  through such a layer is off by tens of percent. The replacement computes
  ``mean = E[x]`` and ``variance = E[(x - mean)^2]`` with no ``stop_gradient`` (same values).
* :func:`freeze_batchnorm_statistics` -- set moving statistics to the statistics of one batch (the
  support set), so that an adapted classifier answers each image on its own.
"""

from __future__ import annotations

import contextlib
import types
import warnings

import keras
import tensorflow as tf


def batchnorm_layers(model: keras.Model) -> list:
    from tfmeta.models import nested_layers

    return [layer for layer in nested_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)]


def _twice_differentiable_moments(layer, inputs, mask):
    if mask is not None:  # Keras' masked moments have no stop_gradient already
        return type(layer)._moments(layer, inputs, mask)
    axes = list(layer._reduction_axes)
    mean = tf.reduce_mean(inputs, axes, keepdims=True)
    variance = tf.reduce_mean(tf.square(inputs - mean), axes, keepdims=True)
    return tf.squeeze(mean, axes), tf.squeeze(variance, axes)


def exact_batchnorm_moments(model: keras.Model) -> int:
    """Give each BatchNormalization layer of ``model`` (nested models too) batch moments that
    are exact under second-order differentiation; returns how many layers were changed.

    Only the layer instances of ``model`` change (their ``_moments``), not the class: values are
    identical, saved models are stock Keras models. A synchronized (cross-replica) BatchNorm keeps
    Keras' moments and is reported with a warning, since its second derivative is not exact.
    """
    changed = 0
    for layer in batchnorm_layers(model):
        if getattr(layer, "synchronized", False):
            warnings.warn(f"BatchNormalization layer '{layer.name}' is synchronized: its "
                          "second-order gradients are not exact; use synchronized=False for "
                          "second-order MAML", stacklevel=2)
            continue
        if "_moments" not in vars(layer):
            layer._moments = types.MethodType(_twice_differentiable_moments, layer)
            changed += 1
    return changed


@contextlib.contextmanager
def batchnorm_momentum_zero(model: keras.Model):
    """Within the block, a training-mode pass sets BatchNorm moving statistics to exactly the
    batch statistics (momentum 0); momenta are restored afterwards."""
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def freeze_batchnorm_statistics(model: keras.Model, images) -> None:
    """Set every BatchNorm layer's moving statistics to the batch statistics of ``images``.

    Learners that use batch statistics during meta-training and evaluation (MAML and Reptile, as in
    their papers: transductive BatchNorm) call this on an adapted copy, so that the classifier they
    return normalises with the support set's statistics and gives each image the same answer
    whatever batch it comes in. One forward pass in training mode with momentum 0 does it exactly.
    """
    with batchnorm_momentum_zero(model):
        model(images, training=True)
