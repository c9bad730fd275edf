"""The interface every meta-learner shares, and what optimisation-based learners have in common.

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

Distributed (``strategy=`` any ``tf.distribute.Strategy``; the model built in its scope, as
:func:`tfmeta.learners.create` does): each replica takes an equal slice of the meta-batch's tasks
(in order: replica ``r`` the ``r``-th slice), the tasks' gradients are summed across replicas in one
all-reduce and applied in the cross-replica context behind the same finiteness guard as on one
device, and the step's figures are averaged; a test step gathers every replica's episodes. The
meta-gradient is the one of the whole meta-batch on one device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.episodes import EpisodeConfig
from tfmeta.data.images import other_polarity, to_uint8_images
from tfmeta.errors import ConfigError, DataError
from tfmeta.learners.adversarial import perturb
from tfmeta.learners.batchnorm import (batchnorm_momentum_zero, exact_batchnorm_moments,  # noqa: F401
                                      freeze_batchnorm_statistics, fused_batchnorm)
from tfmeta.learners.inner import sgd_inner_loop
from tfmeta.learners.losses import (accuracy, cross_entropy,  # noqa: F401  (re-exported)
                                    full_precision)


@contextlib.contextmanager
def stochastic_layers_off(model: keras.Model):
    """Within the block (at trace time for compiled code), Dropout-like layers pass their input
    through unchanged even in a training-mode call. The optimisation-based learners call their
    model in training mode at test time too (BatchNorm batch statistics); this keeps DropBlock and
    Dropout to meta-training."""
    from tfmeta.models import DropBlock, nested_layers

    noisy = [(layer, "stddev" if isinstance(layer, keras.layers.GaussianNoise) else "rate")
             for layer in nested_layers(model)
             if isinstance(layer, (keras.layers.Dropout, keras.layers.GaussianDropout,
                                   keras.layers.AlphaDropout, keras.layers.GaussianNoise,
                                   DropBlock))]
    saved = [getattr(layer, name) for layer, name in noisy]
    for layer, name in noisy:
        setattr(layer, name, 0.0)
    try:
        yield
    finally:
        for (layer, name), value in zip(noisy, saved):
            setattr(layer, name, value)


def seed_state_positions(model: keras.Model) -> list:
    """Where in ``model.non_trainable_variables`` the states of Keras seed generators are (those
    of ``Dropout`` and other random layers)."""
    from tfmeta.models import nested_layers

    states = set()
    for layer in nested_layers(model):
        for value in vars(layer).values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, keras.random.SeedGenerator):
                    states.add(id(item.state))
    return [i for i, v in enumerate(model.non_trainable_variables) if id(v) in states]


def all_finite(tensors) -> tf.Tensor:
    """Whether every floating-point value of ``tensors`` (tensors or variables) is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors
              if tf.as_dtype(t.dtype).is_floating]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


class Learner:
    """Base class of meta-learners (see the module docstring for the verbs)."""

    name = "learner"  # the name it registers under (``tfmeta train --algorithm NAME``)
    config_class = None  # its options, a dataclass
    # What it needs from a backbone: "logits" (a classifier head of `ways` units), "features"
    # (feature vectors) or "feature_maps" (spatial maps); see tfmeta.models.build_model.
    backbone_output = "features"
    polarity: str | None = None  # of the meta-training images; set by tfmeta.run from the run
    # Why XLA cannot compile this learner's meta-steps (None: it can; tests/test_xla.py).
    xla_unsupported: str | None = None
    # Adversarial querying while meta-training (tfmeta.learners.adversarial.Attack; None: clean
    # queries); a learner without a query loss (Reptile) sets adversarial_queries = False.
    attack = None
    adversarial_queries = True
    # Label smoothing of the meta-training objective (its query loss; Reptile's inner loss), a
    # regulariser; 0: none. Set by tfmeta.learners.create(label_smoothing=).
    label_smoothing = 0.0
    # Tasks of a meta-batch the outer step runs side by side (the tf.while_loop's
    # parallel_iterations): more in flight keeps the cores busy on small tasks, and holds that
    # many tasks' activations at once. Set by tfmeta.learners.create(parallel_tasks=).
    parallel_tasks = 2

    def __init__(self, model: keras.Model, config=None, *, episode: EpisodeConfig | None = None,
                 optimizer=None, compiled: bool = True, jit_compile: bool = False,
                 strategy: tf.distribute.Strategy | None = None):
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
        if not model.built:
            raise ValueError("build the model first (give it an Input or call model.build(shape))")
        if strategy is not None and not all(strategy.extended.variable_created_in_scope(
                v.value if isinstance(v, keras.Variable) else v) for v in model.weights):
            raise ValueError("build the model inside strategy.scope() (tfmeta.learners.create "
                             "does, given strategy=)")
        if jit_compile and self.xla_unsupported:
            raise ConfigError(f"XLA cannot compile {self.name}'s meta-steps: "
                              f"{self.xla_unsupported}; run it without --xla (jit_compile)")
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

    # -- to implement ---------------------------------------------------------------------------
    @classmethod
    def check_episode(cls, config, episode: EpisodeConfig) -> None:
        """Raise ``ConfigError`` if meta-training episodes like ``episode`` cannot serve
        ``config`` (checked before a run starts)."""

    @classmethod
    def check_test_episode(cls, train: EpisodeConfig, test: EpisodeConfig) -> None:
        """Raise ``ConfigError`` if a learner meta-trained on ``train`` episodes cannot be
        evaluated on ``test`` episodes. A ``ways``-unit head cannot change its ways."""
        if cls.backbone_output == "logits" and train.ways != test.ways:
            raise ConfigError(f"{cls.name} has a {test.ways}-way head: train_ways must equal ways "
                              "(wider training episodes are for metric learners)")

    @classmethod
    def default_optimizer(cls, config, total_steps: int | None = None,
                          learning_rate: float = 1e-3):
        """The outer-loop optimizer the learner's paper uses (Adam unless overridden)."""
        return keras.optimizers.Adam(learning_rate)

    def task_losses(self, support_x, support_y, query_x, query_y):
        """``(losses [B], accuracies [B])``: each task's differentiable meta-training objective
        (its query loss after adaptation) and query accuracy, for a meta-batch (the outer step
        gives it one task at a time: a meta-batch of one)."""
        raise NotImplementedError

    def inner_loss_scale(self):
        """The outer optimizer's current loss scale under float16 mixed precision (inner loops
        scale their losses by it too: :func:`tfmeta.learners.inner.sgd_inner_loop`), else
        ``None``."""
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            return self.optimizer.scale_loss(tf.constant(1.0))
        return None

    def task_gradient(self, support_x, support_y, query_x, query_y, index):
        """``(gradients, loss, accuracy)`` of one task (``support_x [N*K, H, W, C]``, ...; its
        ``index`` in the meta-batch): the gradient of its loss with respect to
        ``meta_variables``. With a loss-scaling optimizer (mixed precision) the loss is scaled
        here and the optimizer unscales the gradients. With an ``attack``, the task's queries
        are perturbed first to raise its loss (adversarial querying)."""
        if self.attack is not None:
            seed = tf.stack([tf.cast(self.optimizer.iterations, tf.int32),
                             104729 + tf.cast(index, tf.int32)])
            query_x = perturb(lambda q: tf.reduce_sum(self.task_losses(
                support_x[None], support_y[None], q[None], query_y[None])[0]), query_x,
                self.attack, seed)
        with tf.GradientTape() as tape:
            losses, accuracies = self.task_losses(support_x[None], support_y[None],
                                                  query_x[None], query_y[None])
            loss = self.optimizer.scale_loss(losses[0])
        gradients = tape.gradient(loss, self.meta_variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return gradients, losses[0], accuracies[0]

    def outer_gradients(self, support_x, support_y, query_x, query_y):
        """``(gradients, losses [B], accuracies [B])``: the mean over the meta-batch of the
        tasks' gradients (``task_gradient``), task after task in a ``tf.while_loop`` that runs
        ``parallel_tasks`` of them side by side. Only those tasks' activations are alive at a
        time: memory does not grow with the meta-batch, the graph holds one task (tracing takes
        seconds, not minutes), and each task's BatchNorm sees its own episode, as in the papers.
        The sum is carried from task to task in order: the result does not depend on
        ``parallel_tasks``."""
        tasks = tf.shape(support_x)[0]
        # Under a strategy this replica holds the tasks first .. first + tasks - 1 of a meta-batch
        # of tasks * replicas: task indices (seeds) and the mean are the whole meta-batch's.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        first = (tf.cast(context.replica_id_in_sync_group, tf.int32) * tasks
                 if context is not None else 0)

        def body(i, total, losses, accuracies):
            gradients, loss, accuracy_ = self.task_gradient(support_x[i], support_y[i],
                                                            query_x[i], query_y[i], first + i)
            total = [t + g for t, g in zip(total, gradients)]
            return (i + 1, total, losses.write(i, tf.cast(loss, tf.float32)),
                    accuracies.write(i, tf.cast(accuracy_, tf.float32)))

        zeros = [tf.zeros_like(v) for v in self.meta_variables]
        _, total, losses, accuracies = tf.while_loop(
            lambda i, *_: i < tasks, body,
            (tf.constant(0), zeros, tf.TensorArray(tf.float32, tasks),
             tf.TensorArray(tf.float32, tasks)), parallel_iterations=self.parallel_tasks)
        return ([t / tf.cast(tasks * replicas, t.dtype) for t in total], losses.stack(),
                accuracies.stack())

    def _meta_train_step(self, support_x, support_y, query_x, query_y) -> dict:
        """The outer step on one device, the one place that reduces over the meta-batch and
        updates (``_replicated_train_step`` is its twin under a strategy): the meta-gradient of
        the meta-batch, applied by :meth:`_update_if_finite`."""
        before = self._snapshot()
        gradients, losses, accuracies = self.outer_gradients(support_x, support_y, query_x,
                                                             query_y)
        return self._update_if_finite(before, gradients, losses, accuracies)

    def step_state(self) -> list:
        """Every variable a meta-step may change: the meta-variables (the model's weights, the
        parts' -- Meta-SGD's rates, a relation module, ...), the optimizer's (moments, step
        count, a loss scale) and what a forward pass changes (BatchNorm's moving statistics)."""
        return [*self.meta_variables, *self.optimizer.variables,
                *self.non_trainable_variables()]

    def _snapshot(self) -> list:
        """The values of ``step_state`` before the step (tensors, read before anything of the
        step is written: the graph orders the reads first)."""
        return [tf.identity(v) for v in self.step_state()]

    def _update_if_finite(self, before, gradients, losses, accuracies) -> dict:
        """Apply the meta-gradient unless the meta-batch is not finite, and report it.

        A meta-batch is skipped whole -- nothing it changed is kept (weights, optimizer state,
        BatchNorm's moving statistics, the parts) and ``skipped`` is 1 -- if its losses, its
        meta-gradient or the statistics its forward passes wrote hold a NaN or Inf, or if the
        update itself would leave a non-finite value (an overflow in the optimizer's moments).
        The same code runs on one device and, under a strategy, in the cross-replica context
        on all-reduced gradients, so every replica and worker takes the same decision. A
        loss-scale optimizer (float16) gets the non-finite gradients: its own skip lowers the
        scale."""
        state = self.step_state()
        optimizer_variables = {id(v) for v in self.optimizer.variables}
        scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        metrics = {"loss": tf.reduce_mean(losses), "accuracy": tf.reduce_mean(accuracies)}

        def restore(keep_optimizer: bool):
            for variable, value in zip(state, before):
                if not (keep_optimizer and id(variable) in optimizer_variables):
                    variable.assign(value)
            return tf.constant(1.0)

        def apply():
            self.optimizer.apply_gradients(zip(gradients, self.meta_variables))
            return tf.cond(all_finite(state), lambda: tf.constant(0.0),
                           lambda: restore(keep_optimizer=False))

        def skip():
            if scaled:  # its own skip keeps the scale dynamic (lowered after an overflow)
                self.optimizer.apply_gradients(zip(gradients, self.meta_variables))
            return restore(keep_optimizer=scaled)

        finite = all_finite([losses, *gradients, *self.non_trainable_variables()])
        metrics["skipped"] = tf.cond(finite, apply, skip)
        return metrics

    def non_trainable_variables(self) -> list:
        """What a forward pass may change besides the meta-variables (BatchNorm's moving
        statistics), of the model and the parts."""
        return list(self.model.non_trainable_variables) + [
            v for part in self.parts.values() for v in part.non_trainable_variables]

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
        return _embedding_copy(self.model, self.model.output)

    def adapt(self, support_x, support_y) -> keras.Model:
        """A plain Keras classifier (logits) for the classes of one support set (``support_x``
        ``[S, H, W, C]`` preprocessed, ``support_y`` ``[S]`` labels ``0..n-1``).

        If the learner knows the polarity of its meta-training images (a run records it) and the
        support set has the other one (dark strokes on light where it learned light on dark, say),
        the support images are inverted, with a warning, and the classifier inverts its inputs
        too, so that it takes images as the support set came."""
        support_x = tf.convert_to_tensor(support_x, tf.float32)
        if self.polarity is None or not bool(other_polarity(support_x, self.polarity)):
            return self._adapt(support_x, support_y)
        warnings.warn(f"{self.name} was meta-trained on {self.polarity} images and the support "
                      "images are not: inverting them, and the inputs of the adapted classifier",
                      stacklevel=2)
        classifier = self._adapt(1.0 - support_x, support_y)
        inputs = keras.Input(self.input_shape, name="images")
        inverted = keras.layers.Rescaling(-1.0, 1.0, name="invert_polarity")(inputs)
        return keras.Model(inputs, classifier(inverted), name=f"{classifier.name}_inverted")

    def fewshot_logits(self, support_x, support_y, query_x):
        """Logits ``[Q, n]`` of ``query_x`` after adapting to one support set (``support_x``
        ``[S, H, W, C]`` preprocessed, ``support_y`` ``[S]`` labels ``0..n-1``), as one graph:
        the same answers as ``adapt(support_x, support_y)(query_x)``. A support set of more
        classes than the learner was built for is refused (``check_ways``; in a graph, an
        assertion with the same message), never answered for the first classes only."""
        if tf.executing_eagerly():
            self.check_ways(np.asarray(support_y))
            return self._fewshot_logits(support_x, support_y, query_x)
        if self.max_ways is None:
            return self._fewshot_logits(support_x, support_y, query_x)
        with tf.control_dependencies([tf.debugging.assert_less_equal(
                tf.reduce_max(support_y) + 1, self.max_ways, message=self.ways_message("n"))]):
            return self._fewshot_logits(support_x, support_y, query_x)

    def _fewshot_logits(self, support_x, support_y, query_x):
        """``fewshot_logits`` once the support's classes are checked."""
        raise NotImplementedError

    # -- shared verbs ---------------------------------------------------------------------------
    def meta_train_step(self, batch) -> dict:
        self.check_ways(batch[1])  # the support labels: more classes than built for is an error
        if self.strategy is not None:
            batch = self._shard(batch)
            fn = self._train_fn if self.compiled else self._replicated_train_step
        else:
            fn = self._train_fn if self.compiled else self._meta_train_step
        return fn(*batch)

    def meta_test_step(self, batch) -> dict:
        self.check_ways(batch[1])
        if self.strategy is not None:
            batch = self._shard(batch)
            fn = self._test_fn if self.compiled else self._replicated_test_step
        else:
            fn = self._test_fn if self.compiled else self._meta_test_step
        return fn(*batch)

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

    # -- distribution (see the module docstring) ------------------------------------------------
    def _shard(self, batch):
        """The meta-batch as per-replica values: replica ``r`` gets the ``r``-th equal slice."""
        replicas = self.strategy.num_replicas_in_sync
        tasks = int(batch[0].shape[0])
        if tasks % replicas:
            raise ConfigError(f"a meta-batch of {tasks} tasks does not split evenly over "
                              f"{replicas} replicas: make meta_batch a multiple of {replicas}")
        size = tasks // replicas

        def local(context):
            first = context.replica_id_in_sync_group * size
            return tuple(tensor[first:first + size] for tensor in batch)

        return self.strategy.experimental_distribute_values_from_function(local)

    def _replicated_train_step(self, *batch) -> dict:
        """``_meta_train_step`` under a strategy: each replica's tasks' gradients, summed across
        replicas (and workers) in one all-reduce; the guarded update in the cross-replica
        context, where every replica sees the same gradients, losses and statistics."""
        before = self._snapshot()
        gradients, losses, accuracies = self.strategy.run(self._replica_gradients, args=batch)
        gradients = [self.strategy.experimental_local_results(g)[0] for g in gradients]
        return self._update_if_finite(before, gradients,
                                      self.strategy.gather(losses, axis=0),
                                      self.strategy.gather(accuracies, axis=0))

    def _replica_gradients(self, *batch):
        gradients, losses, accuracies = self.outer_gradients(*batch)
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, gradients), losses, accuracies

    def _replicated_test_step(self, *batch) -> dict:
        metrics = self.strategy.run(self._meta_test_step, args=batch)
        return {name: self.strategy.gather(value, axis=0) for name, value in metrics.items()}

    @property
    def input_shape(self) -> tuple:
        return tuple(self.model.inputs[0].shape[1:])

    @property
    def feature_shape(self) -> tuple:
        """The shape of what the backbone gives for one image (features, feature maps, logits)."""
        return tuple(self.model.outputs[0].shape[1:])

    @property
    def max_ways(self) -> int | None:
        """The most classes one support set may have (``None``: no limit)."""
        return None

    def check_ways(self, labels) -> None:
        """One clear error if support labels ``0..n-1`` (of one support set or a meta-batch of
        them) have more classes than the learner can tell apart, instead of silently dropping
        classes or failing deep inside TensorFlow."""
        n = int(np.max(np.asarray(labels))) + 1
        if self.max_ways is not None and n > self.max_ways:
            raise DataError(self.ways_message(n))

    def ways_message(self, n) -> str:
        return (f"{self.name} was built for at most {self.max_ways} classes but the support has "
                f"{n}; train with --ways {n} or more")

    def preprocess(self, images) -> tf.Tensor:
        """Numpy images of any size (uint8, or float in [0, 1]) -> float32 model inputs."""
        height, _, channels = self.input_shape
        return tf.constant(to_uint8_images(images, height, channels), tf.float32) / 255.0

    def prepare_support(self, support_x, support_y):
        """``(images, labels, classes)``: preprocessed support images, labels ``0..n-1`` and the
        class of each label (sorted ``support_y`` values), ready for ``adapt``."""
        support_y = np.asarray(support_y)
        if support_y.ndim != 1 or len(support_y) != len(np.asarray(support_x)):
            raise DataError(f"support_y must be one label per support image, got shape "
                            f"{support_y.shape} for {len(np.asarray(support_x))} images")
        classes, labels = np.unique(support_y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"the support set needs at least 2 classes, got {len(classes)}")
        self.check_ways(labels)
        return self.preprocess(support_x), tf.constant(labels, tf.int32), classes

    def predict_proba(self, support_x, support_y, query_x):
        """``(classes, probabilities [Q, len(classes)])`` for each query image."""
        x, y, classes = self.prepare_support(support_x, support_y)
        classifier = self.adapt(x, y)
        logits = classifier(self.preprocess(query_x), training=False)[:, :len(classes)]
        return classes, tf.nn.softmax(logits).numpy()

    def predict(self, support_x, support_y, query_x) -> np.ndarray:
        """The label (one of ``support_y``) of each query image."""
        classes, probabilities = self.predict_proba(support_x, support_y, query_x)
        return classes[probabilities.argmax(-1)]

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


def _embedding_copy(model: keras.Model, features, images=None) -> keras.Model:
    """A copy of ``model`` from its inputs to ``features`` (a tensor of its graph), flattened;
    with ``images``, BatchNorm keeps their statistics."""
    body = keras.Model(_single(model.inputs), features)
    copy = keras.models.clone_model(body)
    copy.set_weights(body.get_weights())
    if images is not None:
        with stochastic_layers_off(copy):
            freeze_batchnorm_statistics(copy, tf.convert_to_tensor(images, tf.float32))
    outputs = copy.outputs[0]
    if len(outputs.shape) > 2:
        outputs = keras.layers.Flatten(name="flatten_features")(outputs)
    return keras.Model(_single(copy.inputs), outputs, name="embedding")


def _single(inputs):
    """A model's one input as a tensor, not a list of one: Keras then takes a tensor when the
    model is called (a list of one warns that the structure does not match)."""
    return inputs[0] if len(inputs) == 1 else inputs


class OptimizationLearner(Learner):
    """Learners that adapt by gradient steps on the model's weights (MAML, Reptile, ...).

    The model maps images to ``ways`` logits. Its weights are handled functionally with
    ``keras.Model.stateless_call``, so an inner loop is a chain of tensors the outer loop can
    differentiate through, and the model's variables change only in the outer update.

    BatchNorm uses the statistics of the batch at hand in the inner loop (the support set), as in
    the papers' code. A query image is then classified two ways, and evaluation reports both:

    * as deployed (``accuracy``): BatchNorm holds the support set's statistics, so each query
      image gets the answer it would get alone -- exactly what ``adapt()``, ``predict()`` and
      every export compute;
    * transductively (``transductive_accuracy``): BatchNorm uses the query batch's own statistics,
      as the MAML and Reptile papers evaluate (and as the meta-training loss is computed).

    Dropout-like layers (DropBlock, Dropout, ...) are active only while meta-training.
    """

    backbone_output = "logits"

    @property
    def second_order(self) -> bool:
        """Whether the meta-gradient differentiates the inner loop's gradients (MAML's Hessian
        term); first-order learners differentiate the model once."""
        return False

    def __init__(self, model: keras.Model, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        if self.second_order:  # inner loops differentiated twice: BatchNorm's moments must allow it
            exact_batchnorm_moments(self.model)
        self._seed_states = seed_state_positions(self.model)

    def forward(self, params, images):
        """Logits of ``images`` under weights ``params``; BatchNorm uses batch statistics."""
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        # stateless_call returns a random layer's advanced seed, which a pure forward drops: each
        # call gets a fresh seed instead, or every Dropout mask would be the same.
        for i in self._seed_states:
            non_trainable[i] = tf.random.uniform(tf.shape(non_trainable[i]), maxval=2 ** 31 - 1,
                                                 dtype=non_trainable[i].dtype)
        logits, _ = self.model.stateless_call(list(params), non_trainable, images, training=True)
        return full_precision(logits)

    def deployed_forward(self, params, support_x, query_x):
        """Logits of ``query_x`` under ``params`` with BatchNorm frozen at the statistics of
        ``support_x``: what the classifier ``adapt()`` returns answers."""
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        with batchnorm_momentum_zero(self.model):  # moving statistics := the support's
            _, statistics = self.model.stateless_call(list(params), non_trainable, support_x,
                                                      training=True)
        logits, _ = self.model.stateless_call(list(params), statistics, query_x, training=False)
        return full_precision(logits)

    def embedding_model(self, images=None) -> keras.Model:
        """The features below the classifier head (see ``Learner.embedding_model``). These
        learners normalise with the statistics of the images at hand (BatchNorm never kept
        moving statistics in meta-training), so ``images`` -- a support set of the user's
        domain -- give the BatchNorm statistics the embedding keeps, as ``adapt()`` does."""
        if images is None:
            raise ValueError(f"{self.name} normalises with the statistics of the images at hand: "
                             "give images (a support folder) whose BatchNorm statistics the "
                             "embedding keeps")
        return _embedding_copy(self.model, self.model.layers[-1].input, images)

    def weights(self) -> list:
        """The model's trainable weights as tensors (read inside a tape, they are watched)."""
        return [tf.convert_to_tensor(v) for v in self.model.trainable_variables]

    @property
    def test_inner_steps(self) -> int:
        return self.config.test_inner_steps or self.config.inner_steps

    def inner_loss(self, logits, labels):
        """The support loss the inner loop descends: mean cross-entropy, times the number of
        ways with ``inner_reduction="sum/shots"`` (the MAML code's sum over the support set
        divided by the shots, which its step size alpha is tuned for)."""
        loss = cross_entropy(logits, labels)
        if getattr(self.config, "inner_reduction", "mean") == "sum/shots":
            loss *= tf.cast(tf.reduce_max(labels) + 1, loss.dtype)
        return loss

    def task_loss(self, theta, support_x, support_y, query_x, query_y):
        """``(loss, accuracy)`` of one task: its query loss after adapting ``theta`` (the
        model's weights as tensors) on its support set."""
        raise NotImplementedError

    def task_losses(self, support_x, support_y, query_x, query_y):
        """``task_loss`` of each task; the meta-batch size is static, so the tasks' graphs are
        independent and run side by side."""
        theta = self.weights()
        results = [self.task_loss(theta, support_x[i], support_y[i], query_x[i], query_y[i])
                   for i in range(support_x.shape[0])]
        losses, accuracies = zip(*results)
        return tf.stack(losses), tf.stack(accuracies)

    def inner_loop(self, theta, x, y, steps, differentiable=True):
        """Adapted weights phi from theta on one task's data: plain SGD on the support loss."""
        return sgd_inner_loop(self.forward, theta, x, y, steps, self.config.inner_lr,
                              differentiable=differentiable,
                              first_order=getattr(self.config, "first_order", False),
                              loss_fn=self.inner_loss, loss_scale=self.inner_loss_scale(),
                              recompute=getattr(self.config, "recompute_inner", False))

    def test_adaptation(self, theta, support_x, support_y):
        """phi for one support set at test time (evaluation, ``adapt``, served models)."""
        return self.inner_loop(theta, support_x, support_y, self.test_inner_steps,
                               differentiable=False)

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        theta = self.weights()
        metrics = {"loss": [], "accuracy": [], "transductive_loss": [],
                   "transductive_accuracy": []}
        with stochastic_layers_off(self.model):
            for i in range(support_x.shape[0]):
                phi = self.test_adaptation(theta, support_x[i], support_y[i])
                for prefix, logits in (("", self.deployed_forward(phi, support_x[i], query_x[i])),
                                       ("transductive_", self.forward(phi, query_x[i]))):
                    metrics[prefix + "loss"].append(cross_entropy(logits, query_y[i]))
                    metrics[prefix + "accuracy"].append(accuracy(logits, query_y[i]))
        return {name: tf.stack(values) for name, values in metrics.items()}

    def _adapt(self, support_x, support_y):
        """``test_inner_steps`` steps on the support set -> a Keras classifier (logits)."""
        support_x = tf.convert_to_tensor(support_x, tf.float32)
        support_y = tf.convert_to_tensor(support_y, tf.int32)
        self.check_ways(support_y.numpy())
        with stochastic_layers_off(self.model):
            phi = self.test_adaptation(self.weights(), support_x, support_y)
        return self.adapted_classifier(phi, support_x)

    def _fewshot_logits(self, support_x, support_y, query_x):
        with stochastic_layers_off(self.model):
            phi = self.test_adaptation(self.weights(), support_x, support_y)
            logits = self.deployed_forward(phi, support_x, query_x)
        return logits[:, :tf.reduce_max(support_y) + 1]

    @property
    def max_ways(self) -> int:
        return int(self.model.outputs[0].shape[-1])  # the head's units

    def adapted_classifier(self, params, support_x) -> keras.Model:
        """A copy of the model with weights ``params`` and BatchNorm statistics of the support."""
        classifier = keras.models.clone_model(self.model)
        classifier.set_weights(self.model.get_weights())
        for variable, value in zip(classifier.trainable_variables, params):
            variable.assign(value)
        with stochastic_layers_off(classifier):
            freeze_batchnorm_statistics(classifier, support_x)
        return classifier
