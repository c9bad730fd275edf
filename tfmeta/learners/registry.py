"""Learners by name: ``register`` a learner class under its CLI name, ``create`` one.

Every learner file registers its class (``@register``); ``tfmeta.learners`` imports every module
of the package, so adding a learner is one file. A user's own learner registers the same way and is
then known to ``create``, ``tfmeta.run`` and the CLI::

    @register
    class MyLearner(MetricLearner):
        name = "mine"
        ...

    learner = create("mine", "conv4", episode=EpisodeConfig(5, 1, 15), backbone_width=32)
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras

from tfmeta.data.episodes import EpisodeConfig
from tfmeta.errors import ConfigError
from tfmeta.settings import check_value

# name -> (learner class, options it fixes). The one registry of the process.
ALGORITHMS: dict = {}
LR_SCHEDULES = ("constant", "cosine")


def register(cls=None, *, name: str | None = None, **fixed):
    """Register a learner class under ``name`` (default: ``cls.name``), usable as ``@register``
    or ``@register(name=..., option=value)``. ``fixed`` options cannot be overridden (first-order
    MAML is MAML with ``first_order=True``)."""
    def add(learner_class):
        key = name or learner_class.name
        config = learner_class.config_class
        fields = {f.name for f in dataclasses.fields(config)} if config else set()
        clash = sorted(fields & create_arguments())
        if clash:
            raise ConfigError(f"{key}: options may not be named {', '.join(clash)} (arguments of "
                              "tfmeta.learners.create)")
        if key in ALGORITHMS and ALGORITHMS[key][0] is not learner_class:
            raise ConfigError(f"a learner named '{key}' is already registered "
                              f"({ALGORITHMS[key][0].__module__}.{ALGORITHMS[key][0].__name__})")
        ALGORITHMS[key] = (learner_class, dict(fixed))
        return learner_class

    return add if cls is None else add(cls)


def create_arguments() -> set:
    """The arguments of :func:`create` (no learner option may share a name with one)."""
    import inspect

    return {name for name, parameter in inspect.signature(create).parameters.items()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD}


def learner_class(name: str):
    """The registered class of ``name`` (one clear error naming the registered ones)."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm '{name}': use {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name][0]


def options(name: str) -> dict:
    """``{option: default}`` of learner ``name`` (what ``create`` and ``make_config`` accept)."""
    cls, fixed = learner_class(name), ALGORITHMS[name][1]
    if cls.config_class is None:
        return {}
    return {f.name: getattr(cls.config_class(), f.name)
            for f in dataclasses.fields(cls.config_class) if f.name not in fixed}


def make_config(name: str, **overrides):
    """The config dataclass of learner ``name`` with ``overrides``.

    An option the learner does not have, or a value of another type than the option's (a string
    for a number, say), is one clear error naming the valid options; nothing is dropped. A list
    value for a tuple option becomes a tuple (JSON has no tuples)."""
    cls, fixed = learner_class(name), ALGORITHMS[name][1]
    valid = options(name)
    unknown = sorted(k for k in overrides if k not in valid and k not in fixed)
    if unknown:
        raise ConfigError(f"{name} has no option {', '.join(unknown)}; its options: "
                          f"{', '.join(valid) or 'none'}")
    clash = sorted(k for k in overrides if k in fixed and overrides[k] != fixed[k])
    if clash:
        raise ConfigError(f"{name} fixes {', '.join(f'{k}={fixed[k]}' for k in clash)}")
    if cls.config_class is None:
        return None
    values = {k: check_value(cls.config_class, k, v, f"learner.{k}")
              for k, v in overrides.items()}
    values.update(fixed)
    try:
        return cls.config_class(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}: {err}") from None


def check_lr_schedule(lr_schedule: str, setting: str = "lr_schedule") -> None:
    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"{setting} must be one of {', '.join(LR_SCHEDULES)}, got "
                          f"{lr_schedule!r}")


def scheduled(optimizer, lr_schedule: str, total_steps: int | None, name: str = "learner"):
    """``optimizer`` with its (constant) learning rate following ``lr_schedule``."""
    check_lr_schedule(lr_schedule)
    if lr_schedule == "constant":
        return optimizer
    config = optimizer.get_config()
    if not isinstance(config["learning_rate"], (int, float)):
        raise ConfigError(f"{name} anneals its outer step itself: leave lr_schedule constant")
    if not total_steps:
        raise ConfigError("lr_schedule cosine needs the number of training steps")
    config["learning_rate"] = keras.optimizers.schedules.CosineDecay(
        float(config["learning_rate"]), int(total_steps))
    return optimizer.__class__.from_config(config)


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` while layers are made, then put back."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def create(name: str, backbone="conv4", *, episode: EpisodeConfig | None = None,
           input_shape=(28, 28, 1), backbone_width: int = 64, outer_lr: float | None = None,
           lr_schedule: str = "constant", total_steps: int | None = None, compiled: bool = True,
           jit_compile: bool = False, strategy=None, precision: str = "float32",
           weight_decay: float = 0.0, dropout: float = 0.0, label_smoothing: float = 0.0,
           weights: str | None = None, freeze_backbone: bool = False,
           parallel_tasks: int | None = None, polarity: str | None = None, attack=None,
           **options):
    """Learner ``name`` on ``backbone``, ready to meta-train.

    Args:
        name: a registered learner (``tfmeta.learners.ALGORITHMS``).
        backbone: ``"conv4"``, ``"resnet12"``, ``"keras_applications:NAME"`` (any
            ``keras.applications`` network), ``"keras_file:PATH"`` (a saved Keras model),
            ``"keras_hub:DIR"`` (a KerasHub preset saved in a folder; each built as the
            learner asks: a ``ways``-unit classifier, feature vectors or feature maps), or any
            built Keras model.
        episode: the (largest) meta-training episode; the learner sizes what depends on it (a
            ``ways``-unit head, SNAIL's sequence length). Default 5-way 1-shot 15-query.
        input_shape: image shape ``(height, width, channels)`` of a named backbone.
        backbone_width: width of a named backbone (conv4: filters per layer; resnet12: its first
            block's).
        outer_lr: learning rate of the learner's outer optimizer (``None``: its paper's).
        lr_schedule: ``"constant"``, or ``"cosine"``: the outer learning rate decays from
            ``outer_lr`` to 0 over ``total_steps`` (a cosine). Reptile anneals its own.
        total_steps: meta-training steps, for schedules and for learners whose outer step is
            annealed (Reptile).
        compiled, jit_compile: compile the steps with ``tf.function`` (and XLA).
        strategy: a ``tf.distribute.Strategy`` to meta-train across its replicas (a named
            backbone is built in its scope; a given model must have been).
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``: a named backbone
            computes in that Keras mixed-precision policy (float32 weights, fast weights and
            BatchNorm statistics; losses, heads and learner parts in float32); with
            ``mixed_float16`` the outer optimizer is a ``LossScaleOptimizer`` (dynamic loss
            scaling) whose scale the inner loops use too. A given model keeps its own policy.
        weight_decay: decoupled weight decay of the outer optimizer (Keras' ``weight_decay``:
            each outer step also subtracts ``learning_rate * weight_decay * weight``); 0: none.
        dropout: a named backbone's dropout while meta-training (conv4: ``Dropout`` ending each
            block; resnet12: DropBlock on its last two blocks); 0: none, as the papers.
        label_smoothing: of the meta-training objective, every learner (the query loss; Reptile's
            inner loss); 0: none.
        weights: a ``keras_applications:NAME`` backbone's local pretrained weights file
            (nothing is downloaded); freeze_backbone: keep a ``keras_applications:NAME``,
            ``keras_file:PATH`` or ``keras_hub:DIR`` backbone's weights fixed (only the
            learner's head learns).
        parallel_tasks: tasks of a meta-batch the outer step runs side by side (the same
            update for any value; more hold more tasks' activations at once; on a CPU,
            :func:`tfmeta.threads.configure_threads` shares the cores among them). ``None``:
            what TensorFlow's threads allow (:func:`tfmeta.threads.tasks_in_flight`).
        polarity: of the meta-training images (``"light-on-dark"`` or ``"dark-on-light"``; a run
            records it): ``adapt`` inverts a support set of the other polarity. ``None``: unknown.
        attack: adversarial querying while meta-training
            (:class:`tfmeta.learners.adversarial.Attack`); ``None``: clean queries.
        **options: the learner's options (``tfmeta.learners.options(name)``); an unknown one is
            an error naming the valid ones. (No option may share a name with the arguments
            above: ``register`` refuses such a learner.)
    """
    from tfmeta.models import build_model

    cls = learner_class(name)
    episode = episode or EpisodeConfig()
    config = make_config(name, **options)
    cls.check_episode(config, episode)
    if not isinstance(backbone, (str, keras.Model)):
        raise ConfigError(f"backbone must be a model name or a keras.Model, got "
                          f"{type(backbone).__name__}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}': use {', '.join(PRECISIONS)}")
    if not weight_decay >= 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
    if not 0 <= label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if parallel_tasks is None:
        from tfmeta.threads import tasks_in_flight

        parallel_tasks = tasks_in_flight()
    if not isinstance(parallel_tasks, int) or isinstance(parallel_tasks, bool) or (
            parallel_tasks < 1):
        raise ConfigError(f"parallel_tasks must be a positive integer, got {parallel_tasks!r}")
    if isinstance(backbone, keras.Model) and (dropout or weights or freeze_backbone):
        raise ConfigError("dropout, weights and freeze_backbone are for a named backbone: "
                          "set them on your own model")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        with dtype_policy(precision):
            model = backbone if isinstance(backbone, keras.Model) else build_model(
                backbone, tuple(input_shape), cls.backbone_output, episode.ways,
                width=backbone_width, dropout=dropout, weights=weights,
                freeze=freeze_backbone)
        optimizer = cls.default_optimizer(config, total_steps, **(
            {} if outer_lr is None else {"learning_rate": float(outer_lr)}))
        optimizer = scheduled(optimizer, lr_schedule, total_steps, name)
        if weight_decay:
            optimizer = optimizer.__class__.from_config(
                dict(optimizer.get_config(), weight_decay=float(weight_decay)))
        if precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0 ** 10)
    return cls(model, config, episode=episode, optimizer=optimizer, compiled=compiled,
               jit_compile=jit_compile, strategy=strategy, name=name,
               label_smoothing=label_smoothing, parallel_tasks=parallel_tasks,
               polarity=polarity, attack=attack, total_steps=total_steps)
