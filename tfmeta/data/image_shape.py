"""The image size and channels of a dataset where a run leaves them out: a named dataset's
standard size, a folder's or archive's own images, a TFDS dataset's declared shape."""

from __future__ import annotations

import dataclasses
import os
import zipfile

import numpy as np

from tfmeta.data.files import check_archive, group_by_class, image_dimensions
from tfmeta.data.tfds_source import tfds_image_shape
from tfmeta.errors import DataError

# The size the field uses for the named datasets (Omniglot's 105-pixel characters at 28, as
# Santoro et al. 2016 and Vinyals et al. 2016; mini-ImageNet at 84, as Ravi & Larochelle 2017).
STANDARD_SHAPES = {"glyphs": (28, 1), "omniglot": (28, 1), "omniglot-small": (28, 1),
                   "mini-imagenet": (84, 3)}


def with_image_shape(config, smallest: int | None = None) -> tuple:
    """``(config, note)``: ``config`` (a :class:`tfmeta.data.DataConfig`) with ``image_size``
    and ``channels`` set where it leaves them out: a named dataset's standard size, a folder's or
    archive's own (the size most of its images have; colour if any image is), a TFDS dataset's
    declared shape; raised to ``smallest`` (a backbone's smallest input) if smaller. ``note``
    says where each came from ("" when both were given)."""
    if config.image_size is not None and config.channels is not None:
        return config, ""
    kind, _, arg = config.dataset.partition(":")
    if kind in STANDARD_SHAPES:
        (size, channels), where = STANDARD_SHAPES[kind], f"{kind}'s standard size"
    elif kind in ("folder", "zip"):
        (size, channels), where = natural_shape(arg.split(",")[0]), "from the data"
    else:
        (size, channels), where = tfds_image_shape(arg, config.data_dir), "from the data"
    if config.image_size is None and smallest and size < smallest:
        size, where = smallest, f"{where}, raised to the backbone's smallest input"
    given = dataclasses.replace(config, image_size=config.image_size or size,
                                channels=config.channels or channels)
    return given, (f"images {given.image_size}x{given.image_size}x{given.channels} ({where}; "
                   "--image-size / --channels to choose)")


def natural_shape(path: str, sample: int = 16) -> tuple:
    """``(size, channels)`` of the images of a folder or ``.zip`` archive, from up to ``sample``
    of its files spread over its classes: the largest side most of them have, and 3 channels if
    any is in colour (else 1). Nothing else is decoded."""
    import tensorflow as tf

    if os.path.isdir(path):
        paths = [os.path.join(root, name) for root, _, names in sorted(os.walk(path))
                 for name in sorted(names)]
        grouped, read = group_by_class(paths, path, skipped=[]), _read_file
        archive = None
    elif os.path.isfile(path) and zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        grouped, read = group_by_class(check_archive(path, archive), path, skipped=[]), \
            archive.read
    else:
        raise DataError(f"{path}: no such folder or zip archive")
    try:
        files = [f for members in grouped.values() for f in members[:1]]
        files = files[::max(1, len(files) // sample)][:sample]
        sizes, channels = [], 1
        for name in files:
            data = read(name)
            dimensions = image_dimensions(data)
            try:
                decoded = tf.io.decode_image(data, expand_animations=False)
            except (tf.errors.InvalidArgumentError, ValueError):
                continue  # a bad file: loading the data says which
            sizes.append(max(dimensions or decoded.shape[:2]))
            channels = 3 if decoded.shape[-1] in (3, 4) else channels
    finally:
        if archive is not None:
            archive.close()
    if not sizes:
        raise DataError(f"{path}: no readable image to take the image size from; give "
                        "--image-size and --channels")
    return int(np.median(sizes)), channels


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
