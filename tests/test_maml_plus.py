"""MAML++ (issue 28, point 3) against independent computations: its meta-gradient (learned
per-step rates included) against finite differences on Conv4 with BatchNorm in float64, the
multi-step loss against MAML's query losses after each step, derivative-order annealing against
first- and second-order MAML."""

import numpy as np
import tensorflow as tf

from tfmeta.learners import MAML, MAMLConfig
from tfmeta.learners.base import cross_entropy
from tfmeta.learners.maml_plus import MAMLPlusPlus, MAMLPlusPlusConfig

from test_maml_math import _conv4_float64, _finite_difference_error, _image_task, _task, _tiny_model


def test_meta_gradient_with_learned_rates_matches_finite_differences():
    learner = MAMLPlusPlus(_conv4_float64(), MAMLPlusPlusConfig(
        inner_steps=2, inner_lr=0.4, multi_step_loss=False), compiled=False)
    assert learner.rates.alpha[0].dtype == tf.float64 and learner.rates.alpha[0].shape == [5]
    for alpha in learner.rates.alpha:  # rates that differ per tensor and per step
        alpha.assign(alpha * np.linspace(0.6, 1.4, alpha.shape[0]))
    error = _finite_difference_error(learner, _image_task(3), 2)
    assert error < 1e-6, error
    gradients = learner.meta_gradients(*_image_task(3))[0]
    rate_gradients = gradients[len(learner.model.trainable_variables):]
    assert all(np.any(g.numpy()[:2]) and not np.any(g.numpy()[2:]) for g in rate_gradients)


def test_multi_step_loss_weighs_the_query_losses_after_each_step():
    sx, sy, qx, qy = _task(4)
    learner = MAMLPlusPlus(_tiny_model(), MAMLPlusPlusConfig(
        inner_steps=3, inner_lr=0.5, learned_rates=False, msl_anneal=0.5), compiled=False,
        total_steps=100)
    reference = MAML(learner.model, MAMLConfig(inner_steps=3, inner_lr=0.5), compiled=False)
    theta = learner.weights()
    after = [cross_entropy(reference.forward(reference.inner_loop(theta, sx[0], sy[0], t), qx[0]),
                           qy[0]).numpy() for t in (1, 2, 3)]
    at_start = learner.task_loss(theta, sx[0], sy[0], qx[0], qy[0])[0].numpy()
    np.testing.assert_allclose(at_start, np.mean(after), rtol=1e-6)  # the weights are float32
    learner.optimizer.iterations.assign(25)  # half-way through the annealing: weights 1/6, 1/6
    np.testing.assert_allclose(learner.task_loss(theta, sx[0], sy[0], qx[0], qy[0])[0].numpy(),
                               (after[0] + after[1]) / 6 + after[2] * 2 / 3, rtol=1e-6)  # the weights are float32
    learner.optimizer.iterations.assign(50)
    np.testing.assert_allclose(learner.task_loss(theta, sx[0], sy[0], qx[0], qy[0])[0].numpy(),
                               after[2], rtol=1e-6)  # the weights are float32


def test_derivative_order_annealing_is_first_order_then_second_order():
    batch = _task(5)
    learner = MAMLPlusPlus(_tiny_model(), MAMLPlusPlusConfig(
        inner_steps=2, inner_lr=0.5, learned_rates=False, multi_step_loss=False,
        first_order_share=0.5), compiled=False, total_steps=10)
    model = learner.model
    first = MAML(model, MAMLConfig(inner_steps=2, inner_lr=0.5, first_order=True),
                 compiled=False).meta_gradients(*batch)[0]
    second = MAML(model, MAMLConfig(inner_steps=2, inner_lr=0.5),
                  compiled=False).meta_gradients(*batch)[0]
    assert max(np.abs(a.numpy() - b.numpy()).max() for a, b in zip(first, second)) > 1e-4
    for iteration, expected in ((0, first), (4, first), (5, second), (9, second)):
        learner.optimizer.iterations.assign(iteration)
        got = learner.meta_gradients(*batch)[0]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-9, atol=1e-12)


def test_per_step_batchnorm_meta_gradient_matches_finite_differences():
    """BNWB: the meta-gradient through per-step BatchNorm weights (and LSLR) against finite
    differences on Conv4 in float64; the model's own scale and offset no longer reach the loss,
    and the weights of every step taken (0 .. 2) do."""
    learner = MAMLPlusPlus(_conv4_float64(), MAMLPlusPlusConfig(
        inner_steps=2, inner_lr=0.4, multi_step_loss=False, per_step_batchnorm=True),
        compiled=False)
    steps = learner.step_batchnorm.weights
    assert len(steps) == 8 and all(w.shape[0] == 3 and w.dtype == tf.float64 for w in steps)
    for w in steps:  # weights that differ per step
        w.assign(w * np.linspace(0.7, 1.3, 3)[:, None] + 0.05)
    error = _finite_difference_error(learner, _image_task(3), 2)
    assert error < 1e-6, error
    gradients = dict(zip([id(v) for v in learner.meta_variables],
                         learner.meta_gradients(*_image_task(3))[0]))
    positions = learner.step_batchnorm_positions
    model_weights = learner.model.trainable_variables
    assert not any(np.any(gradients[id(model_weights[p])].numpy()) for p in positions)
    assert all(np.all(np.any(gradients[id(w)].numpy() != 0, axis=1)) for w in steps)


def test_per_step_batchnorm_weights_are_the_networks_after_each_step():
    """After t inner steps the network holds step t's BatchNorm weights (the inner loop does not
    change them); test steps beyond the trained ones keep the last, and so does the classifier
    ``adapt`` returns; training's learned rates beyond the trained steps are not used."""
    learner = MAMLPlusPlus(_conv4_float64(), MAMLPlusPlusConfig(
        inner_steps=2, test_inner_steps=4, inner_lr=0.1, per_step_batchnorm=True),
        compiled=False)
    for w in learner.step_batchnorm.weights:
        w.assign(np.arange(3, dtype=np.float64)[:, None] + np.zeros(w.shape))
    for alpha in learner.rates.alpha:
        alpha.assign([0.1, 0.2, 7.0, 7.0])  # steps 3 and 4 must reuse 0.2
    sx, sy, _, _ = _image_task(5, meta_batch=1)
    phis = learner.adapted_steps(learner.weights(), sx[0], sy[0], 4, differentiable=False)
    for t, phi in enumerate(phis, 1):
        assert all(np.all(phi[p].numpy() == min(t, 2)) for p in learner.step_batchnorm_positions)
    steps = [learner.step_rates(t) for t in range(4)]
    assert [float(r[0]) for r in steps] == [0.1, 0.2, 0.2, 0.2]
    classifier = learner.adapt(sx[0].numpy(), sy[0].numpy())
    gammas = [layer.gamma.numpy() for layer in classifier.layers if hasattr(layer, "gamma")]
    assert gammas and all(np.all(g == 2) for g in gammas)
    np.testing.assert_allclose(classifier.get_weights()[0], phis[-1][0].numpy())
