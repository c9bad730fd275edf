import numpy as np
import tensorflow as tf

from tfmeta.data import EpisodeConfig, EpisodeSampler
from tfmeta.evaluation import confidence_interval, evaluate


def test_confidence_interval_formula():
    a = np.array([0.2, 0.6, 0.8, 1.0, 0.4])
    mean, ci = confidence_interval(a)
    assert mean == a.mean()
    assert np.isclose(ci, 1.96 * np.sqrt(((a - a.mean()) ** 2).sum() / 4) / np.sqrt(5))


class _FirstQueryLabelLearner:
    """Scores an episode by its first query label / ways: a known function of the episodes."""

    def check_ways(self, labels):
        pass

    def meta_test_step(self, batch):
        qy = tf.cast(batch[3][:, 0], tf.float32)
        return {"accuracy": qy / 3.0, "loss": qy}


def test_evaluate_counts_exact_episodes_and_is_reproducible(small_glyphs):
    sampler = EpisodeSampler(small_glyphs, EpisodeConfig(3, 1, 1), meta_batch=4, seed=9)
    result = evaluate(_FirstQueryLabelLearner(), sampler, episodes=10)  # 3 batches, 2 dropped
    expected = [b[3].numpy()[:, 0] / 3.0 for b in sampler.dataset(num_batches=3)]
    assert result["episodes"] == 10
    assert np.isclose(result["accuracy"], np.concatenate(expected)[:10].mean())
    assert evaluate(_FirstQueryLabelLearner(), sampler, episodes=10) == result


def test_benchmarks_use_the_test_seed_of_every_run():
    from tfmeta.benchmark import PROTOCOLS
    from tfmeta.data.episodes import TEST_SEED

    assert all(p.seed == TEST_SEED for p in PROTOCOLS.values())
