"""mini-ImageNet (Vinyals et al., 2016) from a local folder, with Ravi & Larochelle's class split
(ICLR 2017: 64 training, 16 validation, 20 test classes of 600 images each).

``DIR`` is either

* ``DIR/images/*.jpg`` with ``DIR/train.csv``, ``DIR/val.csv`` and ``DIR/test.csv`` (Ravi &
  Larochelle's ``filename,label`` files; the images as their script makes them, 84x84), or
* ``DIR/train/<class>/*.jpg``, ``DIR/val/<class>/*.jpg`` and ``DIR/test/<class>/*.jpg``.

The dataset is not downloadable: ImageNet's licence requires each user to obtain it.
"""

from __future__ import annotations

import os

from tfmeta.data import files
from tfmeta.data import source as src
from tfmeta.data.class_splits import SPLITS, csv_rows


def splits(data_dir: str, image_size: int = 84, channels: int = 3) -> dict:
    """``{"train", "val", "test"}`` sources of mini-ImageNet in ``data_dir``."""
    if not os.path.isdir(data_dir):
        raise src.DataError(f"{data_dir}: no such folder (mini-imagenet:DIR needs images/ with "
                            "train.csv, val.csv and test.csv, or train/, val/ and test/ folders)")
    if all(os.path.isdir(os.path.join(data_dir, s)) for s in SPLITS):
        return {s: files.from_folder(os.path.join(data_dir, s), image_size, channels)
                for s in SPLITS}
    images = os.path.join(data_dir, "images")
    missing = [s + ".csv" for s in SPLITS if not os.path.isfile(os.path.join(data_dir, s + ".csv"))]
    if missing or not os.path.isdir(images):
        raise src.DataError(f"{data_dir}: expected images/ with train.csv, val.csv and test.csv "
                            f"(Ravi & Larochelle), or train/, val/ and test/ class folders; "
                            f"missing {', '.join(missing + ([] if os.path.isdir(images) else ['images/']))}")
    return {s: _from_csv(os.path.join(data_dir, s + ".csv"), images, image_size, channels)
            for s in SPLITS}


def _from_csv(path: str, images: str, image_size: int, channels: int) -> src.ImageSource:
    grouped: dict = {}
    for filename, label in csv_rows(path):
        grouped.setdefault(label, []).append(filename)
    absent = next((f for files in grouped.values() for f in files
                   if not os.path.isfile(os.path.join(images, f))), None)
    if absent is not None:
        raise src.DataError(f"{path} names {absent}, which is not in {images}")

    def read(filename):
        with open(os.path.join(images, filename), "rb") as f:
            return f.read()

    return files.from_files(grouped, read, image_size, channels)
