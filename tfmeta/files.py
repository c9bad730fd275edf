"""Files tfmeta writes: every JSON file atomically; a run directory is one process's (a lock)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from tfmeta.errors import ConfigError

LOCK_FILE = ".lock"


def write_json(data, path: str) -> None:
    """Write ``data`` as JSON atomically: a temporary file in the same folder, then a rename, so
    a reader (or a killed run) never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


@contextlib.contextmanager
def run_lock(out_dir: str):
    """Hold ``out_dir`` for this process: an exclusive ``flock`` on ``out_dir/.lock`` (holding
    the holder's pid), released on exit and by the system when the process dies, so a killed
    run never leaves a stale lock. A second process gets one :class:`ConfigError` line. Where
    ``fcntl`` does not exist (Windows) no lock is taken."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    os.makedirs(out_dir, exist_ok=True)
    handle = open(os.path.join(out_dir, LOCK_FILE), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(f"{out_dir} is in use by another tfmeta process (pid {holder}); wait "
                          "for it to finish or use another --out") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
