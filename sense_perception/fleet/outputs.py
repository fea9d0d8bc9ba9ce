"""Where a fleet run puts each bag's outputs, and how they become visible only when complete.

A worker replays into ``DIR/.<name>.partial/replay/`` and renames that to ``DIR/<name>/`` once
the replay engine has written its summary.json, so ``DIR/<name>/`` only ever holds a finished
replay: a second run skips it (resume), and a worker killed halfway leaves only a hidden folder
that the retry (or the next run) wipes.

Every folder fleet makes carries a marker file (:data:`MARKER`). Fleet deletes or replaces only
folders that carry it: a folder of the user's that happens to have a bag's name is refused,
never replaced, ``--force`` or not.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..fileio import fsync_dir
from ..outpaths import FLEET_MARK
from ..replay.engine import INCOMPLETE_FILE, SUMMARY_FILE

FLEET_SUMMARY = "fleet_summary.json"
MARKER = FLEET_MARK
_PARTIAL, _REPLACED = ".partial", ".replaced"
_MARKER_TEXT = ("This folder was written by `sense-perception fleet`, which may replace or delete "
                "it (--force, or a retry). Remove this file to keep fleet from touching it.\n")


class NotFleetOutput(OSError):
    """A folder where fleet would write exists but was not made by fleet (it has no marker)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(f"{folder} exists but was not written by sense-perception fleet (it has "
                         f"no {MARKER} file), so fleet leaves it alone: move it away, or choose "
                         "another --out")
        self.folder = folder


def mark(folder: Path) -> None:
    """Put the marker into ``folder``: fleet made it and may replace it."""
    # 0644 less the umask: write_text made it 0666 under umask 000, in every bag's output (R88)
    fd = os.open(Path(folder) / MARKER, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(_MARKER_TEXT)


def is_marked(folder: Path) -> bool:
    """True when ``folder`` is a real folder (not a link) that fleet made."""
    folder = Path(folder)
    return folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()


def check_ours(folder: Path) -> None:
    """Nothing at ``folder``, or a folder fleet made.

    Raises:
        NotFleetOutput: anything else is there (a user's folder or file, a link).
    """
    folder = Path(folder)
    if (folder.exists() or folder.is_symlink()) and not is_marked(folder):
        raise NotFleetOutput(folder)


def final_dir(out: Path, name: str) -> Path:
    """``DIR/<name>/``: the finished outputs of one bag, exactly what ``replay`` writes."""
    return Path(out) / name


def work_dir(out: Path, name: str) -> Path:
    """``DIR/.<name>.partial/``: the marked folder a worker replays in (see :func:`temp_dir`)."""
    return Path(out) / f".{name}{_PARTIAL}"


def temp_dir(out: Path, name: str) -> Path:
    """``DIR/.<name>.partial/replay/``: where the outputs are written until the replay is complete.

    The replay engine wants an empty folder, so the marker sits one level up, in :func:`work_dir`.
    """
    return work_dir(out, name) / "replay"


def prepare_temp(out: Path, name: str) -> Path:
    """A fresh, marked work folder for bag ``name``; returns :func:`temp_dir` (not yet created).

    What a killed attempt left there is removed first.

    Raises:
        NotFleetOutput: ``DIR/.<name>.partial`` exists and fleet did not make it.
    """
    work = work_dir(out, name)
    discard_ours(work)
    work.mkdir(mode=0o700)  # the replay in it is moved out whole; 0777 under umask 000 (R88)
    mark(work)
    return temp_dir(out, name)


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished replay written by fleet: its marker, summary.json
    and no incomplete marker."""
    return (is_marked(folder) and (folder / SUMMARY_FILE).is_file()
            and not (folder / INCOMPLETE_FILE).exists())


def read_summary(folder: Path) -> dict[str, Any] | None:
    """The replay summary in ``folder``, or None when it is missing or unreadable."""
    try:
        return json.loads((folder / SUMMARY_FILE).read_text())
    except (OSError, ValueError, RecursionError):  # nested too deeply: a traceback before R89
        return None


def discard_ours(folder: Path) -> None:
    """Remove ``folder`` and everything in it, if it exists and fleet made it.

    Raises:
        NotFleetOutput: something fleet did not make is there; it is left as it is.
    """
    check_ours(folder)
    if folder.exists():
        shutil.rmtree(folder)


def publish(temp: Path, final: Path) -> None:
    """Move the finished outputs in ``temp`` to ``final``, replacing an older ``final`` (--force).

    ``temp`` gets the marker first. Both steps are renames within ``DIR``. The old outputs are
    moved aside first and deleted only once the new ones are in place; a crash between the two
    renames leaves no ``final`` (the next run replays the bag again), never a mix of old and new
    files; the marker is flushed to disk before them and ``DIR`` after them, before the old
    outputs are deleted. The work folder around ``temp`` is removed at the end.

    Raises:
        NotFleetOutput: ``final`` (or its ``.replaced`` twin) exists and fleet did not make it.
    """
    old = final.with_name(f".{final.name}{_REPLACED}")
    check_ours(final)
    discard_ours(old)
    mark(temp)
    # The marker on disk before the rename: a folder renamed into place without it would be
    # refused as not fleet's (NotFleetOutput) by every later run, for good.
    fsync_dir(temp)
    if final.exists():
        os.replace(final, old)
    os.replace(temp, final)
    # the renames on disk before the earlier outputs go and before fleet_summary.json lists the
    # bag as done (the files inside were flushed by the replay: its bag, videos, summary.json)
    fsync_dir(final.parent)
    discard_ours(old)
    if temp.parent.name.endswith(_PARTIAL):
        discard_ours(temp.parent)


def recover(out: Path, name: str) -> str | None:
    """Finish a :func:`publish` that a kill cut between its two renames; returns a note, or None.

    Such a kill leaves no ``DIR/<name>/``, the earlier complete output in ``DIR/.<name>.replaced``
    and the new one, complete and marked, in ``DIR/.<name>.partial/replay``. The new one is put
    in place (it was being published), else the earlier one is put back; without this, the next
    run replayed the bag and, if that failed (the bag unreadable by then), deleted both as work
    folders of a failed bag.

    Raises:
        NotFleetOutput: one of the folders involved was not made by fleet (nothing is moved).
    """
    final = final_dir(out, name)
    if final.exists() or final.is_symlink():
        return None
    new, old = temp_dir(out, name), Path(out) / f".{name}{_REPLACED}"
    for source, what in ((new, "the new output a killed run was publishing"),
                         (old, "the earlier output a killed run had moved aside")):
        if is_complete(source):
            check_ours(old)
            check_ours(work_dir(out, name))
            os.replace(source, final)
            fsync_dir(final.parent)
            discard_ours(old)
            discard_ours(work_dir(out, name))
            return f"{name}: put {what} in place, complete, as {final}"
    return None


def leftovers(out: Path, names: list[str]) -> list[Path]:
    """The hidden work folders of ``names`` still in ``out`` (after a failed or killed bag)."""
    found = []
    for name in names:
        for suffix in (_PARTIAL, _REPLACED):
            path = Path(out) / f".{name}{suffix}"
            if path.exists() or path.is_symlink():
                found.append(path)
    return found
