"""Find the rosbag2 recordings under the inputs of a fleet run and give each an output name."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import BagError
from ..outpaths import real_path
from ..replay.reader import STORAGE_SUFFIXES

LOG = logging.getLogger(__name__)

METADATA = "metadata.yaml"
# Names fleet itself writes into --out (compared case-insensitively: some file systems are).
RESERVED_NAMES = frozenset({"fleet_summary.json", ".fleet_summary.json.tmp", ".fleet.lock"})
# Room under the usual 255-byte name limit for the ".<name>.replaced" work folder around a name.
MAX_NAME_BYTES = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


@dataclass(frozen=True)
class BagJob:
    """One recording to replay.

    Attributes:
        name: the output folder under ``--out`` (``DIR/<name>/``).
        path: the bag: a rosbag2 directory or a single ``.mcap`` / ``.db3`` file (absolute).
    """

    name: str
    path: Path


def _storage_files(entries: list[Path]) -> list[Path]:
    return [p for p in entries if p.suffix in STORAGE_SUFFIXES and p.exists() and not p.is_dir()]


def _is_split_recording(directory: Path, files: list[Path]) -> bool:
    """True when ``files`` are the parts of one recording: rosbag2 names them ``<dir>_<n>.<ext>``.

    A bag folder whose recorder crashed before writing metadata.yaml still follows that naming,
    while a folder of independent single-file recordings does not.
    """
    pattern = re.compile(re.escape(directory.name) + r"_\d+$")
    return bool(files) and all(pattern.match(p.stem) for p in files)


def _bags_in(root: Path, exclude: set[Path], notes: list[str]) -> Iterable[Path]:
    if not root.is_dir():
        if root.suffix in STORAGE_SUFFIXES:
            if not root.is_file():
                raise BagError(f"{root} is not a regular file (a pipe or device); pass rosbag2 "
                               "directories or .mcap/.db3 files")
            yield root
            return
        raise BagError(f"{root} is neither a directory nor a .mcap/.db3 file; pass rosbag2 "
                       "directories, storage files or folders holding them")
    seen: set[Path] = set()
    # Links to folders are followed (a bag kept on another disk); each real folder is entered
    # once, so a link to an ancestor (a loop) or a second link to one folder adds nothing.
    def unreadable(exc: OSError) -> None:
        _note(notes, f"cannot search {exc.filename}: {exc.strerror or exc}; skipped")

    for current, dirs, _ in os.walk(root, followlinks=True, onerror=unreadable):
        here = Path(current)
        real = here.resolve()
        if real in seen:
            dirs[:] = []
            if here.is_symlink():
                _note(notes, f"{here} links to {real}, already searched (a loop or a second "
                             "link to one folder): searched once")
            continue
        seen.add(real)
        kept = []
        for d in sorted(dirs):
            path = here / d
            # Hidden folders hold in-progress fleet outputs (.<name>.partial) and tool caches.
            if d.startswith(".") or real_path(path) in exclude:
                continue
            kept.append(d)
        dirs[:] = kept
        try:
            entries = sorted(here.iterdir())
        except OSError as exc:
            unreadable(exc)
            continue
        for broken in (p for p in entries if p.is_symlink() and not p.exists()):
            _note(notes, f"{broken} is a link to {os.readlink(broken)}, which does not exist: "
                         "skipped")
        files = _storage_files(entries)
        if (here / METADATA).is_file() or _is_split_recording(here, files):
            dirs[:] = []  # one recording: its files are not bags of their own
            yield here
            continue
        for file in files:
            if file.is_file():
                yield file
            else:  # a FIFO or device: reading it could block a worker until its time limit
                _note(notes, f"{file} is not a regular file (a pipe or device): skipped")


def _note(notes: list[str], text: str) -> None:
    LOG.warning("%s", text)
    notes.append(text)


def safe_name(raw: str) -> str:
    """An output folder name for a bag named ``raw``: one path component, never hidden.

    Control, format (bidi, zero-width) characters and separators become ``_``; leading dots and spaces are dropped (``..``
    would be the parent of --out, ``.x`` a hidden name like fleet's own work folders); an empty
    result is ``bag``; the name is cut to :data:`MAX_NAME_BYTES` bytes of UTF-8.
    """
    text = _UNSAFE.sub("_", unicodedata.normalize("NFC", raw))
    # Invisible and direction-changing characters (bidi overrides, zero-width) would make the
    # table and the folder list lie about the name.
    text = "".join("_" if unicodedata.category(c) in _INVISIBLE else c for c in text)
    name = text.lstrip(". ").rstrip(" ")
    name = name or "bag"
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    return name


def _unique_names(paths: Sequence[Path]) -> list[str]:
    base = [safe_name(p.stem if not p.is_dir() else p.name) for p in paths]
    counts = Counter(b.casefold() for b in base)
    # Two recordings with one name (day1/run, day2/run), or a name fleet writes itself
    # (fleet_summary.json): a short hash of the path tells them apart, and the same inputs give
    # the same names next time, so resume finds them again.
    names = [name if counts[name.casefold()] == 1 and name.casefold() not in RESERVED_NAMES else
             _hashed(name, p) for name, p in zip(base, paths, strict=True)]
    taken: set[str] = set()
    for i, (name, path) in enumerate(zip(names, paths, strict=True)):
        n = 0
        while name.casefold() in taken or name.casefold() in RESERVED_NAMES:
            n += 1  # a hashed name that equals another bag's own name: rare, but never shared
            name = _hashed(base[i], path, salt=str(n))
        taken.add(name.casefold())
        names[i] = name
    return names


def _hashed(name: str, path: Path, salt: str = "") -> str:
    digest = hashlib.sha1((str(path) + salt).encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME_BYTES - 9]}-{digest}" if len(name.encode()) > MAX_NAME_BYTES - 9 \
        else f"{name}-{digest}"


def find_bags(inputs: Sequence[Path], exclude: Sequence[Path] = (),
              notes: list[str] | None = None) -> list[BagJob]:
    """Every rosbag2 recording under ``inputs``, in a stable order, each with a unique name.

    A directory holding ``metadata.yaml`` (or storage files named ``<dir>_<n>``, a recording whose
    metadata was never written) is one bag; other ``.mcap`` / ``.db3`` files are single-file bags.
    Directories are searched recursively, following links to folders (each real folder once);
    hidden ones and ``exclude`` (the output folder) are not searched. Output names are made safe
    (:func:`safe_name`) and unique, also against the files fleet writes itself.

    Args:
        inputs: bag directories, storage files, or folders holding them.
        exclude: folders never searched.
        notes: receives what was passed over and why (broken links, loops), also logged.

    Returns:
        The bags, sorted by path, duplicates (a bag reached through two inputs) removed.

    Raises:
        BagError: an input does not exist or is not a bag, a storage file or a folder.
    """
    skip = {real_path(Path(p)) for p in exclude}  # --out may be a link loop
    notes = [] if notes is None else notes
    found: dict[Path, Path] = {}  # real path -> the path it was found by
    for raw in inputs:
        root = Path(raw)
        if not root.exists():
            raise BagError(f"input {root} does not exist; pass rosbag2 directories, .mcap/.db3 "
                           "files or folders holding them")
        for path in _bags_in(root.resolve(), skip, notes):
            found.setdefault(path.resolve(), path)
    paths = sorted(found.values())
    return [BagJob(name, path) for name, path in zip(_unique_names(paths), paths, strict=True)]
