"""Checkpoints read with one clear error for damage, and never with a non-finite value."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfmeta.errors import DataError


def first_names(names: list, most: int = 3) -> str:
    """The first ``most`` of ``names``, then "..." if there are more."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def nonfinite_names(variables) -> list:
    """The names (paths) of the floating-point variables that hold a NaN or Inf."""
    return [getattr(v, "path", v.name) for v in variables
            if tf.as_dtype(v.dtype).is_floating and not np.all(np.isfinite(np.asarray(v)))]


def read_checkpoint(checkpoint: tf.train.Checkpoint, path: str, exact: bool = False) -> None:
    """Restore ``checkpoint`` from ``path``; a truncated, tampered or foreign checkpoint (a
    missing or short file, values of other shapes, with ``exact`` objects it lacks), or one that
    holds a NaN or Inf, is one :class:`~tfmeta.errors.DataError` line naming it, never a
    traceback from TensorFlow's reader, and nothing non-finite is loaded."""
    try:
        reader = tf.train.load_checkpoint(path)
        bad = [key.split("/.ATTRIBUTES")[0] for key, dtype in
               sorted(reader.get_variable_to_dtype_map().items())
               if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(key)))]
        if bad:
            raise DataError(f"{path}: holds non-finite values ({first_names(bad)}); it was not "
                            "loaded: use an earlier checkpoint or train again")
        status = checkpoint.restore(path)
        if exact:  # every object given is restored (the file may hold more)
            status.assert_existing_objects_matched()
        status.expect_partial()
    except DataError:
        raise
    except (tf.errors.OpError, ValueError, AssertionError, IndexError, OSError,
            RuntimeError) as err:
        message = (getattr(err, "message", None) or str(err)).strip().splitlines()
        raise DataError(f"{path}: a damaged checkpoint, or one of another model "
                        f"({(message or [type(err).__name__])[0][:160]}); restore the run "
                        "directory from a copy or start a new --out") from None


def checkpoint_path(out_dir: str, which: str = "best") -> str | None:
    """The ``best`` (falling back to ``latest``) or ``latest`` checkpoint of a run, or None."""
    for kind in ((which, "latest") if which == "best" else (which,)):
        path = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints", kind))
        if path:
            return path
    return None
