"""A run directory: ``run.json`` (the config), ``environment.json`` (versions, devices, strategy
of the last start), ``checkpoints/{latest,best}``, ``results.json``, and a copy of a
``keras_file:`` or ``keras_hub:`` backbone, so a run outlives the file it started from."""

from __future__ import annotations

import dataclasses
import os
import shutil

import tensorflow as tf

from tfmeta.config import RunConfig, read_run_file
from tfmeta.environment import environment
from tfmeta.files import write_json
from tfmeta.models import KERAS_FILE, KERAS_HUB
from tfmeta.checkpoints import checkpoint_path, read_checkpoint

RUN_FILE = "run.json"
BACKBONE_FILE = "backbone.keras"  # a keras_file: backbone, copied into the run directory
BACKBONE_PRESET = "backbone_preset"  # a keras_hub: preset folder, copied into the run directory
RUN_BACKBONES = ((KERAS_FILE, BACKBONE_FILE), (KERAS_HUB, BACKBONE_PRESET))  # prefix, copy's name
ENVIRONMENT_FILE = "environment.json"  # versions, devices, strategy, op determinism (last start)


def write_run_files(config: RunConfig, out_dir: str, strategy=None) -> None:
    """``run.json``, the backbone's copy and ``environment.json`` of a run starting in
    ``out_dir`` (the chief's job)."""
    write_json(config.to_dict(), os.path.join(out_dir, RUN_FILE))
    _keep_backbone_copy(config.model, out_dir)  # the run reloads without the original
    write_json(environment(strategy), os.path.join(out_dir, ENVIRONMENT_FILE))


def load_config(out_dir: str) -> RunConfig:
    path = os.path.join(out_dir, RUN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{out_dir}: not a tfmeta run ({RUN_FILE} missing)")
    return read_run_file(path)


def restore(learner, out_dir: str, which: str = "best") -> str:
    """Load the ``best`` (or ``latest``) checkpoint of ``out_dir`` into ``learner``'s model."""
    path = checkpoint_path(out_dir, which)
    if path is None:
        raise FileNotFoundError(f"{out_dir}: no checkpoint found")
    items = {k: v for k, v in learner.checkpoint_items().items() if k != "optimizer"}
    read_checkpoint(tf.train.Checkpoint(**items), path)
    return path


def _keep_backbone_copy(model: str, out_dir: str) -> None:
    """Copy a ``keras_file:`` file or ``keras_hub:`` folder into the run directory (once; a
    folder under a temporary name first, so a copy is either whole or absent)."""
    for prefix, name in RUN_BACKBONES:
        copy = os.path.join(out_dir, name)
        if not model.startswith(prefix) or os.path.exists(copy):
            continue
        original = model[len(prefix):]
        if os.path.isdir(original):
            copying = os.path.join(out_dir, f".{name}.partial")
            shutil.rmtree(copying, ignore_errors=True)
            shutil.copytree(original, copying)
            os.replace(copying, copy)
        else:
            shutil.copyfile(original, copy)


def with_run_backbone(config: RunConfig, out_dir: str) -> RunConfig:
    """``config`` building a ``keras_file:`` or ``keras_hub:`` backbone from the run directory's
    copy (``backbone.keras``, ``backbone_preset/``) where there is one, so a run outlives the file
    or folder it started from."""
    for prefix, name in RUN_BACKBONES:
        copy = os.path.join(out_dir, name)
        if config.model.startswith(prefix) and os.path.exists(copy):
            return dataclasses.replace(config, model=prefix + copy)
    return config
