"""Open-set evaluation: episodes whose queries include classes the support set does not have,
answered "none of these" by the unknown score (:mod:`tfmeta.calibration`).

Each episode draws ``known + unknown`` classes; the support set holds the ``known`` classes alone
and the queries come from all of them. Per episode::

    scores = learner.unknown_scores(support of the known classes, queries)
    AUROC            = P(score of an unknown query > score of a known one)  (ties count 1/2)
    transductive AUROC: the same with the episode's queries answered together
                       (``query_rank_scores``: each query's rank among them)
    known accuracy   = share of known queries answered with their class and not rejected
    unknown rejected = share of unknown queries whose score is above the run's threshold

each reported as a mean with a 95 % confidence interval over the episodes, as accuracy is.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfmeta.errors import ConfigError
from tfmeta.evaluation import confidence_interval
from tfmeta.learners.answers import query_rank_scores, unknown_scores
from tfmeta.progress import Progress


def auroc(unknown, known) -> float:
    """The probability that an unknown query's score is above a known query's (ties count a
    half): the area under the ROC curve, by ranks (Mann-Whitney U)."""
    unknown, known = np.asarray(unknown, np.float64), np.asarray(known, np.float64)
    if not len(unknown) or not len(known):
        raise ValueError("AUROC needs known and unknown queries")
    scores = np.concatenate([unknown, known])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # ties share their mean rank
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[:len(unknown)].sum() - len(unknown) * (len(unknown) + 1) / 2
    return float(u / (len(unknown) * len(known)))


def evaluate_open_set(learner, sampler, known: int, episodes: int,
                      progress: bool = True) -> dict:
    """Open-set figures of ``learner`` on ``episodes`` episodes of ``sampler`` (whose episodes
    have ``known`` + unknown classes; labels ``>= known`` are the unknown ones; module
    docstring). The threshold is the learner's (``unknown_threshold``, a run's calibration);
    without one, AUROC alone."""
    ways = sampler.episode.ways
    if not 2 <= known < ways:
        raise ConfigError(f"open-set episodes need 2 or more known classes and 1 or more unknown "
                          f"ones, got {known} known of {ways}")
    learner.check_ways([known - 1])
    logits_of = tf.function(learner.fewshot_logits) if learner.compiled else learner.fewshot_logits
    threshold = learner.unknown_threshold
    figures: dict = {"auroc": [], "transductive_auroc": [], "known_accuracy": [],
                     "unknown_rejected": []}
    shown = Progress(episodes, f"open-set evaluation, {episodes} episodes") if progress else None
    done = 0
    for batch in sampler.dataset(num_batches=math.ceil(episodes / sampler.meta_batch)):
        for support_x, support_y, query_x, query_y in zip(*[np.asarray(t) for t in batch]):
            if done == episodes:
                break
            keep = support_y < known
            logits = logits_of(tf.constant(support_x[keep]), tf.constant(support_y[keep]),
                               tf.constant(query_x)).numpy()
            scores = unknown_scores(logits).numpy()
            is_known = query_y < known
            figures["auroc"].append(auroc(scores[~is_known], scores[is_known]))
            ranked = query_rank_scores(logits)  # the queries answered together
            figures["transductive_auroc"].append(auroc(ranked[~is_known], ranked[is_known]))
            if threshold is not None:  # the run's, for this support set's setting
                rejected = scores > learner.support_calibration(support_y[keep])[1]
                right = (logits.argmax(-1) == query_y) & ~rejected
                figures["known_accuracy"].append(right[is_known].mean())
                figures["unknown_rejected"].append(rejected[~is_known].mean())
            done += 1
        if shown is not None:
            shown.update(done)
    result = {"known_ways": known, "unknown_ways": ways - known, "episodes": done,
              "unknown_threshold": threshold, "score": "max-logit"}
    for name, values in figures.items():
        if values:
            result[name], result[f"{name}_ci95"] = confidence_interval(values)
    return result


def evaluate_open_set_episodes(learner, source, episode, unknown: int, meta_batch: int, seed: int,
                               episodes: int, group_of=None, progress: bool = True) -> dict:
    """:func:`evaluate_open_set` on test episodes like ``episode`` (an ``EpisodeConfig``) of
    ``source`` with ``unknown`` more classes (``group_of``: all drawn from one group)."""
    import dataclasses

    from tfmeta.data import EpisodeSampler

    wider = dataclasses.replace(episode, ways=episode.ways + unknown)
    sampler = EpisodeSampler(source, wider, meta_batch, seed, "test", group_of=group_of)
    return evaluate_open_set(learner, sampler, episode.ways, episodes, progress)


def format_open_set(result: dict) -> str:
    line = (f"open set ({result['known_ways']} known classes, queries of "
            f"{result['unknown_ways']} unknown ones too): AUROC {result['auroc']:.3f} +- "
            f"{result['auroc_ci95']:.3f}")
    if "transductive_auroc" in result:  # (results written before it was measured have none)
        line += (f" (queries answered together: {result['transductive_auroc']:.3f} +- "
                 f"{result['transductive_auroc_ci95']:.3f})")
    if "known_accuracy" in result:
        line += (f"; at the threshold, known queries right {100 * result['known_accuracy']:.2f}% "
                 f"+- {100 * result['known_accuracy_ci95']:.2f}%, unknown queries rejected "
                 f"{100 * result['unknown_rejected']:.2f}% +- "
                 f"{100 * result['unknown_rejected_ci95']:.2f}%")
    else:
        line += " (no threshold: calibrate the run for rejection figures)"
    return line
