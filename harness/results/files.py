"""Writing files so that a reader (or a resumed run) never sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling (``.<name>.<random>.tmp``), flush it to disk,
    then give it its name: a reader sees the old file or the new one, whole.

    A process killed mid-write leaves only the temporary file, which nothing reads as a
    result (run folders and the oracle cache clear such leftovers). The name is unique per
    writer, so two processes writing the same file at once never share a temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
