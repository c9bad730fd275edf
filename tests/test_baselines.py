"""The fine-tuning baselines (Baseline, Baseline++, RFS): their support-set heads against the
optimality conditions computed in numpy, their minibatch stream, and that training as a
classifier of every training class makes a few-shot learner (tests/learner_cases.py leaves their
learning to this file)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler, glyphs
from tfmeta.data.batches import ClassBatchSampler
from tfmeta.evaluation import evaluate
from tfmeta.learners import create
from tfmeta.learners.baseline import fit_cosine_head, fit_linear_head


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _tasks(scale, seed=0, tasks=3, shots=2, ways=5, dim=16):
    rng = np.random.default_rng(seed)
    features = np.abs(rng.normal(size=(tasks, shots * ways, dim))) * scale  # ReLU-like features
    labels = np.tile(np.repeat(np.arange(ways), shots), (tasks, 1))
    return features, labels.astype(np.int32), ways


@pytest.mark.parametrize("scale", [0.1, 1.0, 30.0])
def test_linear_head_is_the_regularised_logistic_regression(scale):
    """At the fitted (W, b) the gradient of mean cross-entropy + l2/2 ||W, b||^2, written in numpy,
    vanishes, for features of any scale (the step follows the smoothness bound; the penalty
    scales with the features' square so that 300 steps converge at every scale)."""
    features, labels, ways = _tasks(scale)
    l2 = 0.5 * ((features ** 2).sum(-1).max() + 1.0) / 100  # L / l2 about 100
    weights, bias = fit_linear_head(tf.constant(features, tf.float64), tf.constant(labels), ways,
                                    300, l2)
    x = np.concatenate([features, np.ones(features.shape[:2] + (1,))], -1)
    w = np.concatenate([weights.numpy(), bias.numpy()[:, None]], 1)
    targets = np.eye(ways)[labels]
    for t in range(len(x)):
        errors = _softmax(x[t] @ w[t]) - targets[t]
        gradient = x[t].T @ errors / len(x[t]) + l2 * w[t]
        assert np.abs(gradient).max() < 1e-9 * max(1.0, scale ** 2)


def test_rfs_head_is_logistic_regression_on_normalised_features():
    """RFS's score: scikit-learn's objective (summed cross-entropy + ||W, b||^2 / 2C) on
    L2-normalised features, checked by its gradient in numpy, and the logits it gives."""
    keras.utils.set_random_seed(0)
    learner = create("rfs", "conv4", backbone_width=4, classes=10, steps=300)
    support, labels, ways = _tasks(5.0, seed=1, tasks=2)
    query = np.abs(np.random.default_rng(2).normal(size=(2, 7, 16)))
    logits = learner.score(tf.constant(support, tf.float64), tf.constant(labels),
                           tf.constant(query, tf.float64), ways).numpy()
    z = support / np.linalg.norm(support, axis=-1, keepdims=True)
    zq = query / np.linalg.norm(query, axis=-1, keepdims=True)
    for t in range(2):
        # Recover (W, b) from the logits of the support's own images would need them; instead
        # solve the same problem by Newton's method in numpy and compare the query logits.
        x = np.concatenate([z[t], np.ones((len(z[t]), 1))], 1)
        w = np.zeros((x.shape[1], ways))
        targets = np.eye(ways)[labels[t]]
        for _ in range(50):  # Newton steps on the (strongly convex) objective
            p = _softmax(x @ w)
            gradient = (x.T @ (p - targets) + w).ravel(order="F")
            hessian = np.eye(w.size)
            for i in range(len(x)):
                block = np.diag(p[i]) - np.outer(p[i], p[i])
                hessian += np.kron(block, np.outer(x[i], x[i]))
            w -= np.linalg.solve(hessian, gradient).reshape(w.shape, order="F")
        expected = np.concatenate([zq[t], np.ones((len(zq[t]), 1))], 1) @ w
        np.testing.assert_allclose(logits[t], expected, atol=1e-5)


def test_cosine_head_steps_along_the_sphere_from_the_class_directions():
    """Baseline++'s fitted head: it starts at the normalised class means of the normalised
    features, each step is the numpy formula's (the support loss's gradient projected on the
    sphere, step 2 / scale^2), and the support loss falls."""
    features, labels, ways = _tasks(3.0, seed=3)
    scale = 10.0
    z = features / np.linalg.norm(features, axis=-1, keepdims=True)
    targets = np.eye(ways)[labels]

    def loss_and_gradient(w, t):
        p = _softmax(scale * z[t] @ w[t].T)
        g = scale * (p - targets[t]).T @ z[t] / len(z[t])
        g -= (g * w[t]).sum(-1, keepdims=True) * w[t]
        return -np.log((p * targets[t]).sum(-1)).mean(), g

    def fitted(steps):
        return fit_cosine_head(tf.constant(features, tf.float64), tf.constant(labels), ways,
                               steps, scale).numpy()

    start, one, many = fitted(0), fitted(1), fitted(200)
    for t in range(len(z)):
        means = targets[t].T @ z[t]
        np.testing.assert_allclose(start[t], means / np.linalg.norm(means, axis=-1,
                                                                    keepdims=True), atol=1e-12)
        loss_start, gradient = loss_and_gradient(start, t)
        stepped = start[t] - 2.0 / scale ** 2 * gradient
        np.testing.assert_allclose(one[t], stepped / np.linalg.norm(stepped, axis=-1,
                                                                    keepdims=True), atol=1e-12)
        assert loss_and_gradient(many, t)[0] < loss_start - 0.05
        np.testing.assert_allclose(np.linalg.norm(many[t], axis=-1), 1.0, atol=1e-12)


def test_minibatches_are_a_pure_function_of_the_step_and_labelled_by_class(small_glyphs):
    sampler = ClassBatchSampler(small_glyphs, batch_size=8, meta_batch=2, seed=5)
    batches = [[t.numpy() for t in b] for b in sampler.dataset(num_batches=4)]
    resumed = [[t.numpy() for t in b] for b in sampler.dataset(start=2, num_batches=2)]
    for a, b in zip(batches[2:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    images, labels, query_x, query_y = batches[0]
    assert images.shape == (2, 8, 28, 28, 1) and labels.shape == (2, 8)
    assert query_x.shape == (2, 0, 28, 28, 1) and query_y.shape == (2, 0)
    source_labels = small_glyphs.labels()
    for image, label in zip(images.reshape(-1, 28, 28, 1), labels.ravel()):
        matches = np.flatnonzero(np.all(small_glyphs.images == np.round(image * 255), (1, 2, 3)))
        assert label in source_labels[matches]
    assert len(np.unique(np.concatenate([b[1].ravel() for b in batches]))) > 10


@pytest.mark.parametrize("algorithm", ["baseline", "baseline++", "rfs"])
def test_training_as_a_classifier_makes_a_few_shot_learner(algorithm):
    """300 minibatches of 32 glyphs of 480 training classes; 5-way 1-shot accuracy on 50
    episodes of 120 unseen classes, before and after."""
    train, _, test = glyphs(num_classes=600, samples_per_class=20, seed=11).split(
        (0.8, 0.0, 0.2), seed=0)
    keras.utils.set_random_seed(0)
    learner = create(algorithm, "conv4", episode=EpisodeConfig(5, 1, 5), backbone_width=32,
                     classes=train.num_classes)
    test_sampler = EpisodeSampler(test, EpisodeConfig(5, 1, 15), meta_batch=10, seed=99)
    before = evaluate(learner, test_sampler, 50)["accuracy"]
    for batch in ClassBatchSampler(train, 32, seed=1).dataset(num_batches=300):
        learner.meta_train_step(batch)
    after = evaluate(learner, test_sampler, 50)["accuracy"]
    assert learner._train_fn.experimental_get_tracing_count() == 1
    assert after > before + 0.10 and after > 0.60, (before, after)


def test_a_run_fills_in_the_training_classes_and_loads(tmp_path):
    from tfmeta.run import RunConfig, TrainConfig, load, train

    out = str(tmp_path / "run")
    config = RunConfig(algorithm="baseline", width=8, train=TrainConfig(
        steps=4, val_every=2, val_episodes=2, test_episodes=2, pretrain_batch=16))
    result = train(config, out, progress=False)
    with open(os.path.join(out, "run.json")) as f:
        recorded = json.load(f)
    classes = recorded["learner"]["classes"]
    assert classes > 2 and 0 <= result["accuracy"] <= 1
    learner = load(out)
    assert learner.config.classes == classes
    assert learner.training_head.kernel.shape == (learner.feature_shape[0], classes)


def test_a_head_too_small_for_the_data_and_episode_only_settings_are_one_line(tmp_path, capsys):
    from tfmeta.cli import main

    out = str(tmp_path / "run")
    assert main(["train", "--algorithm", "rfs", "--set", "learner.classes=3", "--steps", "2",
                 "--out", out]) == 2
    assert "learner.classes is 3 but the training data has" in capsys.readouterr().err
    assert main(["train", "--algorithm", "baseline", "--within-group", "0.5", "--class-groups",
                 "parent-folder", "--steps", "2", "--out", out]) == 2
    assert "not episodes: leave out train.within_group" in capsys.readouterr().err


def test_rfs_distillation_learns_from_the_previous_generation(tmp_path, capsys):
    """RFS-distill: a run with learner.teacher=RUN holds RUN's network exactly (its logits are
    the teacher run's), its loss is (1 - w) cross-entropy + w T^2 KL(teacher || student) computed
    in numpy, training moves the student and never the teacher, the student run loads without
    its teacher, and a teacher that is not a run is one line."""
    import shutil

    from tfmeta.cli import main
    from tfmeta.learners.metric import embed
    from tfmeta.run import RunConfig, TrainConfig, load, train

    def config(**options):
        return RunConfig(algorithm="rfs", width=8, learner=options, train=TrainConfig(
            steps=4, val_every=2, val_episodes=2, test_episodes=2, pretrain_batch=16))

    teacher_dir, student_dir = str(tmp_path / "born0"), str(tmp_path / "born1")
    train(config(), teacher_dir, progress=False)
    train(config(teacher=teacher_dir, distill_weight=0.3, temperature=2.0), student_dir,
          progress=False)
    teacher, student = load(teacher_dir), load(student_dir)
    images = tf.constant(np.random.default_rng(0).random((1, 6, 28, 28, 1)), tf.float32)
    labels = tf.constant([[0, 1, 2, 3, 4, 5]])

    def logits(model, head, training):
        return student.training_logits(embed(model, images, training=training), head).numpy()

    taught = logits(teacher.model, teacher.training_head, False)
    np.testing.assert_allclose(logits(student.teacher.model, student.teacher.training_head, False),
                               taught, rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits(student.model, student.training_head, False), taught, atol=1e-5)

    s = logits(student.model, student.training_head, True).astype(np.float64)[0]
    t = taught.astype(np.float64)[0]
    log_softmax = lambda z: z - z.max(-1, keepdims=True) - np.log(  # noqa: E731
        np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
    cross_entropy = -log_softmax(s)[np.arange(6), labels.numpy()[0]].mean()
    kl = (np.exp(log_softmax(t / 2)) * (log_softmax(t / 2) - log_softmax(s / 2))).sum(-1).mean()
    loss, _ = student.task_losses(images, labels, images[:, :0], labels[:, :0])
    np.testing.assert_allclose(float(loss[0]), 0.7 * cross_entropy + 0.3 * 4 * kl, rtol=1e-4)

    before = [v.numpy() for v in student.teacher.model.weights + [student.model.weights[0]]]
    for _ in range(2):
        student.meta_train_step((images, labels, images[:, :0], labels[:, :0]))
    after = [v.numpy() for v in student.teacher.model.weights + [student.model.weights[0]]]
    assert all(np.array_equal(b, a) for b, a in zip(before[:-1], after[:-1]))
    assert not np.array_equal(before[-1], after[-1])

    shutil.rmtree(teacher_dir)
    assert load(student_dir).teacher is None
    assert main(["train", "--algorithm", "rfs", "--set", f"learner.teacher={teacher_dir}",
                 "--steps", "2", "--out", str(tmp_path / "born2")]) == 2
    assert "no checkpoint there" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "born2" / "checkpoints")
