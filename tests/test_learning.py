"""Learning really happens: meta-trained models beat chance and beat their own starting point."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler, glyphs
from tfmeta.evaluation import evaluate
from tfmeta.learners import MAML, MAMLConfig, create
from tfmeta.models import conv4

from learner_cases import CASES, learning_options


@pytest.fixture(scope="module")
def glyph_splits():
    return glyphs(num_classes=600, samples_per_class=20, seed=11).split((0.8, 0.0, 0.2), seed=0)


def _train_and_evaluate(learner, train, test, steps):
    sampler = EpisodeSampler(train, TRAIN_EPISODE, meta_batch=4, seed=1)
    test_sampler = EpisodeSampler(test, EpisodeConfig(5, 1, 15), meta_batch=10, seed=99)
    before = evaluate(learner, test_sampler, 50)["accuracy"]  # 50 x 75 queries: SE < 1 point
    for batch in sampler.dataset(num_batches=steps):
        learner.meta_train_step(batch)
    after = evaluate(learner, test_sampler, 50)["accuracy"]
    assert learner._train_fn.experimental_get_tracing_count() == 1  # compiled once, no retracing
    return before, after


TRAIN_EPISODE = EpisodeConfig(5, 1, 5)  # 5-way, 1 shot + 5 queries per class while training


def _learner(algorithm):
    keras.utils.set_random_seed(0)
    return create(algorithm, "conv4", episode=TRAIN_EPISODE, backbone_width=32, total_steps=300,
                  **learning_options(algorithm, TRAIN_EPISODE))


@pytest.mark.parametrize("algorithm", [
    pytest.param(n, marks=pytest.mark.slow) if case.slow else n
    for n, case in sorted(CASES.items()) if case.gain])
def test_meta_training_learns_5way_1shot_glyphs(glyph_splits, algorithm):
    """Minimum gain over the same model before meta-training, on the same 50 test episodes, and
    a floor (tests/learner_cases.py: each learner's row)."""
    train, _, test = glyph_splits
    learner = _learner(algorithm)
    before, after = _train_and_evaluate(learner, train, test, steps=300)
    print(f"{algorithm}: {before:.3f} -> {after:.3f}")
    assert after >= CASES[algorithm].floor
    assert after >= before + CASES[algorithm].gain
    if algorithm == "snail":  # classes come from labels, not positions in the support sequence
        _, _, test = glyph_splits
        sampler = EpisodeSampler(test, EpisodeConfig(5, 1, 15), meta_batch=10, seed=99)
        agree, hits = [], []
        for sx, sy, qx, qy in sampler.dataset(num_batches=5):
            reverse = sx.shape[1] - 1 - np.arange(sx.shape[1])
            sorted_logits = learner.episode_logits(sx, sy, qx, training=False).numpy()
            shuffled = learner.episode_logits(tf.gather(sx, reverse, axis=1),
                                              tf.gather(sy, reverse, axis=1), qx,
                                              training=False).numpy()
            agree.append(sorted_logits.argmax(-1) == shuffled.argmax(-1))
            hits.append(shuffled.argmax(-1) == qy.numpy())
        assert np.mean(agree) >= 0.6, np.mean(agree)  # a position reader: ~0.2
        assert np.mean(hits) >= after - 0.1, (np.mean(hits), after)


def test_adapted_classifier_answers_per_image(glyph_splits):
    """adapt() freezes the support's BatchNorm statistics: batch and single-image answers agree."""
    train, _, _ = glyph_splits
    keras.utils.set_random_seed(0)
    learner = MAML(conv4((28, 28, 1), outputs=5, width=16), MAMLConfig())
    sx, sy, qx, _ = next(iter(EpisodeSampler(train, EpisodeConfig(5, 2, 3), 1).dataset()))
    classifier = learner.adapt(sx[0], sy[0])
    batch = classifier(qx[0], training=False).numpy()
    single = np.concatenate([classifier(qx[0][i:i + 1], training=False).numpy() for i in range(15)])
    np.testing.assert_allclose(batch, single, atol=1e-4)
    # On the support itself the frozen classifier reproduces the transductive forward pass.
    phi = learner.test_adaptation(learner.weights(), sx[0], sy[0])
    np.testing.assert_allclose(classifier(sx[0], training=False).numpy(),
                               learner.forward(phi, sx[0]).numpy(), atol=1e-3)
