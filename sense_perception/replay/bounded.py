"""Decompression with a ceiling: a bag's compressed MCAP chunk or sqlite3 message never expands
past :data:`MAX_DECOMPRESSED_BYTES` in memory.

A few kilobytes of zstd expand to gigabytes of zeros (a decompression bomb), and an MCAP chunk's
``uncompressed_size`` is whatever the file says. rosbags and the ``mcap`` library decompress a
whole chunk (rosbags: every zstd message of a message-compressed sqlite3 bag) in one call without a
ceiling, so such a file exhausted the memory, and parsing gigabytes of zeros as MCAP records took
hours. :func:`install` puts :func:`bounded_decompress` in place of rosbags' decompressors; the
reader's own MCAP salvage path calls it directly. The output is produced incrementally and stops
one byte past the ceiling, so nothing larger is ever allocated.

A "file-compressed" bag (rosbag2 ``compression_mode: file``: ``*.mcap.zstd`` / ``*.db3.zstd``) is
unpacked by rosbags whole, into a temporary folder on disk, before it is read. Its unpacked size
is bounded by the free space of that folder's disk less :data:`UNPACK_RESERVE_BYTES`
(:func:`unpack_budget`, read again as the copy grows): a frame header that declares more is
refused before anything is written, and the stream stops one read past the budget otherwise.
rosbags removes the folder (named :data:`UNPACK_PREFIX` and the pid...) when the bag is closed or
its opening fails (a refusal or Ctrl-C included); one that a ``kill -9`` left is removed when a
later bag is opened (:func:`remove_dead_unpacks`, :mod:`sense_perception.owned_folders`).
"""
from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from ..errors import BagError

#: The most one chunk or message may expand to. A chunk holds at least one whole message, and the
#: largest frame the nodes accept (``input.max_pixels`` 40 Mpx, 16-bit RGB) is 240 MB.
MAX_DECOMPRESSED_BYTES = 256 << 20


#: Left free on the temporary folder's disk when a file-compressed bag is unpacked there, so a
#: bomb (a few kilobytes of zstd hold terabytes of zeros) never fills the disk.
UNPACK_RESERVE_BYTES = 1 << 30
#: How often (bytes unpacked) the free space is read again: other writers (fleet workers
#: unpacking beside this one) shrink it meanwhile.
UNPACK_RECHECK_BYTES = 64 << 20
#: The name rosbags' temporary folder of an unpacked bag starts with (``$TMPDIR/<prefix><pid>-*``),
#: so that one a ``kill -9`` left can be told from other programs' folders.
UNPACK_PREFIX = "sense-perception-unpack-"
#: The mark file in that folder, naming the pid that unpacks there.
UNPACK_MARK = ".sense-perception-unpack"
_UNPACK_LABEL = "unpacked bag"


def _unpack_folder() -> tempfile.TemporaryDirectory[str]:
    """rosbags' ``TemporaryDirectory()`` for an unpacked bag: named and marked with this pid."""
    from .. import owned_folders

    return owned_folders.temporary_folder(UNPACK_PREFIX, UNPACK_MARK, _UNPACK_LABEL)


@functools.cache
def remove_dead_unpacks() -> tuple[Path, ...]:
    """Remove, once per process, the unpacked copies of bags whose replay was killed (``kill -9``
    runs no cleanup: gigabytes stayed in ``$TMPDIR``); returns the folders removed."""
    from .. import owned_folders

    return tuple(owned_folders.remove_dead(UNPACK_PREFIX, UNPACK_MARK, _UNPACK_LABEL))


class DecompressionLimitError(BagError):
    """A compressed chunk or message would expand past :data:`MAX_DECOMPRESSED_BYTES`, or past
    the size its container declares."""


def _zstd() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef]  # rosbags' own choice
    return zstd


def _decompressor(compression: str) -> Any:
    if compression == "zstd":
        return _zstd().ZstdDecompressor()
    import lz4.frame  # type: ignore[import-untyped]

    return lz4.frame.LZ4FrameDecompressor()


def _too_large(compression: str, size: str, limit: int) -> DecompressionLimitError:
    return DecompressionLimitError(
        f"{compression}-compressed data {size}, over the limit of {limit} bytes ({limit >> 20} MiB) "
        "that the replay decompresses at once: refused as a decompression bomb or a damaged file "
        "(a real frame is far smaller)")


def bounded_decompress(data: bytes | memoryview, compression: str, claimed: int | None = None,
                       limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """``data`` (zstd or lz4 frames, one after the other) decompressed, at most ``limit`` bytes.

    Args:
        claimed: the size the container declares (an MCAP chunk's ``uncompressed_size``); a claim
            over ``limit`` is refused before anything is decompressed, and output beyond the claim
            is an error as soon as its first byte appears.

    Raises:
        DecompressionLimitError: the claim or the real output is over ``limit``, or the output
            runs past ``claimed``.
        BagError: an unknown compression, or data that ends inside a frame.
    """
    if compression not in ("zstd", "lz4"):
        raise BagError(f"unsupported compression {compression!r} (zstd and lz4 are read)")
    if claimed is not None and claimed > limit:
        raise _too_large(compression, f"that declares {claimed} bytes uncompressed", limit)
    cap = limit if claimed is None else claimed
    parts: list[bytes] = []
    total = 0
    rest = bytes(data)
    while rest:
        decompressor = _decompressor(compression)
        out = decompressor.decompress(rest, max_length=cap - total + 1)
        total += len(out)
        parts.append(out)
        if total > cap:
            if claimed is not None:  # stopped at its own claim: memory stayed within it
                raise DecompressionLimitError(
                    f"{compression}-compressed data expands past the {claimed} bytes it declares "
                    "(a decompression bomb or a damaged file)")
            raise _too_large(compression, f"that expands to more than {limit} bytes", limit)
        if not decompressor.eof:
            raise BagError(f"{compression}-compressed data ends inside a frame (truncated)")
        rest = decompressor.unused_data
    return b"".join(parts)


def unpack_budget(folder: Path) -> int:
    """Bytes a file-compressed bag may unpack to in ``folder``: its disk's free space less
    :data:`UNPACK_RESERVE_BYTES` (never negative)."""
    return max(0, shutil.disk_usage(folder).free - UNPACK_RESERVE_BYTES)


def _unpack_refused(name: str, size: str, budget: int, folder: Path) -> DecompressionLimitError:
    return DecompressionLimitError(
        f"the file-compressed storage file {name} {size}, more than the {budget} bytes "
        f"({budget >> 20} MiB) it may be unpacked to in {folder} (that disk's free space less "
        f"{UNPACK_RESERVE_BYTES >> 30} GiB kept free): refused as a decompression bomb, or the "
        "disk is too small. If the recording is genuine, set TMPDIR to a folder on a disk with "
        "room for it, or unpack it yourself (zstd -d) and replay the .mcap/.db3 with a "
        "metadata.yaml that says compression_mode: none")


class _CappedZstdFile:
    """A zstd stream read for unpacking to ``folder``; reading past the budget raises."""

    def __init__(self, real: Any, file: IO[bytes], folder: Path) -> None:
        self.name = Path(getattr(file, "name", "?")).name
        self.folder = folder
        self.budget = unpack_budget(folder)
        head = file.read(18)  # the longest zstd frame header
        file.seek(0)
        try:
            declared = real.get_frame_info(head).decompressed_size
        except Exception:  # not a zstd frame: the real reader says so when it reads
            declared = None
        if declared is not None and declared > self.budget:
            raise _unpack_refused(self.name, f"declares {declared} bytes unpacked", self.budget,
                                  folder)
        self._stream = real.open(file, "rb")
        self._total = 0
        self._checked = 0  # bytes unpacked when the free space was last read

    def read(self, size: int = -1) -> bytes:
        if self._total - self._checked >= UNPACK_RECHECK_BYTES:
            self.budget = min(self.budget, self._total + unpack_budget(self.folder))
            self._checked = self._total
        left = self.budget - self._total + 1  # one byte past the budget shows it is crossed
        data = self._stream.read(left if size < 0 else min(size, left))
        self._total += len(data)
        if self._total > self.budget:
            raise _unpack_refused(self.name, f"unpacks to more than {self.budget} bytes",
                                  self.budget, self.folder)
        return data

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> "_CappedZstdFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BoundedZstd:
    """rosbags' ``zstd`` module with a bounded ``decompress`` (message-compressed sqlite3 bags)
    and a bounded ``open`` (file-compressed bags, unpacked to rosbags' temporary folder)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def decompress(self, data: bytes) -> bytes:
        return bounded_decompress(data, "zstd")

    def open(self, file: IO[bytes], mode: str = "rb") -> _CappedZstdFile:
        if mode != "rb":  # rosbags' reader only reads; anything else is not this module's use
            raise ValueError(f"bounded zstd.open reads only, not mode {mode!r}")
        # rosbags unpacks into a TemporaryDirectory(), i.e. under tempfile.gettempdir()
        return _CappedZstdFile(self._real, file, Path(tempfile.gettempdir()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install() -> None:
    """Make rosbags decompress through :func:`bounded_decompress` (idempotent).

    rosbags offers no hook for this: its module-level decompressor table (MCAP chunks) and its
    ``zstd`` module reference (sqlite3 message compression) are replaced.
    """
    from rosbags.rosbag2 import reader, storage_mcap

    if reader.TemporaryDirectory is not _unpack_folder:
        setattr(reader, "TemporaryDirectory", _unpack_folder)  # noqa: B010 - rosbags' attribute
    storage_mcap.DECOMPRESSORS["zstd"] = lambda data, size: bounded_decompress(data, "zstd", size)
    storage_mcap.DECOMPRESSORS["lz4"] = lambda data, size: bounded_decompress(data, "lz4", size)
    if not isinstance(reader.zstd, _BoundedZstd):
        setattr(reader, "zstd", _BoundedZstd(reader.zstd))  # noqa: B010 - a module, typed as one
