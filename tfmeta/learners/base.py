"""The interface every meta-learner shares.

A learner owns a Keras model (any model mapping images to logits or embeddings) and the outer-loop
optimizer, and has four verbs:

* ``meta_train_step(batch)`` -- one outer update from a meta-batch
  ``(support_x [B, N*K, H, W, C], support_y [B, N*K], query_x [B, N*Q, ...], query_y [B, N*Q])``;
  returns ``{"loss", "accuracy"}`` (query loss and accuracy after adaptation, meta-batch mean);
* ``meta_test_step(batch)`` -- per-episode query ``{"loss", "accuracy"}`` ``[B]`` after adaptation,
  with no update (evaluation);
* ``adapt(support_x, support_y)`` -- a plain Keras classifier for the support classes;
* ``predict(support_x, support_y, query_x)`` -- the label (taken from ``support_y``) of each query
  image, on numpy arrays of any size, preprocessed as in training.

``fewshot_logits(support_x, support_y, query_x)`` is ``adapt`` then classify written as one graph
(no Python-side state), which is what a served model that adapts per request runs.

Both steps are compiled once with ``tf.function`` (``compiled=False`` runs them eagerly, for
debugging); batches of one shape never retrace.

The outer step and its distributed form: :mod:`tfmeta.learners.outer`; what optimisation-based
learners share: :mod:`tfmeta.learners.optimization`.
"""

from __future__ import annotations

import contextlib
import warnings

import keras
import tensorflow as tf

from tfmeta.data.episodes import EpisodeConfig
from tfmeta.data.images import other_polarity
from tfmeta.errors import ConfigError
from tfmeta.learners.adversarial import perturb
from tfmeta.learners.answers import Answers
from tfmeta.learners.batchnorm import fused_batchnorm
from tfmeta.learners.layers import embedding_copy
from tfmeta.learners.outer import OuterLoop
from tfmeta.learners.losses import (accuracy, cross_entropy,  # noqa: F401  (re-exported)
                                    full_precision)
from tfmeta.threads import PARALLEL_TASKS


class Learner(OuterLoop, Answers):
    """Base class of meta-learners (see the module docstring for the verbs)."""

    name = "learner"  # the name it registers under (``tfmeta train --algorithm NAME``)
    config_class = None  # its options, a dataclass
    # What it needs from a backbone: "logits" (a classifier head of `ways` units), "features"
    # (feature vectors) or "feature_maps" (spatial maps); see tfmeta.models.build_model.
    backbone_output = "features"
    # Why XLA cannot compile this learner's meta-steps (None: it can; tests/test_xla.py).
    xla_unsupported: str | None = None
    # A learner without a query loss to attack (Reptile) sets adversarial_queries = False.
    adversarial_queries = True
    # Whether it meta-trains on episodes; False: on minibatches of images labelled with their
    # training class, in the support slot of a meta-batch (tfmeta.data.batches; the baselines).
    episodic = True

    def __init__(self, model: keras.Model, config=None, *, episode: EpisodeConfig | None = None,
                 optimizer=None, compiled: bool = True, jit_compile: bool = False,
                 strategy: tf.distribute.Strategy | None = None, name: str | None = None,
                 label_smoothing: float = 0.0, parallel_tasks: int = PARALLEL_TASKS,
                 polarity: str | None = None, attack=None, total_steps: int | None = None):
        """``model``: a built Keras model (in ``strategy``'s scope under a strategy); ``config``:
        the learner's options (its ``config_class``; ``None``: the defaults); ``episode``: the
        (largest) meta-training episode; ``optimizer``: the outer optimizer (``None``: the
        learner's paper's); ``compiled`` / ``jit_compile``: ``tf.function`` (and XLA) steps;
        ``name``: the name it was created under (first-order MAML is MAML named ``fomaml``);
        ``label_smoothing``: of the meta-training objective (its query loss; Reptile's inner
        loss), 0: none; ``parallel_tasks``: tasks of a meta-batch the outer step runs side by
        side (the ``tf.while_loop``'s ``parallel_iterations``: more in flight keep the cores busy
        on small tasks and hold more tasks' activations at once); ``polarity``: of the
        meta-training images (a run records it; ``adapt`` inverts a support set of the other);
        ``attack``: adversarial querying while meta-training
        (:class:`tfmeta.learners.adversarial.Attack`; ``None``: clean queries);
        ``total_steps``: meta-training steps, for what anneals over training (``None``: unknown).
        :func:`tfmeta.learners.create` builds a learner by name with all of these."""
        self.name = name or type(self).name
        self.label_smoothing = float(label_smoothing)
        self.parallel_tasks = int(parallel_tasks)
        self.polarity = polarity
        self.attack = attack
        self.total_steps = total_steps
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
        if not model.built:
            raise ValueError("build the model first (give it an Input or call model.build(shape))")
        if strategy is not None and not all(strategy.extended.variable_created_in_scope(
                v.value if isinstance(v, keras.Variable) else v) for v in model.weights):
            raise ValueError("build the model inside strategy.scope() (tfmeta.learners.create "
                             "does, given strategy=)")
        reason = self.xla_unsupported or self.xla_problem(model, config)
        if jit_compile and reason:
            raise ConfigError(f"XLA cannot compile {self.name}'s meta-steps: "
                              f"{reason}; run it without --xla (jit_compile)")
        if strategy is not None and jit_compile:
            raise ConfigError("XLA (jit_compile) runs on one device here: leave out the strategy "
                              "or XLA")
        self.model = model
        self.config = config if config is not None else self.config_class()
        self.episode = episode or EpisodeConfig()  # the (largest) meta-training episode
        self.strategy = strategy
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.parts = dict(self.build_parts())
            self.fuse_batchnorm()
            if not self.meta_variables:
                raise ConfigError(f"{self.name} has nothing to meta-learn: the model has no "
                                  "trainable weights (a frozen backbone?) and the learner none "
                                  "of its own; leave the backbone trainable or use a learner "
                                  "with a head (ridge, svm, relation, ...)")
            self.optimizer = (optimizer if optimizer is not None
                              else self.default_optimizer(self.config))
            self.optimizer.build(self.meta_variables)
        self.compiled, self.jit_compile = compiled, jit_compile
        self._robust_fns: dict = {}  # attack -> compiled robust test step
        if strategy is None:
            self._train_fn = tf.function(self._meta_train_step, jit_compile=jit_compile)
            self._test_fn = tf.function(self._meta_test_step, jit_compile=jit_compile)
        else:
            self._train_fn = tf.function(self._replicated_train_step)
            self._test_fn = tf.function(self._replicated_test_step)

    def xla_problem(self, model: keras.Model, config) -> str | None:
        """Why XLA must not compile this learner with ``config`` on ``model`` (``None``: it may),
        beside the class's ``xla_unsupported``."""
        return None

    def fuse_batchnorm(self, on: bool = True) -> None:
        """Training-mode BatchNorm of the model and the learner's parts through TensorFlow's fused
        kernel (:func:`tfmeta.learners.batchnorm.fused_batchnorm`; on from the start, same
        values); ``on=False``: Keras' own operations, to measure what the kernel gains or to rule
        it out while debugging. Call it before the first meta-step: a traced step keeps its
        choice."""
        for module in [self.model, *self.parts.values()]:
            if isinstance(module, keras.layers.Layer):
                fused_batchnorm(module, on)

    def build_parts(self) -> dict:
        """Named modules the learner owns beside the model and meta-learns with it (a relation
        module, per-parameter learning rates, ...); ``self.model`` and ``self.config`` are set."""
        return {}

    @property
    def meta_variables(self) -> list:
        """What the outer loop learns: the model's trainable weights and those of the parts."""
        return list(self.model.trainable_variables) + [
            v for part in self.parts.values() for v in part.trainable_variables]

    def checkpoint_items(self) -> dict:
        """Trackables a checkpoint must hold to resume this learner exactly."""
        return {"model": self.model, "optimizer": self.optimizer, **self.parts}

    @classmethod
    def options_from_data(cls, options: dict, source) -> dict:
        """``options`` with what a run fills in from its training ``source`` (a classifier of
        every training class needs their number); by default nothing."""
        return options

    # -- to implement ---------------------------------------------------------------------------
    @classmethod
    def check_episode(cls, config, episode: EpisodeConfig) -> None:
        """Raise ``ConfigError`` if meta-training episodes like ``episode`` cannot serve
        ``config`` (checked before a run starts)."""

    @classmethod
    def check_test_episode(cls, train: EpisodeConfig, test: EpisodeConfig, config=None) -> None:
        """Raise ``ConfigError`` if a learner meta-trained on ``train`` episodes with options
        ``config`` cannot be evaluated on ``test`` episodes. A ``ways``-unit head cannot change
        its ways."""
        if cls.backbone_output == "logits" and train.ways != test.ways:
            raise ConfigError(f"{cls.name} has a {test.ways}-way head: train_ways must equal ways "
                              "(wider training episodes are for metric learners)")

    @classmethod
    def default_optimizer(cls, config, total_steps: int | None = None,
                          learning_rate: float = 1e-3):
        """The outer-loop optimizer the learner's paper uses (Adam unless overridden)."""
        return keras.optimizers.Adam(learning_rate)

    def task_losses(self, support_x, support_y, query_x, query_y, task_index=0):
        """``(losses [B], accuracies [B])``: each task's differentiable meta-training objective
        (its query loss after adaptation) and query accuracy, for a meta-batch (the outer step
        gives it one task at a time: a meta-batch of one, whose index in the whole meta-batch is
        ``task_index``, for what is random per task)."""
        raise NotImplementedError

    def inner_loss_scale(self):
        """The outer optimizer's current loss scale under float16 mixed precision (inner loops
        scale their losses by it too: :func:`tfmeta.learners.inner.sgd_inner_loop`), else
        ``None``."""
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            return self.optimizer.scale_loss(tf.constant(1.0))
        return None

    def _meta_test_step(self, support_x, support_y, query_x, query_y) -> dict:
        raise NotImplementedError

    def _adapt(self, support_x, support_y) -> keras.Model:
        """``adapt`` for support images in the learner's own polarity."""
        raise NotImplementedError

    def embedding_model(self, images=None) -> keras.Model:
        """The meta-learned features as a self-contained Keras model: images ``[n, H, W, C]`` in
        [0, 1] (as the training pipeline saw them) -> feature vectors ``[n, D]`` (feature maps
        flattened), in inference mode, for a user's own model or a vector search
        (``tfmeta export --embedding``). Here the model's BatchNorm statistics are the ones
        meta-training kept and ``images`` is not needed."""
        return embedding_copy(self.model, self.model.output)

    def adapt(self, support_x, support_y, tta=None, finetune=None) -> keras.Model:
        """A plain Keras classifier (logits) for the classes of one support set (``support_x``
        ``[S, H, W, C]`` preprocessed, ``support_y`` ``[S]`` labels ``0..n-1``); with ``tta``
        (:class:`tfmeta.learners.tta.TestTimeAugmentation`), one that answers with test-time
        augmentation (:func:`tfmeta.learners.tta.adapt_with_tta`); with ``finetune``
        (:class:`tfmeta.learners.finetune.TestTimeFineTuning`), one whose backbone is first
        fine-tuned on the support set (:func:`tfmeta.learners.finetune.adapt_finetuned`).

        If the learner knows the polarity of its meta-training images (a run records it) and the
        support set has the other one (dark strokes on light where it learned light on dark, say),
        the support images are inverted, with a warning, and the classifier inverts its inputs
        too, so that it takes images as the support set came. The classifier's logits are divided
        by the learner's ``temperature`` (a run's calibration, :mod:`tfmeta.calibration`)."""
        if finetune is not None:
            from tfmeta.learners.finetune import adapt_finetuned

            return adapt_finetuned(self, support_x, support_y, finetune, tta)
        if tta is not None:
            from tfmeta.learners.tta import adapt_with_tta

            return adapt_with_tta(self, support_x, support_y, tta)
        support_x = tf.convert_to_tensor(support_x, tf.float32)
        if self.polarity is None or not bool(other_polarity(support_x, self.polarity)):
            return self.calibrated_classifier(self._adapt(support_x, support_y), support_y)
        warnings.warn(f"{self.name} was meta-trained on {self.polarity} images and the support "
                      "images are not: inverting them, and the inputs of the adapted classifier",
                      stacklevel=2)
        classifier = self._adapt(1.0 - support_x, support_y)
        inputs = keras.Input(self.input_shape, name="images")
        inverted = keras.layers.Rescaling(-1.0, 1.0, name="invert_polarity")(inputs)
        return self.calibrated_classifier(
            keras.Model(inputs, classifier(inverted), name=f"{classifier.name}_inverted"),
            support_y)

    # -- shared verbs ---------------------------------------------------------------------------
    def meta_train_step(self, batch) -> dict:
        return self._step(batch, self._train_fn, self._replicated_train_step,
                          self._meta_train_step)

    def meta_test_step(self, batch) -> dict:
        return self._step(batch, self._test_fn, self._replicated_test_step, self._meta_test_step)

    def _step(self, batch, compiled, replicated, one_device) -> dict:
        """``batch`` through the compiled step, or eagerly through the step of one device or
        of the strategy's replicas."""
        self.check_ways(batch[1])  # the support labels: more classes than built for is an error
        if self.strategy is not None:
            batch, eager = self._shard(batch), replicated
        else:
            eager = one_device
        return (compiled if self.compiled else eager)(*batch)

    def robust_test_step(self, batch, attack) -> dict:
        """``meta_test_step``'s figures on queries perturbed by ``attack`` (an
        :class:`~tfmeta.learners.adversarial.Attack`) to raise each episode's deployed loss,
        through the adaptation to the clean support set."""
        self.check_ways(batch[1])
        if self.strategy is not None:
            raise ConfigError("robust evaluation runs on one device: load the run without a "
                              "strategy")
        fn = self._robust_fns.get(attack)
        if fn is None:
            def step(support_x, support_y, query_x, query_y):
                adversarial = perturb(lambda q: tf.reduce_sum(self._meta_test_step(
                    support_x, support_y, q, query_y)["loss"]), query_x, attack, (0, 104729))
                return self._meta_test_step(support_x, support_y, adversarial, query_y)

            fn = self._robust_fns[attack] = tf.function(step) if self.compiled else step
        return fn(*batch)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.model.inputs[0].shape[1:])

    @property
    def feature_shape(self) -> tuple:
        """The shape of what the backbone gives for one image (features, feature maps, logits)."""
        return tuple(self.model.outputs[0].shape[1:])
