"""Training-mode BatchNorm through TensorFlow's fused kernel (tfmeta.learners.batchnorm.
fused_batchnorm) against Keras' own layer: the same outputs, gradients and moving statistics on
Conv4 as meta-training runs it (directly and through stateless_call), Keras' code wherever the
kernel does not apply, and the first-order learners' compiled meta-steps really using it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.learners.batchnorm import batchnorm_layers, fused_batchnorm
from tfmeta.models import conv4


def _twins(dtype="float32", **options):
    """Two Conv4 models with the same weights; the second with fused BatchNorm."""
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        models.append(conv4((28, 28, 1), width=8, **options) if dtype == "float32" else
                      _float64_conv4())
    assert fused_batchnorm(models[1]) == 4
    return models


def _float64_conv4():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        return conv4((28, 28, 1), width=8)
    finally:
        keras.config.set_dtype_policy(policy)


def _images(n=12, dtype=np.float32):
    return tf.constant(np.random.default_rng(0).uniform(size=(n, 28, 28, 1)).astype(dtype))


def _step(model, images):
    """Outputs and loss gradients of a compiled training-mode pass (which updates the moving
    statistics)."""
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = tf.reduce_sum(tf.sin(outputs))
        return outputs, tape.gradient(loss, model.trainable_variables)

    return run()


def test_fused_batchnorm_gives_keras_outputs_gradients_and_moving_statistics():
    keras_model, fused = _twins()
    images = _images()
    for _ in range(2):  # the second pass starts from updated moving statistics
        (out_k, grads_k), (out_f, grads_f) = _step(keras_model, images), _step(fused, images)
    np.testing.assert_allclose(out_f.numpy(), out_k.numpy(), rtol=1e-4, atol=1e-5)
    for v, gk, gf in zip(keras_model.trainable_variables, grads_k, grads_f):
        if v.name == "bias":  # a convolution's bias before BatchNorm: its gradient is zero
            np.testing.assert_allclose(gf.numpy(), 0, atol=1e-3)
            np.testing.assert_allclose(gk.numpy(), 0, atol=1e-3)
            continue
        scale = np.abs(gk.numpy()).max()
        np.testing.assert_allclose(gf.numpy() / scale, gk.numpy() / scale, atol=1e-5,
                                   err_msg=v.path)
    for vk, vf in zip(keras_model.non_trainable_variables, fused.non_trainable_variables):
        np.testing.assert_allclose(vf.numpy(), vk.numpy(), rtol=1e-5, atol=1e-6, err_msg=vk.path)
        assert not np.allclose(vk.numpy(), 0) and not np.allclose(vk.numpy(), 1)  # updated
    # Inference uses the moving statistics, through Keras' code in both.
    np.testing.assert_allclose(fused(images, training=False).numpy(),
                               keras_model(images, training=False).numpy(), rtol=1e-4, atol=1e-5)


def test_fused_batchnorm_under_stateless_call_returns_the_statistics_instead_of_assigning():
    """The optimisation learners' functional forward: new moving statistics come back as values
    (as Keras' layer returns them) and the variables are untouched."""
    keras_model, fused = _twins()
    images = _images(7)
    results = []
    for model in (keras_model, fused):
        before = [v.numpy() for v in model.non_trainable_variables]
        outputs, statistics = model.stateless_call(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables], images, training=True)
        for v, b in zip(model.non_trainable_variables, before):
            np.testing.assert_array_equal(v.numpy(), b)
        results.append((outputs.numpy(), [s.numpy() for s in statistics]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    for sk, sf in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(sf, sk, rtol=1e-5, atol=1e-6)


def _fused_ops(function, *args, op="FusedBatchNorm") -> int:
    """Operations whose type starts with ``op`` (the fused kernel's, its gradient's too) in a
    traced function's graph, its nested functions included."""
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return sum(n.op.startswith(op) for n in nodes)


def test_the_kernel_is_used_only_where_it_applies():
    keras_model, fused = _twins()
    images = _images()
    assert _fused_ops(tf.function(lambda x: fused(x, training=True)), images) == 4
    assert _fused_ops(tf.function(lambda x: keras_model(x, training=True)), images) == 0
    assert _fused_ops(tf.function(lambda x: fused(x, training=False)), images) == 0
    # float64 (the exactness tests' precision) has no fused kernel: Keras' code, same values.
    plain64, fused64 = _twins("float64")
    images64 = _images(dtype=np.float64)
    assert _fused_ops(tf.function(lambda x: fused64(x, training=True)), images64) == 0
    np.testing.assert_allclose(fused64(images64, training=True).numpy(),
                               plain64(images64, training=True).numpy(), rtol=1e-12)
    # Feature vectors (BatchNorm after Dense) keep Keras' code; a frozen layer infers.
    dense = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization()])
    assert fused_batchnorm(dense) == 1
    assert _fused_ops(tf.function(lambda x: dense(x, training=True)), tf.ones((3, 6))) == 0
    for layer in batchnorm_layers(fused):
        layer.trainable = False
    assert _fused_ops(tf.function(lambda x: fused(x, training=True)), images) == 0
    # Renorm and synchronized layers are left alone.
    special = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.BatchNormalization(
        renorm=True), keras.layers.BatchNormalization(synchronized=True)])
    assert fused_batchnorm(special) == 0
    # Turned off: Keras' own call again.
    assert fused_batchnorm(keras_model) == 4 and fused_batchnorm(keras_model, on=False) == 4
    assert _fused_ops(tf.function(lambda x: keras_model(x, training=True)), images) == 0


@pytest.mark.parametrize("algorithm", ["fomaml", "reptile", "protonet", "maml"])
def test_first_order_learners_meta_train_through_the_fused_kernel(algorithm, small_glyphs):
    """...and second-order MAML on its query pass alone (differentiated once), its support passes
    through its exact moments (tests/test_maml_math.py)."""
    from tfmeta.data import EpisodeConfig, EpisodeSampler
    from tfmeta.learners import create

    episode = EpisodeConfig(3, 1, 2)
    options = {"reptile": {"train_shots": None}}.get(algorithm, {})
    learner = create(algorithm, "conv4", episode=episode, input_shape=(28, 28, 1),
                     backbone_width=8, **options)
    batch = next(iter(EpisodeSampler(small_glyphs, episode, 2, seed=0).dataset()))
    fused = _fused_ops(learner._train_fn, *batch)
    assert fused >= 4
    if algorithm == "maml":  # one forward pass in the kernel: the query's, in every task
        assert _fused_ops(learner._train_fn, *batch, op="FusedBatchNormV3") == 4


def test_differentiated_once_lends_the_kernel_to_exact_moments_in_its_own_thread_only():
    import threading

    from tfmeta.learners.batchnorm import differentiated_once, exact_batchnorm_moments

    _, model = _twins()
    assert exact_batchnorm_moments(model) == 4
    images = _images()
    run = lambda: _fused_ops(tf.function(lambda x: model(x, training=True)), images)  # noqa: E731
    assert run() == 0  # exact moments: Keras' path
    seen = {}
    with differentiated_once(model):
        assert run() == 4
        other = threading.Thread(target=lambda: seen.update(other=run()))
        other.start()
        other.join()
        with differentiated_once(model):  # nested blocks
            assert run() == 4
        assert run() == 4
    assert seen["other"] == 0  # another thread (a strategy's replica) keeps the exact moments
    assert run() == 0
