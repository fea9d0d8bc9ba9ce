"""GalleryStore: the local, private store of enrolled drivers and their face templates.

One place knows the file format. Promises kept here:

* The file is mode 0600 in a 0700 directory; a gallery readable by group or others is refused.
* Every change writes a fresh file (temp file, fsync, rename, directory fsync) under an exclusive
  ``fcntl`` lock, so concurrent enrolments never lose an entry and a crash never leaves half a file.
  The previous version's bytes are then overwritten with zeros through a still-open descriptor, so
  a forgotten driver's templates do not linger in the old inode either (best effort: copy-on-write
  filesystems and SSD wear levelling may keep old blocks; encryption at rest covers that case).
  Temp files a killed writer left behind are erased by the next change.
* Only regular files are ever opened, and never through a link (:mod:`.gallery_files`): a symbolic
  link, hard link, FIFO or directory planted under a gallery name (the gallery, ``.bak``, lock,
  temp files, kept images, the key file) is refused with a message naming it, so nobody who can
  write the gallery directory can make a change zero another file or make a command hang. Only
  the inode read under the lock is zeroed (same ``st_dev``/``st_ino``).
* The last good copy is kept: every change also writes ``<gallery>.bak`` (same bytes, same
  protection). A gallery found corrupt is refused, never overwritten or reset, and
  :meth:`GalleryStore.restore` puts the last good copy back. The two files are written in an order
  that keeps every driver of the ``.bak`` also in the gallery (enrol: gallery first; forget:
  ``.bak`` first), so forgetting a driver through the gallery also removes it from the ``.bak``,
  even after a crash between the two writes.
* Optional encryption at rest (AES-256-GCM, key from a key file or an environment variable). A wrong
  key and a tampered file are told apart and both refused without writing anything. An unencrypted
  file carries a sha256 of its content, so corruption and hand edits are detected (not forgery:
  use encryption when that matters).
* No face image is stored unless ``keep_images`` is set; kept images are the aligned 112x112 crops
  (enough to re-enrol with a future model), stored beside the gallery, encrypted with the same key,
  and erased by :meth:`GalleryStore.forget` together with every template and record.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..config import check_settings, setting
from ..durations import duration
from ..errors import GalleryError
from ..fileio import atomic_write, fsync_dir
from .gallery_files import (UnsafeFileError, check_folder, check_key_folder, check_key_owner,
                            check_owner, check_single_link, erase_file, lstat_regular,
                            make_private_dirs, open_regular, read_fd, refusal, scrub)
from .safe_text import printable, unsafe_text_error

#: Length of a stored template: SFace embeddings are 128-D (checked against the model in tests).
EMBEDDING_DIM = 128

FORMAT = "sense_perception.driver_gallery"
SCHEMA_VERSION = 1
MAGIC = b"sense_perception-gallery-aes256gcm-v1\n"
_CHECK_LEN = 16
_NONCE_LEN = 12
DEFAULT_KEY_ENV = "SENSE_PERCEPTION_GALLERY_KEY"
GALLERY_ENV = "SENSE_PERCEPTION_GALLERY"
#: Largest gallery file read (about 90 drivers at 1000 templates); more is not a gallery.
MAX_GALLERY_BYTES = 64 << 20
_MAX_KEY_FILE_BYTES = 4096
_MAX_IMAGE_BYTES = 16 << 20
LOG = logging.getLogger(__name__)
# How long a command or the node's configure waits for another process's gallery lock (a change
# holds it for the milliseconds of its writes), and how often it looks again.
LOCK_WAIT_S = 30.0
LOCK_POLL_S = 0.05
#: A kept image's name: ``<driver id>_<index>.png`` (``.png.enc`` encrypted).
_KEPT_IMAGE = re.compile(r"(drv-[0-9a-f]{8})_\d{3}\.png(?:\.enc)?")

#: (st_dev, st_ino) of a file as examined under the lock: only that inode is ever zeroed.
FileId = tuple[int, int]

CONSENT_TEXT_VERSION = "1"
CONSENT_TEXT = (
    "I agree that this vehicle stores face templates (numbers computed from my face, not photos "
    "unless I ask for images to be kept) to recognise me as its driver. They stay in this vehicle, "
    "are used only with the in-cabin camera, and I can have them deleted at any time "
    "(sense-perception driver forget ID)."
)


class CopyNotWritten(GalleryError):
    """The gallery was replaced with the change, but its last good copy could not be."""


class NotWritten(GalleryError):
    """A gallery file could not be written (:meth:`GalleryStore._replace`): its temp file failed
    (a full disk, a file size limit, a read-only folder), so the file is as it was.

    Attributes:
        error: the OSError it failed with.
    """

    def __init__(self, message: str, error: OSError, target: Path | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.target = target


def write_fix(exc: OSError, folder: Path) -> str:
    """What to do about a write into ``folder`` that failed with ``exc``, by its errno: free
    space (ENOSPC, EDQUOT), raise the file size limit (EFBIG: ``ulimit -f``), make the folder
    writable (EROFS, EACCES, EPERM), else check the disk."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on that disk"
    if exc.errno == errno.EFBIG:
        return ("raise this process's file size limit (`ulimit -f`), or keep the gallery on a "
                "file system that takes files of its size")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"make {folder} writable by this user"
    return "check that disk (an I/O error: the kernel log says more)"


#: The most bytes a file name may have (NAME_MAX of Linux's file systems).
NAME_MAX = 255
#: What a temp file's name adds to its prefix: ``tempfile``'s 8 random characters and ``.tmp``.
_TEMP_TAIL = 12


def _fitting(name: str, suffix: str, most: int = NAME_MAX) -> str:
    """``name + suffix`` when it fits in ``most`` bytes; else ``name`` cut to fit, then ``~`` and
    16 hex digits of its SHA-256 (one such name per gallery name, derived the same way by every
    command), then ``suffix``."""
    if len(os.fsencode(name + suffix)) <= most:
        return name + suffix
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    room = most - len(os.fsencode(tag + suffix))
    head = name
    while len(os.fsencode(head)) > room:  # whole characters: no UTF-8 sequence cut in two
        head = head[:-1]
    return head + tag + suffix


def sidecar(gallery: Path, suffix: str) -> Path:
    """A file kept beside ``gallery`` (``.bak``, the last good copy; ``.lock``; ``.images``, the
    kept crops): ``<gallery><suffix>``, or for a gallery whose name is too long for that (over
    255 bytes with the suffix) the name shortened to fit, ending ``~<16 hex digits><suffix>``
    (:func:`_fitting`). A gallery name over 241 bytes could not be written at all, its temp
    files repeating the whole name, nor over 250 have a lock file (R94)."""
    return gallery.with_name(_fitting(gallery.name, suffix))


def temp_prefix(gallery: Path) -> str:
    """The name every temp file of ``gallery`` (and of its ``.bak``) begins with:
    ``.<gallery name>.``, shortened as :func:`sidecar` shortens a name where the temp file's
    name would be over 255 bytes; a killed writer's temp files are found by it."""
    return "." + _fitting(gallery.name, ".", NAME_MAX - _TEMP_TAIL - 1)


class OldVersionNotZeroed(GalleryError):
    """Every file of the change was written, but the content of an old version could not be
    zeroed (an I/O error, a full copy-on-write disk): the change happened, its old file is gone
    by name and its blocks may still hold what it held (R54)."""


@dataclass
class GalleryConfig:
    """The ``gallery.*`` parameters.

    Attributes:
        path: gallery file; "" = ``$SENSE_PERCEPTION_GALLERY`` or
            ``~/.local/share/sense_perception/gallery.json`` (``.enc`` appended when encrypted).
        key_file: file holding the 32-byte AES key (raw, hex or base64); must be mode 0600.
        key_env: environment variable holding the key (hex or base64), used when key_file is "".
        keep_images: keep the aligned face crops of enrolment (off: no face image is written).
        max_templates: most templates kept per driver.
    """

    path: str = ""
    key_file: str = ""
    key_env: str = DEFAULT_KEY_ENV
    keep_images: bool = False
    max_templates: int = setting(20, range=(1, 1000))

    def __post_init__(self) -> None:
        if not 1 <= self.max_templates <= 1000:
            raise ValueError(f"gallery.max_templates must be in [1, 1000], got {self.max_templates}")
        if self.key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.key_env):
            raise ValueError(f"gallery.key_env must be an environment variable name, "
                             f"got {self.key_env!r}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them


@dataclass(frozen=True)
class ConsentRecord:
    """Who consented, when (ISO 8601 UTC) and to which version of :data:`CONSENT_TEXT`."""

    who: str
    when: str
    text_version: str = CONSENT_TEXT_VERSION

    @classmethod
    def now(cls, who: str) -> "ConsentRecord":
        """A consent given now by ``who`` to the current consent text."""
        return cls(who, _utc_now(), CONSENT_TEXT_VERSION)


@dataclass
class DriverRecord:
    """One enrolled driver.

    Attributes:
        id: stable random id (``drv-`` + 8 hex digits).
        name: display name.
        created: ISO 8601 UTC time of enrolment.
        consent: the consent record.
        templates: (K, 128) float32 unit-length embeddings.
        images: names of kept aligned face crops in the images directory (empty by default).
    """

    id: str
    name: str
    created: str
    consent: ConsentRecord
    templates: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBEDDING_DIM), np.float32))
    images: list[str] = field(default_factory=list)


def _utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def default_gallery_path(encrypted: bool = False) -> Path:
    """``$SENSE_PERCEPTION_GALLERY`` or ``$XDG_DATA_HOME/sense_perception/gallery.json[.enc]``."""
    env = os.environ.get(GALLERY_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "sense_perception" / ("gallery.json.enc" if encrypted else "gallery.json")


def _parse_key(text: bytes, where: str) -> bytes:
    if len(text) == 32:
        return text
    s = text.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{64}", s):
        return binascii.unhexlify(s)
    try:
        key = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) == 32:
        return key
    raise GalleryError(f"{where} does not hold a 32-byte key (give 32 raw bytes, 64 hex digits or "
                       "base64 of 32 bytes); create one with `sense-perception driver keygen`")


def load_key(key_file: str = "", key_env: str = DEFAULT_KEY_ENV) -> bytes | None:
    """Read the gallery key from ``key_file`` or the environment variable ``key_env``.

    Returns:
        The 32-byte key, or None when neither is set (unencrypted gallery).

    Raises:
        GalleryError: the key file is missing, group/world readable, owned by another user
            (root excepted), kept in a directory that others may write (without the sticky bit),
            or holds no valid key.
    """
    if key_file:
        path = Path(key_file).expanduser()
        try:
            opened = open_regular(path, os.O_RDONLY, "gallery key file", setting=True)
        except UnsafeFileError:
            raise
        except GalleryError as exc:
            raise GalleryError(f"{exc}; fix: make it readable by this user") from exc
        if opened is None:
            raise GalleryError(f"gallery key file {path} cannot be read: it does not exist; fix: "
                               "set gallery.key_file to an existing file")
        fd, st = opened
        try:
            if st.st_mode & 0o077:
                raise GalleryError(f"gallery key file {path} has mode "
                                   f"{stat.S_IMODE(st.st_mode):04o} and is readable by other "
                                   f"users; fix: chmod 600 {path}")
            check_key_owner(path, st)
            check_key_folder(path.parent, path)
        except GalleryError:
            os.close(fd)
            raise
        try:
            data = read_fd(fd, _MAX_KEY_FILE_BYTES, path, "gallery key file")
        except OSError as exc:
            raise GalleryError(f"gallery key file {path} cannot be read: {exc}") from exc
        return _parse_key(data, f"gallery key file {path}")
    value = os.environ.get(key_env, "") if key_env else ""
    if value:
        return _parse_key(value.encode(), f"environment variable {key_env}")
    return None


def generate_key_file(path: str | Path,
                      changing: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
                      ) -> Path:
    """Write a new random key (hex) to ``path`` with mode 0600; refuses to overwrite a file.

    Missing directories are created 0700; a directory others may write is refused (see
    :func:`~.gallery_files.check_key_folder`). ``changing`` wraps the write, from the temp file's
    creation to its removal: ``driver keygen`` passes :meth:`~..stops.Stops.deferred`, so Ctrl-C
    or SIGTERM there waits for it to end and never leaves the temp name, a second name of the key
    (R49).
    """
    path = Path(path).expanduser()
    try:
        make_private_dirs(path.parent)  # 0700 whatever the umask: nobody else may swap the key
    except OSError as exc:
        raise GalleryError(f"key file {path} cannot be created: its directory {path.parent} cannot "
                           f"be made ({exc.strerror or exc})") from exc
    # A key others could delete or replace would be refused by every later command (load_key).
    check_key_folder(path.parent, path)
    _sweep_keygen_leftovers(path)  # before the refusal below: a second name of the key goes too
    if path.exists() or path.is_symlink():  # checked again, atomically, when it is put in place
        raise _key_exists(path)
    with changing():  # mkstemp .. unlink runs whole: a stop in it is raised by the caller after
        _write_new_key(path)
    return path


def _write_new_key(path: Path) -> None:
    """Write a random key to a temp file beside ``path``, link it as ``path``, remove the temp."""
    # Written in full to a temp file first and then given its name (a hard link, which fails if
    # the name exists, a dangling link included): a kill -9 or power cut between creating the
    # key file and writing it left it empty, and every later keygen refused to overwrite it
    # while every reader said it held no key (R40).
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".keygen")
    except OSError as exc:
        raise GalleryError(f"key file {path} cannot be created: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _link_new(tmp, path)
        # The temp name goes before the folder is synced, so the sync writes the folder as it is
        # left: synced first, the temp's removal was not, and a power cut in the seconds after
        # keygen (before the file system's next commit) kept it on disk, a hidden second name of
        # the gallery key that nothing removes (R40).
        Path(tmp).unlink(missing_ok=True)
        fsync_dir(path.parent)
    except OSError as exc:
        raise GalleryError(f"key file {path} cannot be written: {exc.strerror or exc}; nothing "
                           "was kept; fix: free space on that disk or choose another --out") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _sweep_keygen_leftovers(path: Path) -> None:
    """Remove the temp files a killed keygen of ``path`` left beside it (``.NAME.XXXX.keygen``).

    One killed before its key was linked holds a key nothing uses: zeroed, then deleted. One
    killed between the link and the temp's removal is a second name of the key itself: only
    that name is removed (the key stays under its own). Either was never swept, a copy of key
    material beside the key (R40's leftover).

    Raises:
        GalleryError: such a name is a link or another non-regular file (refused, untouched).
    """
    for left in path.parent.glob(f".{glob.escape(path.name)}.*.keygen"):
        st = lstat_regular(left, "temp file of an interrupted keygen")
        if st is None:
            continue  # gone meanwhile
        if st.st_nlink > 1:
            left.unlink(missing_ok=True)  # the name only: the key keeps its own
        else:
            erase_file(left, "temp file of an interrupted keygen")


def _key_exists(path: Path) -> GalleryError:
    """The refusal of a keygen whose key file name is taken (a file, or a link, even dangling)."""
    return GalleryError(f"key file {path} already exists; it may protect a gallery, so it is "
                        "never overwritten")


def _link_new(tmp: str, path: Path) -> None:
    """Give the written key file ``tmp`` the name ``path``, which must not exist.

    Raises:
        GalleryError: ``path`` exists (a file, or a planted link, even dangling).
        OSError: it cannot be named so.
    """
    try:
        os.link(tmp, path, follow_symlinks=False)
        return
    except FileExistsError:
        raise _key_exists(path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    # A file system without hard links (FAT, some FUSE mounts): a new file of its own, O_EXCL.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise _key_exists(path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Path(tmp).read_bytes())
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # ours (O_EXCL): never a cut-off key left under the name
        raise


class _Cipher:
    """AES-256-GCM with an encryption key and a key-check value both derived from the user key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        def derive(info: bytes, length: int) -> bytes:
            return HKDF(hashes.SHA256(), length, salt=None, info=info).derive(key)

        self.aead = AESGCM(derive(b"sense_perception gallery encryption", 32))
        # A separate derived value tells "wrong key" from "tampered file" without revealing the key.
        self.check = derive(b"sense_perception gallery key check", _CHECK_LEN)

    def seal(self, plaintext: bytes, label: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_LEN)
        header = MAGIC + self.check
        return header + nonce + self.aead.encrypt(nonce, plaintext, header + label)

    def open(self, blob: bytes, label: bytes, what: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        header_len = len(MAGIC) + _CHECK_LEN
        if len(blob) < header_len + _NONCE_LEN + 16 or not blob.startswith(MAGIC):
            raise GalleryError(f"{what} is truncated or not an encrypted gallery file")
        if not secrets.compare_digest(blob[len(MAGIC):header_len], self.check):
            raise GalleryError(f"wrong key for {what}: it was encrypted with another key; nothing "
                               "was changed; fix: give the key it was created with "
                               "(gallery.key_file or the gallery.key_env variable)")
        nonce = blob[header_len:header_len + _NONCE_LEN]
        try:
            return self.aead.decrypt(nonce, blob[header_len + _NONCE_LEN:], blob[:header_len] + label)
        except InvalidTag as exc:
            raise GalleryError(f"{what} has been tampered with or is corrupted (authentication "
                               "failed); it is not used and nothing was changed; restore a backup "
                               "or delete it and enrol again") from exc


def _check_default_pair(keyed: bool) -> None:
    """Refuse the default gallery while the other default (plain ``gallery.json``, encrypted
    ``gallery.json.enc``) holds what this command would never see.

    Without a key the default is the plain gallery: while only the encrypted one exists, `list`
    said "no drivers" and `enroll` wrote the consenting driver's templates beside it unencrypted.
    With a key it is the encrypted one: a plain gallery left from before ``keygen`` (or its last
    good copy, or kept face crops) stayed on disk unencrypted, unseen by every command given the
    key (`list` showed none of its drivers, `forget` could not reach them) while `enroll`
    started the encrypted gallery beside it.

    Raises:
        GalleryError: naming the other gallery and the fix.
    """
    plain, sealed = default_gallery_path(False), default_gallery_path(True)
    if plain == sealed:  # $SENSE_PERCEPTION_GALLERY names one file for both
        return
    if not keyed:
        if not os.path.lexists(plain) and os.path.lexists(sealed):
            raise GalleryError(f"the gallery {sealed} is encrypted and no key was given; "
                               "fix: give its key (--key-file, gallery.key_file or "
                               "$SENSE_PERCEPTION_GALLERY_KEY), or name a plain gallery "
                               "with --gallery to keep one beside it")
        return
    left = [p for p in (plain, sidecar(plain, ".bak"), sidecar(plain, ".images"))
            if os.path.lexists(p)]
    if left:
        raise GalleryError(
            f"a key was given, so the default gallery is the encrypted {sealed}, but the plain "
            f"gallery's files are beside it ({', '.join(map(str, left))}): face templates (or "
            "crops) not encrypted, which no command given the key lists or forgets; fix: erase its "
            "drivers "
            "without the key (`sense-perception driver list`, then `driver forget ID` for each), "
            f"then delete {plain} and {plain}.bak; or name the encrypted gallery with --gallery "
            f"{sealed} (gallery.path) to keep both on purpose")


def _encode_templates(t: np.ndarray) -> list[str]:
    return [base64.b64encode(row.astype("<f4").tobytes()).decode() for row in t]


def _decode_templates(rows: Sequence[str], where: str) -> np.ndarray:
    try:
        arr = [np.frombuffer(base64.b64decode(r, validate=True), "<f4") for r in rows]
    except (binascii.Error, ValueError, TypeError) as exc:
        raise GalleryError(f"{where}: a template is not valid base64 float32") from exc
    if any(a.size != EMBEDDING_DIM for a in arr):
        raise GalleryError(f"{where}: a template does not have {EMBEDDING_DIM} values")
    return np.asarray(arr, np.float32).reshape(-1, EMBEDDING_DIM)


class GalleryStore:
    """Local store of enrolled drivers.

    Args:
        path: gallery file; None = :func:`default_gallery_path`.
        key: 32-byte AES key for encryption at rest, or None for an unencrypted file.
        keep_images: store aligned face crops given to :meth:`enroll`.
        max_templates: most templates kept per driver.
    """

    def __init__(self, path: str | Path | None = None, key: bytes | None = None,
                 keep_images: bool = False, max_templates: int = 20) -> None:
        if key is not None and len(key) != 32:
            raise GalleryError(f"gallery key must be 32 bytes, got {len(key)}")
        self.path = Path(path).expanduser() if path else default_gallery_path(key is not None)
        if not path:
            _check_default_pair(key is not None)
        self._cipher = _Cipher(key) if key is not None else None
        self.keep_images = bool(keep_images)
        self.max_templates = int(max_templates)
        # True once the caller is being stopped (a node's ROS context shut down by Ctrl-C or
        # SIGTERM): a wait for the lock then ends at once instead of holding up the stop.
        self.stopping: Callable[[], bool] = lambda: False
        # Wraps the writes of each change (enrol, forget, restore), which must run whole: the
        # ``driver`` commands defer Ctrl-C and SIGTERM in it (:meth:`~..stops.Stops.deferred`).
        # A stop between putting the new gallery in place and zeroing the old one left the
        # forgotten driver's name and templates on disk, unzeroed and reachable by no command;
        # one between the gallery and its copy erased the kept crops of a driver it listed (R44).
        self.changing: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext

    @classmethod
    def from_config(cls, config: GalleryConfig) -> "GalleryStore":
        """Build from ``gallery.*`` settings (reads the key)."""
        key = load_key(config.key_file, config.key_env)
        return cls(config.path or None, key, config.keep_images, config.max_templates)

    @property
    def encrypted(self) -> bool:
        return self._cipher is not None

    @property
    def backup_path(self) -> Path:
        """The last good copy of the gallery, rewritten with it on every change."""
        return sidecar(self.path, ".bak")

    @property
    def images_dir(self) -> Path:
        """Directory of kept face crops (exists only when images were kept)."""
        return sidecar(self.path, ".images")

    # -- locking and file I/O -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool, wait: bool = True) -> Iterator[None]:
        lock_path = sidecar(self.path, ".lock")
        folder = self.path.parent
        if exclusive:
            try:
                make_private_dirs(folder)  # parents too: 0700 whatever the umask
            except OSError as exc:
                raise GalleryError(f"cannot create the gallery directory {folder}: "
                                   f"{exc.strerror or exc}; fix: give a gallery path whose "
                                   "directory can be created by this user") from exc
        elif not folder.is_dir():
            yield  # nothing to read and nothing to lock
            return
        # Whoever owns or may write the folder can delete the gallery or swap in their own (R59).
        check_folder(self.path, "gallery", "whoever can write it can delete the gallery or put "
                     "one of their own in its place, and with it decide who is recognised as the "
                     "driver", "the gallery")
        try:
            opened = open_regular(lock_path, os.O_RDWR | os.O_CREAT, "gallery lock")
        except UnsafeFileError:
            raise
        except GalleryError as exc:
            if exclusive:
                raise GalleryError(f"{exc}; fix: make {folder} writable by this user") from exc
            opened = None  # read-only medium: writes are atomic renames, so read unlocked
        if opened is None:
            yield
            return
        fd = opened[0]
        try:
            self._take_lock(fd, exclusive, LOCK_WAIT_S if wait else 0.0, lock_path)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _take_lock(self, fd: int, exclusive: bool, wait_s: float, lock_path: Path) -> None:
        """``flock`` the open lock file, waiting at most ``wait_s`` seconds for another holder.

        A change holds the lock for the milliseconds of its writes; a holder that keeps it far
        longer is stopped (Ctrl-Z) or hung, or anyone who can open the lock file: a blocking
        ``flock`` made every ``driver`` command and the node's configure wait for ever, silent.

        Raises:
            GalleryError: the lock is still held after ``wait_s`` (at once with 0), naming it.
        """
        how = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, how)
                return
            except BlockingIOError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    if wait_s <= 0:
                        raise GalleryError(f"gallery {self.path} is locked by another process (an "
                                           "enrol or forget in progress?); it was not read now") from exc
                    raise GalleryError(
                        f"gallery {self.path} stayed locked by another process for {duration(wait_s)} "
                        f"(a change takes milliseconds: the holder of {lock_path} is stopped or "
                        "hung); nothing was read or written; fix: end that process (`fuser -v "
                        f"{lock_path}` names it), then try again") from exc
                if self.stopping():
                    raise GalleryError(f"gallery {self.path} is locked by another process; the "
                                       "wait for it was given up: stopping") from exc
                if not told and wait_s - left >= 1.0:
                    LOG.warning("gallery %s is locked by another process: waiting up to %g s",
                                self.path, wait_s)
                    told = True
                time.sleep(min(LOCK_POLL_S, left))

    def _check_mode(self, st: os.stat_result, path: Path | None = None) -> None:
        """Refuse a gallery file others may access, or that another user (root excepted) owns:
        its owner can change it, and with it who is recognised, whatever its mode (a node
        running as root read a gallery another user had put in its place, R59)."""
        path = path or self.path
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise GalleryError(
                f"gallery {path} has mode {mode:04o}: other users can read its face templates "
                f"(biometric data), so it is refused; fix: chmod 600 {path}")
        check_owner(path, st, "gallery", "change it, and with it who is recognised as the driver,",
                    "enrol the driver again in a gallery of your own")

    def _read_file(self, path: Path) -> tuple[bytes, FileId] | None:
        """Bytes of ``path`` and its (st_dev, st_ino) after the type and permission checks; None
        when it does not exist. Never follows a link and never blocks (a FIFO is refused)."""
        opened = open_regular(path, os.O_RDONLY, "gallery", setting=path == self.path)
        if opened is None:
            return None
        fd, st = opened
        try:
            self._check_mode(st, path)
        except GalleryError:
            os.close(fd)
            raise
        try:
            return read_fd(fd, MAX_GALLERY_BYTES, path, "gallery"), (st.st_dev, st.st_ino)
        except OSError as exc:
            raise GalleryError(f"gallery {path} cannot be read: {exc}") from exc

    def _check_backup(self) -> os.stat_result | None:
        """lstat of the last good copy, None when there is none; refuses it, as the gallery
        itself, when it is a link or not a regular file or others may read it (lstat only: never
        follows, never blocks)."""
        st = lstat_regular(self.backup_path, "gallery")
        if st is not None:
            self._check_mode(st, self.backup_path)
        return st

    def _check_kept_images(self) -> None:
        """Refuse kept face crops that another user may read: a crop whose mode gives group or
        others read permission in a folder they may enter (the folder is made 0700 and each crop
        0600, but a gallery restored from a copy made without keeping modes, ``cp -r`` or an
        archive, has them under the umask: 0755 and 0644). The same modes on the gallery or its
        last good copy were refused with the ``chmod`` fix; the driver's face images were used
        and listed without a word (R44). lstat only: never follows, never blocks.

        Raises:
            GalleryError: naming the image, both modes and the fix.
        """
        folder = self.images_dir
        try:
            st = os.lstat(folder)
            if not stat.S_ISDIR(st.st_mode):  # a link or a file: refused where it is used (R11)
                return
            entered = stat.S_IMODE(st.st_mode)
            if not entered & 0o011:  # nobody else may enter it: its files are out of reach
                return
            for path in sorted(folder.iterdir()):
                if not _KEPT_IMAGE.fullmatch(path.name):
                    continue
                try:
                    mode = stat.S_IMODE(os.lstat(path).st_mode)
                except FileNotFoundError:  # erased meanwhile
                    continue
                if (entered & 0o010 and mode & 0o040) or (entered & 0o001 and mode & 0o004):
                    raise GalleryError(
                        f"kept face image {path} has mode {mode:04o} in {folder} (mode "
                        f"{entered:04o}): other users can see the driver's face, so the gallery "
                        f"is refused; fix: chmod 700 {folder} && chmod 600 {folder}/*")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise GalleryError(f"kept-images directory {folder} cannot be examined: "
                               f"{exc.strerror or exc}") from exc

    def _read_state(self) -> tuple[list[DriverRecord], FileId | None]:
        """The drivers and the (st_dev, st_ino) of the file they were read from (None: no file)."""
        got = self._read_file(self.path)
        backup = self._check_backup()
        self._check_kept_images()
        if got is None:
            if backup is not None:
                # Never start an empty gallery over a lost one: its last good copy is still here.
                count, why = self._backup_state()
                fix = ("`sense-perception driver restore` to put it back, or delete "
                       f"{self.backup_path} to start an empty gallery" if count is not None else
                       f"that copy cannot be restored either ({why}); put back a backup of your "
                       f"own, or delete {self.backup_path} to start an empty gallery")
                raise GalleryError(f"gallery {self.path} is missing but its last good copy "
                                   f"{self.backup_path} exists; nothing was changed; fix: {fix}")
            return [], None
        try:
            return self._decode(got[0]), got[1]
        except GalleryError as exc:
            raise GalleryError(f"{exc}{self._backup_hint()}") from exc

    def _backup_state(self) -> tuple[int | None, str]:
        """(drivers in the last good copy, "") when it can be restored, else (None, why not)."""
        try:
            got = self._read_file(self.backup_path)
            if got is None:
                return None, "it does not exist"
            return len(self._decode(got[0], self.backup_path)), ""
        except GalleryError as exc:
            return None, str(exc)

    def _backup_hint(self) -> str:
        """Where the last good copy is and how to restore it; "" when it is missing or unusable
        (`restore` is only advised where it works)."""
        count, _ = self._backup_state()
        if count is None:
            return ""
        return (f"; the last good copy {self.backup_path} ({count} driver(s)) is kept; "
                "fix: `sense-perception driver restore` puts it back")

    def _decode(self, blob: bytes, path: Path | None = None) -> list[DriverRecord]:
        what = f"gallery {path or self.path}"
        if blob.startswith(MAGIC):
            if self._cipher is None:
                raise GalleryError(f"{what} is encrypted; give its key with gallery.key_file / "
                                   f"--key-file or the {DEFAULT_KEY_ENV} environment variable")
            blob = self._cipher.open(blob, b"gallery", what)
        elif self._cipher is not None:
            # Accepting a plain file while a key is configured would let anyone who can write the
            # file swap in their own face; refuse instead.
            raise GalleryError(f"{what} is not encrypted but a key is configured; refusing it "
                               "(it may have been replaced); remove the key setting to use it, or "
                               "delete the file and enrol again to create an encrypted gallery")
        try:
            doc = json.loads(blob)
        except (UnicodeDecodeError, ValueError) as exc:
            raise GalleryError(f"{what} is not valid JSON (corrupted or tampered): {exc}") from exc
        except RecursionError as exc:  # "[[[[..." a few hundred kB long: no gallery nests so deep
            raise GalleryError(f"{what} is not a gallery: its JSON nests too deeply (corrupted or "
                               "tampered); restore the last good copy or delete it and enrol "
                               "again") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise GalleryError(f"{what} is not a sense_perception driver gallery")
        schema = doc.get("schema")
        if schema != SCHEMA_VERSION:
            raise GalleryError(f"{what} has schema version {schema!r}; this version reads "
                               f"{SCHEMA_VERSION}; use the sense_perception version that wrote it")
        body = doc.get("drivers")
        if doc.get("sha256") != _digest(body):
            raise GalleryError(f"{what} was modified outside sense_perception or is corrupted "
                               "(content checksum mismatch); it is not used; restore a backup or "
                               "delete it and enrol again")
        if not isinstance(body, list):
            raise GalleryError(f"{what}: 'drivers' is not a list of driver records; the file was "
                               "not written by this version of sense_perception")
        try:
            return [DriverRecord(
                id=str(d["id"]), name=str(d["name"]), created=str(d["created"]),
                consent=ConsentRecord(**d["consent"]),
                templates=_decode_templates(d["templates"], f"{what} driver {d['id']}"),
                images=[str(i) for i in d.get("images", [])]) for d in body]
        except (KeyError, TypeError) as exc:
            raise GalleryError(f"{what}: a driver record is malformed ({exc}); the file was not "
                               "written by this version of sense_perception") from exc

    def _encode(self, drivers: Sequence[DriverRecord]) -> bytes:
        body = [{
            "id": d.id, "name": d.name, "created": d.created,
            "consent": {"who": d.consent.who, "when": d.consent.when,
                        "text_version": d.consent.text_version},
            "templates": _encode_templates(d.templates),
            "images": list(d.images),
        } for d in drivers]
        doc = {"format": FORMAT, "schema": SCHEMA_VERSION, "sha256": _digest(body), "drivers": body}
        data = json.dumps(doc, indent=1).encode()
        return self._cipher.seal(data, b"gallery") if self._cipher else data

    def _write(self, drivers: Sequence[DriverRecord], gallery_id: FileId | None,
               removing: bool = False) -> None:
        """Replace the gallery and its last good copy with fresh files; zero the old versions.

        Args:
            gallery_id: (st_dev, st_ino) of the gallery as read under this lock (None: there was
                none); only that inode is ever zeroed.
            removing: the change removes data (forget): the ``.bak`` is written first, so it never
                holds a driver the gallery no longer lists; otherwise the gallery is written first.
        """
        data = self._encode(drivers)
        # Look at both names before writing anything: a planted link, hard link or FIFO changes
        # nothing. The gallery was decoded under this lock, so its inode is ours to zero (also
        # through other names: forget erases every trace); the .bak was not, so a second name
        # there may be someone else's file and is refused.
        backup = self._check_backup()
        if backup is not None:
            check_single_link(self.backup_path, "gallery", backup)
        expected = {self.path: gallery_id,
                    self.backup_path: None if backup is None else (backup.st_dev, backup.st_ino)}
        self._sweep_temps()
        order = (self.backup_path, self.path) if removing else (self.path, self.backup_path)
        unzeroed: list[str] = []  # old versions whose zeroing failed after their replacement
        for target in order:
            try:
                unzeroed += self._replace(target, data, expected[target],
                                          verified=target == self.path)
            except GalleryError as exc:
                if target == self.backup_path and not removing:  # the gallery holds the change
                    raise CopyNotWritten("; ".join([str(exc), *unzeroed])) from exc
                raise
        try:  # housekeeping once the change is written: a failure here never undoes it (R61)
            self._sweep_orphan_images(drivers)
        except (GalleryError, OSError) as exc:  # enroll then erased the crops the gallery lists
            LOG.warning("kept images of drivers no gallery lists were not looked for: %s; the "
                        "next enroll or forget looks again", exc)
        if unzeroed:  # raised last: the change is whole, only the zeroing is missing (R54)
            raise OldVersionNotZeroed("; ".join(unzeroed))

    def _replace(self, target: Path, data: bytes, expected: FileId | None,
                 verified: bool = False) -> list[str]:
        """Atomically replace ``target`` with ``data`` (mode 0600), then zero the old inode.

        The old file is opened without following a link and zeroed only if it is the regular
        inode ``expected`` that was examined under the lock, and, unless its content was
        ``verified`` as this gallery, has no other name.

        Returns:
            What could not be zeroed once ``target`` was replaced (empty when all was): the
            replacement stands, so the caller finishes the change and says so; an error there
            was "cannot be written", and enroll erased the kept crops the new gallery named (R54).
        """
        opened = open_regular(target, os.O_WRONLY, "gallery", setting=target == self.path)
        old_fd = opened[0] if opened is not None else None
        try:
            found = (opened[1].st_dev, opened[1].st_ino) if opened is not None else None
            if found != expected:
                raise GalleryError(
                    f"gallery {target} was replaced by another program while this change was "
                    f"being made; it was not touched; fix: check who can write {target.parent} "
                    "and run the command again")
            if opened is not None and not verified:
                check_single_link(target, "gallery", opened[1])
            atomic_write(target, data, temp_prefix=temp_prefix(self.path))
        except OSError as exc:
            if old_fd is not None:
                os.close(old_fd)
            raise NotWritten(f"gallery {target} cannot be written: {exc}", exc, target) from exc
        if old_fd is None:
            return []
        try:
            scrub(old_fd)
        except OSError as exc:
            return [f"the old version of {target} could not be zeroed ({exc}): it has no name "
                    "any more, but its disk blocks may still hold what it held until they are "
                    "reused; fix: check that disk (an I/O error, a full copy-on-write file "
                    "system)"]
        finally:
            os.close(old_fd)
        return []

    def _sweep_temps(self) -> int:
        """Zero and delete temp files a killed writer left (they may hold templates); how many.

        Called under the exclusive lock, so no live writer owns one of them. A link or other
        non-regular file under a temp name is refused, never followed. Only this gallery's: the
        random part mkstemp puts between the prefix and ``.tmp`` has no dot, and another
        gallery's prefix that begins with this one's has one more (``gallery.json.enc`` beside
        ``gallery.json``, the two default names in one folder: its lock is not this one, and its
        live writer's temp file was erased here, R97).
        """
        count = 0
        prefix = temp_prefix(self.path)
        for path in self.path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
            if "." in path.name[len(prefix):-len(".tmp")]:  # another gallery's
                continue
            erase_file(path, "stale gallery temp file")
            count += 1
        return count

    # -- public API -----------------------------------------------------------------------------

    def drivers(self, wait: bool = True) -> list[DriverRecord]:
        """All enrolled drivers (empty when the gallery does not exist yet).

        Args:
            wait: wait for a change in progress (a held lock, at most ``LOCK_WAIT_S``, then
                GalleryError); False raises GalleryError at once instead, for a caller that
                must never block (the driver_monitor's frame thread).
        """
        with self._locked(exclusive=False, wait=wait):
            return self._read_state()[0]

    def get(self, driver_id: str) -> DriverRecord:
        """The driver with ``driver_id``; GalleryError naming the valid ids otherwise."""
        for d in self.drivers():
            if d.id == driver_id:
                return d
        raise GalleryError(f"no enrolled driver has id '{printable(driver_id)}'; "
                           "`sense-perception driver list` shows the ids")

    def enroll(self, name: str, templates: np.ndarray, consent: ConsentRecord,
               images: Sequence[np.ndarray] | None = None) -> DriverRecord:
        """Add a driver with its templates; only ever called after explicit consent.

        Args:
            name: display name (no control or bidirectional-formatting characters).
            templates: (K, 128) unit-length embeddings (the first ``max_templates`` are kept).
            consent: the consent record of this driver.
            images: aligned face crops matching ``templates``; stored only when keep_images is on.

        Raises:
            GalleryError: bad input, or the gallery cannot be read or written.
        """
        name = name.strip()
        if not name or len(name) > 200:
            raise GalleryError(f"driver name must be 1 to 200 characters, got {len(name)}")
        if not consent.who.strip() or not consent.when:
            raise GalleryError("a consent record needs who consented and when")
        if len(consent.who) > 200:
            raise GalleryError("who consented must be 1 to 200 characters")
        for text, what in ((name, "driver name"), (consent.who, "who consented (--consent-by)")):
            error = unsafe_text_error(text, what)
            if error:
                raise GalleryError(error)
        t = np.ascontiguousarray(templates, np.float32).reshape(-1, EMBEDDING_DIM)
        if t.shape[0] == 0:
            raise GalleryError("no face template to enrol")
        if not np.all(np.isfinite(t)) or not np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-3):
            raise GalleryError("templates must be finite unit-length SFace embeddings")
        t = t[: self.max_templates]
        with self._locked(exclusive=True):
            drivers, gallery_id = self._read_state()
            taken = {d.id for d in drivers}
            driver_id = f"drv-{secrets.token_hex(4)}"
            while driver_id in taken:
                driver_id = f"drv-{secrets.token_hex(4)}"
            record = DriverRecord(driver_id, name, _utc_now(), consent, t)
            with self.changing():  # outside the try: a stop kept for its end undoes nothing
                try:
                    if self.keep_images and images is not None:
                        record.images = self._save_images(driver_id, list(images)[: t.shape[0]])
                    self._write(drivers + [record], gallery_id)
                except CopyNotWritten as exc:
                    # The gallery lists the driver: the enrolment happened. Said so, the crops it
                    # names kept (they were erased, and the error read as "nothing enrolled"
                    # while the templates identified the driver from then on: R44).
                    raise GalleryError(
                        f"driver {driver_id} was enrolled ({self.path} lists "  # no name (R49)
                        f"them, with {t.shape[0]} template(s) and {len(record.images)} kept "
                        f"image(s)), but its last good copy could not be updated: {exc}; the copy "
                        "still holds the version before; fix: free space on that disk, then "
                        "the next enroll or forget rewrites the copy (`sense-perception driver "
                        f"forget {driver_id}` if this enrolment is not wanted)") from exc
                except OldVersionNotZeroed as exc:
                    # Written whole, the crops it names kept: the old version held only drivers
                    # still enrolled; said, as the error read "cannot be written" (R54).
                    raise GalleryError(
                        f"driver {driver_id} was enrolled ({self.path} and its last good copy "
                        f"list them, with {t.shape[0]} template(s) and {len(record.images)} "
                        f"kept image(s)), but {exc}") from exc
                except BaseException as exc:
                    failure = exc
                    if isinstance(exc, NotWritten):  # the first write: no fix was named (R96)
                        failure = GalleryError(
                            f"{exc}; nothing was enrolled: {self.path} and its last good copy "
                            f"{self.backup_path} are as they were; fix: "
                            f"{write_fix(exc.error, self.path.parent)}, then run "
                            "`sense-perception driver enroll` again")
                    try:  # no orphan face image survives a failed enrolment
                        self._erase_images(record)
                    except GalleryError as erase_exc:  # both said: it replaced the failure (R61)
                        if not isinstance(exc, Exception):  # a stop stays a stop
                            LOG.error("%s", erase_exc)
                            raise exc from None
                        raise GalleryError(f"{_failure_text(failure)}; and then {erase_exc}"
                                           ) from exc
                    if failure is exc:
                        raise
                    raise failure from exc
        return record

    def forget(self, driver_id: str) -> DriverRecord:
        """Remove a driver: record, consent, every template and every kept image.

        Returns:
            The removed record (its templates are no longer anywhere in the gallery file).

        Raises:
            GalleryError: no driver has that id, or the gallery cannot be rewritten.
        """
        with self._locked(exclusive=True):
            drivers, gallery_id = self._read_state()
            gone = [d for d in drivers if d.id == driver_id]
            if not gone:
                raise GalleryError(f"no enrolled driver has id '{printable(driver_id)}'"
                                   f"{self._erase_leftovers(drivers)}; "
                                   "`sense-perception driver list` shows the ids")
            self._images_dir_exists()  # a planted link is refused before anything changes
            with self.changing():
                try:
                    self._write([d for d in drivers if d.id != driver_id], gallery_id,
                                removing=True)
                except NotWritten as exc:  # no fix was named (R96): the others name theirs
                    raise GalleryError(self._forget_not_written(exc, driver_id)) from exc
                except OldVersionNotZeroed as exc:
                    # Both files no longer list the driver: their crops go too, and the error
                    # says the forget happened; it said "cannot be written" and left the crops
                    # until a forget run again found no such driver (R54).
                    left = self._erase_images_after_forget(gone[0])
                    erased = left or f"{len(gone[0].images)} kept image(s) erased"
                    raise GalleryError(
                        f"driver {printable(driver_id)} was forgotten ({self.path} and its last "
                        f"good copy no longer list them; {erased}), but {exc}") from exc
                left = self._erase_images_after_forget(gone[0])
                if left is not None:
                    raise GalleryError(
                        f"driver {printable(driver_id)} was forgotten ({self.path} and its last "
                        f"good copy no longer list them), but {left}")
        return gone[0]

    def _forget_not_written(self, exc: NotWritten, driver_id: str) -> str:
        """What a forget whose write failed changed, and the fix: the last good copy is written
        first (it never holds a driver the gallery no longer lists), so either nothing changed
        (the copy failed) or the copy no longer lists the driver while the gallery, as it was,
        still does (the gallery failed); the kept images are untouched either way."""
        who = f"driver {printable(driver_id)}"
        if exc.target == self.backup_path:
            state = (f"nothing was changed: {who} is still enrolled, {self.path} and its last "
                     f"good copy {self.backup_path} are as they were")
        else:
            state = (f"{who} is not forgotten yet: {self.path} is as it was and still lists "
                     f"them, its last good copy {self.backup_path} no longer does (it was "
                     "written first)")
        return (f"{exc}; {state}, and their kept images are untouched; fix: "
                f"{write_fix(exc.error, self.path.parent)}, then run `sense-perception driver "
                f"forget {printable(driver_id)}` again")

    def _erase_images_after_forget(self, record: DriverRecord) -> str | None:
        """Erase a forgotten driver's kept crops (:meth:`_erase_images`) once neither gallery
        file lists them; None when done, else why not all could be, with the fix. An error
        there (a folder that cannot be listed, removed or flushed) ended forget in a traceback,
        exit 1, although the driver was forgotten (R61)."""
        try:
            self._erase_images(record)
        except GalleryError as exc:
            return (f"{exc}; fix: `sense-perception driver forget {record.id}` run again erases "
                    "what is left")
        return None

    def _erase_leftovers(self, drivers: Sequence[DriverRecord]) -> str:
        """Erase what a stopped change left (kept crops no gallery lists, temp files), for a
        forget that finds no such driver: a forget stopped while it erased the crops, run
        again, and a forget after the only driver's killed enrolment erased nothing, the face
        crops and templates waiting for another driver's change (R40). Under the exclusive
        lock. Returns a note naming what was erased ("" when nothing was)."""
        temps = self._sweep_temps()
        crops = self._sweep_orphan_images(drivers)
        try:
            if self._images_dir_exists() and not any(self.images_dir.iterdir()):
                self.images_dir.rmdir()
        except OSError as exc:  # a traceback, exit 1, before (R61)
            raise GalleryError(f"kept-images directory {self.images_dir} cannot be removed: "
                               f"{exc.strerror or exc}; fix: check that disk, then run the "
                               "command again") from exc
        if not temps and not crops:
            return ""
        return (f" (erased now what an interrupted enroll or forget left: {crops} kept image(s) "
                f"of drivers no gallery lists, {temps} temp file(s))")

    def restore(self) -> list[DriverRecord]:
        """Put the last good copy (``<gallery>.bak``) back in place of a corrupt or missing gallery.

        Returns:
            The drivers of the restored gallery.

        Raises:
            GalleryError: the gallery is fine (nothing to restore) or has unsafe permissions, or the
                last good copy is missing, unsafe or unreadable too.
        """
        with self._locked(exclusive=True):
            current = self._read_file(self.path)  # unsafe permissions: fix them, do not restore
            backup = self._read_file(self.backup_path)  # a FIFO or link there: refused (R11)
            if current is not None:  # first: a readable gallery is never called lost (R60)
                try:
                    self._decode(current[0])
                except GalleryError:
                    pass
                else:
                    raise GalleryError(f"gallery {self.path} is readable; nothing to restore")
            if backup is None:
                raise GalleryError(
                    f"there is no last good copy {self.backup_path} to restore; "
                    + ("delete the gallery and enrol again" if current is not None else
                       f"no gallery {self.path} either: nothing is enrolled, so there is "
                       "nothing to restore; enrol with `sense-perception driver enroll`"))
            drivers = self._decode(backup[0], self.backup_path)
            with self.changing():
                self._sweep_temps()
                try:
                    unzeroed = self._replace(self.path, backup[0],
                                             current[1] if current is not None else None)
                except NotWritten as exc:  # no fix was named (R94): the others name theirs
                    was = "still unreadable" if current is not None else "still missing"
                    raise GalleryError(
                        f"{exc}; {self.path} is as it was ({was}) and its last good copy "
                        f"{self.backup_path} is untouched; fix: "
                        f"{write_fix(exc.error, self.path.parent)}, then run `sense-perception "
                        "driver restore` again") from exc
            if unzeroed:  # restored all the same: said so, not "cannot be written" (R54)
                raise GalleryError(f"{self.path} was restored from {self.backup_path} "
                                   f"({len(drivers)} driver(s)), but {unzeroed[0]}")
        return drivers

    def load_image(self, name: str) -> np.ndarray:
        """Decode a kept aligned crop (BGR uint8) by its name in a record's ``images``."""
        import cv2

        if not _plain_name(name):
            raise GalleryError(f"kept image name {printable(name)!r} is not a plain file name")
        path = self.images_dir / name
        opened = open_regular(path, os.O_RDONLY, "kept image")
        if opened is None:
            raise GalleryError(f"kept image {path} cannot be read: it does not exist")
        try:
            blob = read_fd(opened[0], _MAX_IMAGE_BYTES, path, "kept image")
        except OSError as exc:
            raise GalleryError(f"kept image {path} cannot be read: {exc}") from exc
        if self._cipher is not None:
            blob = self._cipher.open(blob, name.encode(), f"kept image {path}")
        image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise GalleryError(f"kept image {path} is not a decodable PNG")
        return image

    # -- kept images ----------------------------------------------------------------------------

    def _images_dir_exists(self) -> bool:
        """Whether the kept-images directory exists; refuses a link or a non-directory there."""
        folder = self.images_dir
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise GalleryError(f"kept-images directory {folder} cannot be examined: {exc}") from exc
        if stat.S_ISDIR(st.st_mode):
            return True
        if stat.S_ISREG(st.st_mode):
            raise GalleryError(f"kept-images directory {folder} is a file, not a directory; fix: "
                               f"delete {folder} (check who can write {folder.parent})")
        raise refusal(folder, "kept-images directory", st)

    def _save_images(self, driver_id: str, images: list[np.ndarray]) -> list[str]:
        import cv2

        folder = self.images_dir
        if not self._images_dir_exists():
            try:
                make_private_dirs(folder)
            except OSError as exc:  # a full disk: a traceback, exit 1, before (R61)
                raise GalleryError(f"kept-images directory {folder} cannot be created: "
                                   f"{exc.strerror or exc}; nothing was enrolled; fix: free space "
                                   "on that disk, or enrol without --keep-images") from exc
        names = []
        suffix = ".png.enc" if self._cipher else ".png"
        for i, image in enumerate(images):
            ok, png = cv2.imencode(".png", image)
            if not ok:
                raise GalleryError(f"cannot encode kept image {i} of driver {driver_id}")
            name = f"{driver_id}_{i:03d}{suffix}"
            blob = png.tobytes()
            if self._cipher is not None:
                blob = self._cipher.seal(blob, name.encode())
            try:  # a new file only: O_EXCL also refuses a planted (even dangling) link
                fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600)
            except OSError as exc:
                raise GalleryError(f"kept image {folder / name} cannot be created: "
                                   f"{exc.strerror or exc}") from exc
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:  # enroll erases what was written of this driver's images
                raise GalleryError(f"kept image {folder / name} cannot be written: "
                                   f"{exc.strerror or exc}; nothing was enrolled; fix: free space "
                                   "on that disk, or enrol without --keep-images") from None
            names.append(name)
        try:
            fsync_dir(folder)
        except OSError as exc:  # a traceback, exit 1, before (R61)
            raise GalleryError(f"kept images in {folder} cannot be written: "
                               f"{exc.strerror or exc}; nothing was enrolled; fix: check that "
                               "disk, or enrol without --keep-images") from exc
        return names

    def _sweep_orphan_images(self, drivers: Sequence[DriverRecord]) -> int:
        """Erase kept images of drivers that neither gallery file lists (``drivers`` is what both
        now hold); returns how many. An enrolment killed after its crops were written and before
        the gallery was left face images that no ``driver list`` shows and no ``forget`` could
        reach. Called under the exclusive lock, so no live enrolment owns them."""
        if not self._images_dir_exists():
            return 0
        known, count = {d.id for d in drivers}, 0
        try:
            listed = list(self.images_dir.iterdir())
        except OSError as exc:  # a traceback, exit 1, before (R61)
            raise GalleryError(f"kept-images directory {self.images_dir} cannot be listed: "
                               f"{exc.strerror or exc}") from exc
        for path in listed:
            match = _KEPT_IMAGE.fullmatch(path.name)
            if match and match.group(1) not in known:
                try:
                    erase_file(path, "kept image of no enrolled driver")
                    count += 1
                except GalleryError as exc:  # the change is already written: warn, never undo it
                    LOG.warning("%s", exc)
        return count

    def _erase_images(self, record: DriverRecord) -> None:
        """Zero and delete the kept crops of ``record``, and the folder once empty.

        Raises:
            GalleryError: a crop, the folder or its removal cannot be erased or flushed, naming
                the driver's id (never the name) and the reason (an OSError from the folder's
                listing, removal or flush ended the command in a traceback, exit 1: R61).
        """
        folder = self.images_dir
        if not self._images_dir_exists():
            return
        try:
            # Also catch files of this driver a crash left out of the record. Names come from
            # the gallery file, which someone may have forged: only plain names inside the
            # folder count.
            prefix = f"{record.id}_"
            paths = {p for p in folder.iterdir() if p.name.startswith(prefix)}
            paths |= {folder / n for n in record.images if _plain_name(n)}
            for path in paths:
                erase_file(path, "kept image")
            if not any(folder.iterdir()):
                folder.rmdir()
            fsync_dir(folder.parent)
        except OSError as exc:
            raise GalleryError(f"the kept images of driver {record.id} in {folder} could not all "
                               f"be erased, or their removal flushed to disk: "
                               f"{exc.strerror or exc} ({exc.filename or folder})"
                               ) from exc


def _failure_text(exc: BaseException) -> str:
    """An error's text for a message: a GalleryError's own words, else its type and words."""
    return str(exc) if isinstance(exc, GalleryError) else f"{type(exc).__name__}: {exc}"


def _plain_name(name: str) -> bool:
    """A file name without any directory part ("a.png", not "../a.png" or ".")."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def _digest(body: object) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

