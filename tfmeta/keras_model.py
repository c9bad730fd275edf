"""A learner as a ``keras.Model``: ``fit`` / ``evaluate`` run its meta-steps, so Keras callbacks
(TensorBoard, CSVLogger, EarlyStopping, ModelCheckpoint, a user's own) work as with any model.

    learner = tfmeta.learners.create("protonet", "conv4", episode=EpisodeConfig(5, 1, 15))
    model = tfmeta.MetaModel(learner)
    model.compile()
    model.fit(train.dataset(), steps_per_epoch=100, epochs=20,
              validation_data=val.dataset(), validation_steps=25,
              callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=3)])

Each element of the datasets is one meta-batch ``(support_x, support_y, query_x, query_y)``, as
:meth:`tfmeta.data.EpisodeSampler.dataset` yields. ``train_step`` is the learner's outer step
(``Learner._meta_train_step``: the same update as ``learner.meta_train_step``, non-finite
meta-batches skipped), ``test_step`` its evaluation on held-out classes (accuracy as deployed), and
``model(images)`` the backbone. The learner's own optimizer does the updates. ``tfmeta train``'s
trainer stays the way to exact resume; ``ModelCheckpoint`` and ``BackupAndRestore`` save what
Keras tracks: the backbone, Keras parts of the learner (a relation module) and the optimizer.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class MetaModel(keras.Model):
    """``learner`` (any :mod:`tfmeta.learners` learner, one device) as a Keras model."""

    def __init__(self, learner, **kwargs):
        super().__init__(name=kwargs.pop("name", f"meta_{learner.name}"), **kwargs)
        if learner.strategy is not None:
            raise ValueError("MetaModel runs a learner on one device; for a strategy use "
                             "tfmeta train --strategy")
        self.learner = learner
        self.backbone = learner.model
        self.learner_parts = [part for part in learner.parts.values()
                              if isinstance(part, keras.layers.Layer)]
        self.built = True

    def compile(self, **kwargs):
        """Keras' ``compile`` with the learner's optimizer (no loss: the learner has its own);
        XLA as the learner was created (``jit_compile``)."""
        if "optimizer" in kwargs or "loss" in kwargs:
            raise ValueError("MetaModel uses the learner's optimizer and loss: give them to "
                             "tfmeta.learners.create (outer_lr=, ...)")
        kwargs.setdefault("jit_compile", bool(self.learner.jit_compile))
        super().compile(optimizer=self.learner.optimizer, **kwargs)

    def call(self, images, training=False):
        return self.backbone(images, training=training)

    def train_step(self, data):
        metrics = self.learner._meta_train_step(*data)
        return {name: tf.reduce_mean(value) for name, value in metrics.items()}

    def test_step(self, data):
        metrics = self.learner._meta_test_step(*data)
        return {name: tf.reduce_mean(value) for name, value in metrics.items()
                if name in ("loss", "accuracy")}
