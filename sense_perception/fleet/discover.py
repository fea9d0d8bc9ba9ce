"""Find the rosbag2 recordings under the inputs of a fleet run and give each an output name."""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import BagError
from ..replay.reader import STORAGE_SUFFIXES

METADATA = "metadata.yaml"


@dataclass(frozen=True)
class BagJob:
    """One recording to replay.

    Attributes:
        name: the output folder under ``--out`` (``DIR/<name>/``).
        path: the bag: a rosbag2 directory or a single ``.mcap`` / ``.db3`` file (absolute).
    """

    name: str
    path: Path


def _storage_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix in STORAGE_SUFFIXES and not p.is_dir())


def _is_split_recording(directory: Path, files: list[Path]) -> bool:
    """True when ``files`` are the parts of one recording: rosbag2 names them ``<dir>_<n>.<ext>``.

    A bag folder whose recorder crashed before writing metadata.yaml still follows that naming,
    while a folder of independent single-file recordings does not.
    """
    pattern = re.compile(re.escape(directory.name) + r"_\d+$")
    return bool(files) and all(pattern.match(p.stem) for p in files)


def _bags_in(root: Path, exclude: set[Path]) -> Iterable[Path]:
    if not root.is_dir():
        if root.suffix in STORAGE_SUFFIXES:
            yield root
            return
        raise BagError(f"{root} is neither a directory nor a .mcap/.db3 file; pass rosbag2 "
                       "directories, storage files or folders holding them")
    for current, dirs, _ in os.walk(root, followlinks=False):
        here = Path(current)
        # Hidden folders hold in-progress fleet outputs (.<name>.partial) and tool caches.
        dirs[:] = sorted(d for d in dirs
                         if not d.startswith(".") and (here / d).resolve() not in exclude)
        files = _storage_files(here)
        if (here / METADATA).is_file() or _is_split_recording(here, files):
            dirs[:] = []  # one recording: its files are not bags of their own
            yield here
        else:
            yield from files


def _unique_names(paths: Sequence[Path]) -> list[str]:
    base = [p.stem if not p.is_dir() else p.name for p in paths]
    counts = Counter(base)
    # Two recordings with one name (day1/run, day2/run): a short hash of the path keeps both, and
    # the same inputs give the same names next time, so resume finds them again.
    return [name if counts[name] == 1 else
            f"{name}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
            for name, p in zip(base, paths)]


def find_bags(inputs: Sequence[Path], exclude: Sequence[Path] = ()) -> list[BagJob]:
    """Every rosbag2 recording under ``inputs``, in a stable order, each with a unique name.

    A directory holding ``metadata.yaml`` (or storage files named ``<dir>_<n>``, a recording whose
    metadata was never written) is one bag; other ``.mcap`` / ``.db3`` files are single-file bags.
    Directories are searched recursively; hidden ones and ``exclude`` (the output folder) are not.

    Args:
        inputs: bag directories, storage files, or folders holding them.
        exclude: folders never searched.

    Returns:
        The bags, sorted by path, duplicates (a bag reached through two inputs) removed.

    Raises:
        BagError: an input does not exist or is not a bag, a storage file or a folder.
    """
    skip = {Path(p).resolve() for p in exclude}
    found: dict[Path, None] = {}
    for raw in inputs:
        root = Path(raw)
        if not root.exists():
            raise BagError(f"input {root} does not exist; pass rosbag2 directories, .mcap/.db3 "
                           "files or folders holding them")
        for path in _bags_in(root.resolve(), skip):
            found.setdefault(path, None)
    paths = sorted(found)
    return [BagJob(name, path) for name, path in zip(_unique_names(paths), paths)]
