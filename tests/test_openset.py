"""Open-set evaluation (tfmeta/openset.py): AUROC against counting every pair, and one episode's
figures against the adapted classifier's answers on it, computed here."""

import itertools

import keras
import numpy as np
import pytest

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.errors import ConfigError
from tfmeta.learners import create
from tfmeta.openset import auroc, evaluate_open_set


def test_auroc_is_the_share_of_pairs_ranked_right_ties_half():
    rng = np.random.default_rng(0)
    unknown = np.round(rng.normal(1.0, 1.0, 37), 1)  # rounded: ties
    known = np.round(rng.normal(0.0, 1.0, 51), 1)
    pairs = [1.0 if u > k else 0.5 if u == k else 0.0
             for u, k in itertools.product(unknown, known)]
    assert auroc(unknown, known) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert auroc([2.0, 3.0], [0.0, 1.0]) == 1.0 and auroc([0.0], [1.0]) == 0.0


def test_one_open_set_episode_against_the_adapted_classifier(small_glyphs):
    keras.utils.set_random_seed(0)
    learner = create("protonet", "conv4", episode=EpisodeConfig(3, 2, 3), backbone_width=8)
    sampler = EpisodeSampler(small_glyphs, EpisodeConfig(5, 2, 3), meta_batch=1, seed=3)
    sx, sy, qx, qy = [t.numpy()[0] for t in next(iter(sampler.dataset()))]
    keep = sy < 3
    logits = learner.adapt(sx[keep], sy[keep])(qx, training=False).numpy()
    scores = -logits.max(-1)
    known = qy < 3
    learner.unknown_threshold = float(np.median(scores))
    rejected = scores > learner.unknown_threshold
    result = evaluate_open_set(learner, sampler, known=3, episodes=1, progress=False)
    pairs = [1.0 if u > k else 0.5 if u == k else 0.0
             for u, k in itertools.product(scores[~known], scores[known])]
    assert result["auroc"] == pytest.approx(np.mean(pairs), abs=1e-6)
    assert result["known_accuracy"] == pytest.approx(
        np.mean((logits.argmax(-1) == qy)[known] & ~rejected[known]))
    assert result["unknown_rejected"] == pytest.approx(np.mean(rejected[~known]))
    assert (result["known_ways"], result["unknown_ways"], result["episodes"]) == (3, 2, 1)
    with pytest.raises(ConfigError, match="unknown ones"):
        evaluate_open_set(learner, sampler, known=5, episodes=1, progress=False)
    learner.unknown_threshold = None  # without a threshold: AUROC alone
    assert "known_accuracy" not in evaluate_open_set(learner, sampler, 3, 1, progress=False)
