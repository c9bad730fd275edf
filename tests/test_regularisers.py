"""Regularisers of meta-training (issue 13): label smoothing of every learner's meta-training loss
and dropout in the backbone, against their formulas; a run directory of another format is
refused before anything is written."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.learners import create
from tfmeta.learners.losses import cross_entropy

from learner_cases import smoke_options

EPISODE = EpisodeConfig(3, 2, 2)


def _learner(algorithm, compiled=False, **settings):
    keras.utils.set_random_seed(0)
    return create(algorithm, "conv4", episode=EPISODE, backbone_width=8, compiled=compiled,
                  **settings, **smoke_options(algorithm, EPISODE))


@pytest.fixture(scope="module")
def episode(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EPISODE, meta_batch=2, seed=4)
    return [t.numpy() for t in next(iter(sampler.dataset()))]


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_smoothed_cross_entropy_matches_the_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)).astype(np.float32)
    labels = rng.integers(0, 4, (3, 5)).astype(np.int32)
    targets = np.eye(4)[labels] * 0.8 + 0.2 / 4
    expected = -(targets * _log_softmax(logits.astype(np.float64))).sum(-1).mean(-1)
    got = cross_entropy(tf.constant(logits), tf.constant(labels), axis=-1, smoothing=0.2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    plain = cross_entropy(tf.constant(logits), tf.constant(labels), axis=-1)
    np.testing.assert_allclose(plain.numpy(), -(np.eye(4)[labels] * _log_softmax(
        logits.astype(np.float64))).sum(-1).mean(-1), rtol=1e-5)


# One learner per loss path: MAML.task_loss (MAML, first-order MAML, ANIL, Meta-SGD),
# Reptile's inner loss, MetricLearner.episode_loss (ProtoNet, Matching, ridge, SVM, SNAIL), and
# Relation and Siamese networks' own losses.
LOSS_PATHS = ["maml", "reptile", "protonet", "relation", "siamese", "baseline"]


@pytest.mark.parametrize("algorithm", LOSS_PATHS)
def test_label_smoothing_reaches_every_learners_meta_training_loss(algorithm, episode):
    """The first meta-step's loss of the same weights on the same meta-batch under smoothing 0,
    0.1 and 0.2: it changes, and where adaptation does not depend on the smoothing and the loss is
    a cross-entropy (linear in the targets), it moves linearly: L(0.2) - L(0) = 2 (L(0.1) - L(0)).
    (Relation Networks' squared error is quadratic in the targets, Reptile's inner steps depend on
    them: both are checked against their formulas below or only for a change.)"""
    losses = [float(_learner(algorithm, label_smoothing=s).meta_train_step(episode)["loss"])
              for s in (0.0, 0.1, 0.2)]
    assert abs(losses[1] - losses[0]) > 1e-4, losses
    if algorithm not in ("relation", "reptile"):
        np.testing.assert_allclose(losses[2] - losses[0], 2 * (losses[1] - losses[0]),
                                   rtol=1e-3, atol=1e-6)


def test_relation_and_siamese_smooth_their_own_targets(episode):
    sx, sy, qx, qy = (tf.constant(t) for t in episode)
    relation = _learner("relation", label_smoothing=0.2)
    support, query = relation.embed_episodes(sx, qx, training=True)
    loss, scores = relation.episode_loss(support, sy, query, qy, 3)
    targets = np.eye(3)[qy.numpy()] * 0.8 + 0.2 / 3
    np.testing.assert_allclose(loss.numpy(), ((scores.numpy() - targets) ** 2).sum(-1).mean(-1),
                               rtol=1e-5)
    siamese = _learner("siamese", label_smoothing=0.2)
    support, query = siamese.embed_episodes(sx, qx, training=True)
    loss, _ = siamese.episode_loss(support, sy, query, qy, 3)
    pairs = siamese.pair_logits(support, query).numpy().astype(np.float64)
    same = (qy.numpy()[:, :, None] == sy.numpy()[:, None]).astype(np.float64)
    weights = same / (2 * same.sum((1, 2), keepdims=True)) + (1 - same) / (
        2 * (1 - same).sum((1, 2), keepdims=True))
    labels = same * 0.8 + 0.1
    bce = np.maximum(pairs, 0) - pairs * labels + np.log1p(np.exp(-np.abs(pairs)))
    np.testing.assert_allclose(loss.numpy(), (weights * bce).sum((1, 2)), rtol=1e-5)


def test_dropout_draws_a_new_mask_at_every_inner_step_and_none_at_test(episode):
    """MAML's forward is a pure function of the weights (stateless_call): Keras' Dropout would
    get the same seed every call, hence the same mask at every inner step and meta-step (before
    the fix: equal logits). Adaptation, evaluation and the adapted classifier run without it."""
    sx, sy, qx, qy = episode
    learner = _learner("maml", dropout=0.5)
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in learner.model.layers) == 4
    theta = learner.weights()
    first, second = learner.forward(theta, sx[0]), learner.forward(theta, sx[0])
    assert not np.allclose(first.numpy(), second.numpy())
    compiled = tf.function(lambda: learner.forward(theta, sx[0]))
    assert not np.allclose(compiled().numpy(), compiled().numpy())
    tests = [learner.meta_test_step(episode)["accuracy"].numpy() for _ in range(2)]
    np.testing.assert_array_equal(*tests)
    probabilities = [learner.predict_proba(sx[0], sy[0], qx[0])[1] for _ in range(2)]
    np.testing.assert_array_equal(*probabilities)
    # The papers' network has no dropout layer at all (checkpoints of earlier runs still load).
    plain = _learner("maml")
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.model.layers)
    # Meta-training with it learns: compiled steps run and the loss is finite.
    compiled_learner = _learner("protonet", compiled=True, dropout=0.3)
    assert np.isfinite(float(compiled_learner.meta_train_step(episode)["loss"]))


def test_bad_regulariser_settings_are_one_line_errors(tmp_path, capsys):
    from tfmeta.cli import main

    for flag, value, message in (("--dropout", "1", "dropout must be in [0, 1)"),
                                 ("--label-smoothing", "-0.1", "label_smoothing must be in"),
                                 ("--label-smoothing", "1.0", "label_smoothing must be in")):
        out = tmp_path / flag.strip("-")
        assert main(["train", flag, value, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    with pytest.raises(ConfigError, match="dropout, weights and freeze_backbone are for a named backbone"):
        create("protonet", keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
               dropout=0.1)


def _directory(path):
    return {name: open(os.path.join(path, name), "rb").read() for name in os.listdir(path)}


def test_a_run_directory_of_another_format_is_refused_and_left_alone(tmp_path, capsys):
    from tfmeta.cli import main
    from tfmeta.run import RUN_FORMAT, RunConfig

    run = tmp_path / "run"
    run.mkdir()
    tree = RunConfig().resolved().to_dict()
    assert tree["run_format"] == RUN_FORMAT
    for run_format, message in ((RUN_FORMAT + 1, f"written by a newer tfmeta (run format "
                                                 f"{RUN_FORMAT + 1}; "),
                                ("one", "run format 'one' is not one tfmeta")):
        (run / "run.json").write_text(json.dumps(dict(tree, run_format=run_format)))
        before = _directory(run)
        for command in (["train", "--out", str(run), "--no-progress"],
                        ["evaluate", "--checkpoint", str(run), "--episodes", "2"]):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert message in err and len(err.strip().splitlines()) == 1, err
            assert _directory(run) == before
    (run / "run.json").write_text(json.dumps(tree)[:40])
    assert main(["evaluate", "--checkpoint", str(run)]) == 2
    assert "a damaged run file" in capsys.readouterr().err


def test_a_run_file_from_before_label_smoothing_served_every_learner_reads_the_same():
    from tfmeta.run import RunConfig

    config = RunConfig.from_tree({"algorithm": "svm", "learner": {"C": 0.1,
                                                                  "label_smoothing": 0.1}})
    assert config.train.label_smoothing == 0.1 and config.learner == {"C": 0.1}
