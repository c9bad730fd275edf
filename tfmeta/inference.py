"""What a trained run does for its user: evaluate it on its test classes (``tfmeta evaluate``)
and classify image files given a support folder (``tfmeta predict``)."""

from __future__ import annotations

import os

from tfmeta.calibration import CALIBRATION_EPISODES, calibrate, write_calibration
from tfmeta.config import EvaluateConfig
from tfmeta.data import EpisodeSampler, load_splits
from tfmeta.data.episodes import TEST_SEED
from tfmeta.errors import ConfigError
from tfmeta.evaluation import PROTOCOL_EPISODES, evaluate, write_result
from tfmeta.run import VALIDATION_SEED, load
from tfmeta.rundir import load_config


def evaluate_run(out_dir: str, episodes: int = PROTOCOL_EPISODES, seed: int | None = None,
                 settings=(), result_file: str | None = None, attack=None,
                 evaluation: EvaluateConfig | None = None, tta=None, finetune=None) -> dict:
    """Evaluate a run's best checkpoint on its test classes (``tfmeta evaluate``), on test
    episodes of seed ``seed`` (default: every run's ``TEST_SEED``). ``settings`` (``KEY=VALUE``)
    change the data or the episodes, e.g. ``episode.shots=5``. With an ``attack``
    (:class:`tfmeta.learners.adversarial.Attack`) robust accuracy is reported beside the clean
    one; with ``tta`` (:class:`tfmeta.learners.tta.TestTimeAugmentation`) the accuracy with
    test-time augmentation beside it; with ``finetune``
    (:class:`tfmeta.learners.finetune.TestTimeFineTuning`) the accuracy with the backbone
    fine-tuned on each support set. ``evaluation`` (an :class:`EvaluateConfig`) gives episodes,
    seed, attack, augmentation and fine-tuning at once.
    Writes ``result_file`` (default ``out_dir/evaluation.json``) and returns the result."""
    if evaluation is not None:
        episodes, seed, attack = evaluation.episodes, evaluation.seed, evaluation.attack_config()
        tta, finetune = evaluation.tta_config(), evaluation.finetune_config()
    trained = load_config(out_dir)
    config = trained.with_settings(settings)
    for name in ("image_size", "channels"):
        if getattr(config.data, name) != getattr(trained.data, name):
            raise ConfigError(f"{out_dir} was trained on data.{name}="
                              f"{getattr(trained.data, name)}; its model cannot take "
                              f"{getattr(config.data, name)} (leave data.{name} out)")
    learner = load(out_dir)
    sampler = EpisodeSampler(load_splits(config.data)["test"], config.episode,
                             config.train.meta_batch, TEST_SEED if seed is None else seed, "test")
    result = evaluate(learner, sampler, episodes, attack=attack, tta=tta, finetune=finetune)
    result.update(algorithm=learner.name, dataset=config.data.dataset)
    write_result(result, result_file or os.path.join(out_dir, "evaluation.json"))
    return result


def calibrate_run(out_dir: str, episodes: int = CALIBRATION_EPISODES, settings=()) -> dict:
    """Fit the temperature of a run's answers (or an ensemble's) on ``episodes`` episodes of its
    validation classes (``tfmeta calibrate``; ``settings`` as :func:`evaluate_run`'s, e.g. the
    ways and shots it will serve) and write it to the run's ``calibration.json``, which
    :func:`tfmeta.run.load` reads. Returns what the file holds."""
    config = load_config(out_dir).with_settings(settings)
    learner = load(out_dir)
    sampler = EpisodeSampler(load_splits(config.data)["val"], config.episode,
                             config.train.meta_batch, VALIDATION_SEED + config.train.seed, "val")
    facts = calibrate(learner, sampler, episodes)
    write_calibration(facts, out_dir)
    return facts


def predict_files(out_dir: str, support_dir: str, query: str) -> list:
    """``[{"file", "class", "probability"}]``: each image of ``query`` (a file or a folder)
    classified by a run's learner adapted to ``support_dir`` (one subfolder per class)."""
    from tfmeta.data import from_folder
    from tfmeta.data.files import image_files, load_image_files

    learner = load(out_dir)
    height, _, channels = learner.input_shape
    support = from_folder(support_dir, height, channels)
    files = image_files(query)
    classes, probabilities = learner.predict_proba(
        support.images, [support.class_names[c] for c in support.labels()],
        load_image_files(files, height, channels))
    return [{"file": name, "class": str(classes[p.argmax()]),
             "probability": round(float(p.max()), 4)} for name, p in zip(files, probabilities)]
