"""Images kept on disk: a source larger than memory, read a few images at a time.

:class:`DiskImages` stands where an :class:`~tfmeta.data.source.ImageSource` holds its ``uint8``
array: a ``.npy`` file of images sorted by class, opened memory-mapped, seen through a selection
of its rows. Splitting and subsetting a source select rows (no image is read); the episode sampler
reads each episode's images from the file as it draws them (:func:`image_gatherer`), so memory
holds the episodes in flight, and the operating system's page cache whatever it can keep.
Operations that need the images themselves (rotations, merging) read them into memory.

A TFDS split larger than a quarter of the machine's memory at the training size goes here
(:func:`tfmeta.data.tfds_source.from_tfds`, ``data.on_disk``).
"""

from __future__ import annotations

import os

import numpy as np

SAMPLE = 10_000  # images a whole-source measurement (the polarity) looks at


class DiskImages:
    """``uint8`` images ``[len(rows), H, W, C]``: rows ``rows`` of the ``.npy`` file ``path``."""

    def __init__(self, path: str, rows=None):
        self.path = path
        self._array = np.load(path, mmap_mode="r")
        self.rows = (np.arange(len(self._array), dtype=np.int64) if rows is None
                     else np.asarray(rows, np.int64))

    @property
    def shape(self) -> tuple:
        return (len(self.rows),) + self._array.shape[1:]

    @property
    def dtype(self):
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return self._array.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        """A slice or an index array: a selection (nothing read); an integer: that image."""
        if isinstance(key, (int, np.integer)):
            return np.asarray(self._array[self.rows[key]])
        return DiskImages(self.path, self.rows[key])

    def read(self, positions) -> np.ndarray:
        """The images at ``positions`` (any shape of indices into this selection), read from disk
        in file order: ``positions.shape + (H, W, C)``."""
        positions = np.asarray(positions, np.int64)
        rows = self.rows[positions.ravel()]
        order = np.argsort(rows, kind="stable")
        images = np.empty((len(rows),) + self._array.shape[1:], self._array.dtype)
        images[order] = self._array[rows[order]]
        return images.reshape(positions.shape + self._array.shape[1:])

    def __array__(self, dtype=None, copy=None):
        images = self.read(np.arange(len(self.rows)))
        return images if dtype is None else images.astype(dtype)

    def sample(self, limit: int = SAMPLE) -> np.ndarray:
        """At most ``limit`` images, evenly spaced over the selection (a fixed choice)."""
        if len(self.rows) <= limit:
            return np.asarray(self)
        return self.read(np.linspace(0, len(self.rows) - 1, limit).astype(np.int64))


def sample_images(images):
    """What a whole-source measurement looks at: every image in memory, a fixed sample of at
    most ``SAMPLE`` on disk."""
    return images.sample() if isinstance(images, DiskImages) else images


def image_gatherer(images):
    """A function ``picks -> uint8 images`` for ``tf.data``: a gather from one constant for
    images in memory, a read from the file for :class:`DiskImages`."""
    import tensorflow as tf

    if not isinstance(images, DiskImages):
        with tf.init_scope(), tf.device("/cpu:0"):  # an eager constant, shared by every stream
            table = tf.constant(images)
        return lambda picks: tf.gather(table, picks)
    image_shape = images.shape[1:]

    def gather(picks):
        read = tf.numpy_function(images.read, [picks], tf.uint8, stateful=False)
        return tf.ensure_shape(read, picks.shape.concatenate(image_shape))

    return gather


def in_memory_limit() -> int:
    """A quarter of the machine's memory, in bytes (4 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30
