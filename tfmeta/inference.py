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
from tfmeta.openset import evaluate_open_set_episodes
from tfmeta.run import VALIDATION_SEED, calibration_samplers, changed_learner_options, load
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
    seed, attack, augmentation and fine-tuning at once, and ``open_set``: open-set figures
    (:mod:`tfmeta.openset`) on as many episodes with that many unknown classes' queries too.
    Writes ``result_file`` (default ``out_dir/evaluation.json``) and returns the result."""
    open_set = 0
    if evaluation is not None:
        episodes, seed, attack = evaluation.episodes, evaluation.seed, evaluation.attack_config()
        tta, finetune = evaluation.tta_config(), evaluation.finetune_config()
        open_set = evaluation.open_set
    trained = load_config(out_dir)
    config = trained.with_settings(settings)
    for name in ("image_size", "channels"):
        if getattr(config.data, name) != getattr(trained.data, name):
            raise ConfigError(f"{out_dir} was trained on data.{name}="
                              f"{getattr(trained.data, name)}; its model cannot take "
                              f"{getattr(config.data, name)} (leave data.{name} out)")
    learner = load(out_dir, learner_options=changed_learner_options(trained, config))
    test = load_splits(config.data)["test"]
    seed = TEST_SEED if seed is None else seed
    if open_set and config.episode.ways + open_set > test.num_classes:
        raise ConfigError(f"--open-set {open_set}: {config.episode.ways} known and {open_set} "
                          f"unknown classes need {config.episode.ways + open_set} test classes; "
                          f"the data has {test.num_classes}")
    sampler = EpisodeSampler(test, config.episode, config.train.meta_batch, seed, "test")
    result = evaluate(learner, sampler, episodes, attack=attack, tta=tta, finetune=finetune)
    if open_set:
        result["open_set"] = evaluate_open_set_episodes(
            learner, test, config.episode, open_set, config.train.meta_batch, seed, episodes)
    result.update(algorithm=learner.name, dataset=config.data.dataset)
    write_result(result, result_file or os.path.join(out_dir, "evaluation.json"))
    return result


NONE_OF_THESE = "none of these"  # tfmeta predict --reject's answer for an unknown image


def calibrate_run(out_dir: str, episodes: int = CALIBRATION_EPISODES, settings=(),
                  calibration_settings: str | None = None) -> dict:
    """Fit the temperature of a run's answers (or an ensemble's) on ``episodes`` episodes of its
    validation classes (``tfmeta calibrate``; ``settings`` as :func:`evaluate_run`'s, e.g. the
    ways and shots it will serve), and of each of ``calibration_settings`` (``"5x1,20x5"``;
    default: the run's ``train.calibration_settings``), and write them to the run's
    ``calibration.json``, which :func:`tfmeta.run.load` reads. Returns what the file holds."""
    config = load_config(out_dir).with_settings(settings)
    learner = load(out_dir)
    validation = load_splits(config.data)["val"]
    sampler = EpisodeSampler(validation, config.episode,
                             config.train.meta_batch, VALIDATION_SEED + config.train.seed, "val")
    facts = calibrate(learner, sampler, episodes,
                      settings=calibration_samplers(config, validation, calibration_settings,
                                                    learner.max_ways))
    write_calibration(facts, out_dir)
    return facts


def predict_files(out_dir: str, support_dir: str, query: str, reject: bool = False) -> list:
    """``[{"file", "class", "probability", "unknown_score"}]``: each image of ``query`` (a file
    or a folder) classified by a run's learner adapted to ``support_dir`` (one subfolder per
    class); with ``reject``, the class of an image whose unknown score is above the run's
    threshold is ``"none of these"`` (:meth:`tfmeta.learners.answers.Answers.predict`)."""
    import tensorflow as tf

    from tfmeta.data import from_folder
    from tfmeta.data.files import image_files, load_image_files
    from tfmeta.learners.answers import unknown_scores

    learner = load(out_dir)
    height, _, channels = learner.input_shape
    support = from_folder(support_dir, height, channels)
    files = image_files(query)
    names = [support.class_names[c] for c in support.labels()]
    queries = load_image_files(files, height, channels)
    classes, logits = learner.answer(support.images, names, queries)
    probabilities = tf.nn.softmax(logits).numpy()
    scores = unknown_scores(logits).numpy()
    unknown = learner.is_unknown(scores) if reject else [False] * len(files)
    return [{"file": name, "class": NONE_OF_THESE if rejected else str(classes[p.argmax()]),
             "probability": round(float(p.max()), 4), "unknown_score": round(float(score), 4)}
            for name, p, score, rejected in zip(files, probabilities, scores, unknown)]
