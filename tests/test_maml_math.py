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
        phi = learner.inner_loop(theta, sx[i], sy[i], steps)
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
    assert relative < 1e-6, relative

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
        phi = learner.inner_loop([tf.constant(t) for t in theta], sx[i], sy[i], 2,
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
    # MAML's default inner loss is the mean: its step is alpha times the mean loss's gradient.
    phi = learner.inner_loop(theta, sx[0], sy[0], 1)
    for p, t, gi in zip(phi, theta, g):
        np.testing.assert_allclose(p.numpy(), t.numpy() - 0.4 * gi.numpy(), rtol=1e-10)
    # The paper code's (inner_reduction="sum/shots"): per-image losses summed over the N*K support
    # images and divided by K, i.e. N times the mean (alpha = 0.4 is tuned for that).
    learner = MAML(learner.model, MAMLConfig(inner_reduction="sum/shots"), compiled=False)
    summed = [tf.constant(t.numpy()) for t in theta]
    with tf.GradientTape() as tape:
        tape.watch(summed)
        per_image = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=sy[0], logits=learner.forward(summed, sx[0]))
        loss = tf.reduce_sum(per_image) / 2  # 3 ways x 2 shots: divided by the 2 shots
    g = tape.gradient(loss, summed)
    phi = learner.inner_loop(theta, sx[0], sy[0], 1)
    for p, t, gi in zip(phi, theta, g):
        np.testing.assert_allclose(p.numpy(), t.numpy() - 0.4 * gi.numpy(), rtol=1e-10)


def test_test_time_inner_loop_is_one_loop_in_the_graph_with_the_same_steps():
    """Evaluation's inner loop (nothing differentiated) is a graph loop beyond UNROLL_STEPS steps
    and unrolled up to it: either way its steps match the formula applied step by step, and
    tracing 50 steps builds no more than UNROLL_STEPS + 1 (before: 50 copies of the step, which
    made a Reptile test step take minutes to compile)."""
    from tfmeta.learners.inner import UNROLL_STEPS

    learner = MAML(_tiny_model(), MAMLConfig(), compiled=False)
    sx, sy, _, _ = _task(3)
    theta = [tf.constant(v.numpy()) for v in learner.model.trainable_variables]
    for steps in (4, UNROLL_STEPS + 2):  # unrolled, then a graph loop
        expected = theta
        for _ in range(steps):
            with tf.GradientTape() as tape:
                tape.watch(expected)
                loss = cross_entropy(learner.forward(expected, sx[0]), sy[0])
            expected = [t - 0.3 * g for t, g in zip(expected, tape.gradient(loss, expected))]
        phi, last_loss, _ = sgd_inner_loop(learner.forward, theta, sx[0], sy[0], steps, 0.3,
                                           differentiable=False, with_metrics=True)
        for p, e in zip(phi, expected):
            np.testing.assert_allclose(p.numpy(), e.numpy(), rtol=1e-10)
        assert np.isfinite(last_loss.numpy())

    def graph_size(steps):
        fn = tf.function(lambda x, y: sgd_inner_loop(learner.forward, theta, x, y, steps, 0.3,
                                                     differentiable=False))
        return len(fn.get_concrete_function(sx[0], sy[0]).graph.as_graph_def().node)

    assert graph_size(50) == graph_size(UNROLL_STEPS + 1)


# -- The configuration users run: Conv4 with BatchNorm, float64, 5-way 1-shot. --------------------
# Keras' BatchNormalization computes its variance through tf.nn.moments, whose stop_gradient on the
# mean drops part of the second-order term: before the fix these meta-gradients were ~20-70 % away
# from finite differences.


def _conv4_float64(ways=5):
    from tfmeta.models import conv4

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(0)
        model = conv4((28, 28, 1), outputs=ways, width=8)
    finally:
        keras.config.set_dtype_policy(policy)
    assert all(v.dtype == "float64" for v in model.weights)
    return model


def _image_task(seed, meta_batch=2, ways=5, queries=2):
    rng = np.random.default_rng(seed)
    sx = tf.constant(rng.uniform(size=(meta_batch, ways, 28, 28, 1)))
    qx = tf.constant(rng.uniform(size=(meta_batch, ways * queries, 28, 28, 1)))
    sy = tf.constant(np.tile(np.arange(ways), (meta_batch, 1)), tf.int32)
    qy = tf.constant(np.tile(np.arange(ways), (meta_batch, queries)), tf.int32)
    return sx, sy, qx, qy


def _finite_difference_error(learner, batch, steps, coordinates=160, directions=3, eps=1e-7):
    """Relative error of ``meta_gradients`` against central finite differences of the meta-objective
    ``mean_i L_query_i(inner_loop(theta))``: on every BatchNorm parameter, a random sample of the
    other coordinates of every meta-variable, and random unit directions."""
    sx, sy, qx, qy = batch
    variables = learner.meta_variables
    grads, _, _ = learner.meta_gradients(*batch)
    analytic = [g.numpy() for g in grads]

    @tf.function
    def objective():
        theta = learner.weights()
        losses = [cross_entropy(learner.forward(learner.inner_loop(theta, sx[i], sy[i], steps),
                                                qx[i]), qy[i]) for i in range(sx.shape[0])]
        return tf.add_n(losses) / len(losses)

    base = [v.numpy() for v in variables]

    def at(deltas):
        for v, b, d in zip(variables, base, deltas):
            v.assign(b + d)
        value = float(objective())
        for v, b in zip(variables, base):
            v.assign(b)
        return value

    rng = np.random.default_rng(0)
    sizes = [b.size for b in base]
    bn = [k for k, v in enumerate(variables) if v.name.split("/")[-1].split(":")[0] in ("gamma", "beta")]
    assert bn, "the model must have BatchNorm parameters"
    picks = [(k, i) for k in bn for i in range(sizes[k])]
    others = [(k, i) for k in range(len(base)) if k not in bn for i in range(sizes[k])]
    picks += [others[j] for j in rng.choice(len(others), coordinates, replace=False)]
    numeric, expected = [], []
    for k, i in picks:
        delta = [np.zeros_like(b) for b in base]
        delta[k].flat[i] = eps
        numeric.append((at(delta) - at([-d for d in delta])) / (2 * eps))
        expected.append(analytic[k].flat[i])
    for _ in range(directions):
        v = [rng.normal(size=b.shape) for b in base]
        norm = np.sqrt(sum((x ** 2).sum() for x in v))
        v = [x / norm * eps for x in v]
        numeric.append((at(v) - at([-x for x in v])) / (2 * eps))
        expected.append(sum((a * x).sum() for a, x in zip(analytic, v)) / eps)
    numeric, expected = np.array(numeric), np.array(expected)
    return np.linalg.norm(expected - numeric) / np.linalg.norm(numeric)


@pytest.mark.parametrize("steps", [1, 2])
def test_maml_meta_gradient_on_conv4_with_batchnorm_matches_finite_differences(steps):
    learner = MAML(_conv4_float64(), MAMLConfig(inner_steps=steps, inner_lr=0.4), compiled=False)
    error = _finite_difference_error(learner, _image_task(0), steps)
    assert error < 1e-6, error


def test_meta_sgd_meta_gradient_on_conv4_with_batchnorm_matches_finite_differences():
    from tfmeta.learners import MetaSGD, MetaSGDConfig

    learner = MetaSGD(_conv4_float64(), MetaSGDConfig(), compiled=False)
    assert learner.rates.alpha[0].dtype == tf.float64
    error = _finite_difference_error(learner, _image_task(1), 1)
    assert error < 1e-6, error


def test_anil_meta_gradient_on_conv4_with_batchnorm_matches_finite_differences():
    from tfmeta.learners import ANIL

    learner = ANIL(_conv4_float64(), MAMLConfig(inner_steps=2, inner_lr=0.4), compiled=False)
    error = _finite_difference_error(learner, _image_task(2), 2)
    assert error < 1e-6, error


def test_a_users_model_with_stock_batchnorm_gets_exact_moments():
    """Any Keras model given to an optimisation-based learner: its BatchNorm layers' moments are
    made twice differentiable, nested models included, with unchanged values."""
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization()])
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3)(keras.layers.BatchNormalization()(inner(inputs)))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(3).normal(size=(8, 6)).astype(np.float32)
    before = model(x, training=True).numpy()
    learner = MAML(model, MAMLConfig(), compiled=False)
    from tfmeta.learners.batchnorm import batchnorm_layers

    assert all("_moments" in vars(layer) for layer in batchnorm_layers(learner.model))
    np.testing.assert_allclose(model(x, training=True).numpy(), before, rtol=1e-5, atol=1e-6)
    # Second derivative through one BatchNorm layer against the formula's finite differences.
    layer = batchnorm_layers(model)[-1]
    z = tf.constant(np.random.default_rng(4).normal(size=(5, 4)))
    w = tf.constant(np.random.default_rng(5).normal(size=(5, 4)))

    def first_derivative(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            mean, variance = layer._moments(z, None)
            value = tf.reduce_sum(w * (z - mean) / tf.sqrt(variance + 1e-3))
        return tape.gradient(value, z)

    with tf.GradientTape() as tape:
        tape.watch(z)
        g = tf.reduce_sum(first_derivative(z) ** 2)
    analytic = tape.gradient(g, z).numpy()
    eps, numeric = 1e-6, np.zeros((5, 4))
    for idx in np.ndindex(5, 4):
        e = np.zeros((5, 4))
        e[idx] = eps
        numeric[idx] = (float(tf.reduce_sum(first_derivative(z + e) ** 2))
                        - float(tf.reduce_sum(first_derivative(z - e) ** 2))) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("algorithm", ["maml", "anil"])
def test_recomputed_inner_loop_gives_the_same_meta_gradients(algorithm):
    """Gradient checkpointing (recompute_inner) changes memory, not the math: three inner steps,
    second order, Conv4 with BatchNorm in float64, compiled."""
    from tfmeta.learners import ANIL

    cls = MAML if algorithm == "maml" else ANIL
    batch = _image_task(3)
    gradients = []
    for recompute in (False, True):
        learner = cls(_conv4_float64(), MAMLConfig(inner_steps=3, inner_lr=0.4,
                                                   recompute_inner=recompute))
        gradients.append(tf.function(learner.meta_gradients)(*batch)[0])
    for plain, recomputed in zip(*gradients):
        np.testing.assert_allclose(recomputed.numpy(), plain.numpy(), rtol=1e-9, atol=1e-12)


def _conv4_twins(algorithm, **options):
    """The learner in float32 as users run it (compiled, BatchNorm's fused kernel on the query
    pass) and the same learner and weights in float64 (Keras' path, exact moments everywhere:
    checked against finite differences above)."""
    from tfmeta.learners import create
    from tfmeta.models import conv4

    learners = []
    for dtype in ("float32", "float64"):
        keras.utils.set_random_seed(0)
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(dtype)
        try:
            model = conv4((28, 28, 1), outputs=5, width=16)
        finally:
            keras.config.set_dtype_policy(policy)
        learners.append(create(algorithm, model, **options))
    for low, high in zip(*[learner.meta_variables for learner in learners]):
        high.assign(tf.cast(low, high.dtype))
    return learners


def _relative_difference(a, b):
    a = np.concatenate([g.numpy().ravel() for g in a])
    b = np.concatenate([g.numpy().ravel() for g in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("algorithm,tolerance", [("maml", 1e-4), ("protomaml", 5e-3),
                                                 ("metasgd", 1e-3), ("maml++", None)])
def test_the_fused_query_pass_keeps_the_float32_meta_gradient_exact(algorithm, tolerance):
    """Second-order learners run their query pass (differentiated once) through BatchNorm's
    fused kernel: their compiled float32 meta-gradient against float64's exact one, 5-way 1-shot
    with 15 queries on Conv4 with BatchNorm. Measured (fused query pass; exact moments on every
    pass): MAML 5.3e-5 (5.3e-5), Proto-MAML 2.1e-3 (7.7e-4), Meta-SGD 2.4e-4 (5.6e-6): float32's
    rounding. A lost second-order term is 20-70 % (the finite-difference tests above). MAML++'s
    float64 twin is 7.9 % away with either path (its options are not all float64's), so it is
    checked against its own float32 twin without the kernel (1.2e-3 after 5 inner steps); the check is also that the
    kernel's graph builds (it made cycles when it was differentiated twice)."""
    options = {"inner_steps": 2} if algorithm != "maml++" else {}
    fast, exact = _conv4_twins(algorithm, **options)
    sx, sy, qx, qy = _image_task(4, meta_batch=2, ways=5, queries=15)
    batch32 = [tf.cast(t, tf.float32) if t.dtype == tf.float64 else t for t in (sx, sy, qx, qy)]
    got = tf.function(fast.meta_gradients)(*batch32)[0]
    if tolerance is None:
        keras_path, _ = _conv4_twins(algorithm, **options)
        keras_path.fuse_batchnorm(on=False)
        want, tolerance = tf.function(keras_path.meta_gradients)(*batch32)[0], 1e-2
    else:
        want = exact.meta_gradients(sx, sy, qx, qy)[0]
    assert _relative_difference(got, want) < tolerance
