"""Class splits given as files: which classes meta-train, validate and test, named one per line.

A splits folder holds ``train``, ``val`` and ``test``, each as ``.txt`` or ``.csv``:

* ``.txt``: one class name per line (blank lines and ``#`` comments ignored), as in the split
  files of Vinyals et al.'s Omniglot split published with Prototypical Networks
  (``Alphabet/characterNN/rot000``: a trailing ``/rotDDD`` is dropped, rotations are
  ``data.rotations``'s business);
* ``.csv``: Ravi & Larochelle's mini-ImageNet format, a ``filename,label`` header and one row per
  image; the classes are the ``label`` column's values.

Names match a source's class names (``Alphabet/characterNN`` for Omniglot from TFDS, zip archives
or folders). A name the dataset lacks, or a class in two splits, is one clear error; classes the
files do not name are left out.
"""

from __future__ import annotations

import csv
import os
import re

from tfmeta.errors import DataError

SPLITS = ("train", "val", "test")
_ROTATION_SUFFIX = re.compile(r"/rot\d{3}$")


def split_file(folder: str, split: str) -> str:
    """The path of ``split``'s file in ``folder`` (``.txt`` or ``.csv``)."""
    found = [os.path.join(folder, split + ext) for ext in (".txt", ".csv")
             if os.path.isfile(os.path.join(folder, split + ext))]
    if not found:
        raise DataError(f"{folder}: no {split}.txt or {split}.csv (class splits need train, val "
                        "and test files)")
    if len(found) > 1:
        raise DataError(f"{folder}: both {split}.txt and {split}.csv; keep one")
    return found[0]


def csv_rows(path: str) -> list:
    """``[(filename, label), ...]`` of a Ravi & Larochelle split file (header ``filename,label``)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0][:2]] != ["filename", "label"]:
        raise DataError(f"{path}: expected a 'filename,label' header line")
    body = [r for r in rows[1:] if r]
    bad = next((i for i, r in enumerate(body, start=2) if len(r) != 2 or not all(r)), None)
    if bad is not None:
        raise DataError(f"{path}, line {bad}: expected 'filename,label'")
    return [(r[0].strip(), r[1].strip()) for r in body]


def read_class_names(path: str) -> list:
    """The class names of one split file, in order, each once."""
    if path.endswith(".csv"):
        names = [label for _, label in csv_rows(path)]
    else:
        with open(path) as f:
            names = [_ROTATION_SUFFIX.sub("", line.strip().replace("\\", "/"))
                     for line in f if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise DataError(f"{path}: names no classes")
    return list(dict.fromkeys(names))


def split_by_files(source, folder: str) -> dict:
    """``{"train", "val", "test"}`` subsets of ``source`` named by the files in ``folder``."""
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: no such folder (class splits: a folder with train, val and "
                        "test .txt or .csv files)")
    index = {name: c for c, name in enumerate(source.class_names)}
    owner: dict = {}
    splits = {}
    for split in SPLITS:
        path = split_file(folder, split)
        names = read_class_names(path)
        missing = [n for n in names if n not in index]
        if missing:
            raise DataError(f"{path}: {len(missing)} of its {len(names)} classes are not in the "
                            f"dataset (e.g. {', '.join(missing[:3])}; its classes are named like "
                            f"{', '.join(source.class_names[:2])})")
        twice = next((n for n in names if n in owner), None)
        if twice is not None:
            raise DataError(f"{path}: class {twice} is also in {owner[twice]}; splits must be "
                            "disjoint")
        owner.update({n: os.path.basename(path) for n in names})
        splits[split] = source.subset([index[n] for n in names])
    return splits
