"""Evaluation by the field's protocol: mean query accuracy over many episodes of unseen classes,
with a 95% confidence interval ``1.96 * std / sqrt(episodes)`` (std over episodes, ddof=1).

``accuracy`` is always the accuracy as deployed: what the classifier ``learner.adapt()`` returns
(and every export of it) answers, one query image at a time. Learners whose papers evaluate
transductively (MAML, Reptile and the other optimisation-based learners: BatchNorm normalises the
query batch with its own statistics) also report ``transductive_accuracy``. ``ece`` is the
expected calibration error of the answers as deployed (at the run's temperature,
:mod:`tfmeta.calibration`), ``uncalibrated_ece`` that of the raw logits.
"""

from __future__ import annotations

import math

import numpy as np

from tfmeta.files import write_json
from tfmeta.progress import Progress

PROTOCOL_EPISODES = 600  # test episodes of the field's protocol (at least 600)


def confidence_interval(accuracies) -> tuple:
    """``(mean, half-width of the 95% confidence interval)`` of per-episode accuracies."""
    a = np.asarray(accuracies, np.float64)
    if a.size == 0:
        raise ValueError("no episodes")
    std = a.std(ddof=1) if a.size > 1 else 0.0
    return float(a.mean()), float(1.96 * std / math.sqrt(a.size))


def evaluate(learner, sampler, episodes: int = PROTOCOL_EPISODES, attack=None,
             progress: bool = True, tta=None, finetune=None) -> dict:
    """Evaluate ``learner`` on ``episodes`` episodes of ``sampler`` (a fixed seed gives the same
    episodes every run). Returns ``{"accuracy", "ci95", "loss", "episodes", ...}``; with an
    ``attack`` (:class:`tfmeta.learners.adversarial.Attack`) also ``robust_accuracy`` and
    ``robust_ci95`` on the same episodes, their queries perturbed against the adapted model;
    with ``tta`` (:class:`tfmeta.learners.tta.TestTimeAugmentation`) also ``tta_accuracy`` and
    ``tta_ci95``: the same episodes answered with test-time augmentation, as deployed (and
    ``tta_transductive_accuracy`` where the learner reports a transductive figure); with
    ``finetune`` (:class:`tfmeta.learners.finetune.TestTimeFineTuning`) also
    ``finetune_accuracy`` and ``finetune_ci95``: answered by the backbone fine-tuned on each
    support set (and with ``tta`` too, ``finetune_tta_accuracy``), as deployed.
    ``progress``: report the episodes done (:mod:`tfmeta.progress`; shown where its logger is
    enabled, as on the command line)."""
    if episodes < 1:
        raise ValueError(f"episodes must be positive, got {episodes}")
    learner.check_ways([sampler.episode.ways - 1])
    batches = math.ceil(episodes / sampler.meta_batch)
    per_episode: dict = {}
    tta_steps: dict = {}
    finetune_steps: dict = {}
    shown = Progress(episodes, f"evaluating {episodes} episodes") if progress else None
    for done, batch in enumerate(sampler.dataset(num_batches=batches), 1):
        for name, values in learner.meta_test_step(batch).items():
            per_episode.setdefault(name, []).append(values.numpy())
        per_episode.setdefault("labels", []).append(np.asarray(batch[3]))
        if attack is not None:
            robust = learner.robust_test_step(batch, attack)
            per_episode.setdefault("robust_accuracy", []).append(robust["accuracy"].numpy())
        if tta is not None:
            from tfmeta.learners.tta import tta_test_step

            augmented = tta_test_step(learner, batch, tta, tta_steps)
            per_episode.setdefault("tta_accuracy", []).append(augmented["accuracy"].numpy())
            if "transductive_accuracy" in augmented:
                per_episode.setdefault("tta_transductive_accuracy", []).append(
                    augmented["transductive_accuracy"].numpy())
        if finetune is not None:
            from tfmeta.learners.finetune import finetune_test_step

            for key, with_tta in (("finetune", None), ("finetune_tta", tta)):
                if key == "finetune" or tta is not None:
                    tuned = finetune_test_step(learner, batch, finetune, finetune_steps, with_tta)
                    per_episode.setdefault(f"{key}_accuracy", []).append(
                        tuned["accuracy"].numpy())
        if shown is not None:
            shown.update(done * sampler.meta_batch)
    per_episode = {name: np.concatenate(v)[:episodes] for name, v in per_episode.items()}
    mean, ci95 = confidence_interval(per_episode["accuracy"])
    e = sampler.episode
    result = {"accuracy": mean, "ci95": ci95, "loss": float(per_episode["loss"].mean())}
    if "logits" in per_episode:
        result.update(calibration_errors(per_episode["logits"], per_episode["labels"],
                                         learner.setting_calibration(e.ways, e.shots)[0]))
    if "transductive_accuracy" in per_episode:
        t_mean, t_ci95 = confidence_interval(per_episode["transductive_accuracy"])
        result.update(transductive_accuracy=t_mean, transductive_ci95=t_ci95,
                      transductive_loss=float(per_episode["transductive_loss"].mean()))
    if attack is not None:
        r_mean, r_ci95 = confidence_interval(per_episode["robust_accuracy"])
        result.update(robust_accuracy=r_mean, robust_ci95=r_ci95,
                      attack={"kind": attack.kind, "epsilon": attack.epsilon,
                              "steps": attack.iterations})
    if tta is not None:
        a_mean, a_ci95 = confidence_interval(per_episode["tta_accuracy"])
        result.update(tta_accuracy=a_mean, tta_ci95=a_ci95,
                      tta={"shift": tta.shift, "support": tta.support, "query": tta.query})
        if "tta_transductive_accuracy" in per_episode:
            t_mean, t_ci95 = confidence_interval(per_episode["tta_transductive_accuracy"])
            result.update(tta_transductive_accuracy=t_mean, tta_transductive_ci95=t_ci95)
    for key in ("finetune", "finetune_tta"):
        if f"{key}_accuracy" in per_episode:
            f_mean, f_ci95 = confidence_interval(per_episode[f"{key}_accuracy"])
            result.update({f"{key}_accuracy": f_mean, f"{key}_ci95": f_ci95})
    if finetune is not None:
        result["finetune"] = {"steps": finetune.steps, "learning_rate": finetune.learning_rate,
                              "augment": finetune.augment}
    result.update(episodes=int(episodes), ways=e.ways, shots=e.shots, queries=e.queries,
                  seed=sampler.seed, classes=sampler.source.num_classes)
    return result


def calibration_errors(logits, labels, temperature: float) -> dict:
    """``ece``: the expected calibration error (15 bins) of the answers as deployed (the logits
    divided by the run's ``temperature``); ``uncalibrated_ece``: of the logits as they are."""
    from tfmeta.calibration import expected_calibration_error, softmax

    logits = np.asarray(logits, np.float64)
    return {"ece": expected_calibration_error(softmax(logits / temperature), labels),
            "uncalibrated_ece": expected_calibration_error(softmax(logits), labels),
            "temperature": float(temperature)}


def format_result(result: dict) -> str:
    line = (f"{result['ways']}-way {result['shots']}-shot accuracy (as deployed): "
            f"{100 * result['accuracy']:.2f}% +- {100 * result['ci95']:.2f}% "
            f"(95% CI, {result['episodes']} episodes of {result['classes']} unseen classes)")
    steps = result.get("finetune", {}).get("steps")
    for key, label in (("transductive", "transductive (query-batch BatchNorm, as the paper "
                                         "evaluates)"),
                       ("tta", "with test-time augmentation (as deployed)"),
                       ("finetune", f"fine-tuned on the support set ({steps} steps, as deployed)"),
                       ("finetune_tta", "fine-tuned and with test-time augmentation")):
        if f"{key}_accuracy" in result:
            line += (f"; {label}: {100 * result[f'{key}_accuracy']:.2f}% +- "
                     f"{100 * result[f'{key}_ci95']:.2f}%")
    if "ece" in result:
        line += (f"; calibration error (ECE) {100 * result['ece']:.2f}% at temperature "
                 f"{result['temperature']:.3g} (uncalibrated "
                 f"{100 * result['uncalibrated_ece']:.2f}%)")
    if "robust_accuracy" in result:
        a = result["attack"]
        line += (f"; robust to {a['kind']} (epsilon {a['epsilon']:.4g}, {a['steps']} steps): "
                 f"{100 * result['robust_accuracy']:.2f}% +- {100 * result['robust_ci95']:.2f}%")
    return line


def write_result(result: dict, path: str) -> None:
    write_json(result, path)
