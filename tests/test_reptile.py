import keras
import numpy as np
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
    learner = Reptile(model, ReptileConfig(inner_steps=steps, inner_lr=inner_lr, epsilon=epsilon),
                      optimizer=keras.optimizers.SGD(epsilon))
    rng = np.random.default_rng(0)
    sx = rng.normal(size=(2, 6, 4)).astype(np.float32)
    sy = np.tile([0, 1, 2], (2, 2)).astype(np.int32)
    qx, qy = sx[:, :3], sy[:, :3]
    theta = [v.numpy() for v in model.trainable_variables]
    # Independent: ordinary Keras SGD training of a copy of the model on each task's support and
    # query images (Reptile meta-trains on all of a task's data).
    phis = []
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
    learner.meta_train_step((sx, sy, qx, qy))
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
