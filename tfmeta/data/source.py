"""Class-indexed image sources: the first layer of the data flow.

An :class:`ImageSource` holds every image of a dataset in memory as ``uint8`` pixels of one size,
grouped by class, plus the class names. Everything downstream (class splits, rotation
augmentation, episode sampling) works on sources, so a dataset only has to be turned into one.

Loaders:

* :func:`from_arrays` -- numpy ``images`` and ``labels``;
* :func:`from_folder` -- a folder in ImageFolder layout (``class/*.png``) or Omniglot layout
  (``alphabet/character/*.png``): every folder that directly holds images is a class, named by its
  path relative to the root;
* :func:`from_zip` -- the same layouts read straight from a ``.zip`` archive;
* :func:`tfmeta.data.tfds_source.from_tfds` -- a TFDS image-classification dataset.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from typing import Iterable, Sequence

import numpy as np

from tfmeta.data.images import (ALPHA_BACKGROUND, POLARITIES, dark_on_light,  # noqa: F401
                                other_polarity, polarity, to_uint8_images)  # (re-exported)
from tfmeta.errors import DataError  # noqa: F401  (re-exported: tfmeta.data.source.DataError)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Limits against decompression bombs (an archive or image that expands beyond memory):
MAX_ARCHIVE_BYTES = 8 << 30   # the members of one zip archive, uncompressed
MAX_COMPRESSION_RATIO = 1000  # a member larger than 1 MB may expand at most this much
MAX_IMAGE_PIXELS = 100_000_000  # height x width of one image (10,000 x 10,000)
PROGRESS_FILES = 2000  # decoding at least this many files reports its progress


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


def _decode_files(named_bytes, image_size: int, channels: int,
                  same_size: bool = False, skipped: list | None = None) -> np.ndarray:
    """Decode and preprocess encoded images; a file that is not a readable image is an error, and
    so are images of different heights and widths if ``same_size``. With a ``skipped`` list,
    unreadable files are left out instead and appended to it as ``(name, reason)``."""
    import tensorflow as tf

    from tfmeta.progress import Progress

    named_bytes = list(named_bytes)
    shown = (Progress(len(named_bytes), f"decoding {len(named_bytes)} images")
             if len(named_bytes) >= PROGRESS_FILES else None)
    decoded, kept = [], []
    for done, (name, data) in enumerate(named_bytes, 1):
        if shown is not None and done % 100 == 0:
            shown.update(done)
        try:
            check_image_size(name, data)
            try:
                image = tf.io.decode_image(data, channels=0, expand_animations=False).numpy()
            except (tf.errors.InvalidArgumentError, ValueError) as err:
                raise DataError(f"{name}: not a readable image "
                                f"({str(err).splitlines()[0]})") from None
        except DataError as err:
            if skipped is None:
                raise
            skipped.append((name, str(err)))
            continue
        decoded.append(image)
        kept.append((name, data))
    if shown is not None:
        shown.update(len(named_bytes))
    named_bytes = kept
    sizes = {image.shape[:2]: name for (name, _), image in zip(named_bytes, decoded)}
    if same_size and len(sizes) > 1:
        (a, name_a), (b, name_b) = list(sizes.items())[:2]
        raise DataError(f"images differ in size: {name_a} is {a[0]}x{a[1]}, {name_b} is "
                        f"{b[0]}x{b[1]}; make them one size (or allow resizing: tfmeta adapt "
                        "--resize)")
    out = np.zeros((len(decoded), image_size, image_size, channels), np.uint8)
    by_shape: dict = {}
    for i, image in enumerate(decoded):
        by_shape.setdefault(image.shape, []).append(i)
    for indices in by_shape.values():  # resize every image size in one batch
        out[indices] = to_uint8_images(np.stack([decoded[i] for i in indices]), image_size, channels)
    return out


def image_dimensions(data: bytes):
    """``(height, width)`` from an encoded image's header (PNG, GIF, BMP, JPEG) without decoding
    it, or ``None`` when the header is not one of these."""
    import struct

    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return height, width
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(height), abs(width)
    if data[:2] == b"\xff\xd8":
        import tensorflow as tf

        try:
            height, width, _ = tf.image.extract_jpeg_shape(data).numpy()
        except (tf.errors.InvalidArgumentError, ValueError):
            return None  # left to the decoder's error
        return int(height), int(width)
    return None


def check_image_size(name: str, data: bytes, max_pixels: int | None = None) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` (default
    ``MAX_IMAGE_PIXELS``) pixels, before decoding it (a small file can declare a gigapixel
    image)."""
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    size = image_dimensions(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise DataError(f"{name}: the image is {size[1]}x{size[0]} pixels, more than the limit "
                        f"of {max_pixels:,}; resize it first (decompression-bomb guard)")


def check_archive(path: str, archive: zipfile.ZipFile, max_bytes: int | None = None) -> list:
    """The file members of a zip archive, refusing (one line) members whose path leaves the
    archive's root (absolute, ``..``: zip-slip), symbolic links, and archives that would
    expand beyond ``max_bytes`` or members compressed more than ``MAX_COMPRESSION_RATIO`` times
    (decompression bombs). Nothing is extracted to disk; this keeps reads bounded and names
    honest."""
    members, total = [], 0
    max_bytes = MAX_ARCHIVE_BYTES if max_bytes is None else max_bytes
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise DataError(f"{path}: member '{info.filename}' points outside the archive "
                            "(absolute path or '..'); refusing the archive")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise DataError(f"{path}: member '{info.filename}' is a symbolic link; archives "
                            "may hold only folders and image files")
        if info.is_dir():
            continue
        total += info.file_size
        if info.file_size > 1 << 20 and info.file_size > MAX_COMPRESSION_RATIO * max(
                info.compress_size, 1):
            raise DataError(f"{path}: member '{info.filename}' expands {info.compress_size:,} "
                            f"-> {info.file_size:,} bytes; refusing a likely decompression bomb")
        if total > max_bytes:
            raise DataError(f"{path}: the archive expands to more than {max_bytes:,} bytes; "
                            "refusing a likely decompression bomb (unpack it and use the folder)")
        members.append(info.filename)
    return members


def _group_by_class(paths: Iterable[str], what: str, strip_top: bool = False,
                    skipped: list | None = None) -> dict:
    """``{class_name: [path, ...]}``: a class is a folder that directly holds image files.

    Files with other extensions inside a class folder are an error (with a ``skipped`` list:
    left out and appended to it); hidden files and files beside class folders (a README, a
    LICENSE) are ignored.
    """
    files: dict = {}
    for path in paths:
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        if not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        folder = "/".join(parts[:-1])
        files.setdefault(folder, []).append(path)
    classes = {}
    for folder, members in files.items():
        images = [p for p in members if p.lower().endswith(IMAGE_EXTENSIONS)]
        if not images:
            continue
        others = sorted(set(members) - set(images))
        if others and skipped is not None:
            skipped.extend((other, f"{other} is not an image") for other in others)
        elif others:
            raise DataError(f"{what}: {others[0]} is not an image "
                            f"(class folders may hold only {', '.join(IMAGE_EXTENSIONS)})")
        classes[folder] = sorted(images)
    if not classes:
        raise DataError(f"{what}: no class folders with images ({', '.join(IMAGE_EXTENSIONS)}) "
                        "found; expected class/*.png or alphabet/character/*.png")
    if strip_top:  # an archive of one folder: its name is not part of the class names
        tops = {name.split("/")[0] for name in classes}
        if len(tops) == 1 and all("/" in name for name in classes):
            classes = {name.split("/", 1)[1]: files for name, files in classes.items()}
    return dict(sorted(classes.items()))


def from_files(grouped: dict, read, image_size: int, channels: int,
               same_size: bool = False, skipped: list | None = None) -> ImageSource:
    """A source from ``{class_name: [file, ...]}``, each file's bytes given by ``read(file)``;
    with a ``skipped`` list, unreadable images are left out and listed in it."""
    names = sorted(grouped)
    files = [(p, read(p)) for name in names for p in grouped[name]]
    before = len(skipped) if skipped is not None else 0
    images = _decode_files(files, image_size, channels, same_size, skipped)
    bad = {name for name, _ in (skipped or [])[before:]}
    counts = [sum(p not in bad for p in grouped[name]) for name in names]
    names, counts = [n for n, c in zip(names, counts) if c], [c for c in counts if c]
    if not names:
        raise DataError("no readable images")
    return ImageSource(images, tuple(names),
                       np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def _report_skipped(path: str, skipped: list) -> None:
    if skipped:
        import warnings

        name, reason = skipped[0]
        warnings.warn(f"{path}: skipped {len(skipped)} bad files (first: {reason})", stacklevel=3)


def from_folder(path: str, image_size: int = 28, channels: int = 1,
                skip_bad_files: bool = False) -> ImageSource:
    """A source from a folder in ImageFolder (``class/*.png``) or Omniglot
    (``alphabet/character/*.png``) layout; every image is resized to ``image_size``. A file that
    is not a readable image is an error naming it, or, with ``skip_bad_files``, left out and
    counted in a warning."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such folder")
    found, empty = [], []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        if not dirs and not names and root != path:
            empty.append(os.path.relpath(root, path))
        for name in names:
            found.append(os.path.relpath(os.path.join(root, name), path))
    if empty:
        import warnings

        warnings.warn(f"{path}: {len(empty)} class folders hold no images and are left out: "
                      f"{', '.join(sorted(empty)[:5])}", stacklevel=2)
    skipped = [] if skip_bad_files else None
    grouped = _group_by_class(found, path, skipped=skipped)

    def read(rel):
        with open(os.path.join(path, rel), "rb") as f:
            return f.read()

    source = from_files(grouped, read, image_size, channels, skipped=skipped)
    _report_skipped(path, skipped)
    return source


def support_from_folder(path: str, image_size: int = 28, channels: int = 1,
                        same_size: bool = True) -> ImageSource:
    """The labelled images of new classes (``path/<class>/*.png``) to adapt a model to, checked
    strictly before anything is written: at least two classes, no class folder without images,
    no non-image file in a class folder, and (unless ``same_size=False``) one image size."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such folder")
    found = []
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if entry.startswith(".") or not os.path.isdir(full):
            if entry.lower().endswith(IMAGE_EXTENSIONS) and not entry.startswith("."):
                raise DataError(f"{path}: {entry} lies beside the class folders; put every image "
                                "in the folder of its class (SUPPORT/<class>/image.png)")
            continue
        files = [os.path.relpath(os.path.join(root, name), path)
                 for root, _, names in os.walk(full) for name in names]
        if not any(f.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(f).startswith(".")
                   for f in files):
            raise DataError(f"{full}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        found.extend(files)
    grouped = _group_by_class(found, path)
    if len(grouped) < 2:
        raise DataError(f"{path}: a support set needs at least 2 class folders, found "
                        f"{len(grouped)} ({', '.join(grouped) or 'none'})")

    def read(rel):
        with open(os.path.join(path, rel), "rb") as f:
            return f.read()

    return from_files(grouped, read, image_size, channels, same_size)


def from_zip(path: str, image_size: int = 28, channels: int = 1,
             skip_bad_files: bool = False) -> ImageSource:
    """A source from a ``.zip`` archive of a folder in ImageFolder or Omniglot layout (bad files
    as in :func:`from_folder`; an unsafe archive is always an error: :func:`check_archive`)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not a zip archive") from None
    skipped = [] if skip_bad_files else None
    with archive:
        grouped = _group_by_class(check_archive(path, archive), path, strip_top=True,
                                  skipped=skipped)
        try:
            source = from_files(grouped, archive.read, image_size, channels, skipped=skipped)
        except (zipfile.BadZipFile, EOFError, OSError) as err:  # CRC, truncated, lying sizes
            raise DataError(f"{path}: a damaged zip archive ({err})") from None
    _report_skipped(path, skipped)
    return source


def image_files(path: str) -> list:
    """The image files of ``path``: the file itself, or every image under a folder (sorted)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such file or folder")
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names
                   if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    if not files:
        raise DataError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_image_files(paths: Sequence[str], image_size: int, channels: int) -> np.ndarray:
    """Image files -> ``uint8 [N, image_size, image_size, channels]``, preprocessed as in training."""
    named = []
    for path in paths:
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file")
        with open(path, "rb") as f:
            named.append((path, f.read()))
    return _decode_files(named, image_size, channels)
