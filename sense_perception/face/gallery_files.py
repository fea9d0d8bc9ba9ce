"""Opening, scrubbing and erasing the gallery's files without following links or blocking.

Anyone who can write the gallery directory (SECURITY.md, adversary 1) can plant a symbolic link, a
hard link, a FIFO or a directory under one of its names. Every open here therefore:

* never follows a link in the last path component (``O_NOFOLLOW``): a planted link is refused with a
  message naming it, so no write, scrub or erase ever reaches the file it points to;
* never blocks (``O_NONBLOCK``): a FIFO or device under a gallery name is refused, not waited on;
* accepts only a regular file (``S_ISREG`` on the opened descriptor, so the check and the use are
  about the same inode);
* zeroes only a file that has no other name (``st_nlink == 1``): zeroing a hard link would destroy
  the other file too.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import GalleryError
from ..fileio import make_dirs

#: Added to every open: no link followed, no wait on a FIFO, no descriptor leaked to children.
SAFE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

#: Errors of an open that mean "this name is not a regular file" (link, FIFO, socket, directory).
_NOT_A_FILE_ERRNOS = {errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR, errno.EOPNOTSUPP}


class UnsafeFileError(GalleryError):
    """A gallery name is a link, a FIFO, a directory or another non-regular file: refused."""


def kind_of(mode: int) -> str:
    """What a file mode describes, in words ("a FIFO (named pipe)", "a directory", ...)."""
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return words
    return "not a regular file"


def refusal(path: Path, what: str, st: os.stat_result, setting: bool = False) -> UnsafeFileError:
    """The error for ``path`` (a ``what``) that is not a regular file: what it is, and the fix.

    ``setting``: the path is one the user gives (gallery, key file), so a link they made
    themselves is fixed by giving its target instead.
    """
    folder = path.parent
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        own = (f"if you made the link, give the real file's path ({target}) instead; otherwise "
               if setting else "")
        return UnsafeFileError(
            f"{what} {path} is a symbolic link (to {target}); it is refused and the file it points "
            f"to is not read, written or erased (a link planted by someone who can write {folder} "
            f"would make this command destroy that file); fix: {own}delete {path} and make "
            f"{folder} writable by you only (chmod 700 {folder})")
    if stat.S_ISDIR(st.st_mode):
        fix = ("give the path of the file itself"
               + (f", e.g. {path / 'gallery.json'}" if what == "gallery" else "")
               if setting else f"remove {path} (check who can write {folder})")
        return UnsafeFileError(f"{what} {path} is a directory, not a file; fix: {fix}")
    fix = (f"give the path of a regular file; if {path} is the one you meant, someone replaced "
           f"it: delete it and check who can write {folder}" if setting else
           f"delete {path} (check who can write {folder})")
    return UnsafeFileError(f"{what} {path} is {kind_of(st.st_mode)}, not a regular file; it is "
                           f"refused (reading it could block forever); fix: {fix}")


def open_regular(path: Path, flags: int, what: str,
                 setting: bool = False) -> tuple[int, os.stat_result] | None:
    """Open ``path`` (``O_RDONLY``/``O_WRONLY``/``O_RDWR`` [| ``O_CREAT``]) as a regular file.

    ``setting``: ``path`` is a path the user gives (see :func:`refusal`).

    Returns:
        The descriptor and its ``fstat``, or None when ``path`` does not exist.

    Raises:
        GalleryError: ``path`` is a link, a FIFO, a directory or another non-regular file (named in
            the message), or cannot be opened.
    """
    try:
        fd = os.open(path, flags | SAFE_FLAGS, 0o600)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NOT_A_FILE_ERRNOS:
            try:
                st = os.lstat(path)
            except OSError:
                st = None
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise refusal(path, what, st, setting) from exc
        raise GalleryError(f"{what} {path} cannot be opened: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise refusal(path, what, st, setting)
    return fd, st


def check_single_link(path: Path, what: str, st: os.stat_result) -> None:
    """Refuse to overwrite or zero a file that has another name: it would destroy that file too."""
    if st.st_nlink > 1:
        raise UnsafeFileError(
            f"{what} {path} has {st.st_nlink} hard links: the same content has another name, so it "
            f"is not overwritten (that would destroy the other file); fix: delete {path} (check who "
            f"can write {path.parent})")


def lstat_regular(path: Path, what: str) -> os.stat_result | None:
    """``lstat`` of ``path`` (never follows, never blocks); refuses a non-regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GalleryError(f"{what} {path} cannot be examined: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise refusal(path, what, st)
    return st


def read_fd(fd: int, limit: int, path: Path, what: str) -> bytes:
    """Read at most ``limit`` bytes from a regular file's descriptor (closes it); refuses more."""
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise GalleryError(f"{what} {path} is larger than {limit} bytes; it is not a file "
                           "written by sense_perception")
    return data


def scrub(fd: int) -> None:
    """Overwrite a regular file's content with zeros through its open descriptor."""
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    zeros = bytes(min(size, 1 << 20))
    written = 0
    while written < size:
        written += os.write(fd, zeros[: size - written])
    os.fsync(fd)


def erase_file(path: Path, what: str) -> None:
    """Zero a file's content, then delete it; a file already gone is fine.

    Raises:
        GalleryError: ``path`` is a link, hard link or non-regular file (refused, left untouched),
            or cannot be erased.
    """
    opened = open_regular(path, os.O_WRONLY, what)
    if opened is None:
        return
    fd, st = opened
    try:
        check_single_link(path, what, st)
        scrub(fd)
    except OSError as exc:
        raise GalleryError(f"{what} {path} could not be erased: {exc}; delete it by hand") from exc
    finally:
        os.close(fd)
    try:
        path.unlink()  # unlink removes the name only, never a link's target
    except FileNotFoundError:
        return
    except OSError as exc:
        raise GalleryError(f"{what} {path} could not be erased: {exc}; delete it by hand") from exc


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and every missing parent with mode 0700, whatever the umask (see
    :func:`~sense_perception.fileio.make_dirs`): anyone who can write a folder on the way to the
    gallery or the key can swap the folders below it. Existing folders are left as they are.

    Raises:
        OSError: a folder cannot be created.
    """
    make_dirs(folder, 0o700)


def writable_by_others(st: os.stat_result) -> bool:
    """True when a folder's mode lets group or others replace or delete the files in it: write
    permission for them without the sticky bit (``/tmp``'s 1777 keeps each file to its owner)."""
    return bool(st.st_mode & 0o022) and not st.st_mode & stat.S_ISVTX


def check_folder(path: Path, what: str, harm: str, it: str) -> None:
    """Refuse the file ``path`` (a ``what``) when its folder belongs to another user (root
    excepted) or others may write it without the sticky bit: whoever can do that can delete the
    file or put one of their own in its place (``harm`` says what that costs; ``it`` names the
    file in the fix). A folder that does not exist yet passes (it is made 0700 when written).

    Raises:
        GalleryError: naming the file, the folder, its owner or mode, and the fix.
    """
    folder = path.parent
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise GalleryError(f"{what} {path}: its directory {folder} cannot be examined: "
                           f"{exc.strerror or exc}") from exc
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise GalleryError(
            f"{what} {path} is kept in {folder}, which belongs to user id {st.st_uid}, not to "
            f"this user ({me}): {harm}; fix: keep {it} in a directory of your own that only you "
            "can write")
    if writable_by_others(st):
        raise GalleryError(
            f"{what} {path} is kept in {folder}, which other users may write (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): {harm}; fix: chmod go-w {folder}, or keep {it} in "
            "a directory only you can write")


def check_key_folder(folder: Path, path: Path) -> None:
    """Refuse a gallery key file ``path`` kept in ``folder`` when another user owns that folder
    or others may write it (:func:`check_folder`): they could delete the key (the encrypted
    gallery is then lost for good) or put a key of their own in its place before the gallery is
    first written (they could then read it).

    Raises:
        GalleryError: naming the folder, its owner or mode, and the fix.
    """
    check_folder(folder / path.name, "gallery key file",
                 "whoever can write it can delete the key, and with it the encrypted gallery, or "
                 "put their own key in its place", "the key")


def check_owner(path: Path, st: os.stat_result, what: str, can: str, otherwise: str) -> None:
    """Refuse the file ``path`` (a ``what``: ``gallery``, ``gallery key file``) when it belongs to
    another user (root's is accepted): its owner ``can`` do what they like with it whatever its
    mode (a process running as root reads another user's 0600 file); ``otherwise`` is the fix
    for a file that is not the user's.

    Raises:
        GalleryError: naming the file, its owner and the fix.
    """
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        noun = what.split()[-1]
        raise GalleryError(
            f"{what} {path} belongs to user id {st.st_uid}, not to this user ({me}): its owner "
            f"can {can} whatever its mode; fix: if the {noun} is yours, chown it to this user "
            f"(as root: chown {me} {path}); otherwise {otherwise}")


def check_key_owner(path: Path, st: os.stat_result) -> None:
    """Refuse a gallery key file that belongs to another user (root's is accepted): its owner
    controls the key whatever its mode says (:func:`check_owner`).

    Raises:
        GalleryError: naming the file, its owner and the fix.
    """
    check_owner(path, st, "gallery key file", "change or read the key",
                "create a key of your own with `sense-perception driver keygen`")
