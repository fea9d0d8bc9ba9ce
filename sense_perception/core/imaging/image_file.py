"""Read a still image file within the ``input.*`` limits: the header first, then the decoder.

``detect``, ``eval`` and the ``driver`` commands read photos from disk. A small file can claim a
huge size (a 389 KB PNG claiming 20000x20000 px decodes to 1.2 GB), so, as for bag frames
(:mod:`.frame_guard`), the dimensions are read from the header and checked against
:class:`~.frame_guard.InputLimits` before a pixel buffer is allocated. JPEG and PNG headers are
parsed here (the same parsers as compressed bag frames); other formats OpenCV reads (BMP, TIFF,
WebP, ...) are sized by Pillow, which reads only the header on open. Every error is an
:class:`~sense_perception.errors.ImageDecodeError` (field ``file``) that names the file.
"""
from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ...errors import ImageDecodeError
from .frame_guard import InputLimits
from .image_decode import _JPEG_MAGIC, _PNG_MAGIC, _jpeg_size, _png_size, imdecode_bits

__all__ = ["ImageHeader", "exif_turns_sides", "image_file_size", "probe_image_file",
           "probe_image_header", "read_image_file"]

#: EXIF orientations that turn an image by 90 degrees (its width and height swap when shown)
_TURNING = (5, 6, 7, 8)


def _error(path: str | Path, why: str) -> ImageDecodeError:
    return ImageDecodeError("file", f"cannot read {path}: {why}")


#: a folder is given where its images were meant (R64: the message named no fix)
_DIRECTORY = ("is a directory, not an image file; give the images in it (DIR/*.jpg DIR/*.png: "
              "the shell expands the pattern)")


def _pattern_hint(path: str | Path) -> str:
    """The fix when a missing name holds a wildcard: the pattern reached us unexpanded (quoted,
    or given where no shell expands it), and no file is named ``*.jpg``."""
    if any(c in Path(path).name for c in "*?["):
        return ("; the name is a pattern no shell expanded (it was quoted, or matched no file): "
                "write it unquoted, or name the files")
    return ""


def _read_bytes(path: str | Path, limits: InputLimits) -> bytes:
    """The file's bytes; refuses what is not a readable regular file within max_compressed_bytes."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise _error(path, "no such file" + _pattern_hint(path)) from None
    except IsADirectoryError:
        raise _error(path, _DIRECTORY) from None
    except PermissionError:
        raise _error(path, "permission denied") from None
    except OSError as exc:
        raise _error(path, exc.strerror or str(exc)) from None
    except ValueError:  # a name read from a list (CSV, ground truth) may hold a NUL byte
        raise ImageDecodeError("file", f"cannot read {str(path)!r}: the name contains a NUL "
                                       "byte; no file can have it") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _error(path, _DIRECTORY)
        if not stat.S_ISREG(info.st_mode):
            raise _error(path, "not a regular file (a FIFO, socket or device)")
        if info.st_size > limits.max_compressed_bytes:
            raise _error(path, f"the file is {info.st_size} bytes, more than "
                               f"input.max_compressed_bytes={limits.max_compressed_bytes}; raise "
                               "input.max_compressed_bytes for images that large")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(limits.max_compressed_bytes + 1)
    except OSError as exc:
        raise _error(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if not data:
        raise _error(path, "the file is empty")
    if len(data) > limits.max_compressed_bytes:  # grew while being read
        raise _error(path, f"more than input.max_compressed_bytes={limits.max_compressed_bytes} "
                           "bytes")
    return data


class _Unsized(Exception):
    """The header gives no size this module can read."""


def _pillow_size(path: str | Path, data: bytes) -> tuple[int, int]:
    """(width, height) of a non-JPEG/PNG file from its header, via Pillow (no pixels decoded);
    ``data``: the bytes of ``path``, already read (the file is not opened again)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return int(image.width), int(image.height)
    except Image.DecompressionBombError as exc:
        raise _error(path, f"the header claims an image too large to decode ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise _Unsized from None


def image_file_size(path: str | Path, data: bytes) -> tuple[int, int] | None:
    """(width, height) claimed by the header of ``data`` (the bytes of ``path``); None when no
    header parser knows the format.

    Raises:
        ImageDecodeError: a JPEG or PNG that is corrupt or truncated.
    """
    buf = memoryview(data)
    try:
        # A truncated stream would decode to grey rows (and wrong scores): refuse it, as bags do.
        if data.startswith(_JPEG_MAGIC):
            width, height, scan = _jpeg_size(buf)
            if data.rfind(b"\xff\xd9", scan) < 0:
                raise ImageDecodeError("data", f"truncated JPEG: no end marker ({len(data)} bytes)")
            return width, height
        if data.startswith(_PNG_MAGIC):
            if data.rfind(b"IEND") < 0:
                raise ImageDecodeError("data", f"truncated PNG: no IEND chunk ({len(data)} bytes)")
            return _png_size(buf)
    except ImageDecodeError as exc:
        raise _error(path, f"not a decodable image ({str(exc).removeprefix('data: ')})") from None
    try:
        return _pillow_size(path, data)
    except _Unsized:
        return None


def _png_exif(data: bytes) -> bytes | None:
    """The payload of the ``eXIf`` chunk libpng (OpenCV's reader) keeps, wherever it lies (before
    or after the pixels), found by walking the chunk headers: no pixel is decoded. None without
    one, or past a corrupt chunk.

    libpng discards an ``eXIf`` chunk whose CRC is wrong, that is shorter than 2 bytes or that does
    not start with a TIFF byte order mark (``MM``, ``II``: a JPEG's ``Exif\\0\\0`` prefix kept)
    and reads on: the next ``eXIf`` chunk is the one OpenCV applies (the walk stopped at the first,
    R54); after one it keeps, a second is a "duplicate" and ignored."""
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        start = pos + 8
        if kind == b"eXIf":
            payload = data[start:start + length]
            crc = data[start + length:start + length + 4]
            # libpng discards an ancillary chunk whose CRC is wrong (R50), one too short or
            # without a byte order mark ("eXIf: invalid", R50), and takes a later one (R54)
            if (len(crc) == 4 and struct.unpack(">I", crc)[0] == zlib.crc32(kind + payload)
                    and len(payload) == length and payload[:2] in (b"MM", b"II")):
                return payload
        if kind == b"IEND":
            return None
        pos = start + length + 4  # the chunk's data and its CRC
    return None


def _tiff_orientation(tiff: bytes) -> int:
    """The EXIF orientation in ``tiff`` (an EXIF block from its TIFF header on) as OpenCV's EXIF
    reader takes it: the first Orientation entry (tag 0x0112) of the first IFD, its value the
    16-bit word at the start of the entry's value field whatever type the entry declares; 1 (as
    stored) without one, or with the IFD past the block's end. Pillow read the value by its type:
    a big-endian LONG 6 is 6 there and 0 in OpenCV, which turned nothing where the header check
    said turned (R54)."""
    order = {b"MM": ">", b"II": "<"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    magic, ifd = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):  # 42: TIFF (OpenCV reads no BigTIFF, 43)
        return 1
    count = struct.unpack_from(order + "H", tiff, ifd)[0]
    for at in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if at + 2 > len(tiff):
            return 1  # OpenCV's reader fails on a read past the end: nothing is turned
        if struct.unpack_from(order + "H", tiff, at)[0] == 0x0112:
            return int(struct.unpack_from(order + "H", tiff, at + 8)[0]) if at + 10 <= len(tiff) else 1
    return 1


def _exif_turns(data: bytes) -> bool:
    """Whether the EXIF orientation in ``data`` (an image file's bytes) turns the image by 90
    degrees, read from its header only.

    PNG: the ``eXIf`` chunk, the one OpenCV applies (Pillow's ``getexif`` decoded every pixel of
    a PNG without an ``eXIf`` chunk ahead of its pixels to look for one after them: a second
    full decode of each PNG). JPEG: the first APP1 ``Exif`` block (Pillow's header read finds
    it). Both read by :func:`_tiff_orientation`, as OpenCV reads the value. Other formats:
    Pillow's ``getexif``, which reads headers only.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if data.startswith(_PNG_MAGIC):
                # libpng (OpenCV's reader) takes a TIFF byte order mark, MM or II, and refuses
                # anything else ("eXIf: invalid"): a chunk keeping a JPEG's "Exif\0\0" prefix
                # turns nothing there, where Pillow, which reads past it, said it turned (R50)
                payload = _png_exif(data)
                return payload is not None and _tiff_orientation(payload) in _TURNING
            with Image.open(io.BytesIO(data)) as image:
                if data.startswith(_JPEG_MAGIC):  # the first APP1 "Exif\0\0" block, as OpenCV
                    block = image.info.get("exif")
                    return (isinstance(block, bytes) and block.startswith(b"Exif\0\0")
                            and _tiff_orientation(block[6:]) in _TURNING)
                return image.getexif().get(0x0112, 1) in _TURNING
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error,
            Image.DecompressionBombError):
        return False


#: ISO base media brands of HEIF still images (iPhone photos: HEIC) and AVIF
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
                b"avif", b"avis")


def _unknown_format(data: bytes) -> str:
    """Why no reader took ``data``, naming the fix for the files people mistake for photos: a
    phone's HEIC/HEIF or AVIF photo (no reader here), a web page or SVG saved under an image's
    name (a browser's "save as" of an image's page), a PDF. R64: all were "unknown format or
    corrupt header", which names no fix."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if _is_avif(data):
        return ("an AVIF file its reader cannot open (corrupt, truncated or an AVIF sequence); "
                "convert it to JPEG or PNG")
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return ("a HEIC/HEIF file (a phone's photo format), a format not read here; convert it "
                "to JPEG or PNG (the phone's export or share as JPEG, or heif-convert / "
                "ImageMagick)")
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
            head.startswith(b"<") and b"<html" in head):
        return ("an HTML page, not an image: a web page saved under an image's name; open the "
                "image itself (right-click it, \"Save image as\") and give that file")
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "an SVG drawing, not a photo; export it as PNG or JPEG"
    if data.startswith(b"%PDF"):
        return "a PDF document, not an image; export the page or the photo in it as PNG or JPEG"
    return "unknown format or corrupt header"


def _check_limits(path: str | Path, width: int, height: int, limits: InputLimits,
                  what: str) -> None:
    if width <= 0 or height <= 0:
        raise _error(path, f"not a decodable image ({what} an empty size {width}x{height})")
    for value, side, name in ((width, "width", "max_width"), (height, "height", "max_height")):
        limit = getattr(limits, name)
        if value > limit:
            raise _error(path, f"{what} {width}x{height} px: {side} {value} exceeds "
                               f"input.{name}={limit}; {_raise_limit(name)}")
    if width * height > limits.max_pixels:
        raise _error(path, f"{what} {width}x{height} = {width * height} px, more than "
                           f"input.max_pixels={limits.max_pixels}; {_raise_limit('max_pixels')}")


def _raise_limit(name: str) -> str:
    """The fix for a photo over an ``input.*`` size limit. A phone's 48 or 50 MP photo (8064 x
    6048) is over the default ``max_pixels``: the message said only "raise input.max_pixels",
    not where (R64)."""
    return (f"for a photo that large (a 48 MP phone camera's) raise input.{name} in a --config "
            f"YAML (NODE: ros__parameters: input: {name}: N) or downscale the photo; otherwise "
            "the file is corrupt or hostile")


def _checked_header(path: str | Path, limits: InputLimits) -> tuple[bytes, tuple[int, int]]:
    data = _read_bytes(path, limits)
    size = image_file_size(path, data)
    if size is None:  # decoding a format whose size is unknown could allocate anything
        raise _error(path, f"not a decodable image ({_unknown_format(data)}; readable: "
                           "JPEG, PNG, BMP, GIF, TIFF, WebP, AVIF, PNM and the other formats Pillow "
                           "sizes)")
    _check_limits(path, *size, limits, "the header claims")
    return data, size


def _undecoded(data: bytes) -> str:
    """Why OpenCV gave no pixels for a file whose header was read: the format and sample layout
    Pillow names, with the fix (a 32-bit float TIFF was "unknown format or truncated file",
    though its format is known and it is whole, R64)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                samples = {"F": "32-bit float", "I": "32-bit integer"}.get(image.mode,
                                                                          image.mode)
                kind = f"{image.format} file of {samples} samples"
    except Exception:  # noqa: BLE001 - only the message's detail: any failure gives the plain text
        return "unknown format or truncated file"
    return (f"OpenCV cannot decode this {kind} (a truncated file, or a sample layout its reader "
            "does not take, such as 32-bit float); save it as an 8- or 16-bit JPEG, PNG or TIFF")


def _is_avif(data: bytes) -> bool:
    """Whether ``data`` is an AVIF file: an ISO base media ``ftyp`` box naming an AVIF brand."""
    if data[4:8] != b"ftyp":
        return False
    box = data[8:min(struct.unpack(">I", data[:4])[0], 256)]
    return any(box[i:i + 4] in (b"avif", b"avis") for i in range(0, len(box) - 3, 4))


def _read_avif(path: str | Path, data: bytes, grey: bool) -> np.ndarray:
    """An AVIF file's pixels as a viewer shows them, by Pillow. A phone's portrait AVIF keeps its
    turn in the HEIF rotation and mirror boxes (``irot``, ``imir``), which every viewer applies;
    OpenCV's reader ignores them and gave the photo lying on its side, while the header check
    (Pillow's orientation, :func:`_exif_turns`) said it stood (R64). Pillow reads the boxes as
    an EXIF orientation, applied here as for every other format.

    Raises:
        ImageDecodeError: the file cannot be decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as opened:
                shown = ImageOps.exif_transpose(opened)
                if grey:
                    return np.array(shown.convert("L"))
                return cv2.cvtColor(np.asarray(shown.convert("RGB")), cv2.COLOR_RGB2BGR)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError,
            Image.DecompressionBombError) as exc:
        raise _error(path, f"not a decodable image (the AVIF decoder refused it: {exc})") from None


class ImageHeader(NamedTuple):
    """What an image file's header says: its size as stored and whether its EXIF orientation
    turns it (:func:`read_image_file` then gives it ``height`` wide and ``width`` high)."""

    width: int
    height: int
    turned: bool

    @property
    def shown(self) -> tuple[int, int]:
        """(width, height) as :func:`read_image_file` gives the image, its EXIF turn applied."""
        return (self.height, self.width) if self.turned else (self.width, self.height)


def probe_image_header(path: str | Path, limits: InputLimits | None = None) -> ImageHeader:
    """:func:`probe_image_file` and :func:`exif_turns_sides` in one: the file is opened and read
    once, no pixel decoded (``eval`` looks at every image this way before its models load).

    Raises:
        ImageDecodeError: as :func:`probe_image_file`.
    """
    data, (width, height) = _checked_header(path, limits or InputLimits())
    return ImageHeader(width, height, _exif_turns(data))


def probe_image_file(path: str | Path, limits: InputLimits | None = None) -> tuple[int, int]:
    """(width, height) the header of an image file claims, checked as :func:`read_image_file`
    checks it, without decoding any pixel (a cheap look at every image before a long run).

    Raises:
        ImageDecodeError: as :func:`read_image_file`, for the faults found before decoding.
    """
    return _checked_header(path, limits or InputLimits())[1]


def exif_turns_sides(path: str | Path, limits: InputLimits | None = None) -> bool:
    """Whether the EXIF orientation of an image file turns it by 90 degrees (orientations 5-8),
    so that :func:`read_image_file` gives it with its width and height swapped against the size
    its header claims (:func:`probe_image_file`). Reads the header only (a PNG's ``eXIf`` chunk,
    as OpenCV does); False for a file without EXIF, one that cannot be read within ``limits`` or
    one Pillow cannot open."""
    try:
        return _exif_turns(_read_bytes(path, limits or InputLimits()))
    except ImageDecodeError:
        return False


def read_image_file(path: str | Path, limits: InputLimits | None = None,
                    grey: bool = False) -> np.ndarray:
    """Read an image file (anything OpenCV reads) as BGR uint8 (``grey``: one channel), within
    ``limits``.

    The width and height the header claims are checked against ``input.max_width``,
    ``input.max_height`` and ``input.max_pixels``, and the file size against
    ``input.max_compressed_bytes``, before anything is decoded. EXIF orientation is applied, as
    a photo viewer would (an AVIF's HEIF rotation and mirror too: it is decoded by Pillow). A
    16-bit PNG is scaled to 8 bit with ``input.mono16_bits``, as a 16-bit frame of a camera is.

    Args:
        path: the image file.
        limits: the ``input.*`` limits; None means the :class:`InputLimits` defaults.

    Returns:
        New ``(H, W, 3)`` uint8 BGR array (``(H, W)`` grey levels with ``grey``).

    Raises:
        ImageDecodeError: field ``file``; the message names the path and the fault (missing, a
            directory, not a regular file, too large, corrupt, not an image).
    """
    limits = limits or InputLimits()
    data, _ = _checked_header(path, limits)
    if _is_avif(data):
        shown = _read_avif(path, data, grey)
        _check_limits(path, shown.shape[1], shown.shape[0], limits, "decoded")
        return shown
    try:
        image = imdecode_bits(np.frombuffer(data, np.uint8),
                              cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR, limits.mono16_bits)
    except (cv2.error, MemoryError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise _error(path, f"not a decodable image (the decoder refused it: "
                           f"{detail.split(' error: ')[-1]})") from None
    if image is None:
        raise _error(path, f"not a decodable image ({_undecoded(data)})")
    # EXIF orientation may swap the sides: check what was decoded too.
    _check_limits(path, image.shape[1], image.shape[0], limits, "decoded")
    return image
