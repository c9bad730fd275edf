"""The "omniglot-small" protocol: Omniglot's two small background sets (Lake et al., 2015; the
Omniglot challenge's low-data setting, Lake, Salakhutdinov & Tenenbaum, 2019), as a few-shot
benchmark with classes never seen in training.

* Meta-train: every character of ``images_background_small1`` (Balinese, Early_Aramaic, Greek,
  Korean, Latin: 136 characters) except a fixed 10 % held out for validation (chosen by the
  split seed).
* Test: the characters of the alphabets found only in ``images_background_small2``
  (Japanese_(katakana), Sanskrit, Tagalog: 106 characters); Greek and Latin, in both sets, are
  training alphabets.

``DIR`` holds ``images_background_small1`` and ``images_background_small2``, each a ``.zip``
archive or an extracted folder (``<set>/<Alphabet>/<character>/*.png``), as in
github.com/brendenlake/omniglot (``python/images_background_small{1,2}.zip``). Class names are
``Alphabet/characterNN``.
"""

from __future__ import annotations

import os

from tfmeta.data import files
from tfmeta.data import source as src
from tfmeta.data.episodes import parent_folder

SETS = ("images_background_small1", "images_background_small2")
VALIDATION_FRACTION = 0.1


def _load(data_dir: str, name: str, image_size: int, channels: int) -> src.ImageSource:
    folder = os.path.join(data_dir, name)
    if os.path.isdir(folder):
        return files.from_folder(folder, image_size, channels)
    if os.path.isfile(folder + ".zip"):
        return files.from_zip(folder + ".zip", image_size, channels)
    raise src.DataError(f"{data_dir}: {name}.zip (or its extracted folder) not found; "
                        "omniglot-small needs Omniglot's small background sets "
                        "(github.com/brendenlake/omniglot, python/images_background_small1.zip "
                        "and images_background_small2.zip) in one folder")


def archives(data_dir: str, image_size: int = 28, channels: int = 1) -> tuple:
    """``(small1, small2)`` sources, classes named ``Alphabet/characterNN``."""
    if not os.path.isdir(data_dir):
        raise src.DataError(f"{data_dir}: no such folder (omniglot-small:DIR needs the folder "
                            "that holds images_background_small1.zip and _small2.zip)")
    return tuple(_load(data_dir, name, image_size, channels) for name in SETS)


def splits(data_dir: str, image_size: int = 28, channels: int = 1, seed: int = 0) -> dict:
    """``{"train", "val", "test"}`` sources of the protocol (no rotations: the caller adds them
    to the training and validation classes; test classes are never rotated)."""
    small1, small2 = archives(data_dir, image_size, channels)
    train, val = small1.split((1 - VALIDATION_FRACTION, VALIDATION_FRACTION), seed)
    seen = {parent_folder(name) for name in small1.class_names}
    test = small2.subset([c for c, name in enumerate(small2.class_names)
                          if parent_folder(name) not in seen])
    if test.num_classes == 0:
        raise src.DataError(f"{data_dir}: images_background_small2 has no alphabet that "
                            "images_background_small1 lacks; these are not Omniglot's small sets")
    return {"train": train, "val": val, "test": test}
