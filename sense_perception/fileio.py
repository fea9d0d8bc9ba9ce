"""Crash-safe file writes shared by the gallery and the model cache, and bounded reads of the
small input files commands are given (configs, calibrations)."""
from __future__ import annotations

import errno
import json
import math
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence


def _fsync(path: Path, flags: int) -> None:
    """Open ``path`` read-only with ``flags`` and flush it to disk."""
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (a rename) to disk."""
    _fsync(path, 0)


def fsync_file(path: Path) -> None:
    """Flush a file its writer has finished and closed (an MCAP bag, an MP4 from OpenCV, whose
    writers never flush to disk) before anything declares it finished (summary.json): once, at
    the end, not per frame. Opened without following a link.

    Raises:
        OSError: it cannot be opened or flushed (EIO, ENOSPC: the kernel could not write back
            data the writer had handed it; the file on disk is not whole).
    """
    _fsync(path, os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))


_UMASK_LOCK = threading.Lock()


def umask_now() -> int:
    """The process's umask, read from ``/proc/self/status`` (Linux 4.7 and later), else by
    setting it and putting it back (there is no getter) under a lock.

    Set and put back, it was 077 for a moment, for every thread (a file another thread made then
    got 077's mode), and two threads doing so at once could leave the process at 077 for good,
    each putting back what the other had set (R90)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
        return mask


# A shared output (a result, an exterior camera's video or copied frames) is never writable by
# group or others, whatever the umask: under umask 000 a world-writable folder let another user
# replace the files in it (a video swapped before OpenCV opened it by name, R88).
NOT_SHARED_WRITE = 0o022


def shared_mode(mode: int) -> int:
    """``mode`` less the umask and less write permission for group and others."""
    return mode & ~(umask_now() | NOT_SHARED_WRITE)


def chmod_nofollow(path: Path, mode: int, directory: bool = False) -> None:
    """Set ``path``'s mode through a descriptor opened without following a link, so a file or
    folder swapped for a link changes nothing else.

    Raises:
        OSError: it cannot be opened (a link: ELOOP) or changed.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                 | (os.O_DIRECTORY if directory else 0))
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def make_dirs(folder: Path, mode: int) -> None:
    """Create ``folder`` and every missing parent with ``mode`` exactly (0700 for a private
    folder, :func:`shared_mode` ``(0o777)`` for a shared one), whatever the umask.

    ``Path.mkdir(parents=True, mode=...)`` gives the mode to the last folder only; the parents
    get ``0777 & ~umask``, world-writable under ``umask 0``, and anyone who can write a folder on
    the way can swap the folders below it. Existing folders are left as they are.

    Raises:
        OSError: a folder cannot be created.
    """
    folder = Path(folder)
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():  # a file where a folder should be: say so, as mkdir would
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    for path in reversed(missing):
        try:
            path.mkdir(mode=mode)
        except FileExistsError:
            continue  # made meanwhile by a concurrent command: it sets its own mode
        # An umask with owner bits (0o277) must not leave it unusable
        chmod_nofollow(path, mode, directory=True)


def atomic_write(path: Path, data: bytes, temp_prefix: str | None = None,
                 private: bool = True) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file, never half.

    The data goes to a temp file beside ``path`` (mode 0600, as mkstemp creates it; with
    ``private`` false :func:`shared_mode`, for results the user shares: the umask's, never
    writable by group or others), is
    fsynced, renamed over ``path``, and the directory is fsynced. ``temp_prefix`` names the temp
    file so a caller can find temp files a killed writer left.
    """
    folder = path.parent
    tmp = _write_temp_beside(path, data, private, temp_prefix)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(folder)


#: The most bytes of the target's name a temp file's default name repeats: with the dots, the 8
#: random characters and ``.tmp`` it stays within the 255 bytes a file name may have.
_TEMP_NAME_BYTES = 200


def _write_temp_beside(path: Path, data: bytes, private: bool, prefix: str | None = None) -> str:
    """``data`` written and fsynced to a new temp file beside ``path`` (0600, or with ``private``
    false :func:`shared_mode`); its name. Removed again if writing fails.

    The default temp name repeats at most :data:`_TEMP_NAME_BYTES` bytes of ``path``'s name: the
    whole name made a target of a valid name over 241 bytes (``detect``'s annotated copy of a
    photo with a long name, a long ``--json-out``) fail with "File name too long" (R89)."""
    short = os.fsdecode(os.fsencode(path.name)[:_TEMP_NAME_BYTES])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{short}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if not private:
                os.fchmod(f.fileno(), shared_mode(0o666))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def replace_together(files: dict[Path, bytes | None], private: bool = True,
                     marker: tuple[Path, bytes] | None = None) -> None:
    """Replace several files as one set: each new content is written in full to a temp file
    beside its target (as :func:`atomic_write` does) before any target changes; only then are they
    renamed into place and the files given ``None`` removed.

    A full disk or a kill while writing keeps every earlier file whole, never the new version of
    one beside the old version of another. (The renames and removals at the end need no space.)
    A ``kill -9`` or a power cut between two of the renames does leave a mixed set: with
    ``marker`` (a path and its text) that file is on disk (flushed) before the first rename and
    removed (flushed) after the last, so a mixed set is always marked as such.

    Raises:
        OSError: a temp file cannot be written; every temp file is removed, no target changed
            (and no marker written). Raised by a rename, the marker stays (the set may be mixed).
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            if data is None:
                continue
            temps.append((_write_temp_beside(path, data, private), path))
        if marker is not None:
            atomic_write(marker[0], marker[1], private=private)
        for done, (tmp, path) in enumerate(temps):
            os.replace(tmp, path)
            temps[done] = ("", path)  # in place: nothing left to remove
    except BaseException:
        for tmp, _ in temps:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
        raise
    for path, data in files.items():
        if data is None:
            path.unlink(missing_ok=True)
    for folder in {path.parent for path in files}:
        fsync_dir(folder)
    if marker is not None:
        marker[0].unlink()
        fsync_dir(marker[0].parent)


def write_result_json(path: Path, document: Any, indent: int | None = 1) -> None:
    """Write a JSON result the user reads (``--json-out``, eval.json, detections.json) with
    :func:`atomic_write`: a full disk or a kill keeps the earlier file whole, and a link or FIFO
    under the name is replaced, never written through."""
    atomic_write(path, (json.dumps(document, indent=indent) + "\n").encode(), private=False)


def finite_json(value: Any) -> Any:
    """``value`` with every NaN / infinity replaced by None, through dicts, lists and tuples:
    JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def write_summary_json(path: Path, document: Any, private: bool = False) -> None:
    """Write a run's summary (a replay's ``summary.json``, fleet's ``fleet_summary.json``) as
    strict, indented JSON (NaN / infinity as null: :func:`finite_json`), atomically: a whole file
    or none, flushed to disk (the file before its rename, the folder after) as
    :func:`atomic_write` is. Without the flush a power cut after the run could leave a summary of
    zero length or none, and fleet's resume takes a bag whose summary.json exists as done.

    The temp file has the fixed name ``.<name>.tmp`` beside ``path`` (which a replay's
    ``--force`` clears and fleet reserves); a link or file planted under that name is removed,
    never written through. ``private``: mode 0600 whatever the umask (a cabin replay's summary
    holds the driver's pseudonymous id and attention timeline), else 0644 less the umask.

    Raises:
        OSError: it cannot be written (the temp file is removed).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(finite_json(document), indent=2, allow_nan=False) + "\n"
    tmp.unlink(missing_ok=True)  # a link planted there is removed, never written through
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600 if private else 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_image(path: Path, image: Any, params: Sequence[int] = ()) -> None:
    """Encode ``image`` (BGR) by ``path``'s suffix with OpenCV's ``params`` and write it through
    :func:`atomic_write` (mode under the umask: images are shared results).

    Written through Python rather than ``cv2.imwrite``, which said nothing when the disk was full
    or the folder read-only, and crashed the process on a file name that is not valid UTF-8; the
    temp file and rename leave no truncated image that looks complete.

    Raises:
        OSError: the image cannot be encoded (OpenCV's reason) or written.
    """
    import cv2

    try:
        ok, data = cv2.imencode(path.suffix, image, list(params))
    except cv2.error as exc:
        raise OSError(f"OpenCV cannot encode {path.suffix}: {exc}") from exc
    if not ok:
        raise OSError(f"OpenCV cannot encode {path.suffix}")
    atomic_write(path, data.tobytes(), private=False)


def describe_mode(mode: int) -> str:
    """What a file that is not a regular file is, in words ("a FIFO (named pipe)"), from its
    ``st_mode``: for errors that refuse it as an input or an output."""
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device")


class NotRegularFileError(OSError):
    """A path given as an input file names a FIFO, socket, device or directory, or is too big."""

    def __str__(self) -> str:
        return str(self.strerror)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes``.

    Opened with ``O_NONBLOCK`` and checked on the descriptor: a FIFO never waits for a writer and
    a device such as ``/dev/zero`` is never read without end.

    Raises:
        NotRegularFileError: ``path`` is not a regular file, or is larger than ``max_bytes``.
        OSError: it cannot be opened or read (missing, permissions).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(errno.EINVAL, f"it is {describe_mode(st.st_mode)}, not a "
                                      "regular file", str(path))
        if st.st_size > max_bytes:
            raise NotRegularFileError(errno.EFBIG, f"it is {st.st_size} bytes, more than the "
                                      f"{max_bytes} a file of this kind may have", str(path))
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read(max_bytes + 1)[:max_bytes]
    finally:
        os.close(fd)
