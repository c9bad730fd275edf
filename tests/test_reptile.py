import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.learners import Reptile, ReptileConfig


def _model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(6, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_reptile_update_equals_its_formula():
    epsilon, inner_lr, steps = 0.3, 0.1, 3
    model = _model()
    config = ReptileConfig(inner_steps=steps, inner_lr=inner_lr, epsilon=epsilon,
                           inner_optimizer="sgd", inner_batch=None, test_inner_batch=None,
                           train_shots=3)
    learner = Reptile(model, config, optimizer=keras.optimizers.SGD(epsilon))
    rng = np.random.default_rng(0)
    sx = rng.normal(size=(2, 6, 4)).astype(np.float32)
    sy = np.tile([0, 1, 2], (2, 2)).astype(np.int32)
    qx, qy = sx[:, :3], sy[:, :3]
    theta = [v.numpy() for v in model.trainable_variables]
    # Independent: ordinary Keras SGD training of a copy of the model on each task's support and
    # query images (train_shots = 3 = 2 shots + 1 query per class: all of a task's data).
    phis, last_losses = [], []
    for i in range(2):
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        sgd = keras.optimizers.SGD(inner_lr)
        for _ in range(steps):
            with tf.GradientTape() as tape:
                x, y = np.concatenate([sx[i], qx[i]]), np.concatenate([sy[i], qy[i]])
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
                    y, copy(x, training=True))
            sgd.apply_gradients(zip(tape.gradient(loss, copy.trainable_variables),
                                    copy.trainable_variables))
        phis.append([v.numpy() for v in copy.trainable_variables])
        last_losses.append(float(loss))
    reported = learner.meta_train_step((sx, sy, qx, qy))
    # its training loss: the last inner step's, before that step's update, averaged over tasks
    np.testing.assert_allclose(float(reported["loss"]), np.mean(last_losses), rtol=1e-5)
    for k, t in enumerate(theta):
        expected = t + epsilon * (np.mean([p[k] for p in phis], axis=0) - t)
        np.testing.assert_allclose(model.trainable_variables[k].numpy(), expected, atol=1e-5)
        assert not np.allclose(expected, t)


def test_epsilon_anneals_linearly_to_zero():
    optimizer = Reptile.default_optimizer(ReptileConfig(epsilon=1.0), total_steps=100)
    optimizer.build([tf.Variable([0.0])])
    rates = []
    for step in (0, 50, 100):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    np.testing.assert_allclose(rates, [1.0, 0.5, 0.0], atol=1e-6)


def test_reptile_without_total_steps_says_in_one_line_that_epsilon_stays():
    import warnings

    from tfmeta.learners import create

    with pytest.warns(UserWarning, match=r"^reptile: epsilon stays at 0.5 \(the paper anneals it "
                                         r"linearly to 0 over training\): give total_steps") as w:
        learner = create("reptile", _model(), epsilon=0.5)
    assert len(w) == 1 and "\n" not in str(w[0].message)
    assert float(learner.optimizer.learning_rate) == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # annealed: nothing to say
        learner = create("reptile", _model(), total_steps=10)
    learner.optimizer.iterations.assign(5)
    assert float(learner.optimizer.learning_rate) == pytest.approx(0.5)


@pytest.mark.parametrize("steps", [4, 12])  # unrolled (<= UNROLL_STEPS), a graph loop
def test_adam_inner_loop_equals_keras_adam_on_the_same_minibatches(steps):
    """Reptile's inner loop (the paper's code: Adam with beta1 = 0 on minibatches) against Keras'
    own Adam training a copy of the model on the batches minibatch_indices gives."""
    from tfmeta.learners.inner import UNROLL_STEPS, minibatch_indices

    assert (steps <= UNROLL_STEPS) == (steps == 4)
    model = _model()
    config = ReptileConfig(inner_steps=steps, inner_lr=0.01, inner_batch=4)
    learner = Reptile(model, config)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = rng.integers(0, 3, 10).astype(np.int32)
    seed = tf.constant([7, 3])
    phi, last_loss, last_accuracy = learner.inner_loop(
        learner.weights(), tf.constant(x), tf.constant(y), steps, batch_size=4, seed=seed,
        with_metrics=True)
    batches = minibatch_indices(10, 4, steps, seed).numpy()
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    adam = keras.optimizers.Adam(0.01, beta_1=0.0, beta_2=0.999, epsilon=1e-8)
    for b in batches:
        with tf.GradientTape() as tape:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
                y[b], copy(x[b], training=True))
        correct = np.mean(np.argmax(copy(x[b], training=True).numpy(), -1) == y[b])
        adam.apply_gradients(zip(tape.gradient(loss, copy.trainable_variables),
                                 copy.trainable_variables))
    # The reported figures (Reptile's training loss, at no extra forward pass) are the last
    # minibatch's, before its update.
    np.testing.assert_allclose(float(last_loss), float(loss), rtol=1e-5)
    assert float(last_accuracy) == correct
    for p, v in zip(phi, copy.trainable_variables):
        np.testing.assert_allclose(p.numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
    for p, t in zip(phi, model.trainable_variables):  # the model itself is untouched
        assert not np.allclose(p.numpy(), t.numpy())


def test_minibatches_are_epochs_of_permutations():
    from tfmeta.learners.inner import minibatch_indices

    batches = minibatch_indices(10, 4, 5, tf.constant([1, 2])).numpy()   # 20 = two epochs
    assert batches.shape == (5, 4)
    flat = batches.ravel()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    again = minibatch_indices(10, 4, 5, tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(batches, again)                       # stateless
    other = minibatch_indices(10, 4, 5, tf.constant([1, 3])).numpy()
    assert not np.array_equal(batches, other)


def test_training_images_are_train_shots_per_class_support_first():
    learner = Reptile(_model(), ReptileConfig(train_shots=3))
    # 3 ways, 2 shots, 2 queries: values encode (class, index) to follow each image.
    sy = np.array([0, 1, 2, 0, 1, 2], np.int32)
    qy = np.array([0, 1, 2, 0, 1, 2], np.int32)
    sx = (10 * sy + np.array([0, 0, 0, 1, 1, 1]))[:, None].astype(np.float32) * np.ones((1, 4))
    qx = (10 * qy + np.array([2, 2, 2, 3, 3, 3]))[:, None].astype(np.float32) * np.ones((1, 4))
    x, y = learner.training_images(tf.constant(sx, tf.float32), tf.constant(sy),
                                   tf.constant(qx, tf.float32), tf.constant(qy))
    np.testing.assert_array_equal(y.numpy(), [0, 0, 0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(x.numpy()[:, 0], [0, 1, 2, 10, 11, 12, 20, 21, 22])


def test_reptile_refuses_episodes_too_small_for_train_shots_and_outer_lr():
    import pytest

    from tfmeta.data import EpisodeConfig
    from tfmeta.run import RunConfig, TrainConfig

    with pytest.raises(ValueError, match="train_shots=10"):
        RunConfig(algorithm="reptile", episode=EpisodeConfig(5, 1, 5)).validate()
    RunConfig(algorithm="reptile", episode=EpisodeConfig(5, 1, 9)).validate()
    with pytest.raises(ValueError, match="epsilon"):
        RunConfig(algorithm="reptile", episode=EpisodeConfig(5, 1, 15),
                  train=TrainConfig(outer_lr=0.1)).validate()
