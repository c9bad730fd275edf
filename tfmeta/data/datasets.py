"""Dataset specs (``glyphs``, ``omniglot``, ``omniglot-small:DIR``, ``mini-imagenet:DIR``,
``folder:PATH``, ``zip:PATH``, ``tfds:NAME``) to train / validation / test sources with disjoint
classes, split by fractions, by a protocol, or by class-split files (``class_splits``)."""

from __future__ import annotations

import dataclasses

from tfmeta.data import mini_imagenet, omniglot_small
from tfmeta.data import files
from tfmeta.data import source as src
from tfmeta.data.augment import check_augment
from tfmeta.data.class_splits import split_by_files
from tfmeta.data.glyphs import glyphs
from tfmeta.data.image_shape import with_image_shape
from tfmeta.data.tfds_source import from_tfds
from tfmeta.settings import setting


_PROTOCOLS = ("omniglot-small", "mini-imagenet")  # datasets that come with their class split
_WITH_PATH = _PROTOCOLS + ("folder", "zip", "tfds")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared.

    Attributes:
        dataset: ``glyphs`` (built in), ``omniglot`` (TFDS; background alphabets for training and
            validation, evaluation alphabets for test), ``omniglot-small:DIR`` (Omniglot's two
            small background sets in DIR, split by the omniglot-small protocol:
            :mod:`tfmeta.data.omniglot_small`), ``mini-imagenet:DIR`` (a local copy with Ravi &
            Larochelle's split: :mod:`tfmeta.data.mini_imagenet`), ``folder:PATH`` or
            ``zip:PATH`` (several paths joined by commas are merged), or ``tfds:NAME``.
        image_size: images are resized to ``image_size x image_size``; ``None``: the data's
            (:func:`with_image_shape`).
        channels: 1 (grayscale) or 3 (RGB); ``None``: the data's.
        split: fractions of classes for train / validation / test (only validation / test share
            of the background set for ``omniglot``, whose test classes are the evaluation set;
            unused by ``omniglot-small`` and ``mini-imagenet``, whose splits are their
            protocols', and with ``class_splits``).
        split_seed: the seed of the class split; the same seed gives the same split.
        class_splits: a folder of ``train``, ``val`` and ``test`` files naming each split's
            classes (:mod:`tfmeta.data.class_splits`; e.g. Vinyals et al.'s Omniglot split), in
            place of ``split``. For ``omniglot`` the classes are drawn from both TFDS splits
            (all 1,623 characters).
        rotations: add 90, 180 and 270 degree rotations of every class as new classes, within
            each split (the Omniglot augmentation; ``omniglot-small``: not its test classes).
        augment: random distortion of training images (``"affine"``: Koch et al.'s affine
            distortions, :mod:`tfmeta.data.augment`), ``None`` for none. Validation, test and
            served images are never augmented.
        skip_bad_files: ``folder:`` and ``zip:`` datasets: leave out files that are not
            readable images, counted in a warning, instead of stopping at the first one.
        data_dir: TFDS data directory (``None``: TFDS's default).
        polarity: ``"light-on-dark"`` or ``"dark-on-light"``: what the training images look like
            (``None``: measured from them when a run starts, and recorded in ``run.json``).
            ``predict``, ``adapt`` and the servables bring images of the other polarity to it.
        class_groups: how classes group (:func:`tfmeta.data.episodes.group_function`:
            ``"parent-folder"``, ``"folder:N"`` or a file of ``class,group`` lines), for training
            episodes drawn within one group (``train.within_group``).
        on_disk: ``tfds:`` and ``omniglot`` datasets: keep the images, at the training size, in a
            file of the tfmeta cache and read each episode's from there (``True``), in memory
            (``False``), or on disk only where the split is larger than a quarter of the
            machine's memory (``None``; :mod:`tfmeta.data.disk`).
    """

    dataset: str = setting("glyphs", "glyphs | omniglot | omniglot-small:DIR | mini-imagenet:DIR "
                                     "| folder:PATH | zip:PATH | tfds:NAME", "dataset")
    image_size: int | None = setting(None, "images are resized to this square size (default: "
                                           "the data's, or the backbone's smallest input)",
                                     "image-size")
    channels: int | None = setting(None, "1 or 3 (default: the data's)", "channels")
    split: tuple = setting((0.64, 0.16, 0.2), "fractions of classes for train / val / test")
    split_seed: int = setting(0, "seed of the class split")
    rotations: bool = setting(False, "add 90/180/270 degree rotations as new classes",
                              "rotations")
    data_dir: str | None = setting(None, "TFDS data directory")
    polarity: str | None = setting(None, "light-on-dark or dark-on-light (default: measured)")
    augment: str | None = setting(None, "affine: distort training images (none by default)")
    skip_bad_files: bool = setting(False, "folder/zip data: leave out unreadable or non-image "
                                          "files (counted) instead of stopping",
                                   "skip-bad-files")
    class_splits: str | None = setting(None, "folder of train/val/test .txt or .csv files naming "
                                             "each split's classes", "class-splits")
    on_disk: bool | None = setting(None, "tfds/omniglot: keep images in a cache file")
    class_groups: str | None = setting(None, "how classes group (parent-folder, folder:N or a "
                                             "class,group .csv): for episodes within one group "
                                             "(train.within_group)", "class-groups")

    def __post_init__(self):
        check_augment(self.augment)
        if self.polarity not in (None,) + src.POLARITIES:
            raise src.DataError(f"polarity must be one of {', '.join(src.POLARITIES)}, got "
                                f"{self.polarity!r}")
        if self.channels not in (None, 1, 3):
            raise src.DataError(f"channels must be 1 or 3, got {self.channels}")
        if self.image_size is not None and self.image_size < 8:
            raise src.DataError(f"image_size must be at least 8, got {self.image_size}")
        kind = self.dataset.split(":", 1)[0]
        if kind not in ("glyphs", "omniglot") + _WITH_PATH or (
                kind in _WITH_PATH and not self.dataset.partition(":")[2]):
            raise src.DataError(f"unknown dataset '{self.dataset}': use glyphs, omniglot, "
                                "omniglot-small:DIR, mini-imagenet:DIR, folder:PATH, zip:PATH or "
                                "tfds:NAME")
        if self.class_splits and kind in _PROTOCOLS:
            raise src.DataError(f"{kind} has its protocol's class split; class_splits applies "
                                "to glyphs, omniglot, folder:, zip: and tfds: datasets")


def load_source(config: DataConfig):
    """The whole dataset as one source (for ``omniglot``: the background set, or all 1,623
    characters with ``class_splits``; for ``omniglot-small``: both small sets merged; for
    ``mini-imagenet``: its three splits merged)."""
    config = with_image_shape(config)[0]
    kind, _, arg = config.dataset.partition(":")
    if kind == "omniglot-small":
        return src.merge(list(omniglot_small.archives(arg, config.image_size, config.channels)))
    if kind == "mini-imagenet":
        return src.merge(list(mini_imagenet.splits(arg, config.image_size,
                                                   config.channels).values()))
    if kind == "glyphs":
        return glyphs(image_size=config.image_size)
    if kind in ("folder", "zip"):
        load = files.from_folder if kind == "folder" else files.from_zip
        parts = [load(p, config.image_size, config.channels, config.skip_bad_files)
                 for p in arg.split(",") if p]
        return parts[0] if len(parts) == 1 else src.merge(parts)
    if kind == "tfds":
        return from_tfds(arg, "train", config.image_size, config.channels, config.data_dir,
                         config.on_disk)
    background = from_tfds("omniglot", "train", config.image_size, config.channels,
                           config.data_dir, config.on_disk)
    if not config.class_splits:
        return background
    return src.merge([background, from_tfds("omniglot", "test", config.image_size,
                                            config.channels, config.data_dir, config.on_disk)])


def load_splits(config: DataConfig) -> dict:
    """``{"train": source, "val": source, "test": source}`` with disjoint classes."""
    config = with_image_shape(config)[0]
    if config.dataset.startswith("omniglot-small:"):
        splits = omniglot_small.splits(config.dataset.partition(":")[2], config.image_size,
                                       config.channels, config.split_seed)
        if config.rotations:  # the protocol's test classes are never rotated
            splits.update(train=splits["train"].with_rotations(),
                          val=splits["val"].with_rotations())
        return splits
    if config.dataset.startswith("mini-imagenet:"):
        splits = mini_imagenet.splits(config.dataset.partition(":")[2], config.image_size,
                                      config.channels)
        return {k: v.with_rotations() for k, v in splits.items()} if config.rotations else splits
    whole = load_source(config)
    if config.class_splits:
        splits = split_by_files(whole, config.class_splits)
    elif config.dataset == "omniglot":
        train, val = whole.split(config.split[:2], config.split_seed)
        test = from_tfds("omniglot", "test", config.image_size, config.channels, config.data_dir,
                         config.on_disk)
        splits = {"train": train, "val": val, "test": test}
    else:
        train, val, test = whole.split(config.split, config.split_seed)
        splits = {"train": train, "val": val, "test": test}
    if config.channels == 3 and whole.image_shape[-1] == 1:
        raise src.DataError("glyphs is grayscale: use channels=1")
    if config.rotations:
        splits = {k: v.with_rotations() for k, v in splits.items()}
    return splits
