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


def _ranks(logits):
    """query_rank_scores by loops: per query, the queries its class scores higher, plus
    a tie-breaker in [0, 1) from its own logit (lower: higher)."""
    answer = logits.argmax(-1)
    own = np.array([logits[i, answer[i]] for i in range(len(logits))])
    ranks = []
    for i in range(len(logits)):
        above = sum(logits[j, answer[i]] > own[i] for j in range(len(logits)))
        ranks.append(above + 0.999 * (own.max() - own[i]) / (own.max() - own.min()))
    return np.array(ranks)


def test_query_rank_scores_against_loops_and_they_flag_outranked_queries():
    from tfmeta.learners.answers import query_rank_scores

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(12, 4))
    np.testing.assert_allclose(query_rank_scores(logits), _ranks(logits), rtol=1e-12)
    # class 0's queries are answered more surely (0.95, 0.92, 0.9) than class 1's (0.6, 0.5,
    # 0.4); an unknown query answered class 0 at 0.85 is surer than every class-1 query, so
    # max-logit ranks it below them, but each of class 0's own queries outranks it
    logits = np.array([[0.95, 0.1], [0.92, 0.1], [0.9, 0.1], [0.1, 0.6], [0.1, 0.5], [0.1, 0.4],
                       [0.85, 0.3]])
    scores = query_rank_scores(logits)
    assert scores.argmax() == 6 and auroc(scores[6:], scores[:6]) == 1.0
    assert auroc(-logits.max(-1)[6:], -logits.max(-1)[:6]) == 0.5


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
    ranked = _ranks(logits)
    assert result["transductive_auroc"] == pytest.approx(auroc(ranked[~known], ranked[known]),
                                                         abs=1e-6)
    assert result["known_accuracy"] == pytest.approx(
        np.mean((logits.argmax(-1) == qy)[known] & ~rejected[known]))
    assert result["unknown_rejected"] == pytest.approx(np.mean(rejected[~known]))
    assert (result["known_ways"], result["unknown_ways"], result["episodes"]) == (3, 2, 1)
    with pytest.raises(ConfigError, match="unknown ones"):
        evaluate_open_set(learner, sampler, known=5, episodes=1, progress=False)
    learner.unknown_threshold = None  # without a threshold: AUROC alone
    assert "known_accuracy" not in evaluate_open_set(learner, sampler, 3, 1, progress=False)
