"""MAML's meta-gradients against independent computations (float64, tiny model)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.learners import MAML, MAMLConfig, sgd_inner_loop
from tfmeta.learners.base import cross_entropy


def _tiny_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((3,), dtype="float64")
    x = keras.layers.Dense(4, activation="tanh", dtype="float64")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, dtype="float64")(x))


def _task(seed, meta_batch=2):
    rng = np.random.default_rng(seed)
    sx = tf.constant(rng.normal(size=(meta_batch, 6, 3)))
    qx = tf.constant(rng.normal(size=(meta_batch, 9, 3)))
    sy = tf.constant(np.tile([0, 1, 2], (meta_batch, 2)), tf.int32)
    qy = tf.constant(np.tile([0, 1, 2], (meta_batch, 3)), tf.int32)
    return sx, sy, qx, qy


def _meta_loss(learner, theta, batch, steps, lr):
    """The MAML objective evaluated directly: mean_i L_query_i(inner_loop(theta))."""
    sx, sy, qx, qy = batch
    losses = []
    for i in range(sx.shape[0]):
        phi = sgd_inner_loop(learner.forward, theta, sx[i], sy[i], steps, lr)
        losses.append(cross_entropy(learner.forward(phi, qx[i]), qy[i]))
    return float(tf.add_n(losses) / len(losses))


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(steps):
    learner = MAML(_tiny_model(), MAMLConfig(inner_steps=steps, inner_lr=0.5), compiled=False)
    batch = _task(0)
    grads, _, _ = learner.meta_gradients(*batch)
    theta = [v.numpy() for v in learner.model.trainable_variables]
    eps = 1e-6
    numeric = []
    for k, t in enumerate(theta):
        g = np.zeros_like(t)
        for idx in np.ndindex(t.shape):
            plus = [p.copy() for p in theta]
            minus = [p.copy() for p in theta]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            g[idx] = (_meta_loss(learner, [tf.constant(p) for p in plus], batch, steps, 0.5)
                      - _meta_loss(learner, [tf.constant(p) for p in minus], batch, steps, 0.5)) / (2 * eps)
        numeric.append(g)
    analytic = np.concatenate([g.numpy().ravel() for g in grads])
    numeric = np.concatenate([g.ravel() for g in numeric])
    relative = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    assert relative < 1e-3, relative

    first = MAML(learner.model, MAMLConfig(inner_steps=steps, inner_lr=0.5, first_order=True),
                 compiled=False)
    fo = np.concatenate([g.numpy().ravel() for g in first.meta_gradients(*batch)[0]])
    assert np.linalg.norm(fo - analytic) / np.linalg.norm(analytic) > 1e-2  # second order matters


def test_first_order_equals_query_gradient_at_adapted_weights():
    learner = MAML(_tiny_model(), MAMLConfig(inner_steps=2, inner_lr=0.5, first_order=True),
                   compiled=False)
    sx, sy, qx, qy = batch = _task(1, meta_batch=3)
    grads, _, _ = learner.meta_gradients(*batch)
    # Independent: adapt without any graph to theta, then the plain gradient at phi.
    theta = [v.numpy() for v in learner.model.trainable_variables]
    expected = [np.zeros_like(t) for t in theta]
    for i in range(3):
        phi = sgd_inner_loop(learner.forward, [tf.constant(t) for t in theta], sx[i], sy[i], 2, 0.5,
                             differentiable=False)
        with tf.GradientTape() as tape:
            tape.watch(phi)
            loss = cross_entropy(learner.forward(phi, qx[i]), qy[i])
        for e, g in zip(expected, tape.gradient(loss, phi)):
            e += g.numpy() / 3
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-10, atol=1e-12)


def test_inner_loop_step_matches_its_formula():
    learner = MAML(_tiny_model(), MAMLConfig(), compiled=False)
    sx, sy, _, _ = _task(2)
    theta = [tf.constant(v.numpy()) for v in learner.model.trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch(theta)
        loss = cross_entropy(learner.forward(theta, sx[0]), sy[0])
    g = tape.gradient(loss, theta)
    phi = sgd_inner_loop(learner.forward, theta, sx[0], sy[0], 1, 0.3)
    for p, t, gi in zip(phi, theta, g):
        np.testing.assert_allclose(p.numpy(), t.numpy() - 0.3 * gi.numpy(), rtol=1e-12)
