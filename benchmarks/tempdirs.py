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
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "sp-bench-"
#: Hidden file in each folder, proving it is a benchmark's (its text names the run's pid).
MARK = ".sp-bench-run"
_NAME = re.compile(rf"{PREFIX}[a-z_]+-(\d+)-[^/]+")


def _mark_text(pid: int) -> str:
    return f"sense_perception benchmark run, pid {pid}\n"


@contextmanager
def private_folder(what: str) -> Iterator[Path]:
    """A temporary folder (mkdtemp: 0700) for benchmark ``what``, marked with this run's pid and
    removed when the block ends (normally, or unwound by Ctrl-C or SIGTERM)."""
    pid = os.getpid()
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{what}-{pid}-") as name:
        folder = Path(name)
        (folder / MARK).write_text(_mark_text(pid))
        yield folder


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, another user's
    return True


def _dead_runs_folder(folder: Path) -> bool:
    """True only for a folder this code made (name and mark agree on the pid, both the current
    user's, neither a link) whose run no longer exists; anything else is left alone."""
    match = _NAME.fullmatch(folder.name)
    if match is None:
        return False
    pid, uid = int(match.group(1)), os.getuid()
    try:
        st, mark = folder.lstat(), (folder / MARK).lstat()
        if not (stat.S_ISDIR(st.st_mode) and st.st_uid == uid
                and stat.S_ISREG(mark.st_mode) and mark.st_uid == uid and mark.st_size < 100):
            return False
        if (folder / MARK).read_text() != _mark_text(pid):
            return False
    except (OSError, UnicodeDecodeError):
        return False
    return not _running(pid)


def remove_stale(temp: Path | None = None) -> list[Path]:
    """Remove the benchmark folders under ``temp`` (the temporary folder) left by a run that is
    dead (``kill -9``); returns those removed. A running run's folder, another user's, and any
    folder without the mark, are never touched."""
    removed = []
    for folder in sorted(Path(temp or tempfile.gettempdir()).glob(f"{PREFIX}*")):
        if _dead_runs_folder(folder):
            shutil.rmtree(folder, ignore_errors=True)  # fd-based on Linux: never follows a link
            if not folder.exists():
                removed.append(folder)
    return removed
