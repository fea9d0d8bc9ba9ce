"""Checks on where a command writes, done before any work: outputs never destroy inputs.

A command that clears or overwrites an output path (``replay --force``, ``driver attention
--json-out``) first makes sure that path is not one of its inputs, does not contain one and does
not lie inside one (symbolic links followed and not), that it can be written, and, for a result
file, that it is not an image: a typo must not turn a photo into JSON.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

from .errors import SensePerceptionError
from .fileio import make_dirs, shared_mode

#: Suffixes of image files a JSON or other result file is never written over.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".exr", ".hdr", ".heic",
                            ".avif"})


#: Hidden files by which ``fleet`` (each bag's output and work folder) and ``replay`` (its --out)
#: mark the folders they own: each replaces or deletes only folders holding its own mark.
FLEET_MARK = ".sense-perception-fleet"
REPLAY_MARK = ".sense-perception-replay"
_OWNERS = {FLEET_MARK: "one bag's output folder of an earlier fleet run",
           REPLAY_MARK: "the output folder of a replay"}


class OutputPathError(SensePerceptionError):
    """An output path would destroy an input, or cannot be written."""


def real_path(path: Path) -> Path:
    """``path`` with every link resolved; a link loop (``ln -s loop loop``), which pathlib's
    resolve() raises RuntimeError on (a traceback from every check), is judged as written."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))


def _forms(path: Path) -> set[Path]:
    # The path as written (made absolute, '..' folded, links kept) and with every link resolved:
    # `review/bag` may be a link to the real recording, or `out` a link to the input's folder.
    return {Path(os.path.abspath(path)), real_path(path)}


def overlap(a: Path, b: Path) -> str | None:
    """How ``a`` and ``b`` overlap ("is", "contains", "lies inside"), or None when apart."""
    for x in _forms(a):
        for y in _forms(b):
            if x == y:
                return "is"
            if y.is_relative_to(x):
                return "contains"
            if x.is_relative_to(y):
                return "lies inside"
    return None


def check_apart(out: Path, inputs: Iterable[Path], option: str = "--out",
                error: type[SensePerceptionError] = OutputPathError) -> None:
    """Refuse an output directory ``out`` that is, contains or lies inside one of ``inputs``.

    Raises:
        error: (default :class:`OutputPathError`) naming both paths and the fix.
    """
    for source in inputs:
        how = overlap(Path(out), Path(source))
        if how:
            raise error(
                f"{option} {out} {how} the input {source}; writing there could replace or delete "
                f"the input; choose an {option} outside the input (and the input outside it)")


def check_not_in_an_output(out: Path, error: type[Exception], own: str | None = None,
                           option: str = "--out") -> None:
    """Refuse an ``out`` that is, or lies inside, a folder another run owns: one bag's output or
    work folder of a fleet run (:data:`FLEET_MARK`) or a replay's output (:data:`REPLAY_MARK`).

    Such a folder belongs to the run that made it: a fleet run with ``--force``, or a retry,
    replaces it whole, and ``replay --force`` clears its ``bag/`` and ``video/``, so writing
    into it either destroys that run's results or is destroyed by it (each lock or mark is per
    folder: nothing else stops it). ``own``: the caller's own mark, accepted on ``out`` itself
    (``replay --force`` replaces its own earlier output). Checked as written and with links
    resolved, before anything is created. ``option`` names the path in the message; it may be a
    result file (only the folders above it are judged).

    Raises:
        error: naming the folder, whose output it is, and the fix.
    """
    for form in dict.fromkeys([real_path(out), Path(os.path.abspath(out))]):  # real first
        for folder in (form, *form.parents):
            for marker, whose in _OWNERS.items():
                if (folder / marker).is_file() and not (folder == form and marker == own):
                    how = "is" if folder == form else f"lies inside {folder},"
                    raise error(
                        f"{option} {out} {how} {whose} (it holds {marker}): that run replaces "
                        "it whole on --force or a retry, deleting what this run writes there; "
                        f"choose an {option} outside it")


def check_own_folder(out: Path, mark: str, what: str, option: str = "",
                     inputs: Iterable[Path] = ()) -> None:
    """Refuse an output folder ``out`` that a tool must not write into: it must be missing, empty
    or the tool's own earlier output (holding the hidden file ``mark``), never a file.

    ``what`` says what writing there would do to a folder of the user's ("its manifest.json and
    copies could replace them"); ``option`` ("--out") prefixes the path in the message; a folder
    that holds one of ``inputs`` says so.

    Raises:
        OutputPathError: naming the folder, the reason and the fix.
    """
    named = f"{option} {out}" if option else f"{out}"
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{named} is a file; give an output folder")
    if out.is_dir() and any(out.iterdir()) and not (out / mark).is_file():
        held = " (it holds the input images)" if any(
            overlap(out, Path(source).parent) == "is" for source in inputs) else ""
        raise OutputPathError(f"{named} holds files this tool did not write{held} (no {mark}); "
                              f"{what}: give a new or empty output folder")


def check_writable_dir(path: Path, option: str = "--out", create: bool = True,
                       error: type[SensePerceptionError] = OutputPathError) -> None:
    """Prove a file can be created in directory ``path``, creating it first if ``create``.

    With ``create`` false nothing is left behind: a missing ``path`` is judged by its nearest
    existing parent, which must be a writable directory.

    Raises:
        error: (default :class:`OutputPathError`) it is a file, cannot be created or is not
            writable (read-only disk, permissions), naming the reason.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"{option} {path} is a file, not a directory; give a directory")
    if path.is_symlink() and not path.exists():
        raise error(f"{option} {path} is a link that leads to no folder (a loop or a missing "
                    "target); give a directory")
    probe = path
    if not create:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise error(f"{option} {path} cannot be created: {probe} is a file, not a "
                        "directory; choose a directory you can write to")
    try:
        if create:
            # never writable by others, parents included (R88: 0777 under umask 000)
            make_dirs(path, shared_mode(0o777))
        with tempfile.TemporaryFile(dir=probe, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise error(f"{option} {path} is not writable: {exc.strerror or exc}; choose a "
                    "directory you can write to") from exc


def check_result_file(path: Path, inputs: Iterable[Path], option: str,
                      json_only: bool = True, own: OwnResult | None = None) -> None:
    """Refuse a result file ``path`` that is an input, an image, a directory or not writable,
    and (``json_only``, for JSON results) an existing file that is not JSON: a config, key,
    CSV or note given by mistake is never replaced by a result (see :func:`not_json`). With
    ``own``, an existing JSON file must be an earlier result of the command's own kind too
    (:func:`check_own_result`): ``health --json-out`` replaced any JSON, eval's eval.json (its
    set then broken) and a COCO ground truth among them.

    Nothing is created: the directory it goes to is only probed with a temporary file.

    Raises:
        OutputPathError: naming the path, the reason and the fix.
    """
    path = Path(path)
    # A fleet run's bag folder (or a replay's output) is replaced whole by that run's --force:
    # a result written inside it (`health --json-out fleet/bag1/h.json`) was deleted with it.
    check_not_in_an_output(path, OutputPathError, option=option)
    for form in (path, real_path(path)):  # a link named .json may point at a photo
        if form.suffix.lower() in IMAGE_SUFFIXES:
            what = (f"has an image suffix ({form.suffix})" if form == path
                    else f"is a link to the image {form}")
            raise OutputPathError(f"{option} {path} {what}; a result file is never written over "
                                  "an image: give a name ending in .json")
    for source in inputs:
        if overlap(path, Path(source)) == "is" or same_file(path, Path(source)):
            raise OutputPathError(f"{option} {path} is the input {source}; it would be "
                                  "overwritten: give another file name")
    if path.is_file() and _is_image(path):
        raise OutputPathError(f"{option} {path} is an image file; a result file is never written "
                              "over an image: give another file name")
    if path.is_dir():
        raise OutputPathError(f"{option} {path} is a directory; give a file name")
    if path.exists() and not path.is_file():
        # Writing to a FIFO waits for a reader for ever; replacing a device (/dev/null) or socket
        # by a result file would break whatever uses it.
        raise OutputPathError(f"{option} {path} is {file_kind(path)}, not a regular file; a result is "
                              "written only to a regular file: give a file name")
    head = file_head(path)  # read once, for both checks below (None: no regular file)
    start = _not_json_head(head) if json_only and head is not None else None
    if start is not None:
        raise OutputPathError(f"{option} {path} already holds a file that is not a JSON result "
                              f"(it begins {start}); a result is never written over it: give a "
                              "new file name, or move that file away first")
    if head is not None and _is_gallery_head(head):
        raise OutputPathError(f"{option} {path} is a driver gallery (enrolled drivers' face "
                              "templates); a result is never written over it: give a new file "
                              "name")
    if own is not None and head is not None and _text_start(head):
        check_own_result(path, option, own)
    folder = path.parent
    if not folder.is_dir():
        raise OutputPathError(f"{option} {path}: directory {folder} does not exist; create it "
                              "or give another path")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check-"):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise OutputPathError(f"{option} {path} cannot be written: {exc.strerror or exc}; give a "
                              "path you can write to") from exc


class OwnResult(NamedTuple):
    """What a command's JSON result is, for :func:`check_own_result`.

    Attributes:
        command: the command, in the refusal (``health``).
        is_own: True for a parsed JSON document the command writes.
    """

    command: str
    is_own: Callable[[Any], bool]


#: Largest earlier result :func:`check_own_result` reads to judge it (a health run over tens of
#: thousands of images writes a few MB); a larger file is refused unread.
MAX_RESULT_BYTES = 256 << 20


def check_own_result(path: Path, option: str, own: OwnResult) -> None:
    """Refuse an existing JSON file ``path`` that is not an earlier result of ``own.command`` (nor
    an empty ``{}`` or ``[]``): another command's results (``eval``'s eval.json beside its detections.json, ``detect``'s
    detections.json), a ground truth or a JSON file of the user's, each of which a result
    replaced whole.

    Raises:
        OutputPathError: naming the path, how it begins and the fix.
    """
    import json

    from .fileio import read_regular_file

    what = f"{own.command}'s own result"
    try:
        document = json.loads(read_regular_file(path, MAX_RESULT_BYTES).decode("utf-8-sig"))
        mine = document in ({}, []) or own.is_own(document)  # an empty one holds nothing
    except OSError as exc:
        raise OutputPathError(f"{option} {path} cannot be read to tell whether it is {what}: "
                              f"{exc.strerror or exc}; give a new file name") from None
    except (ValueError, RecursionError):  # not JSON after all (or not UTF-8, or "[[[[..." a few
        mine = False  # kB deep: a traceback before R89): nothing this command writes
    if not mine:
        head = file_head(path) or b""
        raise OutputPathError(f"{option} {path} already holds JSON that is not {what} (it begins "
                              f"{head_start(head)}: another command's results, a ground truth "
                              "or a file of yours); a result replaces only an earlier result of "
                              "its own: give a new file name, or move that file away first")


def earlier_result_problem(path: Path, own: OwnResult) -> str | None:
    """Why the existing file ``path`` may not be replaced by ``own.command``'s result of that name
    (a file it writes at a fixed place, fleet's ``fleet_summary.json``): it is not a regular
    file, cannot be read (named as such, not as "a device"), not JSON, or JSON that is not an
    earlier result of that command (:func:`check_own_result`);
    None when ``path`` is absent, empty (``{}``, ``[]`` included) or such a result.
    """
    if not path.exists() and not path.is_symlink():
        return None
    head = file_head(path)
    if head is None:
        if not path.exists():
            return "is a link that leads to no file"
        if not path.is_file():
            return f"is {file_kind(path)}, not a regular file"
        # a regular file this user cannot open (another user's, mode 0000): it was called
        # "a device, not a regular file", a wrong cause and no way out
        try:
            os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
            why = "it could not be read"
        except OSError as exc:
            why = exc.strerror or str(exc)
        return (f"cannot be read to tell whether it is {own.command}'s own result ({why}): "
                "another user's file, or one without read permission")
    if not _text_start(head):
        return None
    start = _not_json_head(head)
    if start is not None:
        return f"holds a file that is not a JSON result (it begins {start})"
    try:
        check_own_result(path, "", own)
    except OutputPathError:
        return (f"holds JSON that is not {own.command}'s own result (it begins "
                f"{head_start(head)}: another command's results or a file of yours)")
    return None


def check_video_dir(path: Path, option: str = "--out",
                    error: type[SensePerceptionError] = OutputPathError) -> None:
    """Refuse a video output directory whose absolute path is not valid UTF-8.

    OpenCV's VideoWriter takes a UTF-8 path: a name read from disk as lone surrogates (bytes that
    are not UTF-8) crashed the whole process (SIGSEGV) at the first frame, leaving the run
    half-written.

    Raises:
        error: (default :class:`OutputPathError`) naming the path and the fix.
    """
    shown = os.path.abspath(path)
    try:
        shown.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{option} {ascii(shown)} is not a valid UTF-8 path (a name with bytes from "
                    "another encoding); videos cannot be written there; choose or rename a "
                    "directory with a UTF-8 name") from None


def not_json(path: Path) -> str | None:
    """How an existing regular file that is not a JSON document begins (its first characters,
    escaped), or None when it is empty or begins as JSON results do (``{`` or ``[``).

    A ``--json-out`` typed over the YAML config, the gallery key, a pairs CSV or any other file
    replaced it with the result (its bytes gone); only an earlier result (or an empty file) may
    be replaced. Reads at most 4 KiB, never waits (``O_NONBLOCK``), never follows a FIFO.
    """
    head = file_head(path)
    # unreadable or not a regular file: None, the other checks name the reason
    return None if head is None else _not_json_head(head)


def _not_json_head(head: bytes) -> str | None:
    """:func:`not_json` of a file whose first bytes are ``head``."""
    text = _text_start(head)
    return None if not text or text[:1] in (b"{", b"[") else head_start(head)


def _text_start(head: bytes) -> bytes:
    """``head`` past a UTF-8 byte-order mark and leading white space."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")


def head_start(head: bytes) -> str:
    """How a file whose first bytes are ``head`` begins, for a message: its first characters past
    a byte-order mark and white space, escaped (control characters cannot forge the message)."""
    return ascii(_text_start(head)[:24].decode("utf-8", "replace"))


def is_gallery(path: Path) -> bool:
    """Whether ``path`` is a plain driver gallery (or its ``.bak``), by its first bytes.

    A gallery is JSON, so :func:`not_json` lets it be replaced: ``health --json-out`` (or any
    result) naming ``~/.local/share/sense_perception/gallery.json`` replaced every enrolled driver
    with the result, as ``driver --json-out`` did before it knew the gallery's paths.
    """
    head = file_head(path)
    return head is not None and _is_gallery_head(head)


def _is_gallery_head(head: bytes) -> bool:
    """:func:`is_gallery` of a file whose first bytes are ``head``."""
    from .face.gallery import FORMAT

    return re.search(rb'"format"\s*:\s*"' + re.escape(FORMAT.encode()) + rb'"', head) is not None


def file_head(path: Path, size: int = 4096) -> bytes | None:
    """The first ``size`` bytes of ``path`` when it is a regular file (opened without waiting:
    a FIFO is never read), else None."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return os.read(fd, size) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)


def file_kind(path: Path) -> str:
    """What an existing path that is not a regular file names, in words ("a FIFO (named pipe)")."""
    from .fileio import describe_mode

    return describe_mode(path.stat().st_mode)


def _is_image(path: Path) -> bool:
    """True when OpenCV (or, for a name that is not UTF-8, Pillow) recognises the file's content
    as an image: its signature, not its name."""
    import cv2

    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:  # OpenCV crashes (SIGSEGV) on such a name: Pillow opens it in Python
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path):
                return True
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return False
    try:
        return bool(cv2.haveImageReader(str(path)))
    except cv2.error:
        return False


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` both exist and are one file (hard links and symbolic links too)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links too
    except OSError:
        return False


__all__ = ["IMAGE_SUFFIXES", "MAX_RESULT_BYTES", "OutputPathError", "OwnResult", "check_apart",
           "check_own_folder", "check_own_result", "check_result_file", "earlier_result_problem", "file_head", "file_kind",
           "head_start", "is_gallery", "not_json", "check_video_dir", "check_writable_dir",
           "overlap", "real_path", "same_file"]
