"""What a review against the papers found, each checked: deployed and transductive accuracy,
DropBlock only while meta-training, SNAIL's class limit."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.data.source import DataError
from tfmeta.evaluation import evaluate
from tfmeta.learners import MAML, MAMLConfig, SNAIL, SNAILConfig
from tfmeta.models import conv4, resnet12


@pytest.fixture(scope="module")
def episodes(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EpisodeConfig(3, 2, 4), meta_batch=2, seed=4)
    return sampler, [t.numpy() for t in next(iter(sampler.dataset()))]


def test_maml_reports_deployed_accuracy_as_adapt_gives_it_and_transductive_beside(episodes):
    sampler, (sx, sy, qx, qy) = episodes
    keras.utils.set_random_seed(0)
    learner = MAML(conv4((28, 28, 1), outputs=3, width=8), MAMLConfig())
    for batch in sampler.dataset(num_batches=3):
        learner.meta_train_step(batch)
    result = learner.meta_test_step((sx, sy, qx, qy))
    for i in range(2):
        classifier = learner.adapt(sx[i], sy[i])
        deployed = classifier(qx[i], training=False).numpy().argmax(-1)
        one_by_one = [classifier(qx[i][j:j + 1], training=False).numpy().argmax() for j in range(12)]
        np.testing.assert_array_equal(deployed, one_by_one)
        assert np.isclose(float(result["accuracy"][i]), (deployed == qy[i]).mean())
        phi = learner.test_adaptation(learner.weights(), sx[i], sy[i])
        transductive = learner.forward(phi, qx[i]).numpy().argmax(-1)  # query-batch BatchNorm
        assert np.isclose(float(result["transductive_accuracy"][i]), (transductive == qy[i]).mean())
    summary = evaluate(learner, sampler, 4)
    assert {"accuracy", "ci95", "transductive_accuracy", "transductive_ci95"} <= set(summary)


def test_dropblock_is_off_outside_meta_training(episodes):
    _, (sx, sy, qx, qy) = episodes
    keras.utils.set_random_seed(0)
    model = resnet12((28, 28, 1), outputs=3, widths=(4, 10, 20, 40), dropblock=0.5)
    assert any("drop" in layer.name for layer in model.layers)
    learner = MAML(model, MAMLConfig())
    first = learner.meta_test_step((sx, sy, qx, qy))
    second = learner.meta_test_step((sx, sy, qx, qy))
    for name in first:
        np.testing.assert_array_equal(first[name].numpy(), second[name].numpy())
    a = learner.adapt(sx[0], sy[0])(qx[0], training=False).numpy()
    b = learner.adapt(sx[0], sy[0])(qx[0], training=False).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    served = learner.fewshot_logits(tf.constant(sx[0]), tf.constant(sy[0]), tf.constant(qx[0]))
    np.testing.assert_allclose(served.numpy(), a, rtol=1e-4, atol=1e-4)
    # ... and on while meta-training: two training-mode forwards differ.
    theta = learner.weights()
    assert not np.allclose(learner.forward(theta, qx[0]).numpy(),
                           learner.forward(theta, qx[0]).numpy())


def _snail(ways=3):
    keras.utils.set_random_seed(0)
    return SNAIL(conv4((28, 28, 1), outputs=None, width=8),
                 SNAILConfig(filters=8, keys=(8, 8, 8)), episode=EpisodeConfig(ways, 2, 2))


def test_snail_refuses_more_classes_than_it_was_trained_for(small_glyphs):
    from tfmeta.export.servables import FewShotServable

    learner = _snail(ways=3)
    images = (small_glyphs.images[:8] * 1).astype(np.uint8)
    names = np.array(list("abcdabcd"))  # 4 classes for a 3-way SNAIL
    with pytest.raises(DataError, match="at most 3 classes but the support has 4"):
        learner.predict(images, names, images)
    x = tf.constant(images, tf.float32) / 255.0
    y = tf.constant([0, 1, 2, 3, 0, 1, 2, 3])
    with pytest.raises(DataError, match="at most 3 classes"):
        learner.adapt(x, y)
    wide = EpisodeSampler(small_glyphs, EpisodeConfig(4, 1, 1), meta_batch=2, seed=1)
    with pytest.raises(DataError, match="at most 3 classes"):
        evaluate(learner, wide, 4)
    servable = FewShotServable(learner)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 3 classes"):
        servable.classify(x, y, x[:2])
    assert servable.classify(x[:6], y[:6] % 3, x[:2])["probabilities"].shape == (2, 3)


@pytest.mark.parametrize("algorithm", ["snail", "maml"])
def test_every_entry_point_refuses_wider_episodes(small_glyphs, algorithm):
    """A 3-way SNAIL (label inputs) and a 3-way MAML (a 3-unit head) given 4-way support sets:
    each public verb answers one line naming both counts. (SNAIL's fewshot_logits used to answer
    for the first 3 classes, its steps ended in a raw InvalidArgumentError.)"""
    learner = _snail(ways=3) if algorithm == "snail" else MAML(
        conv4((28, 28, 1), outputs=3, width=8), MAMLConfig())
    wide = next(iter(EpisodeSampler(small_glyphs, EpisodeConfig(4, 1, 1), meta_batch=2,
                                    seed=1).dataset()))
    sx, sy, qx, _ = wide
    for verb in (lambda: learner.meta_train_step(wide), lambda: learner.meta_test_step(wide),
                 lambda: learner.fewshot_logits(sx[0], sy[0], qx[0]),
                 lambda: learner.adapt(sx[0], sy[0])):
        with pytest.raises(DataError, match=rf"^{algorithm} was built for at most 3 classes but "
                                            "the support has 4; train with --ways 4") as err:
            verb()
        assert "\n" not in str(err.value)
    assert int(learner.optimizer.iterations) == 0  # nothing was trained on


def test_snail_meta_trains_on_shuffled_support_orders(episodes):
    """Episodes arrive sorted by label; SNAIL's training sequences must not be."""
    _, (sx, sy, _, _) = episodes
    learner = _snail()
    support = tf.constant(np.arange(2 * 6 * 1, dtype=np.float32).reshape(2, 6, 1))
    orders = []
    for step in range(3):
        learner.optimizer.iterations.assign(step)
        shuffled, labels = learner.training_support(support, tf.constant(sy), 0)
        order = shuffled.numpy()[..., 0].astype(int) % 6
        np.testing.assert_array_equal(labels.numpy(), np.take_along_axis(sy, order, 1))
        orders.append(order)
    assert any(not np.array_equal(o, np.arange(6)[None].repeat(2, 0)) for o in orders)
    assert not np.array_equal(orders[0], orders[1])  # a new order every step
    learner.optimizer.iterations.assign(1)
    again, _ = learner.training_support(support, tf.constant(sy), 0)
    np.testing.assert_array_equal(again.numpy()[..., 0].astype(int) % 6, orders[1])  # resumable


def test_snail_tasks_of_one_meta_step_get_their_own_support_orders(episodes):
    """The outer step takes tasks one at a time; each task's support order is its own (it was
    seeded by the outer step alone, so every task of a meta-step shared one order): the task's
    index reaches it as an argument."""
    _, (sx, sy, qx, qy) = episodes
    learner = _snail()
    recorded = []
    shuffle = learner.training_support

    def recording(support, support_y, task_index):
        shuffled, labels = shuffle(support, support_y, task_index)
        recorded.append(labels)
        return shuffled, labels

    learner.training_support = recording
    same = [np.repeat(a[:1], 2, axis=0) for a in (sx, sy, qx, qy)]  # two identical tasks
    learner.outer_gradients(*[tf.constant(a) for a in same])
    assert len(recorded) == 2
    assert not np.array_equal(recorded[0].numpy(), recorded[1].numpy())


def test_polarity_is_measured_and_recorded_and_inputs_are_brought_to_it(tmp_path, small_glyphs):
    """A glyphs run records that it learned light strokes on dark; a dark-on-light support set
    (Omniglot, scans) is inverted by predict / adapt / the few-shot servable instead of being
    silently out of distribution."""
    import json

    import tfmeta
    from tfmeta.data import DataConfig
    from tfmeta.data.source import polarity
    from tfmeta.export.servables import FewShotServable
    from tfmeta.run import RunConfig, TrainConfig, train

    assert polarity(small_glyphs.images) == "light-on-dark"
    assert polarity(255 - small_glyphs.images) == "dark-on-light"
    config = RunConfig(algorithm="protonet", data=DataConfig("glyphs"),
                       episode=EpisodeConfig(3, 1, 2), width=8,
                       train=TrainConfig(steps=3, meta_batch=2, val_every=3, val_episodes=2,
                                         test_episodes=2))
    train(config, str(tmp_path), progress=False)
    recorded = json.loads((tmp_path / "run.json").read_text())["data"]["polarity"]
    assert recorded == "light-on-dark"
    train(config, str(tmp_path), progress=False)  # the same command resumes: not "another config"
    for algorithm in ("protonet", "maml"):
        if algorithm == "maml":
            config = dataclasses_replace(config, algorithm="maml")
            train(config, str(tmp_path / "maml"), progress=False)
            learner = tfmeta.load(str(tmp_path / "maml"))
        else:
            learner = tfmeta.load(str(tmp_path))
        assert learner.polarity == "light-on-dark"
        support = small_glyphs.images[[0, 20, 40, 1, 21, 41]]
        names = np.array(["a", "b", "c"] * 2)
        query = small_glyphs.images[[2, 22, 42, 3]]
        light = learner.predict_proba(support, names, query)[1]
        with pytest.warns(UserWarning, match="inverting"):
            dark = learner.predict_proba(255 - support, names, 255 - query)[1]
        np.testing.assert_allclose(dark, light, atol=1e-4)
        served = FewShotServable(learner)
        x = tf.constant(support, tf.float32) / 255.0
        q = tf.constant(query, tf.float32) / 255.0
        y = tf.constant([0, 1, 2, 0, 1, 2])
        np.testing.assert_allclose(served.classify(1.0 - x, y, 1.0 - q)["probabilities"].numpy(),
                                   served.classify(x, y, q)["probabilities"].numpy(), atol=1e-4)


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)
