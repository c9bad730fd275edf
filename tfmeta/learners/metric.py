"""What metric-based learners share: embed every image of a meta-batch in one pass, then score each
task's queries against its support set with a head that has no trainable inner loop.

The model is an embedding network (images -> features; ``conv4`` without a head). The meta-batch
stays a tensor dimension end to end: support and query images of all tasks go through the model as
one batch, and heads work on ``[tasks, ...]`` tensors. BatchNorm behaves as in ordinary training
(batch statistics and running averages while meta-training, running averages at test time), so an
adapted classifier answers each image on its own.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.episodes import EpisodeConfig
from tfmeta.learners.base import Learner, accuracy, cross_entropy, full_precision


def embed(model, images, training, flatten=True):
    """``[tasks, n, H, W, C]`` images -> ``[tasks, n, features]`` embeddings (flattened), or
    ``[tasks, n, ...]`` feature maps with ``flatten=False``."""
    tasks, n = tf.shape(images)[0], tf.shape(images)[1]
    flat = tf.reshape(images, tf.concat([[tasks * n], tf.shape(images)[2:]], 0))
    features = full_precision(model(flat, training=training))
    size = features.shape[1:].num_elements()  # static, so heads see the feature dimension
    shape = ([-1 if size is None else size]) if flatten else list(features.shape[1:])
    return tf.reshape(features, tf.concat([[tasks, n], shape], 0))


@keras.saving.register_keras_serializable(package="tfmeta")
class SupportHead(keras.layers.Layer):
    """The head of an adapted classifier: ``query embeddings -> logits`` for one support set.

    It holds the support embeddings and labels (non-trainable weights) and a scorer: the learner's
    scoring code and meta-learned parts (a relation module, a calibration, ...) rebuilt without a
    backbone (``MetricLearner.head_only``), with the parts' values copied in. So the classifier
    keeps no reference to the learner, saves as ``.keras`` (``get_config`` + its own variables,
    the parts' included) and reloads with ``keras.models.load_model``.
    """

    def __init__(self, learner: str, config: dict, episode: dict, feature_shape, support_size: int,
                 ways: int, **kwargs):
        super().__init__(**kwargs)
        cls = _learner_class(learner)
        self.learner, self.learner_config = learner, dict(config)
        self.episode_facts, self.ways = dict(episode), int(ways)
        self.feature_shape, self.support_size = tuple(feature_shape), int(support_size)
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        self.scorer = cls.head_only(cls.config_class(**options), EpisodeConfig(**episode),
                                    self.feature_shape)
        self.head_parts = tf.Module(name="head_parts")  # tracked for SavedModel exports
        for name, part in self.scorer.parts.items():
            setattr(self.head_parts, name, part)
        embedding = ((int(np.prod(self.feature_shape)),) if cls.flatten_features
                     else self.feature_shape)
        self.support_embeddings = self.add_weight(
            shape=(self.support_size,) + embedding, initializer="zeros", trainable=False,
            name="support_embeddings")
        self.support_labels = self.add_weight(shape=(self.support_size,), initializer="zeros",
                                              dtype="int32", trainable=False,
                                              name="support_labels")

    def state(self) -> list:
        """Every variable the head needs: support embeddings and labels, then the parts'."""
        return [self.support_embeddings, self.support_labels] + [
            v for name in sorted(self.scorer.parts) for v in self.scorer.parts[name].variables]

    def assign(self, support_embeddings, support_labels, parts: dict) -> None:
        """Set the support set and copy the values of the learner's ``parts``."""
        sources = [support_embeddings, support_labels] + [
            v for name in sorted(parts) for v in parts[name].variables]
        for variable, value in zip(self.state(), sources, strict=True):
            variable.assign(value)

    def call(self, query_embeddings):
        q = query_embeddings[None]
        s = tf.convert_to_tensor(self.support_embeddings)[None]
        y = tf.convert_to_tensor(self.support_labels)[None]
        return self.scorer.score(s, y, q, self.ways)[0]

    def get_config(self):
        return dict(super().get_config(), learner=self.learner, config=self.learner_config,
                    episode=self.episode_facts, feature_shape=list(self.feature_shape),
                    support_size=self.support_size, ways=self.ways)

    def save_own_variables(self, store):
        for i, variable in enumerate(self.state()):
            store[str(i)] = keras.ops.convert_to_numpy(variable)

    def load_own_variables(self, store):
        state = self.state()
        if len(store.keys()) != len(state):
            raise ValueError(f"{self.name}: the file holds {len(store.keys())} variables, the "
                             f"head has {len(state)}")
        for i, variable in enumerate(state):
            variable.assign(store[str(i)])


def _learner_class(path: str):
    """A learner class from ``module.ClassName`` (what a saved head records)."""
    import importlib

    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ValueError(f"the learner class {path} of this head cannot be imported") from None


class MetricLearner(Learner):
    """Base of metric learners: subclasses define ``score`` (and may override ``episode_loss``).

    ``flatten_features = False`` keeps the model's feature maps (Relation Networks).
    """

    flatten_features = True
    xla_unsupported = ("the number of classes is read from the support labels, a shape XLA "
                       "needs at compile time")

    def score(self, support, support_y, query, ways, training=False):
        """Logits ``[tasks, Q, ways]`` of queries ``[tasks, Q, D]`` given support ``[tasks, S, D]``."""
        raise NotImplementedError

    def episode_loss(self, support, support_y, query, query_y, ways):
        """``(losses [tasks], logits)`` of a meta-batch while training: each task's query
        cross-entropy under ``score``."""
        logits = self.score(support, support_y, query, ways, training=True)
        return cross_entropy(logits, query_y, axis=-1, smoothing=self.label_smoothing), logits

    def training_support(self, support, support_y, task_index):
        """The support embeddings and labels a meta-training task is scored with (task
        ``task_index`` of the meta-batch): as they come, unless a learner needs otherwise."""
        return support, support_y

    @staticmethod
    def ways_of(support_y):
        return tf.reduce_max(support_y) + 1

    def embed_episodes(self, support_x, query_x, training):
        """Support and query embeddings of every task, from one pass through the model."""
        s = tf.shape(support_x)[1]
        features = embed(self.model, tf.concat([support_x, query_x], axis=1), training,
                         self.flatten_features)
        return features[:, :s], features[:, s:]

    def episode_logits(self, support_x, support_y, query_x, training):
        support, query = self.embed_episodes(support_x, query_x, training)
        return self.score(support, support_y, query, self.ways_of(support_y), training=training)

    def task_losses(self, support_x, support_y, query_x, query_y, task_index=0):
        """All tasks at once: one pass of the model over every image of the meta-batch."""
        support, query = self.embed_episodes(support_x, query_x, training=True)
        ways = self.ways_of(support_y)
        support, support_y = self.training_support(support, support_y, task_index)
        losses, logits = self.episode_loss(support, support_y, query, query_y, ways)
        return losses, accuracy(logits, query_y, axis=-1)

    def _meta_test_step(self, support_x, support_y, query_x, query_y):
        logits = self.episode_logits(support_x, support_y, query_x, training=False)
        return {"loss": cross_entropy(logits, query_y, axis=-1),
                "accuracy": accuracy(logits, query_y, axis=-1), "logits": logits}

    def _fewshot_logits(self, support_x, support_y, query_x):
        return self.episode_logits(support_x[None], support_y[None], query_x[None],
                                   training=False)[0]

    @classmethod
    def head_only(cls, config, episode, feature_shape):
        """The learner's scoring head without a backbone, for features of ``feature_shape``:
        its config, episode and freshly built parts, and ``score``. Adapted classifiers carry
        this instead of a reference to the learner."""
        head = cls.__new__(cls)
        head.model, head.config, head.episode = None, config, episode
        head.head_feature_shape = tuple(feature_shape)
        head.parts = dict(head.build_parts())
        return head

    @property
    def feature_shape(self) -> tuple:
        if self.model is None:  # a head without a backbone
            return self.head_feature_shape
        return super().feature_shape

    def _adapt(self, support_x, support_y):
        """A Keras classifier: a copy of the embedding network followed by the support set's
        head; nothing in it refers to the learner, and it saves as ``.keras``."""
        support_x = tf.convert_to_tensor(support_x, tf.float32)
        support_y = tf.convert_to_tensor(support_y, tf.int32)
        self.check_ways(support_y.numpy())
        ways = int(tf.reduce_max(support_y)) + 1
        features = self.model(support_x, training=False)
        if self.flatten_features:
            features = tf.reshape(features, [len(support_x), -1])
        cls = type(self)
        head = SupportHead(f"{cls.__module__}.{cls.__qualname__}",
                           dataclasses.asdict(self.config), dataclasses.asdict(self.episode),
                           self.feature_shape, len(support_x), ways, name="support_head")
        head.assign(features, support_y, self.parts)
        backbone = keras.models.clone_model(self.model)
        backbone.set_weights(self.model.get_weights())
        inputs = keras.Input(self.input_shape, name="images")
        embedded = backbone(inputs)
        if self.flatten_features:
            embedded = keras.layers.Flatten()(embedded)
        # A TensorFlow name scope: "baseline++" -> "baselinepp_classifier"
        return keras.Model(inputs, head(embedded),
                           name=f"{self.name.replace('+', 'p')}_classifier")


class CalibratedMetricLearner(MetricLearner):
    """A metric learner whose logits get a meta-learned scale: ``scale * s`` (R2-D2, MetaOptNet;
    their bias, one number added to every class's logit, is dropped: softmax cannot see it).
    ``config.scale`` is the initial scale."""

    def build_parts(self) -> dict:
        self.calibration = tf.Module(name="calibration")
        self.calibration.scale = tf.Variable(float(self.config.scale), name="scale")
        return {"calibration": self.calibration}

    def calibrate(self, scores):
        return self.calibration.scale * scores
