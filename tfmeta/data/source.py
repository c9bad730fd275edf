"""Class-indexed image sources: the first layer of the data flow.

An :class:`ImageSource` holds every image of a dataset in memory as ``uint8`` pixels of one size,
grouped by class, plus the class names. Everything downstream (class splits, rotation
augmentation, episode sampling) works on sources, so a dataset only has to be turned into one.

Loaders:

* :func:`from_arrays` -- numpy ``images`` and ``labels``;
* :func:`tfmeta.data.files.from_folder` -- a folder in ImageFolder layout (``class/*.png``) or
  Omniglot layout (``alphabet/character/*.png``): every folder that directly holds images is a
  class, named by its path relative to the root;
* :func:`tfmeta.data.files.from_zip` -- the same layouts read straight from a ``.zip`` archive;
* :func:`tfmeta.data.tfds_source.from_tfds` -- a TFDS image-classification dataset.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from tfmeta.data.images import (ALPHA_BACKGROUND, POLARITIES, dark_on_light,  # noqa: F401
                                other_polarity, polarity, to_uint8_images)  # (re-exported)
from tfmeta.errors import DataError  # noqa: F401  (re-exported: tfmeta.data.source.DataError)

@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Images grouped by class.

    Attributes:
        images: ``uint8`` array ``[num_images, height, width, channels]``, sorted by class, in
            memory, or :class:`~tfmeta.data.disk.DiskImages` (the same, read from a file as
            episodes need them).
        class_names: one name per class; class ``c`` owns ``images[offsets[c]:offsets[c+1]]``.
        offsets: ``int64`` array ``[num_classes + 1]`` of class boundaries into ``images``.
    """

    images: np.ndarray
    class_names: tuple
    offsets: np.ndarray

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(
                f"images must be uint8 [N, H, W, C], got {self.images.dtype} {self.images.shape}")
        if len(self.offsets) != len(self.class_names) + 1 or self.offsets[-1] != len(self.images):
            raise DataError("offsets do not match class_names and images")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    @property
    def counts(self) -> np.ndarray:
        """Images per class."""
        return np.diff(self.offsets)

    def class_images(self, c: int) -> np.ndarray:
        return self.images[self.offsets[c]:self.offsets[c + 1]]

    def labels(self) -> np.ndarray:
        """Class index of every image, aligned with ``images``."""
        return np.repeat(np.arange(self.num_classes), self.counts)

    def subset(self, classes: Sequence[int]) -> "ImageSource":
        """The source restricted to ``classes`` (in that order)."""
        classes = [int(c) for c in classes]
        parts = [np.arange(self.offsets[c], self.offsets[c + 1]) for c in classes]
        counts = [len(p) for p in parts]
        positions = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        images = self.images[positions]  # a copy in memory; on disk, a selection of rows
        return ImageSource(images, tuple(self.class_names[c] for c in classes),
                           np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def split(self, fractions: Sequence[float], seed: int = 0) -> list:
        """Disjoint class splits, e.g. ``split((0.6, 0.2, 0.2))`` -> ``[train, val, test]``.

        Classes are shuffled by ``seed`` (the same seed always gives the same split) and cut by
        ``fractions``, which are normalised to sum to one. A split never shares a class with another.
        """
        fractions = np.asarray(fractions, np.float64)
        if fractions.ndim != 1 or len(fractions) == 0 or np.any(fractions < 0) or fractions.sum() <= 0:
            raise DataError(f"split fractions must be non-negative and not all zero, got {fractions}")
        order = np.random.default_rng(seed).permutation(self.num_classes)
        cuts = np.round(np.cumsum(fractions / fractions.sum()) * self.num_classes).astype(int)
        starts = np.concatenate([[0], cuts[:-1]])
        return [self.subset(sorted(order[a:b])) for a, b in zip(starts, cuts)]

    def with_rotations(self, rotations: Iterable[int] = (0, 1, 2, 3)) -> "ImageSource":
        """Each class rotated by ``k * 90`` degrees for every ``k`` becomes a class of its own.

        This is the Omniglot augmentation of Santoro et al. (2016) and Vinyals et al. (2016). Apply
        it to a split, after splitting, so that rotations of a test class never reach training.
        The rotated source is in memory (a source on disk is read).
        """
        rotations = list(rotations)
        if not rotations or any(k not in (0, 1, 2, 3) for k in rotations):
            raise DataError(f"rotations must be a non-empty subset of 0..3, got {rotations}")
        if any(k % 2 for k in rotations) and self.image_shape[0] != self.image_shape[1]:
            raise DataError("90-degree rotations need square images")
        parts, names = [], []
        for c, name in enumerate(self.class_names):
            for k in rotations:
                parts.append(np.rot90(self.class_images(c), k, axes=(1, 2)))
                names.append(name if k == 0 else f"{name}@rot{90 * k}")
        counts = [len(p) for p in parts]
        return ImageSource(np.ascontiguousarray(np.concatenate(parts)), tuple(names),
                           np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def drop_small_classes(self, min_images: int) -> "ImageSource":
        """The classes with at least ``min_images`` images (an episode needs shots + queries)."""
        keep = [c for c in range(self.num_classes) if self.counts[c] >= min_images]
        return self if len(keep) == self.num_classes else self.subset(keep)


def merge(sources: Sequence[ImageSource]) -> ImageSource:
    """One source holding the classes of every source; classes of the same name are merged and
    identical images of the same class (the same file in two archives) are kept once."""
    if not sources:
        raise DataError("nothing to merge")
    shapes = {s.image_shape for s in sources}
    if len(shapes) != 1:
        raise DataError(f"cannot merge sources of different image shapes {sorted(shapes)}")
    by_name: dict = {}
    for s in sources:
        for c, name in enumerate(s.class_names):
            by_name.setdefault(name, []).append(s.class_images(c))
    names = sorted(by_name)
    parts = []
    for name in names:
        images = np.concatenate(by_name[name])
        _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
        parts.append(images[np.sort(first)])
    counts = [len(p) for p in parts]
    return ImageSource(np.concatenate(parts), tuple(names),
                       np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


# ----------------------------------------------------------------------------------------------
# Preprocessing shared by training, prediction and export.


def from_arrays(images, labels, image_size: int | None = None, channels: int | None = None,
                class_names: Sequence[str] | None = None) -> ImageSource:
    """A source from numpy ``images`` ``[N, H, W(, C)]`` and integer or string ``labels`` ``[N]``."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    check_arrays(images, labels)
    if labels.dtype.kind == "f":
        labels = labels.astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise DataError("no images")
    if images.ndim == 3:
        images = images[..., None]
    image_size = image_size or images.shape[1]
    channels = channels or (1 if images.shape[-1] == 1 else 3)
    images = to_uint8_images(images, image_size, channels)
    values, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(values))
    names = tuple(str(v) for v in values) if class_names is None else tuple(class_names)
    if len(names) != len(values):
        raise DataError(f"{len(names)} class names for {len(values)} distinct labels")
    return ImageSource(images[order], names,
                       np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def check_arrays(images: np.ndarray, labels: np.ndarray) -> None:
    """One :class:`DataError` line for arrays ``from_arrays`` cannot take: images not
    ``[N, H, W]`` / ``[N, H, W, C]`` (C 1 to 4) numbers, NaN or Inf pixels, labels that are not
    one integer or string per image."""
    if images.ndim not in (3, 4) or (images.ndim == 4 and not 1 <= images.shape[-1] <= 4):
        raise DataError(f"images must be [N, H, W] or [N, H, W, C] with C = 1 to 4, got shape "
                        f"{images.shape}")
    if images.dtype.kind not in "uif" and images.dtype != np.bool_:
        raise DataError(f"images must be numbers (uint8 0-255 or floats), got dtype {images.dtype}")
    if images.dtype.kind == "f" and not np.all(np.isfinite(images)):
        bad = np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))
        raise DataError(f"{len(bad)} images hold NaN or Inf pixels (the first: index {bad[0]}); "
                        "fix or drop them")
    if labels.ndim != 1:
        raise DataError(f"labels must be one per image ([N]), got shape {labels.shape}")
    if labels.dtype.kind == "f" and not np.all(np.mod(labels, 1) == 0):
        raise DataError("labels must be integers or strings, got non-integer numbers such as "
                        f"{labels[np.mod(labels, 1) != 0][0]}")
    if labels.dtype.kind not in "iufUSO":
        raise DataError(f"labels must be integers or strings, got dtype {labels.dtype}")
