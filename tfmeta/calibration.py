"""Calibrated confidence: temperature scaling (Guo, Pleiss, Sun & Weinberger, ICML 2017, "On
Calibration of Modern Neural Networks") fitted on episodes of the validation classes, and the
expected calibration error that measures it.

For the answers ``z`` (logits) of many validation queries with labels ``y``::

    T* = argmin_T  mean_q  -log softmax(z_q / T)[y_q]      # one number; accuracy unchanged
    p(y | q) = softmax(z_q / T*)                           # what predict_proba and exports give

    ECE = sum_b  n_b / N * | accuracy_b - confidence_b |   # 15 equal-width confidence bins

The negative log-likelihood is convex in ``1 / T``; its derivative there, ``mean_q (E_p[z_q] -
z_q[y_q])``, grows with ``1 / T``, so the fit is a bisection on it. A run keeps its temperature
in ``calibration.json`` (:func:`write_calibration`); :func:`tfmeta.run.load` gives it to the
learner (``learner.temperature``), whose ``adapt``, ``fewshot_logits``, ``predict_proba`` and
every export answer with ``logits / T``.

"None of these": a query's unknown score is minus the largest logit of its answer (the max-logit
score; for Prototypical Networks, the squared distance to the nearest prototype over ``T``). The
threshold is the score that 5 % of the validation episodes' (known) queries exceed
(:func:`unknown_threshold`); ``predict(..., reject=True)`` answers -1 above it, and every export
outputs ``unknown_score`` and ``is_unknown``.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from tfmeta.errors import ConfigError
from tfmeta.files import write_json

CALIBRATION_FILE = "calibration.json"
BINS = 15  # the field's ECE (Guo et al. 2017)
CALIBRATION_EPISODES = 200  # validation episodes a run's temperature is fitted on
FALSE_REJECTION = 0.05  # the share of known queries the unknown threshold rejects


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def expected_calibration_error(probabilities, labels, bins: int = BINS) -> float:
    """ECE of ``probabilities`` ``[N, C]`` against ``labels`` ``[N]``: over ``bins`` equal-width
    bins of the confidence (the top probability; a bin holds ``(lo, hi]``), the share of answers
    in each bin times the gap between its accuracy and its mean confidence."""
    p = np.asarray(probabilities, np.float64).reshape(-1, np.shape(probabilities)[-1])
    y = np.asarray(labels).reshape(-1)
    if len(p) != len(y) or len(y) == 0:
        raise ValueError(f"{len(p)} answers for {len(y)} labels")
    confidence = p.max(-1)
    correct = (p.argmax(-1) == y).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def _nll_slope(inverse_t: float, z: np.ndarray, y: np.ndarray) -> float:
    """d/d(1/T) of the mean negative log-likelihood of ``softmax(z / T)``."""
    p = softmax(z * inverse_t)
    return float(np.mean((p * z).sum(-1) - z[np.arange(len(y)), y]))


def fit_temperature(logits, labels, low: float = 1e-3, high: float = 1e3) -> float:
    """The temperature ``T`` in ``[low, high]`` minimising the mean negative log-likelihood of
    ``softmax(logits / T)`` (``logits`` ``[N, C]``, ``labels`` ``[N]``): a bisection on the
    slope in ``1 / T`` (module docstring), to a relative 1e-9."""
    z = np.asarray(logits, np.float64).reshape(-1, np.shape(logits)[-1])
    y = np.asarray(labels).reshape(-1).astype(int)
    if len(z) != len(y) or len(y) == 0:
        raise ValueError(f"{len(z)} answers for {len(y)} labels")
    if not np.isfinite(z).all():
        raise ValueError("non-finite logits: nothing to calibrate")
    lo, hi = math.log(1.0 / high), math.log(1.0 / low)  # log(1/T)
    if _nll_slope(math.exp(lo), z, y) >= 0:
        return float(high)  # flatter is always better: as flat as allowed
    if _nll_slope(math.exp(hi), z, y) <= 0:
        return float(low)  # every answer right with a margin: as sharp as allowed
    while hi - lo > 1e-9:
        mid = 0.5 * (lo + hi)
        if _nll_slope(math.exp(mid), z, y) < 0:
            lo = mid
        else:
            hi = mid
    return float(math.exp(-0.5 * (lo + hi)))


def answers_of(learner, sampler, episodes: int) -> tuple:
    """``(logits [E, Q, C], labels [E, Q])`` of ``episodes`` episodes of ``sampler``, as the
    learner's test step answers them (before any temperature)."""
    logits, labels = [], []
    batches = math.ceil(episodes / sampler.meta_batch)
    for batch in sampler.dataset(num_batches=batches):
        logits.append(learner.meta_test_step(batch)["logits"].numpy())
        labels.append(np.asarray(batch[3]))
    return np.concatenate(logits)[:episodes], np.concatenate(labels)[:episodes]


def unknown_threshold(logits, false_rejection: float = FALSE_REJECTION) -> float:
    """The unknown score (minus the largest logit, as answered) that a share ``false_rejection``
    of known queries' answers ``logits [..., C]`` exceed: their ``1 - false_rejection``
    quantile."""
    if not 0 < false_rejection < 1:
        raise ConfigError(f"false_rejection must be in (0, 1), got {false_rejection}")
    from tfmeta.learners.answers import unknown_scores  # the score the answers carry

    scores = unknown_scores(np.reshape(logits, (-1, np.shape(logits)[-1]))).numpy()
    return float(np.quantile(scores, 1.0 - false_rejection))


def calibrate(learner, sampler, episodes: int = CALIBRATION_EPISODES,
              false_rejection: float = FALSE_REJECTION) -> dict:
    """Fit ``learner``'s temperature on ``episodes`` episodes of ``sampler`` (validation
    classes), then the unknown-score threshold that rejects ``false_rejection`` of their (known)
    queries, and set both (``learner.temperature``, ``learner.unknown_threshold``). Returns what
    ``calibration.json`` holds: both, the episodes, and the ECE on them before and after."""
    if episodes < 1:
        raise ConfigError(f"calibration needs at least one episode, got {episodes}")
    logits, labels = answers_of(learner, sampler, episodes)
    temperature = fit_temperature(logits, labels)
    threshold = unknown_threshold(logits / temperature, false_rejection)
    learner.temperature, learner.unknown_threshold = temperature, threshold
    e = sampler.episode
    return {"temperature": temperature, "method": "temperature scaling (Guo et al. 2017)",
            "unknown_threshold": threshold, "false_rejection": false_rejection,
            "episodes": int(len(logits)), "ways": e.ways, "shots": e.shots,
            "queries": e.queries, "classes": "validation", "seed": sampler.seed,
            "ece_before": expected_calibration_error(softmax(logits), labels),
            "ece_after": expected_calibration_error(softmax(logits / temperature), labels),
            "format": 1}


def write_calibration(facts: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, CALIBRATION_FILE)
    write_json(facts, path)
    return path


def read_calibration(out_dir: str) -> tuple:
    """``(temperature, unknown_threshold)`` from ``out_dir``'s ``calibration.json`` (``(1.0,
    None)`` where it has none); a damaged file, a temperature that is not a positive number or a
    threshold that is not finite is one clear error."""
    path = os.path.join(out_dir, CALIBRATION_FILE)
    if not os.path.exists(path):
        return 1.0, None
    try:
        with open(path) as f:
            facts = json.load(f)
        temperature = float(facts["temperature"])
        threshold = facts.get("unknown_threshold")
        threshold = None if threshold is None else float(threshold)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"{path} is damaged ({err}): run tfmeta calibrate --checkpoint "
                          f"{out_dir} to write it again") from None
    if not (math.isfinite(temperature) and temperature > 0) or (
            threshold is not None and not math.isfinite(threshold)):
        raise ConfigError(f"{path}: the temperature must be a positive number and the threshold "
                          f"finite, got {temperature} and {threshold}; run tfmeta calibrate "
                          f"--checkpoint {out_dir}")
    return temperature, threshold
