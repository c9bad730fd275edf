"""A run, as code: one config dataclass, ``train(config, out_dir)`` and ``load(out_dir)``.

``out_dir/run.json`` records the config, so ``load`` rebuilds the same learner (model, image size,
channels, ways) and restores its best checkpoint; ``out_dir/results.json`` holds the test result.

Example (the quickstart, smaller)::

    from tfmeta.run import RunConfig, TrainConfig, train
    result = train(RunConfig(algorithm="maml", train=TrainConfig(steps=200)), "runs/demo")
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

from tfmeta.data import DataConfig, EpisodeConfig, EpisodeSampler, load_splits
from tfmeta.data.source import polarity
from tfmeta.evaluation import evaluate, format_result, write_result
from tfmeta.files import write_json
from tfmeta.learners import ALGORITHMS, make_config
from tfmeta.models import build_model
from tfmeta.trainer import MetaTrainer

RUN_FILE = "run.json"


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


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run. ``learner`` holds overrides of the algorithm's config
    (e.g. ``{"inner_steps": 5, "inner_lr": 0.1}``). ``train_ways`` (metric learners only) makes
    training episodes wider than validation and test ones, as Prototypical Networks do."""

    algorithm: str = "maml"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    episode: EpisodeConfig = dataclasses.field(default_factory=EpisodeConfig)
    train_ways: int | None = None
    model: str = "conv4"
    width: int = 64
    learner: dict = dataclasses.field(default_factory=dict)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def validate(self) -> "RunConfig":
        """Raise ``ValueError`` with one clear line if the parts do not fit together."""
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm '{self.algorithm}': use {', '.join(ALGORITHMS)}")
        cls, _ = ALGORITHMS[self.algorithm]
        if cls.needs_head and self.train_ways not in (None, self.episode.ways):
            raise ValueError(f"{self.algorithm} has a {self.episode.ways}-way head: train_ways "
                             "must equal ways (wider training episodes are for metric learners)")
        if self.train.outer_lr is not None:
            if self.train.outer_lr <= 0:
                raise ValueError(f"outer_lr must be positive, got {self.train.outer_lr}")
            if not cls.has_outer_lr:
                raise ValueError(f"{self.algorithm} has no outer learning rate: its outer step is "
                                 "the option epsilon (--set learner.epsilon=VALUE)")
        # Unknown or invalid learner options, or episodes that cannot serve them: one clear error.
        cls.check_episode(self.learner_config(), self.episode.shots, self.episode.queries)
        return self

    def learner_config(self):
        """The learner's config dataclass: its defaults, the episode facts, ``learner``."""
        ways = max(self.episode.ways, self.train_ways or 0)
        return make_config(self.algorithm, ways=ways, max_support=ways * self.episode.shots,
                           **self.learner)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["data"]["split"] = list(self.data.split)
        return d

    def with_settings(self, assignments) -> "RunConfig":
        """A copy with ``KEY=VALUE`` assignments applied: dotted paths into the config tree
        (``learner.inner_steps=5``, ``train.meta_batch=32``, ``episode.queries=5``, ``width=32``).
        Values are read as JSON (``5``, ``0.4``, ``true``, ``[1, 2]``), else as strings. An
        unknown key or a value of the wrong type is one clear error."""
        d = self.to_dict()
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep or not key:
                raise ValueError(f"--set {assignment}: expected KEY=VALUE, e.g. "
                                 "learner.inner_steps=5")
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            *path, name = key.split(".")
            node = d
            for i, part in enumerate(path):
                if not isinstance(node.get(part), dict):
                    raise ValueError(f"--set {key}: unknown setting ({'.'.join(path[:i + 1])} "
                                     f"is not a section; sections: {', '.join(_sections(d))})")
                node = node[part]
            if path != ["learner"]:  # learner options are checked against the learner's config
                if name not in node:
                    valid = ", ".join(k for k in node if not isinstance(node[k], dict))
                    raise ValueError(f"--set {key}: unknown setting; valid here: {valid}")
                old = node[name]
                if isinstance(old, bool) != isinstance(value, bool) or (
                        isinstance(old, (int, float)) and not isinstance(value, (int, float))) or (
                        isinstance(old, int) and not isinstance(old, bool)
                        and isinstance(value, float)) or (
                        isinstance(old, str) and not isinstance(value, str)):
                    raise ValueError(f"--set {key}={raw}: expected a value like {old!r}")
            node[name] = value
        return RunConfig.from_dict(d)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        data = dict(d["data"])
        data["split"] = tuple(data["split"])
        return cls(algorithm=d["algorithm"], data=DataConfig(**data),
                   episode=EpisodeConfig(**d["episode"]), train_ways=d.get("train_ways"),
                   model=d["model"], width=d["width"],
                   learner=dict(d["learner"]), train=TrainConfig(**d["train"]))


def _sections(d: dict) -> list:
    return [k for k, v in d.items() if isinstance(v, dict)]


def build_learner(config: RunConfig, input_shape):
    """The learner of ``config`` on a fresh model for images of ``input_shape``."""
    cls, _ = ALGORITHMS[config.validate().algorithm]
    learner_config = config.learner_config()
    keras.utils.set_random_seed(config.train.seed)
    outputs = config.episode.ways if cls.needs_head else None
    model = build_model(config.model, tuple(input_shape), outputs, width=config.width,
                        **cls.model_options)
    optimizer = cls.default_optimizer(learner_config, config.train.steps,
                                      **({} if config.train.outer_lr is None
                                         else {"learning_rate": config.train.outer_lr}))
    learner = cls(model, learner_config, optimizer=optimizer, jit_compile=config.train.jit_compile)
    learner.polarity = config.data.polarity
    return learner


def samplers(config: RunConfig, splits: dict) -> dict:
    """Train, validation and test samplers; each stream has its own seed."""
    t = config.train
    train_episode = dataclasses.replace(config.episode,
                                        ways=config.train_ways or config.episode.ways)
    return {
        "train": EpisodeSampler(splits["train"], train_episode, t.meta_batch, t.seed, "train"),
        "val": EpisodeSampler(splits["val"], config.episode, t.meta_batch, 10_000 + t.seed, "val"),
        "test": EpisodeSampler(splits["test"], config.episode, t.meta_batch, 20_000, "test"),
    }


def train(config: RunConfig, out_dir: str, progress: bool = True, log=print) -> dict:
    """Meta-train (resuming from ``out_dir`` if it holds a run of the same config), then evaluate
    the best checkpoint on the test classes. Returns the test result."""
    config.validate()
    # Everything that can fail on bad input happens before the run directory is written to.
    splits = load_splits(config.data)
    if config.data.polarity is None:  # a fact of the training images, recorded with the run
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, polarity=polarity(splits["train"].images)))
    run_file = os.path.join(out_dir, RUN_FILE)
    if os.path.exists(run_file):
        with open(run_file) as f:
            previous = json.load(f)
        if previous != json.loads(json.dumps(config.to_dict())):  # as JSON: tuples are lists
            raise ValueError(f"{out_dir} holds a run with another config; use a new --out")
    log(f"classes: {splits['train'].num_classes} train, {splits['val'].num_classes} val, "
        f"{splits['test'].num_classes} test ({config.data.dataset}, "
        f"{'x'.join(map(str, splits['train'].image_shape))})")
    streams = samplers(config, splits)
    learner = build_learner(config, streams["train"].image_shape)
    write_json(config.to_dict(), run_file)
    t = config.train
    trainer = MetaTrainer(learner, streams["train"], out_dir, t.steps, streams["val"], t.val_every,
                          t.val_episodes, t.checkpoint_every, progress=progress)
    fit = trainer.fit()
    if "tasks_per_second" in fit:
        log(f"meta-trained {fit['step']} steps at {fit['tasks_per_second']:.1f} tasks/s")
    restore(learner, out_dir)
    result = evaluate(learner, streams["test"], t.test_episodes)
    result.update(algorithm=config.algorithm, dataset=config.data.dataset,
                  checkpoint=_checkpoint_path(out_dir))
    write_result(result, os.path.join(out_dir, "results.json"))
    log(format_result(result))
    return result


def _checkpoint_path(out_dir: str, which: str = "best") -> str | None:
    for kind in ((which, "latest") if which == "best" else (which,)):
        path = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints", kind))
        if path:
            return path
    return None


def restore(learner, out_dir: str, which: str = "best") -> str:
    """Load the ``best`` (or ``latest``) checkpoint of ``out_dir`` into ``learner``'s model."""
    path = _checkpoint_path(out_dir, which)
    if path is None:
        raise FileNotFoundError(f"{out_dir}: no checkpoint found")
    items = {k: v for k, v in learner.checkpoint_items().items() if k != "optimizer"}
    tf.train.Checkpoint(**items).restore(path).expect_partial()
    return path


def load_config(out_dir: str) -> RunConfig:
    path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{out_dir}: not a tfmeta run ({RUN_FILE} missing)")
    with open(path) as f:
        return RunConfig.from_dict(json.load(f))


def load(out_dir: str, which: str = "best"):
    """The meta-trained learner of a run directory, ready for ``predict`` / ``adapt``."""
    config = load_config(out_dir)
    d = config.data
    learner = build_learner(config, (d.image_size, d.image_size, d.channels))
    restore(learner, out_dir, which)
    return learner
