"""Temporary folders marked with the pid of the process that made them, removed once it is dead.

Ctrl-C and SIGTERM unwind and remove a temporary folder, but ``kill -9``, the OOM killer or a
power cut runs no cleanup, and the folder stays under ``$TMPDIR``: a file-compressed bag's
unpacked copy (gigabytes), a benchmark's gallery of face templates. Such a folder is named
``<prefix>[<what>-]<pid>-<random>`` and holds a mark file whose text names that pid;
:func:`remove_dead` removes the ones whose process no longer exists. It touches only folders
whose name and mark agree, owned by the current user, never through a link: a running
process's folder, another user's and any look-alike without the mark stay.

A pid means something only in its pid space: the mark also names the host's boot and the pid
namespace (:func:`pid_space`), and a folder marked in another (a container sharing
``$TMPDIR``, another host on a shared disk) is never removed, its process unknowable here.
"""
from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path


@functools.cache
def pid_space() -> str:
    """Where a pid names one process: this boot of this host (its boot id) and this pid
    namespace; "" where Linux's /proc does not tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def mark_text(label: str, pid: int) -> str:
    """The mark's text for process ``pid`` of this pid space."""
    space = pid_space()
    return f"sense_perception {label}, pid {pid}" + (f", in {space}" if space else "") + "\n"


def mark(folder: Path, mark_name: str, label: str) -> None:
    """Write the mark naming this process into ``folder``."""
    (folder / mark_name).write_text(mark_text(label, os.getpid()))


def temporary_folder(prefix: str, mark_name: str, label: str) -> tempfile.TemporaryDirectory[str]:
    """A ``TemporaryDirectory`` (mode 0700) named ``<prefix><pid>-<random>`` and marked."""
    folder = tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-")
    try:
        mark(Path(folder.name), mark_name, label)
    except BaseException:
        folder.cleanup()
        raise
    return folder


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, another user's
    return True


def _dead_owner(folder: Path, name: re.Pattern[str], mark_name: str, label: str) -> bool:
    """True only for a folder this code made (name and mark agree on the pid, both the current
    user's, neither a link) whose process no longer exists; anything else is left alone."""
    match = name.fullmatch(folder.name)
    if match is None:
        return False
    pid, uid = int(match.group(1)), os.getuid()
    try:
        st, marked = folder.lstat(), (folder / mark_name).lstat()
        if not (stat.S_ISDIR(st.st_mode) and st.st_uid == uid
                and stat.S_ISREG(marked.st_mode) and marked.st_uid == uid
                and marked.st_size < 256):
            return False
        if (folder / mark_name).read_text() != mark_text(label, pid):  # another pid space too
            return False
    except (OSError, UnicodeDecodeError):
        return False
    return pid != os.getpid() and not _running(pid)


def remove_dead(prefix: str, mark_name: str, label: str, temp: Path | None = None) -> list[Path]:
    """Remove the folders under ``temp`` (the temporary folder) that a process now dead made
    with :func:`temporary_folder` (or named and marked the same way); returns those removed."""
    name = re.compile(rf"{re.escape(prefix)}(?:[a-z_]+-)?(\d+)-[^/]+")
    removed = []
    try:
        candidates = sorted(Path(temp or tempfile.gettempdir()).glob(f"{glob.escape(prefix)}*"))
    except OSError:
        return []
    for folder in candidates:
        if _dead_owner(folder, name, mark_name, label):
            shutil.rmtree(folder, ignore_errors=True)  # fd-based on Linux: never follows a link
            if not folder.exists():
                removed.append(folder)
    return removed

