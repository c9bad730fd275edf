"""The MAML family's prototype head (Proto-MAML's initialisation, issue 29 point 4): a learner
meta-trained on 5-way tasks adapts to tasks of any number of classes, its head starting at the
support set's prototypes; adapt(), fewshot_logits and every export answer alike."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta.export
from tfmeta.config import RunConfig
from tfmeta.data import DataError, EpisodeConfig, generate_glyphs
from tfmeta.errors import ConfigError
from tfmeta.learners import create

WAYS = 12  # wider than the 5-way head


def _learner(algorithm="maml", ways=5, **options):
    keras.utils.set_random_seed(3)
    return create(algorithm, "conv4", episode=EpisodeConfig(ways, 1, 2), backbone_width=8,
                  **options)


def _support(ways, shots=2, queries=3, seed=41):
    glyphs = generate_glyphs(num_classes=ways, samples_per_class=shots + queries, seed=seed)
    per_class = (glyphs.images.astype("float32") / 255.0).reshape((ways, shots + queries,
                                                                   28, 28, 1))
    support = per_class[:, :shots].reshape((-1, 28, 28, 1))
    query = per_class[:, shots:].reshape((-1, 28, 28, 1))
    return (support, np.repeat(np.arange(ways), shots).astype("int32"), query,
            np.repeat(np.arange(ways), queries).astype("int32"))


def _numpy_prototype_logits(learner, support_x, support_y, query_x):
    """ProtoNet's logits by hand: features of the body (BatchNorm at the support's statistics,
    as the adapted classifier), -||f - c_k||^2 (so the largest logit, the unknown score, is minus
    the distance to the nearest prototype: before, answers left out -||f||^2, which the softmax
    ignores and the max-logit score does not)."""
    embed = learner.embedding_model(support_x)
    f_support, f_query = embed(support_x).numpy(), embed(query_x).numpy()
    centres = np.stack([f_support[support_y == k].mean(0) for k in range(support_y.max() + 1)])
    return -((f_query[:, None] - centres[None]) ** 2).sum(-1)


@pytest.mark.parametrize("algorithm,options", [("maml", {"prototype_head": "test"}),
                                               ("protomaml", {}),
                                               ("anil", {"prototype_head": "test"})])
def test_a_five_way_learner_answers_wider_tasks_from_the_prototypes(algorithm, options):
    # a vanishing inner step leaves the head at the prototypes: the answers are ProtoNet's
    learner = _learner(algorithm, inner_lr=1e-12, **options)
    assert learner.max_ways is None
    support_x, support_y, query_x, query_y = _support(WAYS)
    expected = _numpy_prototype_logits(learner, support_x, support_y, query_x)
    logits = learner.fewshot_logits(support_x, support_y, query_x).numpy()
    assert logits.shape == (len(query_x), WAYS)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    classifier = learner.adapt(support_x, support_y)
    np.testing.assert_allclose(classifier(query_x).numpy(), logits, rtol=1e-5, atol=1e-4)
    # evaluation: the same adaptation, as deployed, on a meta-batch of one wider task
    batch = tuple(tf.constant(a[None]) for a in (support_x, support_y, query_x, query_y))
    result = learner.meta_test_step(batch)
    np.testing.assert_allclose(result["logits"][0].numpy(), logits, rtol=1e-5, atol=1e-4)
    assert result["accuracy"][0].numpy() == pytest.approx(
        np.mean(expected.argmax(1) == query_y))
    np.testing.assert_allclose(learner.unknown_scores(support_x, support_y, query_x),
                               -expected.max(1), rtol=1e-4, atol=1e-3 * np.abs(expected).max())


def test_the_inner_steps_move_the_wide_head_as_an_independent_step_does():
    # one inner step from the prototypes against the same step written out: the gradient of the
    # mean support cross-entropy of f W + b, with W, b := prototypes, by a tape over numpy values
    learner = _learner("maml", prototype_head="test", inner_lr=0.05, test_inner_steps=1)
    support_x, support_y, query_x, _ = _support(WAYS)
    theta = learner.weights()
    start = learner.prototype_head(theta, support_x, support_y)
    assert start[-2].shape == (theta[-2].shape[0], WAYS)
    params = [tf.Variable(tf.identity(p)) for p in start]
    non_trainable = [v.value for v in learner.body.non_trainable_variables]
    with tf.GradientTape() as tape:
        features, _ = learner.body.stateless_call(params[:-2], non_trainable, support_x,
                                                  training=True)
        logits = features @ params[-2] + params[-1]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(support_y, logits))
    stepped = [p - 0.05 * g for p, g in zip(params, tape.gradient(loss, params))]
    phi = learner.test_adaptation(theta, support_x, support_y)
    for mine, theirs in zip(phi, stepped):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6)


def test_a_wide_adapted_classifier_exports_and_every_runtime_agrees(tmp_path):
    learner = _learner("maml", prototype_head="test")
    support_x, support_y, query_x, _ = _support(WAYS, queries=1)
    classifier = learner.adapt(support_x, support_y)
    classes = np.array([f"class{k}" for k in range(WAYS)])
    version_dir = tfmeta.export.saved_model(classifier, classes, support_x, str(tmp_path), "wide",
                                            formats=["onnx", "tflite"], fresh_process=False)
    served = tf.saved_model.load(version_dir).signatures["serving_default"](
        images=tf.constant(query_x))
    expected = tf.nn.softmax(classifier(query_x)).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    assert served["probabilities"].shape == (len(query_x), WAYS)
    assert os.path.exists(os.path.join(version_dir, "model.onnx"))


def test_without_the_prototype_head_the_head_width_is_the_limit_in_one_line():
    learner = _learner("maml")
    support_x, support_y, query_x, _ = _support(WAYS)
    assert learner.max_ways == 5
    with pytest.raises(DataError, match="at most 5 classes but the support has 12"):
        learner.fewshot_logits(support_x, support_y, query_x)


def test_run_configs_allow_wider_test_episodes_only_with_the_prototype_head():
    wide = EpisodeConfig(ways=20)
    with pytest.raises(ConfigError, match="train_ways must equal ways"):
        RunConfig(algorithm="maml", episode=wide, train_ways=5).validate()
    RunConfig(algorithm="maml", episode=wide, train_ways=5,
              learner={"prototype_head": "test"}).validate()
    RunConfig(algorithm="protomaml", episode=wide, train_ways=5).validate()
    with pytest.raises(ConfigError, match="prototype_head must be one of off, test, always"):
        RunConfig(algorithm="maml", learner={"prototype_head": "sometimes"}).validate()
    with pytest.raises(ConfigError, match="protomaml fixes prototype_head=always"):
        RunConfig(algorithm="protomaml", learner={"prototype_head": "off"}).validate()


def test_a_trained_maml_run_is_evaluated_wider_with_the_prototype_head_at_test(tmp_path):
    from tfmeta.data import DataConfig
    from tfmeta.inference import evaluate_run
    from tfmeta.run import TrainConfig, train

    config = RunConfig(algorithm="maml", data=DataConfig("glyphs"), episode=EpisodeConfig(3, 1, 2),
                       width=4, train=TrainConfig(steps=2, meta_batch=2, val_every=2,
                                                  val_episodes=2, calibration_episodes=0))
    train(config, str(tmp_path), progress=False, test=False)
    wider = ["episode.ways=5"]
    with pytest.raises(DataError, match="at most 3 classes but the support has 5"):
        evaluate_run(str(tmp_path), episodes=4, settings=wider)
    result = evaluate_run(str(tmp_path), episodes=4,
                          settings=wider + ["learner.prototype_head=test"])
    assert result["ways"] == 5 and result["episodes"] == 4
    with pytest.raises(ConfigError, match="prototype_head must be one of"):
        evaluate_run(str(tmp_path), episodes=4, settings=["learner.prototype_head=wide"])
    from tfmeta.cli import main

    assert main(["evaluate", "--checkpoint", str(tmp_path), "--episodes", "4", "--ways", "5",
                 "--learner", "prototype_head=test", "--quiet",
                 "--out", str(tmp_path / "wide.json")]) == 0
    assert json.load(open(tmp_path / "wide.json"))["ways"] == 5


def test_test_inner_lr_is_the_step_at_test_and_leaves_training_alone():
    # one test step at test_inner_lr against one at inner_lr = test_inner_lr: the same weights
    support_x, support_y, _, _ = _support(5)
    at_test = _learner("maml", inner_lr=0.4, test_inner_lr=0.03, test_inner_steps=1)
    plain = _learner("maml", inner_lr=0.03, test_inner_steps=1)
    for mine, theirs in zip(at_test.test_adaptation(at_test.weights(), support_x, support_y),
                            plain.test_adaptation(plain.weights(), support_x, support_y)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    # meta-training's inner loop keeps inner_lr
    trained = at_test.inner_loop(at_test.weights(), support_x, support_y, 1, differentiable=False)
    fast = _learner("maml", inner_lr=0.4, test_inner_steps=1)
    for mine, theirs in zip(trained, fast.test_adaptation(fast.weights(), support_x, support_y)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="test_inner_lr is for fixed ones"):
        RunConfig(algorithm="maml++", learner={"test_inner_lr": 0.1}).validate()
