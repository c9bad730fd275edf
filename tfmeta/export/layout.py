"""TF Serving's model layout: ``EXPORT_DIR/NAME/<version>/`` with integer versions.

A version is written in a hidden staging folder beside the models and renamed into place only once
it is complete and verified, so TF Serving (which polls ``EXPORT_DIR/NAME`` for the highest integer
folder) never sees half a model, an existing version is never overwritten, and a failed export
leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from tfmeta.errors import DataError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise DataError(f"model name {name!r}: use letters, digits, '_', '-', '.' (not first)")
    return name


def versions(model_dir: str) -> list:
    """The integer versions present in ``model_dir`` (sorted)."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(entry) for entry in os.listdir(model_dir)
                  if entry.isdigit() and os.path.isdir(os.path.join(model_dir, entry)))


def next_version(export_dir: str, name: str) -> int:
    """One more than the highest existing version of ``name`` (1 for a new model)."""
    existing = versions(os.path.join(export_dir, check_name(name)))
    return existing[-1] + 1 if existing else 1


def publish(export_dir: str, name: str, write) -> str:
    """``write(staging_dir)`` a new version of ``name``, then move it to ``EXPORT_DIR/NAME/<v>``.

    Returns the version folder. If ``write`` raises, nothing is left behind (folders this call
    created are removed) and the error propagates.
    """
    check_name(name)
    created = [d for d in (export_dir, os.path.join(export_dir, name)) if not os.path.isdir(d)]
    os.makedirs(export_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".staging-{name}-", dir=export_dir)
    try:
        write(staging)
        model_dir = os.path.join(export_dir, name)
        os.makedirs(model_dir, exist_ok=True)
        while True:  # reserve the version with mkdir (atomic), then rename onto the empty folder
            target = os.path.join(model_dir, str(next_version(export_dir, name)))
            try:
                os.mkdir(target)
                break
            except FileExistsError:  # another process took this version first
                continue
        os.rename(staging, target)
        return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise
