"""Test-time fine-tuning (tfmeta/learners/finetune.py): its steps are Keras' Adam on the
learner's own head, checked against Keras' optimizer on a copy of the backbone; the adapted
classifier answers as the evaluation measures it and leaves the learner as it was; every export
carries the fine-tuned weights; the MAML family and Reptile fine-tune from their own
adaptation."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.cli import main
from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.data.augment import augment_images
from tfmeta.errors import ConfigError
from tfmeta.learners import create
from tfmeta.learners.finetune import (TestTimeFineTuning, finetune_test_step, finetuned_weights,
                                      logits_with)
from tfmeta.learners.losses import cross_entropy

EPISODE = EpisodeConfig(3, 2, 2)


@pytest.fixture(scope="module")
def batch(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EPISODE, meta_batch=2, seed=4)
    return [t.numpy() for t in next(iter(sampler.dataset()))]


def _learner(algorithm="protonet", **options):
    keras.utils.set_random_seed(0)
    return create(algorithm, "conv4", episode=EPISODE, backbone_width=8, **options)


@pytest.mark.parametrize("algorithm", ["protonet", "relation"])
def test_fine_tuning_is_keras_adam_on_the_heads_support_loss(algorithm, batch):
    """Two steps on one support set (the second uses Adam's moments and bias corrections),
    against a copy of the backbone trained by Keras' Adam with the same distortions (BatchNorm in
    inference mode; the BatchNorm backbone users run). (Over more steps float32 rounding of the
    two orders of operations grows: Adam turns the last bits of a gradient that changes sign
    into steps.)"""
    learner = _learner(algorithm)
    tuning = TestTimeFineTuning(steps=2, learning_rate=1e-2)
    sx, sy = tf.constant(batch[0][0]), tf.constant(batch[1][0])
    tuned = finetuned_weights(learner, sx, sy, tuning, tf.constant([0, 0], tf.int64))

    copy = keras.models.clone_model(learner.model)
    copy.set_weights(learner.model.get_weights())
    adam = keras.optimizers.Adam(1e-2)
    ways = int(sy.numpy().max()) + 1
    for step in range(2):
        copies = augment_images("affine", sx, tf.random.experimental.stateless_fold_in(
            tf.constant([0, 0], tf.int64), step))
        with tf.GradientTape() as tape:
            features = [copy(x, training=False) for x in (sx, copies)]
            if learner.flatten_features:
                features = [tf.reshape(f, [len(sx), -1]) for f in features]
            loss = cross_entropy(learner.score(features[0][None], sy[None], features[1][None],
                                               ways)[0], sy)
        adam.apply_gradients(zip(tape.gradient(loss, copy.trainable_variables),
                                 copy.trainable_variables))
    moved = 0.0
    for got, want, before in zip(tuned, copy.trainable_variables,
                                 learner.model.trainable_variables):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
        moved = max(moved, float(np.abs(want.numpy() - before.numpy()).max()))
    assert moved > 1e-3  # the steps did move the weights


def test_the_adapted_classifier_answers_as_evaluated_and_leaves_the_learner(batch):
    learner = _learner()
    tuning = TestTimeFineTuning(steps=4, learning_rate=3e-3)
    before = [v.numpy().copy() for v in learner.model.weights]
    sx, sy, qx, qy = batch
    classifier = learner.adapt(sx[0], sy[0], finetune=tuning)
    for variable, value in zip(learner.model.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)
    got = classifier(qx[0], training=False).numpy()
    tuned = finetuned_weights(learner, tf.constant(sx[0]), tf.constant(sy[0]), tuning)
    want = logits_with(learner, tuned, tf.constant(sx[0]), tf.constant(sy[0]),
                       tf.constant(qx[0])).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    plain = learner.adapt(sx[0], sy[0])(qx[0], training=False).numpy()
    assert np.abs(plain - got).max() > 1e-3  # fine-tuning changed the answers
    # the evaluation's step: episode 0 of the meta-batch is the same support set, same key
    step = finetune_test_step(learner, batch, tuning, {})
    accuracy = float(np.mean(want.argmax(-1) == qy[0]))
    assert float(step["accuracy"][0]) == pytest.approx(accuracy)


@pytest.mark.parametrize("algorithm, options", [
    ("maml", {"inner_steps": 1}), ("reptile", {"total_steps": 10, "train_shots": 2})])
def test_optimisation_learners_fine_tune_from_their_adaptation_as_deployed(algorithm, options,
                                                                           batch):
    """The MAML family and Reptile: fine-tuning starts from the learner's own test-time
    adaptation (a vanishing rate leaves exactly it), moves every weight, and the classifier
    ``adapt`` returns answers as the evaluation measures it (with test-time augmentation too),
    leaving the learner as it was."""
    from tfmeta.learners.layers import stochastic_layers_off
    from tfmeta.learners.tta import TestTimeAugmentation

    learner = _learner(algorithm, **options)
    sx, sy, qx, qy = batch
    support = tf.constant(sx[0]), tf.constant(sy[0])
    with stochastic_layers_off(learner.model):
        phi = learner.test_adaptation(learner.weights(), *support)
    still = finetuned_weights(learner, *support, TestTimeFineTuning(steps=2, learning_rate=1e-30))
    for got, want in zip(still, phi):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    tuning = TestTimeFineTuning(steps=4, learning_rate=3e-3)
    tuned = finetuned_weights(learner, *support, tuning)
    assert all(np.abs(t.numpy() - p.numpy()).max() > 1e-4 for t, p in zip(tuned, phi)
               if p.shape.rank > 1)  # every kernel moved
    before = [v.numpy().copy() for v in learner.model.weights]
    classifier = learner.adapt(sx[0], sy[0], finetune=tuning)
    for variable, value in zip(learner.model.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)
    want = logits_with(learner, tuned, *support, tf.constant(qx[0])).numpy()
    np.testing.assert_allclose(classifier(qx[0], training=False).numpy(), want, rtol=1e-4,
                               atol=1e-4)
    step = finetune_test_step(learner, batch, tuning, {})
    assert float(step["accuracy"][0]) == pytest.approx(float(np.mean(want.argmax(-1) == qy[0])))
    tta = TestTimeAugmentation()
    answers = learner.adapt(sx[0], sy[0], finetune=tuning, tta=tta)(qx[0], training=False)
    step = finetune_test_step(learner, batch, tuning, {}, tta)
    assert float(step["accuracy"][0]) == pytest.approx(
        float(np.mean(answers.numpy().argmax(-1) == qy[0])))
    with pytest.raises(ConfigError, match="positive integer"):
        TestTimeFineTuning(steps=0)


def test_cli_evaluates_and_exports_the_fine_tuned_classifier(tmp_path, capsys):
    from test_export import _glyph_folder as glyph_folder

    run = str(tmp_path / "run")
    assert main(["train", "--algorithm", "protonet", "--steps", "2", "--width", "8",
                 "--val-every", "2", "--val-episodes", "2", "--episodes", "2", "--ways", "3",
                 "--out", run, "--no-progress"]) == 0
    assert main(["evaluate", "--checkpoint", run, "--episodes", "4", "--finetune-steps", "2",
                 "--no-progress"]) == 0
    result = json.load(open(os.path.join(run, "evaluation.json")))
    assert 0 <= result["finetune_accuracy"] <= 1 and result["finetune"]["steps"] == 2
    assert "fine-tuned on the support set" in capsys.readouterr().out
    support = tmp_path / "support"
    glyph_folder(support, ["a", "b", "c"], 2)
    assert main(["adapt", "--checkpoint", run, "--support", str(support), "--name", "tuned",
                 "--export-dir", str(tmp_path / "e"), "--finetune-steps", "3",
                 "--format", "all"]) == 0
    facts = json.load(open(tmp_path / "e" / "tuned" / "1" / "assets.extra" / "tfmeta.json"))
    assert facts["test_time_finetuning"]["steps"] == 3
    assert max(facts["max_abs_difference"].values()) <= 1e-4
    assert main(["adapt", "--checkpoint", run, "--support", str(support), "--name", "x",
                 "--export-dir", str(tmp_path / "e"), "--finetune-lr", "0.1"]) == 2
    assert "--finetune-lr needs --finetune-steps" in capsys.readouterr().err
