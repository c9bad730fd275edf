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

Per setting: answers of 20-way 5-shot support sets are not as confident as 5-way 1-shot ones, so
one temperature cannot calibrate both. With ``train.calibration_settings`` (``"5x1,20x5"``; the
benchmarks set their own) each setting gets its temperature and threshold, fitted on validation
episodes of it, and a support set is answered with those of the nearest setting in ways and
shots (:func:`nearest_setting`; ``adapt``, ``fewshot_logits`` and every export alike).
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
              false_rejection: float = FALSE_REJECTION, settings=()) -> dict:
    """Fit ``learner``'s temperature on ``episodes`` episodes of ``sampler`` (validation
    classes), then the unknown-score threshold that rejects ``false_rejection`` of their (known)
    queries, and set both (``learner.temperature``, ``learner.unknown_threshold``). With
    ``settings`` (samplers of validation episodes of other ways and shots), fit each of them too
    and set ``learner.calibrations``: a support set is then answered with its nearest setting's
    (:func:`nearest_setting`). Returns what ``calibration.json`` holds: the run's setting's
    figures, the episodes, the ECE on them before and after, and with ``settings`` every
    setting's (``"settings"``)."""
    if episodes < 1:
        raise ConfigError(f"calibration needs at least one episode, got {episodes}")
    entries = [_fit_setting(learner, s, episodes, false_rejection)
               for s in [sampler, *settings]]
    own = entries[0]
    learner.temperature, learner.unknown_threshold = own["temperature"], own["unknown_threshold"]
    learner.calibrations = tuple(entries) if settings else ()
    facts = {"temperature": own["temperature"], "method": "temperature scaling (Guo et al. 2017)",
             "unknown_threshold": own["unknown_threshold"], "false_rejection": false_rejection,
             "episodes": own["episodes"], "ways": own["ways"], "shots": own["shots"],
             "queries": own["queries"], "classes": "validation", "seed": sampler.seed,
             "ece_before": own["ece_before"], "ece_after": own["ece_after"], "format": 1}
    if settings:
        facts["settings"] = entries
    return facts


def _fit_setting(learner, sampler, episodes: int, false_rejection: float) -> dict:
    """One setting's temperature, threshold and ECE before and after, on ``sampler``'s
    episodes."""
    logits, labels = answers_of(learner, sampler, episodes)
    temperature = fit_temperature(logits, labels)
    e = sampler.episode
    return {"ways": e.ways, "shots": e.shots, "queries": e.queries, "episodes": int(len(logits)),
            "temperature": temperature,
            "unknown_threshold": unknown_threshold(logits / temperature, false_rejection),
            "ece_before": expected_calibration_error(softmax(logits), labels),
            "ece_after": expected_calibration_error(softmax(logits / temperature), labels)}


def parse_settings(text: str | None) -> list:
    """``"5x1,20x5"`` -> ``[(5, 1), (20, 5)]`` (ways x shots); one clear error for anything
    else."""
    settings = []
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        try:
            ways, shots = (int(n) for n in part.lower().split("x"))
        except ValueError:
            ways = shots = 0
        if ways < 2 or shots < 1:
            raise ConfigError(f"a calibration setting is WAYSxSHOTS with ways >= 2 and shots >= "
                              f"1 (as 20x5), got {part!r}")
        settings.append((ways, shots))
    return settings


def nearest_setting(entries, ways: int, shots: float) -> int:
    """The index of the entry (``{"ways", "shots", ...}``) nearest to ``ways`` and ``shots``:
    least ``|log(ways / w)| + |log(shots / k)|``, the first of equals."""
    distances = [abs(math.log(ways / e["ways"])) + abs(math.log(shots / e["shots"]))
                 for e in entries]
    return int(np.argmin(distances))


def write_calibration(facts: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, CALIBRATION_FILE)
    write_json(facts, path)
    return path


def read_setting_calibrations(out_dir: str) -> tuple:
    """The per-setting calibrations of ``out_dir``'s ``calibration.json`` (``()`` where it has
    none: one temperature for every setting); a damaged entry is one clear error."""
    path = os.path.join(out_dir, CALIBRATION_FILE)
    if not os.path.exists(path):
        return ()
    with open(path) as f:
        entries = json.load(f).get("settings") or []
    try:
        entries = tuple({"ways": int(e["ways"]), "shots": int(e["shots"]),
                         "temperature": float(e["temperature"]),
                         "unknown_threshold": float(e["unknown_threshold"])} for e in entries)
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} is damaged ({err}): run tfmeta calibrate --checkpoint "
                          f"{out_dir} to write it again") from None
    if not all(e["ways"] >= 2 and e["shots"] >= 1 and e["temperature"] > 0
               and math.isfinite(e["temperature"]) and math.isfinite(e["unknown_threshold"])
               for e in entries):
        raise ConfigError(f"{path}: a setting's temperature must be a positive number and its "
                          f"threshold finite; run tfmeta calibrate --checkpoint {out_dir}")
    return entries


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
