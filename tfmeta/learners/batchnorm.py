"""BatchNorm as the learners need it.

* :func:`exact_batchnorm_moments` -- make every BatchNormalization layer of a model compute its
  batch moments so that they can be differentiated twice. Keras computes the variance with
  ``tf.nn.moments``, which puts a ``stop_gradient`` on the mean: the first derivative is still
  exact (the deviations from the mean sum to zero) but the second is not, and second-order MAML
  through such a layer is off by tens of percent. The replacement computes
  ``mean = E[x]`` and ``variance = E[(x - mean)^2]`` with no ``stop_gradient`` (same values).
  :func:`differentiated_once` lends such layers the fused kernel for a forward pass whose graph
  is differentiated only once (MAML's query loss).
* :func:`fused_batchnorm` -- make training-mode BatchNorm one fused kernel (TensorFlow's
  ``FusedBatchNormV3``: moments and normalisation in one pass over the activations, the gradient
  in one more; oneDNN on CPUs, cuDNN on GPUs) instead of Keras' separate moment, normalise and
  gradient operations: same values, faster (README, Performance). Every learner applies it to its
  model and parts; layers given exact moments (second-order learners) keep Keras' path, but for
  passes differentiated only once (:func:`differentiated_once`).
* :func:`freeze_batchnorm_statistics` -- set moving statistics to the statistics of one batch (the
  support set), so that an adapted classifier answers each image on its own.
"""

from __future__ import annotations

import contextlib
import threading
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
            # Per thread: replicas of a strategy trace their forward passes in threads of their own
            layer._differentiated_once = threading.local()
            changed += 1
    return changed


def _exact_moments_now(layer) -> bool:
    """Whether ``layer`` has exact moments and the forward pass at hand needs them."""
    if "_moments" not in vars(layer):
        return False
    once = vars(layer).get("_differentiated_once")
    return not (once is not None and getattr(once, "on", False))


@contextlib.contextmanager
def differentiated_once(model: keras.Model):
    """Within the block, in this thread, layers given :func:`exact_batchnorm_moments` compute a
    training-mode pass with the fused kernel, as plain layers do (:func:`fused_batchnorm`).

    For a forward pass whose graph is differentiated only once even in a second-order
    meta-gradient: MAML's query loss at the adapted weights phi. The outer gradient
    back-propagates through it once, to phi, and only then through the inner loop's gradients,
    whose support passes are the ones differentiated twice and keep the exact moments. The values
    and first derivatives are the same either way (tests/test_batchnorm.py,
    tests/test_maml_math.py); the kernel is faster (benchmarks/throughput.py)."""
    switches = [vars(layer)["_differentiated_once"] for layer in batchnorm_layers(model)
                if "_differentiated_once" in vars(layer)]
    previous = [getattr(switch, "on", False) for switch in switches]
    for switch in switches:
        switch.on = True
    try:
        yield
    finally:
        for switch, on in zip(switches, previous):
            switch.on = on


def _fused_training_call(layer, inputs, training=None, mask=None):
    """Keras' BatchNormalization ``call``, with the training-mode pass of a plain layer (NHWC
    maps computed in float32, as Keras computes them; no mask, no exact moments) in one fused
    kernel."""
    plain = (training and layer.trainable and mask is None and not _exact_moments_now(layer)
             and inputs.shape.rank == 4 and layer.axis in (-1, 3)
             and inputs.dtype in (tf.float16, tf.bfloat16, tf.float32))
    if not plain:
        return type(layer).call(layer, inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)
    channels = x.shape[-1]
    gamma = layer.gamma.value if layer.scale else tf.ones([channels])
    beta = layer.beta.value if layer.center else tf.zeros([channels])
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=layer.epsilon, data_format="NHWC", is_training=True)
    # The kernel returns the unbiased (n - 1) batch variance; Keras keeps the biased one.
    n = tf.cast(tf.size(x) // channels, tf.float32)
    variance = variance * tf.maximum(n - 1.0, 0.0) / n
    layer.moving_mean.assign(layer.moving_mean * layer.momentum + mean * (1.0 - layer.momentum))
    layer.moving_variance.assign(layer.moving_variance * layer.momentum
                                 + variance * (1.0 - layer.momentum))
    return tf.cast(outputs, layer.compute_dtype)


def fused_batchnorm(model: keras.Model, on: bool = True) -> int:
    """Give each BatchNormalization layer of ``model`` (nested models too) a training-mode pass
    through TensorFlow's fused BatchNorm kernel; returns how many layers were changed.
    ``on=False`` gives the layers back Keras' own ``call`` (to measure what the kernel gains, or
    to rule it out while debugging).

    The values are Keras' own (outputs, gradients, moving statistics; ``tests/test_batchnorm.py``).
    The layers stay stock Keras layers (only the instances' ``call`` changes; saved models are
    unaffected), and every other case -- inference, masks, renorm, synchronized layers, inputs
    that are not 4-D channels-last maps, float64, layers given :func:`exact_batchnorm_moments`
    -- runs Keras' code. Second-order learners give their layers exact moments, so they keep
    Keras' path outside :func:`differentiated_once` blocks: differentiating the kernel's gradient
    once more matched the exact moments' meta-gradient, but TensorFlow built graphs with cycles
    from it for Meta-SGD ("nodes in a cycle", at random between traces).
    """
    changed = 0
    for layer in batchnorm_layers(model):
        if not on:
            if "call" in vars(layer):
                del layer.call
                changed += 1
            continue
        if getattr(layer, "synchronized", False) or getattr(layer, "renorm", False):
            continue
        if "call" not in vars(layer):
            layer.call = types.MethodType(_fused_training_call, layer)
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
