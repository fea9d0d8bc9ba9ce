"""Where a fleet run puts each bag's outputs, and how they become visible only when complete.

A worker replays into ``DIR/.<name>.partial/`` and renames it to ``DIR/<name>/`` once the replay
engine has written its summary.json, so ``DIR/<name>/`` only ever holds a finished replay: a
second run skips it (resume), and a worker killed halfway leaves only a hidden folder that the
retry (or the next run) wipes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..replay.engine import INCOMPLETE_FILE, SUMMARY_FILE

FLEET_SUMMARY = "fleet_summary.json"
_PARTIAL, _REPLACED = ".partial", ".replaced"


def final_dir(out: Path, name: str) -> Path:
    """``DIR/<name>/``: the finished outputs of one bag, exactly what ``replay`` writes."""
    return Path(out) / name


def temp_dir(out: Path, name: str) -> Path:
    """``DIR/.<name>.partial/``: where the outputs are written until the replay is complete."""
    return Path(out) / f".{name}{_PARTIAL}"


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished replay: summary.json and no incomplete marker."""
    return (folder / SUMMARY_FILE).is_file() and not (folder / INCOMPLETE_FILE).exists()


def read_summary(folder: Path) -> dict[str, Any] | None:
    """The replay summary in ``folder``, or None when it is missing or unreadable."""
    try:
        return json.loads((folder / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


def discard(folder: Path) -> None:
    """Remove ``folder`` and everything in it, if it exists."""
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    elif folder.exists() or folder.is_symlink():
        folder.unlink()


def publish(temp: Path, final: Path) -> None:
    """Move the finished outputs in ``temp`` to ``final``, replacing an older ``final`` (--force).

    Both steps are renames within ``DIR``. The old outputs are moved aside first and deleted only
    once the new ones are in place; a crash between the two renames leaves no ``final`` (the next
    run replays the bag again), never a mix of old and new files.
    """
    old = final.with_name(f".{final.name}{_REPLACED}")
    discard(old)
    if final.exists():
        os.replace(final, old)
    os.replace(temp, final)
    discard(old)


def leftovers(out: Path, names: list[str]) -> list[Path]:
    """The hidden work folders of ``names`` still in ``out`` (after a failed or killed bag)."""
    found = []
    for name in names:
        for suffix in (_PARTIAL, _REPLACED):
            path = Path(out) / f".{name}{suffix}"
            if path.exists():
                found.append(path)
    return found
