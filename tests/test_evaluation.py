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


def test_progress_is_plain_lines_where_its_logger_allows_and_nothing_otherwise(small_glyphs,
                                                                               capsys):
    """Evaluation reports the episodes done through the "tfmeta.progress" logger: a line at each
    quarter off a terminal (no terminal codes), nothing when the logger is off (the library's
    default) or with progress=False (the trainer's validations)."""
    import logging

    logger = logging.getLogger("tfmeta.progress")
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    sampler = EpisodeSampler(small_glyphs, EpisodeConfig(3, 1, 1), meta_batch=2, seed=9)
    try:
        logger.setLevel(logging.INFO)  # as the command line sets it
        evaluate(_FirstQueryLabelLearner(), sampler, episodes=8)
        evaluate(_FirstQueryLabelLearner(), sampler, episodes=8, progress=False)
        assert lines == [f"evaluating 8 episodes: {n}/8" for n in (2, 4, 6, 8)]
        lines.clear()
        logger.setLevel(logging.WARNING)  # as --no-progress and --quiet set it
        evaluate(_FirstQueryLabelLearner(), sampler, episodes=8)
        assert not lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    out = capsys.readouterr()
    assert "\r" not in out.out + out.err and "\x1b" not in out.out + out.err
