"""Class splits given as files (Vinyals et al.'s Omniglot split, Ravi & Larochelle's mini-ImageNet
CSVs) and the mini-imagenet:DIR dataset, on data made in the test (and on Omniglot's small sets
from ../shared where present)."""

import os

import numpy as np
import pytest

from conftest import SHARED_OMNIGLOT
from tfmeta.data import DataConfig, DataError, from_folder, load_splits
from tfmeta.data import tfds_source


def _write_image(path, array):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def _lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _fake_tfds_omniglot(monkeypatch, per_split=3, images=2):
    """TFDS omniglot as TFDS gives it (label names ``Alphabet_<0-based character>``; global labels
    across the background 'train' and evaluation 'test' splits), without a download."""
    rng = np.random.default_rng(0)
    names = ([f"Greek_{i}" for i in range(per_split)]
             + [f"Japanese_(katakana)_{i}" for i in range(per_split)])

    def load(name, split, data_dir=None, image_size=28, channels=1, on_disk=None):
        assert name == "omniglot"
        first = 0 if split == "train" else per_split
        labels = np.repeat(np.arange(first, first + per_split), images)
        pixels = rng.integers(0, 256, (len(labels), 105, 105, 3), dtype=np.uint8)
        return pixels, labels, names

    monkeypatch.setattr(tfds_source, "load_tfds_arrays", load)


def test_tfds_omniglot_split_by_vinyals_style_files(tmp_path, monkeypatch):
    _fake_tfds_omniglot(monkeypatch)
    folder = tmp_path / "splits"
    # Snell et al.'s files name rotations too (rot000 ... rot270): one class each, rotations are
    # data.rotations' business; classes come from both TFDS splits.
    _lines(folder / "train.txt", [f"Greek/character0{i}/rot{r:03d}" for i in (1, 2)
                                  for r in (0, 90, 180, 270)] + ["Japanese_(katakana)/character01"])
    _lines(folder / "val.txt", ["# held out", "Greek/character03/rot000"])
    _lines(folder / "test.txt", ["Japanese_(katakana)/character02", "",
                                 "Japanese_(katakana)/character03"])
    splits = load_splits(DataConfig("omniglot", class_splits=str(folder), rotations=True))
    assert {k: v.class_names[::4] for k, v in splits.items()} == {
        "train": ("Greek/character01", "Greek/character02", "Japanese_(katakana)/character01"),
        "val": ("Greek/character03",),
        "test": ("Japanese_(katakana)/character02", "Japanese_(katakana)/character03")}
    assert [v.num_classes for v in splits.values()] == [12, 4, 8]
    assert all(len(v.images) == 2 * v.num_classes for v in splits.values())


def test_tfds_omniglot_without_class_splits_keeps_the_background_evaluation_split(monkeypatch):
    _fake_tfds_omniglot(monkeypatch)
    splits = load_splits(DataConfig("omniglot", split=(0.67, 0.33, 0.0)))
    assert set(splits["test"].class_names) == {f"Japanese_(katakana)/character0{i}"
                                               for i in (1, 2, 3)}
    assert set(splits["train"].class_names + splits["val"].class_names) == {
        "Greek/character01", "Greek/character02", "Greek/character03"}


def _image_folder(root, classes=6, per_class=3, size=12, rgb=False):
    rng = np.random.default_rng(1)
    shape = (size, size, 3) if rgb else (size, size)
    for c in range(classes):
        for i in range(per_class):
            _write_image(str(root / f"class{c}" / f"{i}.png"),
                         rng.integers(0, 256, shape, dtype=np.uint8))


def test_folder_split_by_csv_and_txt_files(tmp_path):
    _image_folder(tmp_path / "data")
    folder = tmp_path / "splits"
    _lines(folder / "train.csv", ["filename,label"] + [f"x{c}{i}.jpg,class{c}" for c in (3, 0)
                                                       for i in range(3)])
    _lines(folder / "val.txt", ["class1"])
    _lines(folder / "test.txt", ["class4", "class5"])
    config = DataConfig(f"folder:{tmp_path / 'data'}", class_splits=str(folder))
    splits = load_splits(config)
    assert splits["train"].class_names == ("class3", "class0")  # the file's order
    assert splits["val"].class_names == ("class1",) and splits["test"].num_classes == 2
    whole = from_folder(str(tmp_path / "data"),  # the pixels the loader gives without split files
                        splits["train"].image_shape[0])
    np.testing.assert_array_equal(splits["train"].class_images(1),
                                  whole.class_images(whole.class_names.index("class0")))


@pytest.mark.parametrize("case, match", [
    ("missing file", r"no test.txt or test.csv"),
    ("unknown class", r"test.txt: 1 of its 2 classes are not in the dataset \(e.g. nope"),
    ("overlap", r"class class1 is also in train.txt"),
    ("bad csv", r"expected a 'filename,label' header"),
])
def test_class_split_errors_are_one_clear_line(tmp_path, case, match):
    _image_folder(tmp_path / "data", classes=4, per_class=1)
    folder = tmp_path / "splits"
    _lines(folder / "train.txt", ["class0", "class1"])
    _lines(folder / "val.txt", ["class2"])
    if case == "unknown class":
        _lines(folder / "test.txt", ["class3", "nope"])
    elif case == "overlap":
        _lines(folder / "test.txt", ["class1"])
    elif case == "bad csv":
        _lines(folder / "test.csv", ["image;class", "a.jpg;class3"])
    config = DataConfig(f"folder:{tmp_path / 'data'}", class_splits=str(folder))
    with pytest.raises(DataError, match=match) as err:
        load_splits(config)
    assert "\n" not in str(err.value)


def test_protocol_datasets_refuse_class_split_files():
    with pytest.raises(DataError, match="protocol's class split"):
        DataConfig("omniglot-small:/data", class_splits="/splits")


def _mini_imagenet_csv_layout(root, per_class=2):
    """Ravi & Larochelle's layout: images/ (84x84 JPEGs named <wnid><index>.jpg) and 3 CSVs."""
    rng = np.random.default_rng(2)
    classes = {"train": ["n01532829", "n01558993"], "val": ["n01855672"],
               "test": ["n01930112", "n01981276"]}
    for split, wnids in classes.items():
        rows = ["filename,label"]
        for wnid in wnids:
            for i in range(per_class):
                name = f"{wnid}{i:08d}.jpg"
                _write_image(str(root / "images" / name),
                             rng.integers(0, 256, (84, 84, 3), dtype=np.uint8))
                rows.append(f"{name},{wnid}")
        _lines(root / f"{split}.csv", rows)
    return classes


def test_mini_imagenet_from_ravi_larochelle_csvs(tmp_path):
    classes = _mini_imagenet_csv_layout(tmp_path / "mini")
    splits = load_splits(DataConfig(f"mini-imagenet:{tmp_path / 'mini'}", image_size=84,
                                    channels=3))
    assert {k: list(v.class_names) for k, v in splits.items()} == classes
    assert splits["train"].images.shape == (4, 84, 84, 3)


def test_mini_imagenet_from_split_folders_and_its_errors(tmp_path):
    for split, names in {"train": 3, "val": 1, "test": 2}.items():
        _image_folder(tmp_path / "mini" / split, classes=names, per_class=2, rgb=True)
    splits = load_splits(DataConfig(f"mini-imagenet:{tmp_path / 'mini'}", image_size=16,
                                    channels=3))
    assert [v.num_classes for v in splits.values()] == [3, 1, 2]

    _mini_imagenet_csv_layout(tmp_path / "broken")
    os.remove(tmp_path / "broken" / "images" / "n0193011200000001.jpg")
    with pytest.raises(DataError, match=r"test.csv names n0193011200000001.jpg, which is not in"):
        load_splits(DataConfig(f"mini-imagenet:{tmp_path / 'broken'}", channels=3))
    with pytest.raises(DataError, match="expected images/ with train.csv"):
        load_splits(DataConfig(f"mini-imagenet:{tmp_path}", channels=3))


@pytest.mark.skipif(not os.path.isdir(SHARED_OMNIGLOT), reason="../shared/data/omniglot absent")
def test_omniglot_archives_split_by_files(tmp_path):
    """The configuration a user with Omniglot's archives runs: zip archives merged, split by
    Vinyals-style files naming Alphabet/characterNN/rotDDD."""
    folder = tmp_path / "splits"
    _lines(folder / "train.txt", [f"Korean/character{i:02d}/rot000" for i in range(1, 41)])
    _lines(folder / "val.txt", ["Latin/character01/rot000", "Latin/character02/rot000"])
    _lines(folder / "test.txt", ["Sanskrit/character05/rot000", "Tagalog/character17/rot000"])
    archives = ",".join(os.path.join(SHARED_OMNIGLOT, f"images_background_small{i}.zip")
                        for i in (1, 2))
    splits = load_splits(DataConfig(f"zip:{archives}", class_splits=str(folder)))
    assert [v.num_classes for v in splits.values()] == [40, 2, 2]
    assert all(len(v.images) == 20 * v.num_classes for v in splits.values())  # Latin once
