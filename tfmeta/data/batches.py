"""Minibatches of labelled images from every training class, for learners that train as ordinary
classifiers (the fine-tuning baselines: :mod:`tfmeta.learners.baseline`) and for pre-training.

Batch ``i`` of a sampler is a pure function of ``(seed, i)`` (stateless random ops), as episodes
are, so a resumed run sees the very batches the uninterrupted one would. A step's batch has the
shape of a meta-batch, so the trainer, the outer step, its finiteness guard and ``tf.distribute``
take it unchanged: ``meta_batch`` minibatches ("tasks", one per replica's share) of
``batch_size`` images in the support slot, labelled with their class in the source (``0..C-1``),
and empty query slots::

    support_x [meta_batch, batch_size, H, W, C]   support_y [meta_batch, batch_size]
    query_x   [meta_batch, 0, H, W, C]            query_y   [meta_batch, 0]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfmeta.data.augment import augment_images, check_augment
from tfmeta.data.disk import image_gatherer
from tfmeta.data.source import DataError, ImageSource


class ClassBatchSampler:
    """Streams minibatches of images drawn uniformly from every image of ``source``."""

    def __init__(self, source: ImageSource, batch_size: int = 64, meta_batch: int = 1,
                 seed: int = 0, augment: str | None = None):
        if batch_size < 1 or meta_batch < 1:
            raise DataError(f"batch_size and meta_batch must be positive, got {batch_size} and "
                            f"{meta_batch}")
        if source.num_classes < 2 or source.images.shape[0] < 2:
            raise DataError(f"a classifier needs at least 2 classes of images, the source has "
                            f"{source.num_classes}")
        check_augment(augment)
        self.source = source
        self.batch_size, self.meta_batch = int(batch_size), int(meta_batch)
        self.seed = int(seed)
        self.augment = augment
        self._gather = None

    @property
    def image_shape(self) -> tuple:
        return self.source.image_shape

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    def batch_at(self, index):
        """Minibatch number ``index``: ``(images [batch_size, H, W, C], labels [batch_size])``."""
        if self._gather is None:  # one constant (or the file) for every batch
            self._gather = image_gatherer(self.source.images)
            with tf.init_scope(), tf.device("/cpu:0"):
                self._labels = tf.constant(self.source.labels().astype(np.int32))
        key = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(index, tf.int64)])
        picks = tf.random.stateless_uniform([self.batch_size], key, 0,
                                            self.source.images.shape[0], tf.int64)
        x = tf.cast(self._gather(picks), tf.float32) / 255.0
        if self.augment:
            x = augment_images(self.augment, x, tf.random.experimental.stateless_fold_in(key, 1))
        return x, tf.gather(self._labels, picks)

    def _as_task(self, index):
        x, y = self.batch_at(index)
        return x, y, tf.zeros((0,) + self.image_shape, tf.float32), tf.zeros([0], tf.int32)

    def dataset(self, start: int = 0, num_batches: int | None = None) -> tf.data.Dataset:
        """Steps' batches from step ``start``; endless unless ``num_batches`` is given."""
        first = int(start) * self.meta_batch
        stop = (np.iinfo(np.int64).max if num_batches is None
                else first + int(num_batches) * self.meta_batch)
        return (tf.data.Dataset.range(first, stop)
                .map(self._as_task, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(self.meta_batch, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE))
