"""TFDS datasets as :class:`~tfmeta.data.source.ImageSource` s.

``from_tfds("omniglot")`` follows Omniglot's convention: the ``train`` split (the 30 "background"
alphabets) for meta-training and validation, the ``test`` split (the 20 "evaluation" alphabets)
for meta-testing; its classes are named ``Alphabet/characterNN`` as in Omniglot's archives. Any other TFDS image-classification dataset loads with its ``image`` and
``label`` features and is split by class downstream.

TFDS downloads a dataset on first use. Offline, that download cannot succeed; rather than retrying
for minutes, tfmeta checks that the network answers first and fails with one line that says how to
use local data instead.

A split is read as a stream of examples, resized to the training size in chunks as they come
(:func:`stream_split`): memory holds the split at that size, never whole at its own (a dataset of
large photographs trained at 84x84 needs the memory of 84x84 images only). A split whose resized
images would take more than a quarter of the machine's memory (any split, with ``on_disk=True``)
is streamed into a file of the tfmeta cache instead, sorted by class
(:func:`stream_split_to_disk`), and episodes read their images from it
(:mod:`tfmeta.data.disk`); the next run reuses the file.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request

import numpy as np

from tfmeta.data.disk import DiskImages, in_memory_limit
from tfmeta.data.glyphs import default_cache_dir
from tfmeta.data.images import to_uint8_images
from tfmeta.data.source import DataError, ImageSource, from_arrays
from tfmeta.progress import Progress

_PROBE_HOSTS = ("storage.googleapis.com", "github.com")
STREAM_CHUNK = 1024  # examples of one shape resized together


class DatasetUnavailableError(DataError):
    """A dataset that must be downloaded cannot be."""


def _offline_message(name: str) -> str:
    return (f"TFDS dataset '{name}' is not prepared and cannot be downloaded (no network). "
            "Use local data instead: --dataset folder:PATH or zip:PATH (ImageFolder or Omniglot "
            "layout), or tfmeta.data.from_folder / from_zip / from_arrays in Python; or prepare it "
            "on a machine with network and pass its TFDS data_dir.")


def _network_answers(timeout: float = 3.0) -> bool:
    """Whether a download host answers, the way downloads go: through the proxy the
    environment names for HTTPS (``HTTPS_PROXY`` / ``https_proxy``; ``NO_PROXY`` respected), else
    directly."""
    proxies = urllib.request.getproxies()
    for host in _PROBE_HOSTS:
        proxy = proxies.get("https") if not urllib.request.proxy_bypass(host) else None
        target = (host, 443)
        if proxy:
            parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            target = (parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
        try:
            with socket.create_connection(target, timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def tfds_image_shape(name: str, data_dir: str | None = None) -> tuple:
    """``(size, channels)`` of a TFDS dataset's images, from its description (nothing is
    downloaded); images of varying size are one clear error asking for ``--image-size``."""
    import tensorflow_datasets as tfds

    try:
        shape = tfds.builder(name, data_dir=data_dir).info.features["image"].shape
    except Exception as err:  # tfds raises several types for an unknown name
        raise DataError(f"unknown TFDS dataset '{name}' (or one without an 'image' feature): "
                        f"{str(err).splitlines()[0]}") from None
    if shape[0] is None or shape[1] is None:
        raise DataError(f"tfds:{name} has images of varying size: give --image-size (and "
                        "--channels)")
    return max(shape[:2]), 1 if shape[-1] == 1 else 3


def load_tfds_arrays(name: str, split: str, data_dir: str | None = None,
                     image_size: int = 28, channels: int = 1, on_disk: bool | None = None):
    """``(images, labels, label_names)`` of one TFDS split, downloading it if needed: ``uint8``
    images ``[N, image_size, image_size, channels]`` (:func:`stream_split`), labels ``[N]``; or,
    on disk (``on_disk``; ``None``: where the split at this size is larger than
    :func:`~tfmeta.data.disk.in_memory_limit`), :class:`~tfmeta.data.disk.DiskImages` sorted by
    class and their labels (:func:`stream_split_to_disk`)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # pragma: no cover - a dependency of tfmeta
        raise DatasetUnavailableError("tensorflow-datasets is not installed") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # tfds raises several types for an unknown name
        raise DataError(f"unknown TFDS dataset '{name}': {str(err).splitlines()[0]}") from None
    if not builder.is_prepared():
        if not _network_answers():
            raise DatasetUnavailableError(_offline_message(name))
        try:
            builder.download_and_prepare()
        except Exception as err:  # network errors come in many types from many libraries
            raise DatasetUnavailableError(
                f"{_offline_message(name)} ({type(err).__name__}: {str(err).splitlines()[0]})"
            ) from None
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"TFDS dataset '{name}' has no 'image' and 'label' features")
    if split not in builder.info.splits:
        raise DataError(f"TFDS dataset '{name}' has no split '{split}' "
                        f"(it has {', '.join(sorted(builder.info.splits))})")
    names = getattr(features["label"], "names", None)
    if on_disk is None:
        size = builder.info.splits[split].num_examples * image_size * image_size * channels
        on_disk = size > in_memory_limit()
    if on_disk:
        path = os.path.join(default_cache_dir(), "tfds", name, str(builder.info.version),
                            f"{split}-{image_size}x{image_size}x{channels}.npy")
        return (*stream_split_to_disk(builder, split, image_size, channels, path), names)
    images, labels = stream_split(builder, split, image_size, channels)
    return images, labels, names


def _resized_chunks(builder, split: str, image_size: int, channels: int, what: str):
    """``(uint8 images, labels)`` of a prepared TFDS builder's split, read one example at a time
    and resized (:func:`~tfmeta.data.images.to_uint8_images`, as every image tfmeta trains on) in
    chunks of up to ``STREAM_CHUNK`` examples of one shape; reports its progress as ``what``."""
    import tensorflow_datasets as tfds

    total = builder.info.splits[split].num_examples
    shown = Progress(total, what)
    pending, labels, done = [], [], 0
    examples = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    for image, label in tfds.as_numpy(examples):
        if pending and (image.shape != pending[0].shape or len(pending) == STREAM_CHUNK):
            yield to_uint8_images(np.stack(pending), image_size, channels), labels
            pending, labels = [], []
        pending.append(image)
        labels.append(label)
        done += 1
        if done % STREAM_CHUNK == 0:
            shown.update(done)
    if pending:
        yield to_uint8_images(np.stack(pending), image_size, channels), labels
    shown.update(total)


def stream_split(builder, split: str, image_size: int, channels: int):
    """``(images, labels)`` of a prepared TFDS builder's split, resized in chunks as they come
    (:func:`_resized_chunks`), so that only the resized split and one chunk are in memory."""
    total = builder.info.splits[split].num_examples
    chunks, labels = [], []
    for images, chunk_labels in _resized_chunks(builder, split, image_size, channels,
                                                f"reading {total} images of {builder.name} "
                                                f"{split}"):
        chunks.append(images)
        labels.extend(chunk_labels)
    if not labels:
        raise DataError(f"TFDS dataset '{builder.name}' split '{split}' has no examples")
    return np.concatenate(chunks), np.asarray(labels)


def stream_split_to_disk(builder, split: str, image_size: int, channels: int, path: str):
    """``(DiskImages, labels)`` of a prepared TFDS builder's split, streamed as
    :func:`stream_split` does into the ``.npy`` file ``path``, sorted by class (labels beside it
    in ``path[:-4] + ".labels.npy"``); a file already there is reused. Memory holds one chunk:
    the examples are written in the order they come, then copied in class order, a chunk at a
    time; the file takes its name only once complete."""
    labels_path = path[:-len(".npy")] + ".labels.npy"
    if os.path.isfile(path) and os.path.isfile(labels_path):
        return DiskImages(path), np.load(labels_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    total = builder.info.splits[split].num_examples
    if not total:
        raise DataError(f"TFDS dataset '{builder.name}' split '{split}' has no examples")
    shape = (total, image_size, image_size, channels)
    arrived_path, sorted_path = f"{path}.{os.getpid()}.arrived.npy", f"{path}.{os.getpid()}.npy"
    try:
        arrived = np.lib.format.open_memmap(arrived_path, "w+", np.uint8, shape)
        labels = []
        for images, chunk_labels in _resized_chunks(builder, split, image_size, channels,
                                                    f"writing {total} images of {builder.name} "
                                                    f"{split} to {path}"):
            if len(labels) + len(images) > total:
                raise DataError(f"TFDS dataset '{builder.name}' split '{split}' has more than "
                                f"the {total} examples its info gives")
            arrived[len(labels):len(labels) + len(images)] = images
            labels.extend(chunk_labels)
        if len(labels) != total:
            raise DataError(f"TFDS dataset '{builder.name}' split '{split}' gave {len(labels)} "
                            f"examples, its info {total}")
        arrived.flush()
        arrived = DiskImages(arrived_path)  # reads rows in file order, returns them as asked
        labels = np.asarray(labels)
        order = np.argsort(labels, kind="stable")
        in_order = np.lib.format.open_memmap(sorted_path, "w+", np.uint8, shape)
        for start in range(0, total, STREAM_CHUNK):
            in_order[start:start + STREAM_CHUNK] = arrived.read(order[start:start + STREAM_CHUNK])
        in_order.flush()
        in_order = arrived = None  # closes both maps (the file is renamed, the other removed)
        np.save(labels_path, labels[order])
        os.replace(sorted_path, path)
    finally:
        for leftover in (arrived_path, sorted_path):
            if os.path.exists(leftover):
                os.remove(leftover)
    return DiskImages(path), np.load(labels_path)


def from_tfds(name: str, split: str = "train", image_size: int = 28, channels: int = 1,
              data_dir: str | None = None, on_disk: bool | None = None) -> ImageSource:
    """One split of a TFDS image-classification dataset as a source (in memory, or on disk:
    :func:`load_tfds_arrays`)."""
    images, labels, names = load_tfds_arrays(name, split, data_dir, image_size, channels,
                                             on_disk=on_disk)
    if isinstance(images, DiskImages):  # sorted by class already
        values, counts = np.unique(labels, return_counts=True)
        source = ImageSource(images, tuple(str(v) for v in values),
                             np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    else:
        source = from_arrays(images, labels, image_size, channels)
    if names and name == "omniglot":
        names = [omniglot_class_name(n) for n in names]
    if names:
        source = ImageSource(source.images, tuple(names[int(v)] for v in source.class_names),
                             source.offsets)
    return source


def omniglot_class_name(label_name: str) -> str:
    """TFDS Omniglot's label name (``Greek_0``: alphabet, 0-based character) as the archives'
    class name (``Greek/character01``), the name class-split files use."""
    alphabet, _, index = label_name.rpartition("_")
    if not alphabet or not index.isdigit():
        return label_name
    return f"{alphabet}/character{int(index) + 1:02d}"


def omniglot(image_size: int = 28, channels: int = 1, data_dir: str | None = None):
    """TFDS Omniglot as ``(background, evaluation)`` sources (Lake et al., 2015)."""
    return (from_tfds("omniglot", "train", image_size, channels, data_dir),
            from_tfds("omniglot", "test", image_size, channels, data_dir))
