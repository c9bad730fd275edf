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
large photographs trained at 84x84 needs the memory of 84x84 images only).
"""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request

import numpy as np

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


def load_tfds_arrays(name: str, split: str, data_dir: str | None = None,
                     image_size: int = 28, channels: int = 1):
    """``(images, labels, label_names)`` of one TFDS split, downloading it if needed: ``uint8``
    images ``[N, image_size, image_size, channels]`` (:func:`stream_split`), labels ``[N]``."""
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
    images, labels = stream_split(builder, split, image_size, channels)
    names = getattr(features["label"], "names", None)
    return images, labels, names


def stream_split(builder, split: str, image_size: int, channels: int):
    """``(images, labels)`` of a prepared TFDS builder's split, read one example at a time and
    resized (:func:`~tfmeta.data.images.to_uint8_images`, as every image tfmeta trains on) in
    chunks of up to ``STREAM_CHUNK`` examples of one shape, so that only the resized split and
    one chunk are in memory; reports its progress (:mod:`tfmeta.progress`)."""
    import tensorflow_datasets as tfds

    total = builder.info.splits[split].num_examples
    shown = Progress(total, f"reading {total} images of {builder.name} {split}")
    chunks, labels, pending = [], [], []

    def flush():
        if pending:
            chunks.append(to_uint8_images(np.stack(pending), image_size, channels))
            pending.clear()

    examples = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    for image, label in tfds.as_numpy(examples):
        if pending and (image.shape != pending[0].shape or len(pending) == STREAM_CHUNK):
            flush()
        pending.append(image)
        labels.append(label)
        if len(labels) % STREAM_CHUNK == 0:
            shown.update(len(labels))
    flush()
    shown.update(total)
    if not labels:
        raise DataError(f"TFDS dataset '{builder.name}' split '{split}' has no examples")
    return np.concatenate(chunks), np.asarray(labels)


def from_tfds(name: str, split: str = "train", image_size: int = 28, channels: int = 1,
              data_dir: str | None = None) -> ImageSource:
    """One split of a TFDS image-classification dataset as a source."""
    images, labels, names = load_tfds_arrays(name, split, data_dir, image_size, channels)
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
