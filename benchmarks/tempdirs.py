"""The benchmarks' temporary folders: private, marked with the run's pid, and removed once that
run is dead.

The replay, fleet and driver benchmarks keep a gallery of face templates in a temporary folder
(0700). SIGTERM and Ctrl-C unwind and remove it (:mod:`sense_perception.stops`), but ``kill -9``
or a power cut runs no cleanup at all: the folder stayed under /tmp. Each folder is therefore
named ``sp-bench-<what>-<pid>-<random>`` and holds :data:`MARK` naming that pid, and every start
of ``benchmarks/run.py`` removes such folders whose run no longer exists (:func:`remove_stale`).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sense_perception import owned_folders

PREFIX = "sp-bench-"
#: Hidden file in each folder, proving it is a benchmark's (its text names the run's pid).
MARK = ".sp-bench-run"
_LABEL = "benchmark run"


@contextmanager
def private_folder(what: str) -> Iterator[Path]:
    """A temporary folder (mkdtemp: 0700) for benchmark ``what``, marked with this run's pid and
    removed when the block ends (normally, or unwound by Ctrl-C or SIGTERM)."""
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{what}-{os.getpid()}-") as name:
        folder = Path(name)
        owned_folders.mark(folder, MARK, _LABEL)
        yield folder


def remove_stale(temp: Path | None = None) -> list[Path]:
    """Remove the benchmark folders under ``temp`` (the temporary folder) left by a run that is
    dead (``kill -9``); returns those removed. A running run's folder, another user's, and any
    folder without the mark, are never touched."""
    return owned_folders.remove_dead(PREFIX, MARK, _LABEL, temp)
