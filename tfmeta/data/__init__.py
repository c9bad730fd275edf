"""Episodic data: sources -> class splits -> N-way K-shot episodes."""

from tfmeta.data.datasets import DataConfig, load_source, load_splits
from tfmeta.data.episodes import EpisodeConfig, EpisodeSampler
from tfmeta.data.glyphs import generate_glyphs, glyphs
from tfmeta.data.files import from_folder, from_zip, support_from_folder
from tfmeta.data.source import DataError, ImageSource, from_arrays, merge, to_uint8_images
from tfmeta.data.tfds_source import DatasetUnavailableError, from_tfds, omniglot

__all__ = ["DataConfig", "DataError", "DatasetUnavailableError", "EpisodeConfig",
           "EpisodeSampler", "ImageSource", "from_arrays", "from_folder", "from_tfds", "from_zip",
           "generate_glyphs", "glyphs", "load_source", "load_splits", "merge", "omniglot",
           "support_from_folder", "to_uint8_images"]
