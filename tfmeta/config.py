"""The config tree of a run, as dataclasses: ``RunConfig`` -> ``data`` (:class:`DataConfig`),
``episode`` (:class:`EpisodeConfig`), ``learner`` (options of the learner's own config class),
``train`` (:class:`TrainConfig`); and :class:`EvaluateConfig` for ``tfmeta evaluate``.

Each field's default, help text and command-line alias are stated once, in its
:func:`tfmeta.settings.setting`; :mod:`tfmeta.cli` builds its flags from them. ``run.json`` holds
``RunConfig.to_dict()`` (run format :data:`RUN_FORMAT`).
"""

from __future__ import annotations

import dataclasses
import json

from tfmeta.calibration import CALIBRATION_EPISODES, parse_settings
from tfmeta.data import DataConfig, EpisodeConfig
from tfmeta.data.episodes import group_function
from tfmeta.errors import ConfigError
from tfmeta.evaluation import PROTOCOL_EPISODES
from tfmeta.learners import learner_class, make_config, options
from tfmeta.learners.adversarial import ATTACKS, EPSILON, STEPS, Attack
from tfmeta.learners.registry import PRECISIONS, check_lr_schedule, scheduled
from tfmeta.learners.finetune import LEARNING_RATE as FINETUNE_LR, TestTimeFineTuning
from tfmeta.learners.tta import TestTimeAugmentation
from tfmeta.models import check_backbone
from tfmeta.settings import check_requirements, check_value, setting
from tfmeta.trainer import NONFINITE

# The layout of run directories this tfmeta writes and reads (run.json's "run_format"; a run.json
# without one is format 1). Raise it when a run directory changes in a way older code misreads.
RUN_FORMAT = 1


@dataclasses.dataclass
class TrainConfig:
    """How a learner meta-trains. Reptile's outer step is its own option ``epsilon``, so
    ``outer_lr`` for Reptile is an error. ``on_nonfinite``: a meta-batch whose loss,
    meta-gradient or new state is NaN / Inf is skipped whole (on one device and under a strategy;
    counted in ``results.json``; ten in a row stop the run) or stops the run; none reaches a
    checkpoint (:class:`tfmeta.trainer.MetaTrainer`). ``adversarial``: queries perturbed within an
    L-infinity ball of ``attack_epsilon`` (:mod:`tfmeta.learners.adversarial`); the test
    evaluation then reports robust accuracy beside the clean one. ``pretrain_steps``: minibatches
    of ordinary classification of every training class before meta-training
    (:mod:`tfmeta.pretrain`), of ``pretrain_batch`` images, Adam at ``pretrain_lr`` decayed by a
    cosine, augmented as ``data.augment`` says. ``calibration_episodes``: after training, the
    temperature of the answers is fitted on that many validation episodes
    (:mod:`tfmeta.calibration`; written to ``calibration.json``), and on as many of each of
    ``calibration_settings`` (``"5x1,20x5"``, ways x shots; the run's own setting is always
    calibrated) for support sets of other settings."""

    steps: int = setting(2000, "meta-iterations (outer updates)", "steps")
    meta_batch: int = setting(4, "tasks per meta-iteration", "meta-batch")
    outer_lr: float | None = setting(None, "outer optimizer's learning rate (default: the "
                                           "learner's)", "outer-lr")
    val_every: int = setting(250, "steps between validations", "val-every")
    val_episodes: int = setting(100, "episodes per validation", "val-episodes")
    test_episodes: int = setting(PROTOCOL_EPISODES, "test episodes (the protocol: 600 or more)",
                                 "episodes")
    checkpoint_every: int = setting(100, "steps between checkpoints", "checkpoint-every")
    seed: int = setting(0, "seed of weights and episodes", "seed")
    jit_compile: bool = setting(False, "compile the steps with XLA", "xla")
    precision: str = setting("float32", "float32, mixed_bfloat16 or mixed_float16 (Keras mixed "
                                        "precision; float16 with dynamic loss scaling)",
                             "precision")
    weight_decay: float = setting(0.0, "decoupled weight decay of the outer optimizer",
                                  "weight-decay")
    label_smoothing: float = setting(0.0, "label smoothing of the meta-training loss",
                                     "label-smoothing")
    on_nonfinite: str = setting("skip", "skip a meta-batch whose loss, gradient or state is "
                                        "NaN/Inf (counted), or stop the run", "on-nonfinite")
    adversarial: str | None = setting(None, "fgsm or pgd: adversarial querying while "
                                            "meta-training (Goldblum et al. 2020)", "adversarial")
    attack_epsilon: float = setting(EPSILON, "L-infinity radius of the attack, images in [0, 1]",
                                    "attack-epsilon", requires="adversarial",
                                    deprecated=("epsilon",))
    attack_steps: int = setting(STEPS, "PGD steps of the attack", "attack-steps",
                                requires="adversarial")
    lr_schedule: str = setting("constant", "constant, or cosine: the outer learning rate decays "
                                           "to 0 over the steps", "lr-schedule")
    within_group: float = setting(0.0, "share of training episodes drawn within one class "
                                       "group (data.class_groups; Omniglot: one alphabet)",
                                  "within-group")
    pretrain_steps: int = setting(0, "minibatches of classification pre-training (0: none)")
    pretrain_batch: int = setting(64, "images per pre-training minibatch")
    pretrain_lr: float = setting(1e-3, "pre-training learning rate")
    calibration_episodes: int = setting(CALIBRATION_EPISODES, "validation episodes the "
                                        "temperature of the answers is fitted on after training "
                                        "(0: none)", "calibration-episodes")
    calibration_settings: str = setting("", "other settings to calibrate, each on as many "
                                        "validation episodes, as WAYSxSHOTS,... (e.g. 20x5): a "
                                        "support set is answered at its nearest setting's "
                                        "temperature", "calibration-settings")

    def __post_init__(self):
        for name in ("steps", "meta_batch", "val_every", "val_episodes", "test_episodes",
                     "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.calibration_episodes, int) or self.calibration_episodes < 0:
            raise ConfigError(f"train.calibration_episodes must be an integer >= 0, got "
                              f"{self.calibration_episodes!r}")
        parse_settings(self.calibration_settings)  # a bad one: one clear error
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
        if not 0 <= self.within_group <= 1:
            raise ConfigError(f"train.within_group must be a share in [0, 1], got "
                              f"{self.within_group}")

    def attack(self) -> Attack | None:
        """The adversarial-querying attack of ``adversarial`` (``None`` without one)."""
        if self.adversarial is None:
            return None
        return Attack(self.adversarial, float(self.attack_epsilon), self.attack_steps)


@dataclasses.dataclass
class EvaluateConfig:
    """``tfmeta evaluate``: test episodes of a trained run, optionally under an attack
    (robust accuracy through the adaptation, beside the clean one)."""

    episodes: int = setting(PROTOCOL_EPISODES, "test episodes (the protocol: 600 or more)",
                            "episodes")
    seed: int | None = setting(None, "seed of the test episodes (default: every run's)", "seed")
    attack: str | None = setting(None, f"also report robust accuracy under this attack "
                                       f"({' or '.join(ATTACKS)}) on the queries", "attack")
    attack_epsilon: float = setting(EPSILON, "the attack's L-infinity radius, images in [0, 1]",
                                    "attack-epsilon", requires="attack", deprecated=("epsilon",))
    attack_steps: int = setting(STEPS, "PGD steps of the attack", "attack-steps",
                                requires="attack")
    tta: bool = setting(False, "also report accuracy with test-time augmentation (shifted "
                               "support copies as extra shots, answers averaged over shifted "
                               "query copies)", "tta")
    finetune_steps: int = setting(0, "also report accuracy with the backbone fine-tuned on each "
                                     "support set for this many Adam steps (0: not)",
                                  "finetune-steps")
    finetune_lr: float = setting(FINETUNE_LR, "learning rate of that fine-tuning",
                                 "finetune-lr", requires="finetune_steps")
    open_set: int = setting(0, "also evaluate open-set episodes: queries of this many unknown "
                               "classes beside the known ones (AUROC of the unknown score, "
                               "rejection at the run's threshold; 0: not)", "open-set")

    def __post_init__(self):
        if not isinstance(self.episodes, int) or isinstance(self.episodes, bool) or \
                self.episodes < 1:
            raise ConfigError(f"episodes must be a positive integer, got {self.episodes!r}")
        if not isinstance(self.open_set, int) or isinstance(self.open_set, bool) or \
                self.open_set < 0:
            raise ConfigError(f"open_set must be an integer >= 0, got {self.open_set!r}")
        check_requirements(self)
        self.attack_config()
        if not isinstance(self.finetune_steps, int) or self.finetune_steps < 0:
            raise ConfigError(f"finetune_steps must be >= 0, got {self.finetune_steps!r}")
        self.finetune_config()

    def attack_config(self) -> Attack | None:
        return None if self.attack is None else Attack(self.attack, float(self.attack_epsilon),
                                                       self.attack_steps)

    def tta_config(self) -> TestTimeAugmentation | None:
        return TestTimeAugmentation() if self.tta else None

    def finetune_config(self) -> TestTimeFineTuning | None:
        return (TestTimeFineTuning(self.finetune_steps, float(self.finetune_lr))
                if self.finetune_steps else None)


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run. ``learner`` holds overrides of the algorithm's options
    (its config class; e.g. ``{"inner_steps": 5, "inner_lr": 0.1}``), checked against it."""

    algorithm: str = setting("maml", "the learner: one of tfmeta.learners.ALGORITHMS (tfmeta "
                                     "info lists them, yours included)", "algorithm")
    data: DataConfig = setting(factory=DataConfig)
    episode: EpisodeConfig = setting(factory=EpisodeConfig)
    train_ways: int | None = setting(None, "ways of training episodes (metric learners; wider "
                                           "than test ones, as Prototypical Networks)",
                                     "train-ways")
    model: str = setting("conv4", "backbone: conv4, resnet12, keras_applications:NAME (any "
                                  "keras.applications network), keras_file:PATH (a saved .keras "
                                  "model) or keras_hub:DIR (a KerasHub preset folder)", "model")
    width: int = setting(64, "filters per layer (conv4) or of the first block (resnet12)",
                         "width")
    dropout: float = setting(0.0, "dropout of the backbone while meta-training (conv4: after "
                                  "each block; resnet12: DropBlock)", "dropout")
    weights: str | None = setting(None, "local pretrained weights of a keras_applications "
                                        "backbone (without its top; nothing is downloaded)",
                                  "weights")
    freeze_backbone: bool = setting(False, "keep a keras_applications / keras_file / keras_hub "
                                           "backbone's weights fixed; only the head learns",
                                    "freeze-backbone")
    learner: dict = setting(factory=dict)
    train: TrainConfig = setting(factory=TrainConfig)

    def validate(self) -> "RunConfig":
        """Raise ``ConfigError`` with one clear line if the parts do not fit together."""
        cls = learner_class(self.algorithm)
        check_backbone(self.model, self.width, self.dropout, self.weights, self.freeze_backbone)
        check_requirements(self.train, "train.")
        if self.train.within_group and self.data.class_groups is None:
            raise ConfigError("train.within_group (--within-group) needs data.class_groups "
                              "(--class-groups parent-folder, folder:N or a class,group file)")
        group_function(self.data.class_groups)  # a bad setting: one clear error
        if self.train.within_group and not cls.episodic:
            raise ConfigError(f"{self.algorithm} trains on minibatches of every training class, "
                              "not episodes: leave out train.within_group")
        if self.train_ways is not None and self.train_ways < 2:
            raise ConfigError(f"train_ways must be at least 2, got {self.train_ways}")
        learner_config = self.learner_config()  # unknown or invalid options: one clear error
        cls.check_test_episode(self.train_episode, self.episode, learner_config)
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
        """A copy with ``KEY=VALUE`` strings applied (``--set``; see ``with_values``)."""
        return self.with_values(parse_assignments(assignments))

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


SECTIONS = {"data": DataConfig, "episode": EpisodeConfig, "train": TrainConfig}


def parse_assignments(assignments) -> dict:
    """``{key: value}`` of ``KEY=VALUE`` strings; values are read as JSON (``5``, ``0.4``,
    ``true``, ``null``, ``[1, 2]``), else as strings."""
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
    return values


def check_run_format(run_format, where: str) -> None:
    """One clear error if a config of ``run_format`` is not one this tfmeta reads."""
    from tfmeta.version import __version__

    if run_format == RUN_FORMAT and not isinstance(run_format, bool):
        return
    if isinstance(run_format, int) and not isinstance(run_format, bool) and \
            run_format > RUN_FORMAT:
        raise ConfigError(f"{where}: written by a newer tfmeta (run format {run_format}; "
                          f"tfmeta {__version__} reads format {RUN_FORMAT}): upgrade tfmeta, "
                          "or start a new --out")
    raise ConfigError(f"{where}: run format {run_format!r} is not one tfmeta {__version__} "
                      f"reads (format {RUN_FORMAT}): start a new --out")


def read_run_file(path: str) -> RunConfig:
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
