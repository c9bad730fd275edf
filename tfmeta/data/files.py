"""Image sources from files: a folder (ImageFolder or Omniglot layout), a zip archive (read in
place, checked against zip bombs), a list of files, each image decoded and resized to the
training size (:class:`tfmeta.data.source.ImageSource`)."""

from __future__ import annotations

import os
import zipfile
from typing import Iterable, Sequence

import numpy as np

from tfmeta.data.images import to_uint8_images
from tfmeta.data.source import ImageSource
from tfmeta.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Limits against decompression bombs (an archive or image that expands beyond memory):
MAX_ARCHIVE_BYTES = 8 << 30   # the members of one zip archive, uncompressed
MAX_COMPRESSION_RATIO = 1000  # a member larger than 1 MB may expand at most this much
MAX_IMAGE_PIXELS = 100_000_000  # height x width of one image (10,000 x 10,000)
PROGRESS_FILES = 2000  # decoding at least this many files reports its progress


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


def group_by_class(paths: Iterable[str], what: str, strip_top: bool = False,
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
    grouped = group_by_class(found, path, skipped=skipped)

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
    grouped = group_by_class(found, path)
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
        grouped = group_by_class(check_archive(path, archive), path, strip_top=True,
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
