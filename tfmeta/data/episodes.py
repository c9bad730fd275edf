"""N-way K-shot episodes streamed by ``tf.data``.

An episode (a task) draws ``ways`` distinct classes from a source, gives them labels ``0..ways-1``
in random order, and draws ``shots + queries`` distinct images of each class: the first ``shots``
are the support set, the rest the query set, so support and query never share an image.

Episode ``i`` of a sampler is a pure function of ``(seed, i)`` (stateless random ops), so:

* evaluation episodes from a fixed seed are identical from run to run;
* resuming training at meta-step ``s`` is ``sampler.dataset(start=s)``: the sampler's position is
  the step, and nothing else has to be saved;
* episodes are built in parallel (``num_parallel_calls``) without changing their content.

A meta-batch stacks ``meta_batch`` episodes: ``support_x [B, N*K, H, W, C]``,
``support_y [B, N*K]``, ``query_x [B, N*Q, H, W, C]``, ``query_y [B, N*Q]``, images ``float32``
in ``[0, 1]``, labels ``int32``.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import tensorflow as tf

from tfmeta.data.augment import augment_images, check_augment
from tfmeta.data.disk import image_gatherer
from tfmeta.data.source import DataError, ImageSource
from tfmeta.settings import setting

# Seed of the test episodes: every evaluation of every run draws the same test tasks.
TEST_SEED = 20_000


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
    """The shape of a task: ``ways`` classes, ``shots`` support and ``queries`` query images each."""

    ways: int = setting(5, "classes per episode", "ways")
    shots: int = setting(1, "support images per class", "shots")
    queries: int = setting(15, "query images per class", "queries")

    def __post_init__(self):
        for name in ("ways", "shots", "queries"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise DataError(f"{name} must be a positive integer, got {value!r}")
        if self.ways < 2:
            raise DataError(f"ways must be at least 2, got {self.ways}")


class EpisodeSampler:
    """Streams meta-batches of N-way K-shot episodes from the classes of one source.

    Classes with fewer than ``shots + queries`` images cannot fill an episode; they are left out
    with a warning that says how many, and too few usable classes is a clear error rather than a
    "sample larger than population" crash deep inside the pipeline.

    ``augment`` (a policy of :mod:`tfmeta.data.augment`, for training streams) distorts every
    image of an episode with that episode's seed. ``group_of`` (``class name -> group``, e.g.
    :func:`parent_folder` for the alphabet of ``alphabet/character``) draws every episode's
    classes from one group (a uniformly drawn group among those with at least ``ways`` classes):
    Omniglot's within-alphabet episodes; with ``within_group`` < 1, that share of the episodes
    (each drawn so with that probability, from its seed), the others from all classes.
    """

    def __init__(self, source: ImageSource, episode: EpisodeConfig, meta_batch: int = 1,
                 seed: int = 0, name: str = "episodes", augment: str | None = None,
                 group_of=None, within_group: float = 1.0):
        if meta_batch < 1:
            raise DataError(f"meta_batch must be positive, got {meta_batch}")
        check_augment(augment)
        need = episode.shots + episode.queries
        usable = source.drop_small_classes(need)
        if usable.num_classes < source.num_classes:
            small = [f"{c} ({n})" for c, n in zip(source.class_names, source.counts)
                     if n < need]
            listed = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5
                                             else "")
            warnings.warn(f"{name}: {source.num_classes - usable.num_classes} of "
                          f"{source.num_classes} classes have fewer than shots + queries = {need} "
                          f"images and are left out: {listed}", stacklevel=2)
        if usable.num_classes < episode.ways:
            raise DataError(
                f"{name}: {episode.ways}-way episodes with {episode.shots} shots + "
                f"{episode.queries} queries need {episode.ways} classes of at least {need} images, "
                f"but only {usable.num_classes} of {source.num_classes} classes have that many")
        self.groups = None
        if group_of is not None:
            names = [group_of(c) for c in usable.class_names]
            kinds = sorted(set(names))
            sizes = np.array([names.count(k) for k in kinds])
            if not np.any(sizes >= episode.ways):
                raise DataError(f"{name}: {episode.ways}-way episodes within one group need a "
                                f"group of {episode.ways} classes; the largest of {len(kinds)} has "
                                f"{sizes.max()}")
            if not 0 <= within_group <= 1:
                raise DataError(f"within_group must be a share in [0, 1], got {within_group}")
            self.groups = np.array([kinds.index(k) for k in names], np.int32)
            self.eligible_groups = np.flatnonzero(sizes >= episode.ways).astype(np.int32)
        self.source = usable
        self.episode = episode
        self.meta_batch = int(meta_batch)
        self.seed = int(seed)
        self.augment = augment
        self.within_group = float(within_group)
        self._images = None

    @property
    def image_shape(self) -> tuple:
        return self.source.image_shape

    def _tensors(self):
        if self._images is None:
            # the images: one eager constant shared by every stream, or reads from disk
            self._images = image_gatherer(self.source.images)
            with tf.init_scope(), tf.device("/cpu:0"):
                self._offsets = tf.constant(self.source.offsets[:-1], tf.int32)
                self._counts = tf.constant(self.source.counts, tf.int32)
        return self._images, self._offsets, self._counts

    def episode_at(self, index):
        """Episode number ``index`` as ``(support_x, support_y, query_x, query_y)`` tensors."""
        gather_images, offsets, counts = self._tensors()
        ways, shots, queries = self.episode.ways, self.episode.shots, self.episode.queries
        per_class = shots + queries
        num_classes = self.source.num_classes
        max_count = int(self.source.counts.max())
        key = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(index, tf.int64)])
        class_key, image_key = tf.unstack(tf.random.experimental.stateless_split(key, 2), axis=0)
        group_key, augment_key = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(key, 1), 2), axis=0)
        # `ways` distinct classes in random order; position in the order is the task's label.
        class_keys = tf.random.stateless_uniform([num_classes], class_key)
        if self.groups is not None:  # only the classes of one group can come first
            eligible = tf.constant(self.eligible_groups)
            group = tf.gather(eligible, tf.random.stateless_uniform(
                [], group_key, 0, len(self.eligible_groups), tf.int32))
            other = tf.cast(tf.constant(self.groups) != group, tf.float32)
            if self.within_group < 1:  # this episode within one group, or from every class
                other *= tf.cast(tf.random.stateless_uniform(
                    [], tf.random.experimental.stateless_fold_in(key, 2)) < self.within_group,
                    tf.float32)
            class_keys += 2.0 * other
        classes = tf.argsort(class_keys)[:ways]
        # `shots + queries` distinct images of each class: sort random keys, padding masked last.
        keys = tf.random.stateless_uniform([ways, max_count], image_key)
        valid = tf.range(max_count)[None, :] < tf.gather(counts, classes)[:, None]
        keys = tf.where(valid, keys, 2.0)
        picks = tf.argsort(keys, axis=1)[:, :per_class] + tf.gather(offsets, classes)[:, None]
        x = tf.cast(gather_images(picks), tf.float32) / 255.0   # [ways, per_class, H, W, C]
        if self.augment:
            x = augment_images(self.augment, x, augment_key)
        labels = tf.tile(tf.range(ways, dtype=tf.int32)[:, None], [1, per_class])
        shape = (-1,) + self.image_shape
        return (tf.reshape(x[:, :shots], shape), tf.reshape(labels[:, :shots], [-1]),
                tf.reshape(x[:, shots:], shape), tf.reshape(labels[:, shots:], [-1]))

    def dataset(self, start: int = 0, num_batches: int | None = None) -> tf.data.Dataset:
        """Meta-batches from meta-batch number ``start``; endless unless ``num_batches`` is given."""
        first = int(start) * self.meta_batch
        stop = None if num_batches is None else first + int(num_batches) * self.meta_batch
        indices = (tf.data.Dataset.range(first, stop) if stop is not None
                   else tf.data.Dataset.range(first, np.iinfo(np.int64).max))
        return (indices.map(self.episode_at, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(self.meta_batch, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE))


def parent_folder(class_name: str) -> str:
    """The folder above a class (``"Greek/character03"`` -> ``"Greek"``; the alphabet of an
    Omniglot character), for ``EpisodeSampler(group_of=...)``."""
    return class_name.rsplit("/", 1)[0] if "/" in class_name else ""


def group_function(spec: str | None):
    """``class name -> group`` of a ``data.class_groups`` setting: ``"parent-folder"`` (the
    folder above a class: the alphabet of ``alphabet/character``), ``"folder:N"`` (its first N
    folders), or a ``.csv`` / ``.txt`` file of ``class,group`` lines (any dataset, TFDS
    included: e.g. CIFAR-100's super-classes); ``None``: no groups."""
    if spec is None:
        return None
    if spec == "parent-folder":
        return parent_folder
    if spec.startswith("folder:") and spec[7:].isdigit() and int(spec[7:]) > 0:
        depth = int(spec[7:])
        return lambda name: "/".join(name.split("@rot")[0].split("/")[:depth])
    if spec.endswith((".csv", ".txt")):
        import csv
        import os

        if not os.path.isfile(spec):
            raise DataError(f"class_groups {spec}: no such file")
        with open(spec, newline="") as f:
            pairs = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
        if any(len(row) != 2 for row in pairs):
            raise DataError(f"class_groups {spec}: expected lines of class,group")
        groups = dict((c.strip(), g.strip()) for c, g in pairs)
        return lambda name: groups.get(name.split("@rot")[0], f"(no group) {name}")
    raise DataError(f"class_groups must be parent-folder, folder:N or a .csv / .txt file of "
                    f"class,group lines, got {spec!r}")
