"""Files tfmeta writes: every JSON file atomically."""

from __future__ import annotations

import json
import os
import tempfile


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
