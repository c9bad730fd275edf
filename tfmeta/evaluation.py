"""Evaluation by the field's protocol: mean query accuracy over many episodes of unseen classes,
with a 95% confidence interval ``1.96 * std / sqrt(episodes)`` (std over episodes, ddof=1)."""

from __future__ import annotations

import json
import math
import os

import numpy as np


def confidence_interval(accuracies) -> tuple:
    """``(mean, half-width of the 95% confidence interval)`` of per-episode accuracies."""
    a = np.asarray(accuracies, np.float64)
    if a.size == 0:
        raise ValueError("no episodes")
    std = a.std(ddof=1) if a.size > 1 else 0.0
    return float(a.mean()), float(1.96 * std / math.sqrt(a.size))


def evaluate(learner, sampler, episodes: int = 600) -> dict:
    """Evaluate ``learner`` on ``episodes`` episodes of ``sampler`` (a fixed seed gives the same
    episodes every run). Returns ``{"accuracy", "ci95", "loss", "episodes", ...}``."""
    if episodes < 1:
        raise ValueError(f"episodes must be positive, got {episodes}")
    batches = math.ceil(episodes / sampler.meta_batch)
    accuracies, losses = [], []
    for batch in sampler.dataset(num_batches=batches):
        result = learner.meta_test_step(batch)
        accuracies.append(result["accuracy"].numpy())
        losses.append(result["loss"].numpy())
    accuracies = np.concatenate(accuracies)[:episodes]
    losses = np.concatenate(losses)[:episodes]
    mean, ci95 = confidence_interval(accuracies)
    e = sampler.episode
    return {"accuracy": mean, "ci95": ci95, "loss": float(losses.mean()), "episodes": int(episodes),
            "ways": e.ways, "shots": e.shots, "queries": e.queries, "seed": sampler.seed,
            "classes": sampler.source.num_classes}


def format_result(result: dict) -> str:
    return (f"{result['ways']}-way {result['shots']}-shot accuracy: "
            f"{100 * result['accuracy']:.2f}% +- {100 * result['ci95']:.2f}% "
            f"(95% CI, {result['episodes']} episodes of {result['classes']} unseen classes)")


def write_result(result: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
