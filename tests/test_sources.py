import os
import time
import zipfile

import numpy as np
import pytest

from conftest import SHARED_OMNIGLOT
from tfmeta.data import (DataError, DatasetUnavailableError, from_arrays, from_folder, from_tfds,
                         from_zip, merge)
from tfmeta.data import tfds_source


def _write_png(path, array):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def _folder(root, layout="imagefolder", classes=3, per_class=4, size=20):
    rng = np.random.default_rng(0)
    arrays = {}
    for c in range(classes):
        name = f"alpha/char{c}" if layout == "omniglot" else f"class{c}"
        for i in range(per_class):
            a = rng.integers(0, 256, (size, size), dtype=np.uint8)
            _write_png(os.path.join(root, name, f"{i}.png"), a)
            arrays.setdefault(name, []).append(a)
    return arrays


def test_from_arrays_groups_by_label_and_resizes():
    images = np.stack([np.full((10, 10), v, np.uint8) for v in (5, 1, 5, 9, 1)])
    source = from_arrays(images, [2, 0, 2, 7, 0], image_size=6)
    assert source.class_names == ("0", "2", "7")
    assert list(source.counts) == [2, 2, 1]
    assert source.images.shape == (5, 6, 6, 1)
    assert set(np.unique(source.class_images(1))) == {5}  # constant images stay constant


def test_from_arrays_rejects_mismatched_labels():
    with pytest.raises(DataError, match="3 images but 2 labels"):
        from_arrays(np.zeros((3, 8, 8), np.uint8), [0, 1])


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((4, 8), np.uint8), [0, 0, 1, 1], r"images must be \[N, H, W\] or \[N, H, W, C\] "
                                               r"with C = 1 to 4, got shape \(4, 8\)"),
    (np.zeros((4, 8, 8, 7), np.uint8), [0, 0, 1, 1], r"C = 1 to 4, got shape \(4, 8, 8, 7\)"),
    (np.full((4, 8, 8), "x"), [0, 0, 1, 1], "images must be numbers .* got dtype <U1"),
    (np.where(np.arange(4)[:, None, None] == 2, np.nan, np.zeros((4, 8, 8))), [0, 0, 1, 1],
     r"1 images hold NaN or Inf pixels \(the first: index 2\)"),
    (np.full((4, 8, 8), np.inf), [0, 0, 1, 1], "4 images hold NaN or Inf pixels"),
    (np.zeros((4, 8, 8)), [[0], [0], [1], [1]], r"labels must be one per image \(\[N\]\), got "
                                                r"shape \(4, 1\)"),
    (np.zeros((4, 8, 8)), [0.0, 0.5, 1.0, 1.0], "labels must be integers or strings, got "
                                                "non-integer numbers such as 0.5"),
])
def test_from_arrays_refuses_bad_arrays_in_one_line(images, labels, message):
    with pytest.raises(DataError, match=message) as err:
        from_arrays(images, labels)
    assert "\n" not in str(err.value)


def test_from_arrays_takes_whole_float_labels():
    source = from_arrays(np.zeros((4, 8, 8), np.uint8), np.array([0.0, 0.0, 1.0, 1.0]))
    assert source.class_names == ("0", "1")


@pytest.mark.parametrize("layout", ["imagefolder", "omniglot"])
def test_folder_and_zip_give_the_same_source(tmp_path, layout):
    root = tmp_path / "data"
    arrays = _folder(str(root), layout)
    (root / "README.txt").write_text("not a class")  # beside the classes: ignored
    source = from_folder(str(root), image_size=20, channels=1)
    assert source.class_names == tuple(sorted(arrays))
    for c, name in enumerate(source.class_names):
        np.testing.assert_array_equal(source.class_images(c)[..., 0], np.stack(arrays[name]))
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for dirpath, _, files in os.walk(root):
            for f in files:
                full = os.path.join(dirpath, f)
                z.write(full, os.path.join("top", os.path.relpath(full, root)))
    zipped = from_zip(str(archive), image_size=20, channels=1)
    assert zipped.class_names == source.class_names  # the archive's top folder is not in names
    np.testing.assert_array_equal(zipped.images, source.images)


def test_folder_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        from_folder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        from_folder(str(tmp_path / "empty"))
    _folder(str(tmp_path / "bad"))
    (tmp_path / "bad" / "class0" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt is not an image"):
        from_folder(str(tmp_path / "bad"))
    _folder(str(tmp_path / "corrupt"))
    (tmp_path / "corrupt" / "class1" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        from_folder(str(tmp_path / "corrupt"))
    (tmp_path / "fake.zip").write_text("zip?")
    with pytest.raises(DataError, match="not a zip archive"):
        from_zip(str(tmp_path / "fake.zip"))


def test_an_empty_class_folder_is_named_in_a_warning(tmp_path):
    _folder(str(tmp_path / "data"))
    os.makedirs(tmp_path / "data" / "class7")
    with pytest.warns(UserWarning, match="1 class folders hold no images and are left out: "
                                         "class7"):
        source = from_folder(str(tmp_path / "data"), image_size=20)
    assert source.class_names == ("class0", "class1", "class2")


def test_skip_bad_files_leaves_them_out_and_counts_them(tmp_path):
    arrays = _folder(str(tmp_path / "data"))
    (tmp_path / "data" / "class0" / "notes.txt").write_text("x")
    (tmp_path / "data" / "class1" / "broken.png").write_bytes(b"not a png")
    os.makedirs(tmp_path / "data" / "class9")
    (tmp_path / "data" / "class9" / "only.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="notes.txt is not an image"):
        from_folder(str(tmp_path / "data"), image_size=20)
    with pytest.warns(UserWarning, match=r"skipped 3 bad files \(first: class0/notes.txt is not an image\)"):
        source = from_folder(str(tmp_path / "data"), image_size=20, skip_bad_files=True)
    assert source.class_names == ("class0", "class1", "class2")  # class9 had nothing readable
    assert list(source.counts) == [4, 4, 4]
    np.testing.assert_array_equal(source.class_images(1)[..., 0], np.stack(arrays["class1"]))
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for root, _, names in os.walk(tmp_path / "data"):
            for name in names:
                full = os.path.join(root, name)
                z.write(full, os.path.relpath(full, tmp_path / "data"))
    with pytest.warns(UserWarning, match="skipped 3 bad files"):
        zipped = from_zip(str(archive), image_size=20, skip_bad_files=True)
    np.testing.assert_array_equal(zipped.images, source.images)


def test_split_is_deterministic_and_disjoint(small_glyphs):
    a = small_glyphs.split((0.6, 0.2, 0.2), seed=1)
    b = small_glyphs.split((0.6, 0.2, 0.2), seed=1)
    c = small_glyphs.split((0.6, 0.2, 0.2), seed=2)
    assert [s.class_names for s in a] == [s.class_names for s in b]
    assert a[0].class_names != c[0].class_names
    names = [set(s.class_names) for s in a]
    assert sum(len(n) for n in names) == small_glyphs.num_classes
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])


def test_rotations_make_new_classes(small_glyphs):
    part = small_glyphs.subset([0, 1])
    rotated = part.with_rotations()
    assert rotated.num_classes == 8
    np.testing.assert_array_equal(rotated.class_images(1), np.rot90(part.class_images(0), 1, (1, 2)))
    assert rotated.class_names[1] == part.class_names[0] + "@rot90"


def test_merge_keeps_duplicate_files_once(small_glyphs):
    a, b = small_glyphs.subset([0, 1]), small_glyphs.subset([1, 2])
    merged = merge([a, b])
    assert merged.num_classes == 3
    assert list(merged.counts) == [20, 20, 20]


@pytest.mark.skipif(not os.path.isdir(SHARED_OMNIGLOT), reason="../shared/data/omniglot absent")
def test_omniglot_small_archives():
    paths = [os.path.join(SHARED_OMNIGLOT, f"images_background_small{i}.zip") for i in (1, 2)]
    one = from_zip(paths[0], image_size=28)
    assert one.num_classes == 136 and len(one.images) == 2720
    assert one.class_names[0].startswith("Balinese/character")
    both = merge([one, from_zip(paths[1], image_size=28)])
    assert both.num_classes == 242 and len(both.images) == 4840  # Greek and Latin counted once


def test_tfds_offline_fails_fast_with_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_network_answers", lambda timeout=3.0: False)
    with pytest.raises(DatasetUnavailableError) as err:
        from_tfds("omniglot", data_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and "folder:PATH" in message and "omniglot" in message


def test_the_network_probe_goes_through_the_https_proxy(monkeypatch):
    """Downloads go through HTTPS_PROXY where one is set, so the probe asks the proxy (before, a
    raw socket to the download hosts called a machine behind a proxy offline)."""
    import socket

    monkeypatch.setattr(tfds_source, "_PROBE_HOSTS", ("download.invalid",))  # never resolves
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not tfds_source._network_answers(timeout=1.0)
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        assert tfds_source._network_answers(timeout=1.0)
        monkeypatch.setenv("NO_PROXY", "download.invalid")  # this host bypasses the proxy
        assert not tfds_source._network_answers(timeout=1.0)
    monkeypatch.delenv("NO_PROXY")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{closed.getsockname()[1]}")
        assert not tfds_source._network_answers(timeout=1.0)


def test_tfds_really_offline(tmp_path):
    if tfds_source._network_answers(timeout=2.0):
        pytest.skip("this machine has network: TFDS would download")
    began = time.time()
    with pytest.raises(DatasetUnavailableError):
        from_tfds("omniglot", data_dir=str(tmp_path))
    assert time.time() - began < 60


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_transparent_pngs_load_and_serve_alike(tmp_path, mode):
    """Gray+alpha and RGBA: one policy (composited onto white) in the loaders and in the serving
    graph; the loaders used to refuse gray+alpha without naming the file."""
    from PIL import Image

    from tfmeta.data.files import load_image_files
    import tensorflow as tf

    from tfmeta.data.images import decode_image

    rng = np.random.default_rng(0)
    channels = len(mode)
    pixels = rng.integers(0, 256, (12, 12, channels), dtype=np.uint8)
    pixels[:4, :, -1] = 0      # fully transparent rows: white whatever their color
    pixels[4:8, :, -1] = 255   # opaque rows: their color
    path = tmp_path / f"{mode}.png"
    Image.fromarray(pixels, mode).save(path)
    for out_channels in (1, 3):
        loaded = load_image_files([str(path)], 12, out_channels)[0]
        served = decode_image(tf.constant(path.read_bytes()), 12, 12, out_channels).numpy()
        np.testing.assert_array_equal(np.round(served * 255).astype(np.uint8), loaded)
        assert np.all(loaded[:4] == 255)
    gray = load_image_files([str(path)], 12, 1)[0][4:8, :, 0]
    color = pixels[4:8, :, :-1].astype(np.float64)
    expected = color[..., 0] if channels == 2 else color @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(gray, np.round(expected), atol=1)


def _png_bytes(size=8):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), 200, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _archive(path, members):
    """A zip of ``{name: bytes or ZipInfo-setup callable}`` plus two valid classes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for c in range(2):
            for i in range(2):
                z.writestr(f"class{c}/{i}.png", _png_bytes())
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                z.writestr(data, b"class0/0.png")
            else:
                z.writestr(name, data)
    return str(path)


@pytest.mark.parametrize("member", ["../escape/0.png", "/etc/abs.png", "class0/../../up.png"])
def test_zip_members_outside_the_root_are_refused(tmp_path, member):
    path = _archive(tmp_path / "slip.zip", {member: _png_bytes()})
    with pytest.raises(DataError, match=r"points outside the archive \(absolute path or '\.\.'\)"):
        from_zip(path)


def test_zip_symlinks_and_bombs_are_refused(tmp_path, monkeypatch):
    link = zipfile.ZipInfo("class0/link.png")
    link.external_attr = (0o120777 << 16)
    with pytest.raises(DataError, match="link.png' is a symbolic link"):
        from_zip(_archive(tmp_path / "link.zip", {"class0/link.png": link}))
    # 50 MB of zeros compress ~1000x: a bomb by ratio, refused before anything is read.
    with pytest.raises(DataError, match="zeros.png' expands .* likely decompression bomb"):
        from_zip(_archive(tmp_path / "bomb.zip", {"class1/zeros.png": bytes(50 << 20)}))
    import tfmeta.data.files as source

    monkeypatch.setattr(source, "MAX_ARCHIVE_BYTES", 100)  # and by total size
    with pytest.raises(DataError, match="expands to more than 100 bytes"):
        from_zip(_archive(tmp_path / "big.zip", {}))


def test_damaged_zip_and_pixel_bomb_are_one_line(tmp_path):
    path = _archive(tmp_path / "ok.zip", {})
    data = bytearray(open(path, "rb").read())
    start = 30 + len("class0/0.png") + 4  # inside the first member's compressed bytes
    data[start:start + 16] = bytes(16)
    (tmp_path / "damaged.zip").write_bytes(bytes(data))
    with pytest.raises(DataError, match="damaged.zip: (a damaged zip archive|.*not a readable)"):
        from_zip(str(tmp_path / "damaged.zip"))
    # A valid PNG header declaring 100,000 x 100,000 pixels: refused before decoding.
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header
            + struct.pack(">I", zlib.crc32(b"IHDR" + header)))
    _folder(str(tmp_path / "pixels"))
    (tmp_path / "pixels" / "class0" / "huge.png").write_bytes(bomb)
    with pytest.raises(DataError, match=r"huge.png: the image is 100000x100000 pixels, more "
                                        r"than the limit"):
        from_folder(str(tmp_path / "pixels"))


def test_tfmeta_datasets_lists_the_sources_and_what_works_offline(capsys, monkeypatch):
    from tfmeta.cli import main

    monkeypatch.setattr(tfds_source, "_network_answers", lambda timeout=3.0: False)
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "glyphs              yes" in out and "tfds:NAME" in out
    assert "network for downloads: no" in out


def test_tfds_splits_stream_in_chunks_resized_as_they_come(tmp_path, monkeypatch):
    """A TFDS split is read example by example and resized in chunks (of one shape, at most
    STREAM_CHUNK long): the same pixels as resizing each image on its own, with the split never
    held at its own size. A real TFDS builder (ImageFolder, offline) of mixed image sizes."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from tfmeta.data.images import to_uint8_images

    rng = np.random.default_rng(0)
    written = {}
    for c in ("ant", "bee"):
        os.makedirs(tmp_path / "train" / c)
        for k, size in enumerate((30, 30, 30, 44, 30)):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            path = tmp_path / "train" / c / f"{k}.png"
            path.write_bytes(tf.io.encode_png(pixels).numpy())
            written[pixels.tobytes()] = c
    builder = tfds.ImageFolder(str(tmp_path))
    monkeypatch.setattr(tfds_source, "STREAM_CHUNK", 2)
    images, labels = tfds_source.stream_split(builder, "train", 28, 1)
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.uint8
    names = builder.info.features["label"].names
    expected = [(to_uint8_images(x[None], 28, 1)[0], names[y]) for x, y in tfds.as_numpy(
        builder.as_dataset(split="train", as_supervised=True, shuffle_files=False))]
    for (want, name), got, label in zip(expected, images, labels, strict=True):
        np.testing.assert_array_equal(got, want)
        assert names[label] == name
    assert sorted(names[y] for y in labels) == sorted(written.values())


def test_a_tfds_split_on_disk_gives_the_episodes_it_gives_in_memory(tmp_path, monkeypatch):
    """``data.on_disk``: the split is streamed into a file sorted by class (a chunk in memory at a
    time), splits and subsets select rows without reading images, and the episode sampler reads
    each episode's images from the file: the same episodes, pixel for pixel, as the split in
    memory. The next load reuses the file. A real TFDS builder (ImageFolder, offline)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from tfmeta.data import EpisodeConfig, EpisodeSampler
    from tfmeta.data.disk import DiskImages

    rng = np.random.default_rng(1)
    for c in range(6):
        os.makedirs(tmp_path / "data" / "train" / f"class{c}")
        for k in range(4 + c % 2):
            pixels = rng.integers(0, 256, (30 + 14 * (k % 2), 30 + 14 * (k % 2), 3), np.uint8)
            (tmp_path / "data" / "train" / f"class{c}" / f"{k}.png").write_bytes(
                tf.io.encode_png(pixels).numpy())
    builder = tfds.ImageFolder(str(tmp_path / "data"))
    monkeypatch.setattr(builder, "is_prepared", lambda: True, raising=False)
    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: builder)
    monkeypatch.setattr(tfds_source, "STREAM_CHUNK", 3)
    monkeypatch.setenv("TFMETA_CACHE_DIR", str(tmp_path / "cache"))
    in_memory = tfds_source.from_tfds("folder_data", "train", 28, 1, on_disk=False)
    on_disk = tfds_source.from_tfds("folder_data", "train", 28, 1, on_disk=True)
    assert isinstance(on_disk.images, DiskImages) and on_disk.class_names == in_memory.class_names
    np.testing.assert_array_equal(on_disk.offsets, in_memory.offsets)
    np.testing.assert_array_equal(np.asarray(on_disk.images), in_memory.images)
    files = sorted(os.listdir(os.path.dirname(on_disk.images.path)))
    assert files == ["train-28x28x1.labels.npy", "train-28x28x1.npy"]  # nothing left over
    parts = [s.split((0.5, 0.5), seed=3) for s in (in_memory, on_disk)]
    assert isinstance(parts[1][0].images, DiskImages)  # rows selected, nothing read
    episode = EpisodeConfig(ways=2, shots=1, queries=2)
    for memory_part, disk_part in zip(*parts):
        for a, b in zip(EpisodeSampler(memory_part, episode, meta_batch=2, seed=5).dataset(0, 3),
                        EpisodeSampler(disk_part, episode, meta_batch=2, seed=5).dataset(0, 3)):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x.numpy(), y.numpy())
    monkeypatch.setattr(builder, "as_dataset", None)  # the file is reused, the builder not read
    again = tfds_source.from_tfds("folder_data", "train", 28, 1, on_disk=True)
    np.testing.assert_array_equal(np.asarray(again.images), in_memory.images)
