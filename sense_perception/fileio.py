"""Crash-safe file writes shared by the gallery and the model cache."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, temp_prefix: str | None = None) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file, never half.

    The data goes to a temp file beside ``path`` (mode 0600, as mkstemp creates it), is fsynced,
    renamed over ``path``, and the directory is fsynced. ``temp_prefix`` names the temp file so a
    caller can find temp files a killed writer left.
    """
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix or f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(folder)
