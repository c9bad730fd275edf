"""A run, as code: one config dataclass, ``train(config, out_dir)`` and ``load(out_dir)``.

``out_dir/run.json`` records the config, so ``load`` rebuilds the same learner (model, image size,
channels, ways) and restores its best checkpoint; ``out_dir/results.json`` holds the test result.

Example (the quickstart, smaller)::

    from tfmeta.run import RunConfig, TrainConfig, train
    result = train(RunConfig(algorithm="maml", train=TrainConfig(steps=200)), "runs/demo")
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os

import keras

from tfmeta.calibration import (calibrate, parse_settings, read_calibration,
                                read_setting_calibrations, write_calibration)
from tfmeta.config import RUN_FORMAT, RunConfig, TrainConfig, read_run_file  # noqa: F401
from tfmeta.data import EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.data.batches import ClassBatchSampler
from tfmeta.data.image_shape import with_image_shape
from tfmeta.data.disk import sample_images
from tfmeta.data.episodes import TEST_SEED, group_function
from tfmeta.data.images import polarity
from tfmeta.distribute import barrier, is_chief, lost_workers_reported
from tfmeta.ensemble import is_ensemble, load_ensemble
from tfmeta.errors import ConfigError, DataError
from tfmeta.evaluation import evaluate, format_result, write_result
from tfmeta.files import run_lock
from tfmeta.learners import create, learner_class
from tfmeta.models import smallest_input
from tfmeta.pretrain import pretrain
from tfmeta.rundir import (RUN_FILE, checkpoint_path, load_config, restore,  # noqa: F401
                           with_run_backbone, write_run_files)
from tfmeta.threads import PARALLEL_TASKS, configure_threads
from tfmeta.trainer import MetaTrainer


def build_learner(config: RunConfig, input_shape, seed: bool = True, strategy=None,
                  parallel_tasks: int | None = None):
    """The learner of ``config`` on a fresh model for images of ``input_shape``; ``seed``
    seeds Keras' (and NumPy's, Python's) random generators with ``train.seed`` first, so weights
    start the same every time (``load`` does not: its weights come from a checkpoint).
    ``strategy``: a ``tf.distribute.Strategy`` to meta-train across (:mod:`tfmeta.distribute`);
    ``parallel_tasks``: tasks the outer step runs side by side (:func:`tfmeta.learners.create`)."""
    config.validate()
    if seed:
        keras.utils.set_random_seed(config.train.seed)
    t = config.train
    learner = create(config.algorithm, config.model, episode=config.learner_episode,
                     input_shape=tuple(input_shape), backbone_width=config.width,
                     outer_lr=t.outer_lr, lr_schedule=t.lr_schedule, total_steps=t.steps,
                     jit_compile=t.jit_compile, strategy=strategy, precision=t.precision,
                     weight_decay=t.weight_decay, dropout=config.dropout,
                     label_smoothing=t.label_smoothing, freeze_backbone=config.freeze_backbone,
                     weights=config.weights if seed else None,  # load(): a checkpoint's
                     parallel_tasks=parallel_tasks, polarity=config.data.polarity,
                     attack=t.attack(), **config.learner)
    return learner


VALIDATION_SEED = 10_000  # + train.seed: the validation episodes' seed (and calibration's)


def samplers(config: RunConfig, splits: dict) -> dict:
    """Train, validation and test samplers; each stream has its own seed. A learner that does not
    train on episodes (``episodic = False``) trains on minibatches of ``train.pretrain_batch``
    labelled images, ``train.meta_batch`` of them a step."""
    t = config.train
    if learner_class(config.algorithm).episodic:
        training = EpisodeSampler(splits["train"], config.train_episode, t.meta_batch, t.seed,
                                  "train", augment=config.data.augment,
                                  group_of=group_function(config.data.class_groups)
                                  if t.within_group else None, within_group=t.within_group)
    else:
        training = ClassBatchSampler(splits["train"], t.pretrain_batch, t.meta_batch, t.seed,
                                     augment=config.data.augment)
    return {
        "train": training,
        "val": EpisodeSampler(splits["val"], config.episode, t.meta_batch,
                              VALIDATION_SEED + t.seed, "val"),
        "test": EpisodeSampler(splits["test"], config.episode, t.meta_batch, TEST_SEED, "test"),
    }


def calibration_samplers(config: RunConfig, source, settings: str | None = None,
                         max_ways: int | None = None) -> list:
    """Validation samplers of the calibration settings (``settings``, default
    ``train.calibration_settings``) other than the run's own, of its queries and seed; a
    setting the validation classes cannot hold is left out with a warning, one wider than the
    learner answers (``max_ways``: a 5-way MAML in a benchmark of 20-way settings too) with a
    log line."""
    t = config.train
    samplers_ = []
    for ways, shots in parse_settings(t.calibration_settings if settings is None else settings):
        if (ways, shots) == (config.episode.ways, config.episode.shots):
            continue
        if max_ways is not None and ways > max_ways:
            logging.getLogger("tfmeta").info(
                f"not calibrated for {ways}x{shots}: the learner answers at most {max_ways} "
                "classes")
            continue
        episode = EpisodeConfig(ways, shots, config.episode.queries)
        try:
            samplers_.append(EpisodeSampler(source, episode, t.meta_batch,
                                            VALIDATION_SEED + t.seed, "val"))
        except DataError as err:
            logging.getLogger("tfmeta").warning(f"not calibrated for {ways}x{shots}: {err}")
    return samplers_


def trainer_for(config: RunConfig, learner, streams: dict, out_dir: str,
                progress: bool = True, chief: bool = True, callbacks=()) -> MetaTrainer:
    """The trainer of ``config``'s run in ``out_dir`` (resumes from its checkpoints)."""
    t = config.train
    return MetaTrainer(learner, streams["train"], out_dir=out_dir, steps=t.steps,
                       val_sampler=streams["val"], val_every=t.val_every,
                       val_episodes=t.val_episodes, checkpoint_every=t.checkpoint_every,
                       progress=progress, chief=chief, on_nonfinite=t.on_nonfinite,
                       callbacks=callbacks)


def train(config: RunConfig, out_dir: str, progress: bool = True, log=None,
          test: bool = True, strategy=None, callbacks=(),
          parallel_tasks: int = PARALLEL_TASKS) -> dict:
    """Meta-train (resuming from ``out_dir`` if it holds a run of the same config), calibrate the
    best checkpoint's answers on validation classes (``train.calibration_episodes``;
    :mod:`tfmeta.calibration`), then evaluate it on the test classes. Returns the test result
    (with ``test=False``, no test evaluation: the training figures). ``strategy``: a ``tf.distribute.Strategy`` (or
    ``None``: one device); a run resumes under any strategy, its checkpoints do not depend on it.
    Under a multi-worker strategy every worker calls this with the same ``out_dir``; only the
    chief writes there. ``callbacks``: Keras callbacks for the meta-training loop (one device;
    :class:`tfmeta.trainer.MetaTrainer` says what they see). ``parallel_tasks``: tasks of a
    meta-batch meta-trained side by side, each on its share of the CPU cores where TensorFlow has
    not started yet (:mod:`tfmeta.threads`); the updates do not depend on it."""
    # Before TensorFlow starts, or nothing changes: then the learner takes as many tasks side by
    # side as the threads TensorFlow has allow (one, with its default).
    parallel_tasks = parallel_tasks if configure_threads(parallel_tasks) else None
    log = log or logging.getLogger("tfmeta").info  # the CLI shows it; --quiet hides it
    config = config.validate().resolved()
    chief = is_chief(strategy)
    if strategy is not None:
        replicas = strategy.num_replicas_in_sync
        if config.train.meta_batch % replicas:
            raise ConfigError(f"meta_batch {config.train.meta_batch} does not split over "
                              f"{replicas} replicas: make it a multiple of {replicas}")
        if config.train.pretrain_steps:
            raise ConfigError("pre-training runs on one device: leave out the strategy or "
                              "train.pretrain_steps")
    # Everything that can fail on bad input happens before the run directory is written to.
    run_file = os.path.join(out_dir, RUN_FILE)
    previous = read_run_file(run_file) if os.path.exists(run_file) else None  # format, damage
    config = _with_image_shape(config, previous, log)
    splits = load_splits(config.data)
    config = dataclasses.replace(config, learner=learner_class(
        config.algorithm).options_from_data(config.learner, splits["train"]))
    if config.data.polarity is None:  # a fact of the training images, recorded with the run
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, polarity=polarity(sample_images(splits["train"].images))))
    if previous is not None:
        previous = previous.resolved().to_dict()
        if _as_json(previous) != _as_json(config.to_dict()):
            raise ConfigError(f"{out_dir} holds a run with another config; use a new --out")
    log(f"classes: {splits['train'].num_classes} train, {splits['val'].num_classes} val, "
        f"{splits['test'].num_classes} test ({config.data.dataset}, "
        f"{'x'.join(map(str, splits['train'].image_shape))})")
    streams = samplers(config, splits)
    learner = build_learner(with_run_backbone(config, out_dir), streams["train"].image_shape,
                            strategy=strategy, parallel_tasks=parallel_tasks)
    # One process per run directory: a second one started on it is refused here, before it
    # writes anything (a lock the system drops when the holder dies, even by SIGKILL).
    with run_lock(out_dir) if chief else contextlib.nullcontext():
        return _meta_train_and_test(config, learner, streams, splits, out_dir, progress, log,
                                    test, strategy, chief, callbacks)


def _with_image_shape(config: RunConfig, previous: RunConfig | None, log) -> RunConfig:
    """``config`` with the image size and channels it leaves out taken from the run it resumes,
    else from the data (or the backbone's smallest input), said in one line."""
    data = config.data
    if previous is not None:  # a resumed run keeps its images' shape
        data = dataclasses.replace(data, image_size=data.image_size or previous.data.image_size,
                                   channels=data.channels or previous.data.channels)
    data, note = with_image_shape(data, smallest_input(config.model))
    if note:
        log(note)
    return dataclasses.replace(config, data=data)


def _meta_train_and_test(config, learner, streams, splits, out_dir, progress, log, test,
                         strategy, chief, callbacks=()) -> dict:
    """``train`` once the run is checked, built and its directory is this process's."""
    if chief:
        write_run_files(config, out_dir, strategy)
    t = config.train
    if t.pretrain_steps and checkpoint_path(out_dir, "latest") is None:  # not when resuming
        log(f"pre-training the backbone on {splits['train'].num_classes} classes")
        pretrain(learner, splits["train"], t.pretrain_steps, t.pretrain_batch, t.pretrain_lr,
                 config.data.augment, t.seed, log=log)
    latest = checkpoint_path(out_dir, "latest")
    if latest:
        log(f"resuming from {latest}")
    with lost_workers_reported(strategy, out_dir):
        fit = trainer_for(config, learner, streams, out_dir, progress, chief, callbacks).fit()
        if "tasks_per_second" in fit:
            log(f"meta-trained {fit['step']} steps at {fit['tasks_per_second']:.1f} tasks/s")
        if fit.get("skipped"):
            log(f"skipped {fit['skipped']} meta-batches whose loss, meta-gradient or state was "
                "not finite")
        if not (test or t.calibration_episodes):
            return fit
        barrier(strategy)  # every worker reads the best checkpoint once the chief has written it
        restore(learner, out_dir)
        if t.calibration_episodes:  # the answers' temperature, from validation classes
            calibration = calibrate(learner, streams["val"], t.calibration_episodes,
                                    settings=calibration_samplers(config, splits["val"],
                                                                  max_ways=learner.max_ways))
            if chief:
                write_calibration(calibration, out_dir)
            log(f"calibrated on {calibration['episodes']} validation episodes: temperature "
                f"{calibration['temperature']:.3g}, calibration error (ECE) "
                f"{100 * calibration['ece_before']:.2f}% -> "
                f"{100 * calibration['ece_after']:.2f}%")
        if not test:
            return fit
        result = evaluate(learner, streams["test"], config.train.test_episodes,
                          attack=config.train.attack())
    result.update(algorithm=config.algorithm, dataset=config.data.dataset,
                  checkpoint=checkpoint_path(out_dir),
                  skipped_meta_batches=fit.get("skipped", 0))
    if chief:
        write_result(result, os.path.join(out_dir, "results.json"))
    log(format_result(result))
    return result


def _as_json(value):
    return json.loads(json.dumps(value))  # tuples become lists, as in run.json


def changed_learner_options(trained: RunConfig, config: RunConfig) -> dict:
    """The learner options ``config`` sets differently from the run's ``trained`` config (a
    ``--set learner.KEY=VALUE`` at evaluation): what :func:`load`'s ``learner_options`` takes."""
    return {k: v for k, v in config.learner.items() if trained.learner.get(k) != v}


def load(out_dir: str, which: str = "best", learner_options: dict | None = None):
    """The meta-trained learner of a run directory, ready for ``predict`` / ``adapt`` (of an
    ensemble's directory, ``tfmeta ensemble``: the :class:`tfmeta.ensemble.Ensemble` of its
    members). ``learner_options`` change how the learner adapts (``test_inner_steps``, MAML's
    ``prototype_head``, ...); an option that changes what it holds does not fit the checkpoint,
    one clear error."""
    if is_ensemble(out_dir):
        if learner_options:
            raise ConfigError(f"{out_dir} is an ensemble: its members' learner options are their "
                              "own runs'")
        ensemble = load_ensemble(out_dir, lambda member: load(member, which))
        ensemble.temperature, ensemble.unknown_threshold = read_calibration(out_dir)
        ensemble.calibrations = read_setting_calibrations(out_dir)
        return ensemble
    config = with_run_backbone(load_config(out_dir), out_dir)
    if learner_options:
        config = dataclasses.replace(config, learner={**config.learner, **learner_options})
        config.learner_config()  # an unknown or bad option: one clear error
    d = config.data
    learner = build_learner(config, (d.image_size, d.image_size, d.channels), seed=False)
    restore(learner, out_dir, which)
    # 1.0 and None for a run without calibration.json
    learner.temperature, learner.unknown_threshold = read_calibration(out_dir)
    learner.calibrations = read_setting_calibrations(out_dir)
    return learner
