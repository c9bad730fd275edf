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
import shutil

import keras
import tensorflow as tf

from tfmeta.data import DataConfig, EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.data.episodes import TEST_SEED
from tfmeta.data.disk import sample_images
from tfmeta.data.images import polarity
from tfmeta.distribute import barrier, is_chief, lost_workers_reported
from tfmeta.errors import ConfigError
from tfmeta.evaluation import evaluate, format_result, write_result
from tfmeta.files import run_lock, write_json
from tfmeta.info import environment
from tfmeta.learners import create, learner_class, make_config, options
from tfmeta.learners.adversarial import Attack
from tfmeta.learners.registry import PRECISIONS, check_lr_schedule, scheduled
from tfmeta.models import KERAS_FILE, KERAS_HUB, check_backbone
from tfmeta.pretrain import pretrain
from tfmeta.settings import check_value
from tfmeta.threads import configure_threads
from tfmeta.trainer import NONFINITE, MetaTrainer, read_checkpoint

RUN_FILE = "run.json"
# The layout of run directories this tfmeta writes and reads (run.json's "run_format"; a run.json
# without one is format 1). Raise it when a run directory changes in a way older code misreads.
RUN_FORMAT = 1
BACKBONE_FILE = "backbone.keras"  # a keras_file: backbone, copied into the run directory
BACKBONE_PRESET = "backbone_preset"  # a keras_hub: preset folder, copied into the run directory
RUN_BACKBONES = ((KERAS_FILE, BACKBONE_FILE), (KERAS_HUB, BACKBONE_PRESET))  # prefix, copy's name
ENVIRONMENT_FILE = "environment.json"  # versions, devices, strategy, op determinism (last start)


@dataclasses.dataclass
class TrainConfig:
    """Attributes:
        steps: meta-iterations (outer updates).
        meta_batch: tasks per meta-iteration.
        outer_lr: learning rate of the outer-loop optimizer; ``None``: the learner's default
            (Adam 1e-3). Reptile's outer step is its own option ``epsilon``, so setting
            ``outer_lr`` for Reptile is an error.
        val_every, val_episodes: validation on held-out classes.
        test_episodes: episodes of test classes in the final evaluation (the protocol: >= 600).
        checkpoint_every: steps between checkpoints.
        seed: seed of weights and episode streams.
        jit_compile: compile the steps with XLA.
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"`` (Keras mixed
            precision of the backbone; :func:`tfmeta.learners.create`).
        weight_decay: decoupled weight decay of the outer optimizer (0: none).
        label_smoothing: of the meta-training objective, every learner (0: none; a regulariser,
            with ``weight_decay`` and ``RunConfig.dropout``).
        adversarial: ``"fgsm"`` or ``"pgd"``: adversarial querying while meta-training
            (:mod:`tfmeta.learners.adversarial`; queries perturbed within an L-infinity ball of
            ``attack_epsilon``, PGD in ``attack_steps`` steps); the test evaluation then reports
            robust accuracy under the same attack beside the clean one. ``None``: clean queries.
        on_nonfinite: ``"skip"`` a meta-batch whose loss, meta-gradient or new state is NaN /
            Inf (skipped whole, on one device and under a strategy; counted in ``results.json``;
            ten in a row stop the run) or ``"stop"`` the run at the first one; none reaches a
            checkpoint (:class:`tfmeta.trainer.MetaTrainer`).
        lr_schedule: ``"constant"`` or ``"cosine"`` (the outer learning rate decays to 0 over
            ``steps``).
        pretrain_steps: minibatches of ordinary classification of every training class before
            meta-training (:mod:`tfmeta.pretrain`; 0: none), of ``pretrain_batch`` images, Adam
            at ``pretrain_lr`` decayed by a cosine; training images are augmented as
            ``data.augment`` says.
    """

    steps: int = 2000
    meta_batch: int = 4
    outer_lr: float | None = None
    val_every: int = 250
    val_episodes: int = 100
    test_episodes: int = 600
    checkpoint_every: int = 100
    seed: int = 0
    jit_compile: bool = False
    precision: str = "float32"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    on_nonfinite: str = "skip"
    adversarial: str | None = None
    attack_epsilon: float = 8 / 255
    attack_steps: int = 7
    lr_schedule: str = "constant"
    pretrain_steps: int = 0
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3

    def __post_init__(self):
        for name in ("steps", "meta_batch", "val_every", "val_episodes", "test_episodes",
                     "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if self.pretrain_steps < 0 or self.pretrain_batch < 1 or self.pretrain_lr <= 0:
            raise ConfigError("train.pretrain_steps must be >= 0, pretrain_batch and pretrain_lr "
                              "positive")
        check_lr_schedule(self.lr_schedule, "train.lr_schedule")
        if self.on_nonfinite not in NONFINITE:
            raise ConfigError(f"train.on_nonfinite must be one of {', '.join(NONFINITE)}, got "
                              f"{self.on_nonfinite!r}")
        self.attack()  # a bad attack setting: one clear error
        if not self.weight_decay >= 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"train.label_smoothing must be in [0, 1), got "
                              f"{self.label_smoothing}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got "
                              f"{self.precision!r}")

    def attack(self) -> Attack | None:
        """The adversarial-querying attack of ``adversarial`` (``None`` without one)."""
        if self.adversarial is None:
            return None
        return Attack(self.adversarial, float(self.attack_epsilon), self.attack_steps)


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run. ``learner`` holds overrides of the algorithm's config
    (e.g. ``{"inner_steps": 5, "inner_lr": 0.1}``). ``train_ways`` (metric learners only) makes
    training episodes wider than validation and test ones, as Prototypical Networks do.
    ``model``: ``conv4``, ``resnet12``, ``keras_applications:NAME`` or ``keras_file:PATH``;
    ``dropout``: of a built-in backbone while meta-training (0: none, as the papers);
    ``weights``: a local file of pretrained weights of a ``keras_applications`` network;
    ``freeze_backbone``: keep those (or a ``keras_file``'s) weights fixed
    (:func:`tfmeta.models.build_model`)."""

    algorithm: str = "maml"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    episode: EpisodeConfig = dataclasses.field(default_factory=EpisodeConfig)
    train_ways: int | None = None
    model: str = "conv4"
    width: int = 64
    dropout: float = 0.0
    weights: str | None = None
    freeze_backbone: bool = False
    learner: dict = dataclasses.field(default_factory=dict)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def validate(self) -> "RunConfig":
        """Raise ``ConfigError`` with one clear line if the parts do not fit together."""
        cls = learner_class(self.algorithm)
        check_backbone(self.model, self.width, self.dropout, self.weights, self.freeze_backbone)
        if self.train_ways is not None and self.train_ways < 2:
            raise ConfigError(f"train_ways must be at least 2, got {self.train_ways}")
        learner_config = self.learner_config()  # unknown or invalid options: one clear error
        cls.check_test_episode(self.train_episode, self.episode)
        cls.check_episode(learner_config, self.learner_episode)
        if self.train.adversarial is not None and not cls.adversarial_queries:
            raise ConfigError(f"{self.algorithm} has no query loss to attack: adversarial "
                              "querying is for the MAML family and the metric learners")
        if self.train.outer_lr is not None:
            if self.train.outer_lr <= 0:
                raise ConfigError(f"outer_lr must be positive, got {self.train.outer_lr}")
            cls.default_optimizer(learner_config, learning_rate=float(self.train.outer_lr))
        scheduled(cls.default_optimizer(learner_config, self.train.steps), self.train.lr_schedule,
                  self.train.steps, self.algorithm)
        return self

    def learner_config(self):
        """The learner's config dataclass: its defaults updated with ``learner``."""
        return make_config(self.algorithm, **self.learner)

    @property
    def train_episode(self) -> EpisodeConfig:
        """The shape of meta-training episodes (``train_ways`` wide, if set)."""
        return dataclasses.replace(self.episode, ways=self.train_ways or self.episode.ways)

    @property
    def learner_episode(self) -> EpisodeConfig:
        """The episode a learner is sized for: the wider of training and test episodes."""
        return dataclasses.replace(self.episode,
                                   ways=max(self.episode.ways, self.train_ways or 0))

    def resolved(self) -> "RunConfig":
        """A copy whose ``learner`` lists every option of the learner, defaults included, so
        the run replays the same even if a default changes later."""
        config = self.learner_config()
        values = dataclasses.asdict(config) if config is not None else {}
        return dataclasses.replace(self, learner={k: values[k] for k in options(self.algorithm)})

    def to_dict(self) -> dict:
        """The config tree as plain values (what ``run.json`` holds), with the run format."""
        d = dataclasses.asdict(self)
        d["data"]["split"] = list(self.data.split)
        return {"run_format": RUN_FORMAT, **d}

    def with_values(self, values: dict) -> "RunConfig":
        """A copy with ``{dotted key: value}`` applied (``"learner.inner_steps": 5``,
        ``"train.meta_batch": 32``, ``"width": 32``). An unknown key or a value of another type
        than the field's is one clear error; learner options are checked against the learner."""
        top = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        sections = {name: dataclasses.asdict(top[name]) for name in SECTIONS}
        learner = dict(self.learner)
        for key, value in values.items():
            head, _, name = key.partition(".")
            if head == "learner" and name and "." not in name:
                learner[name] = value
            elif head in SECTIONS and name in sections[head]:
                sections[head][name] = check_value(SECTIONS[head], name, value, key)
            elif not name and head in top and head not in SECTIONS and head != "learner":
                top[head] = check_value(RunConfig, head, value, key)
            else:
                raise ConfigError(f"unknown setting {key}; settings: {', '.join(_keys(self))}, "
                                  "learner.OPTION")
        top.update({name: cls(**sections[name]) for name, cls in SECTIONS.items()},
                   learner=learner)
        return RunConfig(**top)

    def with_settings(self, assignments) -> "RunConfig":
        """A copy with ``KEY=VALUE`` strings applied (``--set``; see ``with_values``). Values
        are read as JSON (``5``, ``0.4``, ``true``, ``null``, ``[1, 2]``), else as strings."""
        values = {}
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep or not key:
                raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. "
                                  "learner.inner_steps=5")
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError:
                values[key] = raw
        return self.with_values(values)

    @classmethod
    def from_tree(cls, tree: dict, where: str = "config") -> "RunConfig":
        """A config from a (possibly partial) tree like ``to_dict``'s; fields it leaves out keep
        their defaults, an unknown one is an error naming ``where``."""
        if not isinstance(tree, dict):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(tree).__name__}")
        tree = dict(tree)
        check_run_format(tree.pop("run_format", RUN_FORMAT), where)
        learner, train = tree.get("learner"), tree.get("train", {})
        if isinstance(learner, dict) and "label_smoothing" in learner and isinstance(train, dict):
            # ridge / svm had it as an option before train.label_smoothing served every learner.
            tree["learner"] = {k: v for k, v in learner.items() if k != "label_smoothing"}
            tree["train"] = {"label_smoothing": learner["label_smoothing"], **train}
        values = {}
        for key, value in tree.items():
            if key in SECTIONS or key == "learner":
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: {key} must be a mapping of settings")
                values.update({f"{key}.{name}": v for name, v in value.items()})
            else:
                values[key] = value
        try:
            return cls().with_values(values)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return cls.from_tree(d)


SECTIONS = {"data": DataConfig, "episode": EpisodeConfig, "train": TrainConfig}


def check_run_format(run_format, where: str) -> None:
    """One clear error if a config of ``run_format`` is not one this tfmeta reads."""
    from tfmeta import __version__

    if run_format == RUN_FORMAT and not isinstance(run_format, bool):
        return
    if isinstance(run_format, int) and not isinstance(run_format, bool) and \
            run_format > RUN_FORMAT:
        raise ConfigError(f"{where}: written by a newer tfmeta (run format {run_format}; "
                          f"tfmeta {__version__} reads format {RUN_FORMAT}): upgrade tfmeta, "
                          "or start a new --out")
    raise ConfigError(f"{where}: run format {run_format!r} is not one tfmeta {__version__} "
                      f"reads (format {RUN_FORMAT}): start a new --out")


def read_run_file(path: str) -> "RunConfig":
    """The config a run directory's ``run.json`` holds; a damaged file, or one written by
    another tfmeta in a format this one does not read, is one clear error."""
    try:
        with open(path) as f:
            tree = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: a damaged run file ({err}); restore it from a copy or "
                          "start a new --out") from None
    return RunConfig.from_tree(tree, where=path)


def _keys(config: RunConfig) -> list:
    d = config.to_dict()
    return [f"{k}.{n}" if k in SECTIONS else k for k, v in d.items()
            if k not in ("learner", "run_format")
            for n in (v if k in SECTIONS else [None])]


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
                     parallel_tasks=parallel_tasks, **config.learner)
    learner.polarity = config.data.polarity
    learner.attack = t.attack()
    return learner


def samplers(config: RunConfig, splits: dict) -> dict:
    """Train, validation and test samplers; each stream has its own seed."""
    t = config.train
    return {
        "train": EpisodeSampler(splits["train"], config.train_episode, t.meta_batch, t.seed,
                                "train", augment=config.data.augment),
        "val": EpisodeSampler(splits["val"], config.episode, t.meta_batch, 10_000 + t.seed, "val"),
        "test": EpisodeSampler(splits["test"], config.episode, t.meta_batch, TEST_SEED, "test"),
    }


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
          test: bool = True, strategy=None, callbacks=(), parallel_tasks: int = 2) -> dict:
    """Meta-train (resuming from ``out_dir`` if it holds a run of the same config), then evaluate
    the best checkpoint on the test classes. Returns the test result (with ``test=False``, no
    test evaluation: the training figures). ``strategy``: a ``tf.distribute.Strategy`` (or
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
    splits = load_splits(config.data)
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


def _meta_train_and_test(config, learner, streams, splits, out_dir, progress, log, test,
                         strategy, chief, callbacks=()) -> dict:
    """``train`` once the run is checked, built and its directory is this process's."""
    run_file = os.path.join(out_dir, RUN_FILE)
    if chief:
        write_json(config.to_dict(), run_file)
        _keep_backbone_copy(config.model, out_dir)  # the run reloads without the original
        write_json(environment(strategy), os.path.join(out_dir, ENVIRONMENT_FILE))
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
        if not test:
            return fit
        barrier(strategy)  # every worker reads the best checkpoint once the chief has written it
        restore(learner, out_dir)
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


def checkpoint_path(out_dir: str, which: str = "best") -> str | None:
    """The ``best`` (falling back to ``latest``) or ``latest`` checkpoint of a run, or None."""
    for kind in ((which, "latest") if which == "best" else (which,)):
        path = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints", kind))
        if path:
            return path
    return None


def restore(learner, out_dir: str, which: str = "best") -> str:
    """Load the ``best`` (or ``latest``) checkpoint of ``out_dir`` into ``learner``'s model."""
    path = checkpoint_path(out_dir, which)
    if path is None:
        raise FileNotFoundError(f"{out_dir}: no checkpoint found")
    items = {k: v for k, v in learner.checkpoint_items().items() if k != "optimizer"}
    read_checkpoint(tf.train.Checkpoint(**items), path)
    return path


def load_config(out_dir: str) -> RunConfig:
    path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{out_dir}: not a tfmeta run ({RUN_FILE} missing)")
    return read_run_file(path)


def _keep_backbone_copy(model: str, out_dir: str) -> None:
    """Copy a ``keras_file:`` file or ``keras_hub:`` folder into the run directory (once; a
    folder under a temporary name first, so a copy is either whole or absent)."""
    for prefix, name in RUN_BACKBONES:
        copy = os.path.join(out_dir, name)
        if not model.startswith(prefix) or os.path.exists(copy):
            continue
        original = model[len(prefix):]
        if os.path.isdir(original):
            copying = os.path.join(out_dir, f".{name}.partial")
            shutil.rmtree(copying, ignore_errors=True)
            shutil.copytree(original, copying)
            os.replace(copying, copy)
        else:
            shutil.copyfile(original, copy)


def with_run_backbone(config: RunConfig, out_dir: str) -> RunConfig:
    """``config`` building a ``keras_file:`` or ``keras_hub:`` backbone from the run directory's
    copy (``backbone.keras``, ``backbone_preset/``) where there is one, so a run outlives the file
    or folder it started from."""
    for prefix, name in RUN_BACKBONES:
        copy = os.path.join(out_dir, name)
        if config.model.startswith(prefix) and os.path.exists(copy):
            return dataclasses.replace(config, model=prefix + copy)
    return config


def load(out_dir: str, which: str = "best"):
    """The meta-trained learner of a run directory, ready for ``predict`` / ``adapt``."""
    config = with_run_backbone(load_config(out_dir), out_dir)
    d = config.data
    learner = build_learner(config, (d.image_size, d.image_size, d.channels), seed=False)
    restore(learner, out_dir, which)
    return learner


def evaluate_run(out_dir: str, episodes: int = 600, seed: int | None = None, settings=(),
                 result_file: str | None = None, attack=None) -> dict:
    """Evaluate a run's best checkpoint on its test classes (``tfmeta evaluate``), on test
    episodes of seed ``seed`` (default: every run's ``TEST_SEED``). ``settings`` (``KEY=VALUE``)
    change the data or the episodes, e.g. ``episode.shots=5``. With an ``attack``
    (:class:`tfmeta.learners.adversarial.Attack`) robust accuracy is reported beside the clean
    one. Writes ``result_file`` (default ``out_dir/evaluation.json``) and returns the result."""
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
    result = evaluate(learner, sampler, episodes, attack=attack)
    result.update(algorithm=config.algorithm, dataset=config.data.dataset)
    write_result(result, result_file or os.path.join(out_dir, "evaluation.json"))
    return result


def predict_files(out_dir: str, support_dir: str, query: str) -> list:
    """``[{"file", "class", "probability"}]``: each image of ``query`` (a file or a folder)
    classified by a run's learner adapted to ``support_dir`` (one subfolder per class)."""
    from tfmeta.data import from_folder
    from tfmeta.data.source import image_files, load_image_files

    learner = load(out_dir)
    height, _, channels = learner.input_shape
    support = from_folder(support_dir, height, channels)
    files = image_files(query)
    classes, probabilities = learner.predict_proba(
        support.images, [support.class_names[c] for c in support.labels()],
        load_image_files(files, height, channels))
    return [{"file": name, "class": str(classes[p.argmax()]),
             "probability": round(float(p.max()), 4)} for name, p in zip(files, probabilities)]
