"""Decode sensor_msgs/Image and sensor_msgs/CompressedImage into BGR uint8 arrays, without ROS.

Works on any object with the message's fields: an rclpy message, a rosbags message, a dataclass.
``data`` may be bytes, bytearray, memoryview, ``array.array('B')`` (rclpy), a uint8 numpy array
(rosbags) or a list of ints.

Conventions:
    * Output is always a fresh, writable, C-contiguous ``(H, W, 3)`` uint8 BGR array, the format the
      whole pipeline works in. It never aliases the message buffer.
    * ``mono16`` is scaled to 8 bit by ``>> 8`` (the high byte), like PNG's 16 -> 8 bit strip; use
      :func:`decode_mono16` to keep the full depth. A 10- or 12-bit sensor publishes its values in
      the low bits of mono16 (0-1023, 0-4095), so its high byte is all but black: ``mono16_bits``
      (the ``input.mono16_bits`` setting) says how many low bits carry the picture, and those are
      scaled to 0-255 (larger values saturate). It applies to 16-bit PNGs in a CompressedImage too.
    * Depth images (``16UC1``, ``32FC1``: REP 118 distances, as depth cameras publish them, raw or
      through compressed_image_transport) are refused by name: they are no picture of the scene,
      and a detector run on them finds things that are not there. :func:`decode_mono16` reads a
      ``16UC1`` depth map at full depth.
    * ``data`` longer than ``step * height`` is accepted and the trailing bytes are ignored (some
      drivers over-allocate); shorter is an error.
    * ``is_bigendian`` only matters for 16-bit encodings.
    * Compressed colour images follow compressed_image_transport: after ``imdecode`` the channels
      are BGR when the format says ``compressed bgr...`` (or names no source encoding); they are RGB
      (and swapped here) when the source encoding is a colour one and ``compressed bgr`` is absent.

Every bad message raises :class:`~sense_perception.errors.ImageDecodeError` whose ``field`` is one of
``msg``, ``height``, ``width``, ``height*width``, ``encoding``, ``is_bigendian``, ``step``, ``data``,
``format`` or ``max_pixels``; no other exception type escapes the public decoders.
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, TypeVar

import cv2
import numpy as np

from ...errors import ImageDecodeError

DEFAULT_MAX_PIXELS = 50_000_000

Converter = Callable[[np.ndarray], np.ndarray]
_F = TypeVar("_F", bound=Callable[..., Any])


def _copy(view: np.ndarray) -> np.ndarray:
    # Always copy: the result must be writable and must not alias a buffer the transport may reuse.
    return view.copy(order="C")


def _cvt(code: int) -> Converter:
    return lambda view: cv2.cvtColor(view, code)


def _mono16_to_bgr(view: np.ndarray) -> np.ndarray:
    gray = np.right_shift(view, 8, out=np.empty(view.shape, np.uint8), casting="unsafe")
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


#: Bits of a 16-bit pixel that carry the picture by default: all 16 (8 bit is the high byte).
FULL_DEPTH_BITS = 16
#: The range ``mono16_bits`` may take: 8 (values 0-255 in a 16-bit word) up to 16.
MONO16_BITS_RANGE = (8, FULL_DEPTH_BITS)


def scale_16bit(pixels: np.ndarray, bits: int) -> np.ndarray:
    """16-bit pixels (any byte order, any channels) whose values fill their ``bits`` low bits,
    as uint8: ``value / 2**(bits - 8)``, rounded, values above ``2**bits - 1`` saturating at 255.

    Raises:
        ImageDecodeError: ``bits`` outside :data:`MONO16_BITS_RANGE` (field ``mono16_bits``).
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not (
            MONO16_BITS_RANGE[0] <= bits <= MONO16_BITS_RANGE[1]):
        raise ImageDecodeError("mono16_bits", f"must be an integer in {MONO16_BITS_RANGE[0]}.."
                                              f"{MONO16_BITS_RANGE[1]}, got {bits!r}")
    # convertScaleAbs rounds and saturates in one pass. OpenCV needs native byte order and
    # aligned values: a frame whose row step is odd (rows padded by an odd number of bytes) puts
    # every other row's 16-bit values at odd addresses, which numpy reads but OpenCV read as other
    # values (R61); np.require copies such a view into native, aligned uint16, and only then.
    native = np.require(pixels, np.uint16, ("A",))
    return cv2.convertScaleAbs(native, alpha=2.0 ** (8 - bits))


def _mono16_bits_to_bgr(view: np.ndarray, bits: int) -> np.ndarray:
    if bits == FULL_DEPTH_BITS:  # the high byte, exactly as before the setting existed
        return _mono16_to_bgr(view)
    return cv2.cvtColor(scale_16bit(view, bits), cv2.COLOR_GRAY2BGR)


def _bayer(ros_name: str, legacy_name: str) -> Converter:
    # OpenCV's historic COLOR_BayerXY names describe the 2nd row's 2nd/3rd pixels, so ROS
    # bayer_rggb8 is COLOR_BayerBG2BGR. Newer OpenCV adds unambiguous aliases (BayerRGGB...);
    # the tests check the mapping against a known mosaic either way.
    return _cvt(getattr(cv2, f"COLOR_Bayer{ros_name}2BGR", getattr(cv2, f"COLOR_Bayer{legacy_name}2BGR")))


@dataclass(frozen=True)
class EncodingSpec:
    """How one sensor_msgs/Image encoding is laid out and turned into BGR.

    Attributes:
        channels: elements per pixel (2 for packed YUV 4:2:2, 1 for Bayer mosaics).
        dtype: element type; its byte order is set from ``is_bigendian`` when wider than a byte.
        to_bgr: converts an ``(H, W, channels)`` (or ``(H, W)``) view to a new BGR uint8 array.
        even_width: the width must be even (YUV 4:2:2 packs two pixels per 4 bytes).
    """

    channels: int
    dtype: np.dtype
    to_bgr: Converter
    even_width: bool = False

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.dtype.itemsize


_U8 = np.dtype(np.uint8)
_U16 = np.dtype(np.uint16)

# The single table of supported encodings: adding one is one line.
_ENCODINGS: dict[str, EncodingSpec] = {
    "bgr8": EncodingSpec(3, _U8, _copy),
    "rgb8": EncodingSpec(3, _U8, _cvt(cv2.COLOR_RGB2BGR)),
    "bgra8": EncodingSpec(4, _U8, _cvt(cv2.COLOR_BGRA2BGR)),
    "rgba8": EncodingSpec(4, _U8, _cvt(cv2.COLOR_RGBA2BGR)),
    "mono8": EncodingSpec(1, _U8, _cvt(cv2.COLOR_GRAY2BGR)),
    "mono16": EncodingSpec(1, _U16, _mono16_to_bgr),
    # ROS "yuv422" is UYVY byte order; "yuv422_yuy2" is YUYV.
    "yuv422": EncodingSpec(2, _U8, _cvt(cv2.COLOR_YUV2BGR_UYVY), even_width=True),
    "yuv422_yuy2": EncodingSpec(2, _U8, _cvt(cv2.COLOR_YUV2BGR_YUY2), even_width=True),
    "bayer_rggb8": EncodingSpec(1, _U8, _bayer("RGGB", "BG")),
    "bayer_bggr8": EncodingSpec(1, _U8, _bayer("BGGR", "RG")),
    "bayer_gbrg8": EncodingSpec(1, _U8, _bayer("GBRG", "GR")),
    "bayer_grbg8": EncodingSpec(1, _U8, _bayer("GRBG", "GB")),
}
_ALIASES = {"8UC3": "bgr8", "8UC1": "mono8", "16UC1": "mono16", "uyvy": "yuv422", "yuyv": "yuv422_yuy2"}
_ENCODINGS.update({alias: _ENCODINGS[name] for alias, name in _ALIASES.items()})

# REP 118 depth images: distances (mm as 16UC1, m as 32FC1), not pictures. 16UC1 keeps a layout in
# the table for decode_mono16; decode_image and decode_compressed refuse them all by name.
DEPTH_ENCODINGS = frozenset({"16UC1", "32FC1"})
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(e for e in _ENCODINGS if e not in DEPTH_ENCODINGS)
_MONO16_ENCODINGS = frozenset(name for name, spec in _ENCODINGS.items() if spec.to_bgr is _mono16_to_bgr)

SUPPORTED_COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")
# Source encodings whose channels compressed_image_transport reorders (sensor_msgs isColor()).
_COLOR_ENCODINGS = frozenset(
    {"rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"}
)
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _wrap_unexpected(func: _F) -> _F:
    """Let ImageDecodeError through and turn anything else into one, so callers catch one type."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImageDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the documented contract is a single error type
            raise ImageDecodeError("msg", f"cannot decode ({type(exc).__name__}: {exc})") from exc

    return wrapper  # type: ignore[return-value]


def _field(msg: object, name: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise ImageDecodeError(
            name, f"missing; {type(msg).__name__} is not a sensor_msgs/Image-like message"
        ) from None


def _int_field(msg: object, name: str) -> int:
    value = _field(msg, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ImageDecodeError(name, f"must be an integer, got {type(value).__name__} {value!r:.40}")
    return int(value)


def _str_field(msg: object, name: str) -> str:
    value = _field(msg, name)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if not isinstance(value, str):
        raise ImageDecodeError(name, f"must be a string, got {type(value).__name__}")
    return value


def _check_max_pixels(max_pixels: int) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels <= 0:
        raise ImageDecodeError("max_pixels", f"must be a positive integer, got {max_pixels!r}")


def _check_pixels(height: int, width: int, max_pixels: int, field: str, what: str) -> None:
    if height * width > max_pixels:
        raise ImageDecodeError(
            field,
            f"{what} {width}x{height} = {height * width} pixels exceeds max_pixels={max_pixels}; "
            "the message is corrupt or hostile, or raise max_pixels for a camera that large",
        )


def _as_bytes(data: Any, needed: int = 0) -> np.ndarray:
    """View ``data`` as a 1-D uint8 array without copying (lists are the one exception)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageDecodeError("data", f"numpy array of dtype {data.dtype}; expected uint8")
        if not data.flags.c_contiguous:
            raise ImageDecodeError("data", "numpy array is not contiguous")
        return data.reshape(-1)
    if isinstance(data, (list, tuple)):
        # Check the length first so a short list never costs a conversion.
        if len(data) < needed:
            raise ImageDecodeError("data", f"has {len(data)} items; {needed} bytes are needed")
        try:
            return np.asarray(data, dtype=np.uint8)
        except (OverflowError, ValueError, TypeError) as exc:
            raise ImageDecodeError("data", f"list must hold integers 0..255 ({exc})") from exc
    if isinstance(data, str) or data is None:
        raise ImageDecodeError("data", f"must be bytes-like, got {type(data).__name__}")
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError) as exc:
        raise ImageDecodeError(
            "data", f"{type(data).__name__} is not a contiguous byte buffer ({exc})"
        ) from exc


def _depth_error(encoding: str, field: str = "encoding") -> ImageDecodeError:
    return ImageDecodeError(
        field, f"{encoding!r} is a depth image (REP 118: distances, not a picture of the scene); "
               "no detection runs on depth: replay or subscribe the camera's colour or mono topic "
               "instead (a 16-bit grey camera publishes mono16)")


def _lookup_encoding(encoding: str, depth_ok: bool = False) -> EncodingSpec:
    if encoding in DEPTH_ENCODINGS and not depth_ok:
        raise _depth_error(encoding)
    try:
        return _ENCODINGS[encoding]
    except KeyError:
        # REP 104 names are case-sensitive and have no spaces (cv_bridge refuses "BGR8" too): say
        # which one a driver that wrote it that way meant, rather than guess.
        meant = next((name for name in SUPPORTED_ENCODINGS
                      if name.lower() == encoding.strip().lower()), None)
        hint = f" (names are case-sensitive, without spaces: {meant!r}?)" if meant else ""
        raise ImageDecodeError(
            "encoding",
            f"{encoding!r} is not supported{hint}; supported: {', '.join(SUPPORTED_ENCODINGS)}",
        ) from None


def _raw_view(msg: object, max_pixels: int, depth_ok: bool = False) -> tuple[EncodingSpec, np.ndarray]:
    """Validate an Image-like message and return its encoding and a zero-copy view of its pixels
    (a depth encoding only with ``depth_ok``)."""
    _check_max_pixels(max_pixels)
    height = _int_field(msg, "height")
    width = _int_field(msg, "width")
    for name, value in (("height", height), ("width", width)):
        if value <= 0:
            raise ImageDecodeError(name, f"must be > 0, got {value}")
    spec = _lookup_encoding(_str_field(msg, "encoding"), depth_ok)
    # Before touching step or data: a hostile header must not cost an allocation.
    _check_pixels(height, width, max_pixels, "height*width", "image")
    if spec.even_width and width % 2:
        raise ImageDecodeError("width", f"YUV 4:2:2 packs pixel pairs; width {width} must be even")
    row_bytes = width * spec.bytes_per_pixel
    step = _int_field(msg, "step")
    if step < row_bytes:
        raise ImageDecodeError(
            "step",
            f"{step} is less than width*bytes_per_pixel = {width}*{spec.bytes_per_pixel} = {row_bytes}",
        )
    dtype = spec.dtype
    if dtype.itemsize > 1:
        flag = _field(msg, "is_bigendian")
        # uint8 in the .msg, but a hand-made message may well say True/False.
        big = int(flag) if isinstance(flag, (bool, np.bool_)) else _int_field(msg, "is_bigendian")
        if big not in (0, 1):
            raise ImageDecodeError("is_bigendian", f"must be 0 or 1, got {big}")
        dtype = dtype.newbyteorder(">" if big else "<")
    needed = step * height
    buf = _as_bytes(_field(msg, "data"), needed)
    if buf.size < needed:
        raise ImageDecodeError(
            "data", f"has {buf.size} bytes; step*height = {step}*{height} = {needed} are needed"
        )
    if spec.channels == 1:
        shape: tuple[int, ...] = (height, width)
        strides: tuple[int, ...] = (step, dtype.itemsize)
    else:
        shape = (height, width, spec.channels)
        strides = (step, spec.bytes_per_pixel, dtype.itemsize)
    # A strided view handles row padding without copying; numpy copes with unaligned 16-bit rows.
    return spec, np.ndarray(shape, dtype, buffer=buf, strides=strides)


@_wrap_unexpected
def decode_image(msg: object, max_pixels: int = DEFAULT_MAX_PIXELS,
                 mono16_bits: int = FULL_DEPTH_BITS) -> np.ndarray:
    """Decode a sensor_msgs/Image-like message to BGR.

    Args:
        msg: object with ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``.
        max_pixels: largest ``height*width`` accepted, checked before any allocation.
        mono16_bits: low bits of a ``mono16`` pixel that carry the picture (:func:`scale_16bit`).

    Returns:
        New C-contiguous ``(height, width, 3)`` uint8 BGR array.

    Raises:
        ImageDecodeError: a field is missing, out of range or inconsistent; ``field`` names it.
    """
    spec, view = _raw_view(msg, max_pixels)
    if spec.to_bgr is _mono16_to_bgr:
        return _mono16_bits_to_bgr(view, mono16_bits)
    return spec.to_bgr(view)


@_wrap_unexpected
def decode_mono16(msg: object, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``mono16``/``16UC1`` Image at full depth (e.g. ``16UC1`` depth maps in mm).

    Returns:
        New C-contiguous ``(height, width)`` uint16 array in native byte order.

    Raises:
        ImageDecodeError: as :func:`decode_image`, or the encoding is not a 16-bit mono one.
    """
    encoding = _str_field(msg, "encoding")
    if encoding not in _MONO16_ENCODINGS:
        raise ImageDecodeError(
            "encoding", f"{encoding!r}: decode_mono16 needs one of {', '.join(sorted(_MONO16_ENCODINGS))}"
        )
    _, view = _raw_view(msg, max_pixels, depth_ok=True)
    return view.astype(np.uint16, order="C")


class _Format(NamedTuple):
    codec: str  # "jpeg", "png" or "" (unknown: sniff the data)
    rgb_order: bool  # imdecode's output holds R, G, B and must be swapped


def _parse_format(fmt: str) -> _Format:
    source, sep, rest = fmt.strip().partition(";")
    descr = (rest if sep else source).strip().lower()
    supported = ", ".join(SUPPORTED_COMPRESSED_FORMATS)
    if "compresseddepth" in descr:
        # compressed_depth_image_transport prepends its own header to the PNG; not handled here.
        raise ImageDecodeError("format", f"{fmt!r}: compressedDepth is not supported; supported: {supported}")
    if sep and source.strip() in DEPTH_ENCODINGS:
        # compressed_image_transport's png on a depth camera: "16UC1; png compressed " holds
        # distances as a 16-bit PNG, which decodes to a grey picture of nothing
        raise _depth_error(fmt, "format")
    if "jpeg" in descr or "jpg" in descr:
        codec = "jpeg"
    elif "png" in descr:
        codec = "png"
    elif descr == "":
        codec = ""
    else:
        raise ImageDecodeError("format", f"{fmt!r} is not supported; supported: {supported}")
    rgb_order = bool(sep) and source.strip() in _COLOR_ENCODINGS and "compressed bgr" not in descr
    return _Format(codec, rgb_order)


def _jpeg_size(mv: memoryview) -> tuple[int, int, int]:
    """Return (width, height, offset of the first SOS) from the JPEG marker segments."""
    pos, n, size = 2, len(mv), None
    while pos + 4 <= n:
        if mv[pos] != 0xFF:
            raise ImageDecodeError("data", f"corrupt JPEG: no marker at byte {pos}")
        marker = mv[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # stand-alone markers carry no length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", mv, pos + 2)
        if marker in _SOF_MARKERS and pos + 9 <= n:
            height, width = struct.unpack_from(">HH", mv, pos + 5)
            size = (width, height)
        if marker == 0xDA:
            if size is None:
                raise ImageDecodeError("data", "corrupt JPEG: scan data before any frame header")
            return size[0], size[1], pos
        if length < 2:
            raise ImageDecodeError("data", f"corrupt JPEG: segment length {length} at byte {pos}")
        pos += 2 + length
    raise ImageDecodeError("data", "truncated JPEG: the stream ends before its first scan")


def _png_size(mv: memoryview) -> tuple[int, int]:
    if len(mv) < 33 or bytes(mv[12:16]) != b"IHDR":
        raise ImageDecodeError("data", "truncated or corrupt PNG: no IHDR chunk")
    width, height = struct.unpack_from(">II", mv, 16)
    return width, height


def png_is_16bit(data: bytes | memoryview) -> bool:
    """Whether a stream is a PNG whose IHDR says 16 bits per sample (read from the header only)."""
    return bytes(data[:8]) == _PNG_MAGIC and len(data) >= 33 and bytes(data[12:16]) == b"IHDR" \
        and data[24] == 16


def imdecode_bits(buf: np.ndarray, flags: int, mono16_bits: int) -> np.ndarray | None:
    """``cv2.imdecode(buf, flags)``, but a 16-bit PNG is scaled with ``mono16_bits``
    (:func:`scale_16bit`) when fewer than 16 bits carry the picture; None where OpenCV cannot
    decode. With 16 bits it is OpenCV's own 16 -> 8 bit strip, as without the setting."""
    if mono16_bits == FULL_DEPTH_BITS or not png_is_16bit(buf.data):
        return cv2.imdecode(buf, flags)
    deep = cv2.imdecode(buf, flags | cv2.IMREAD_ANYDEPTH)
    return None if deep is None else scale_16bit(deep, mono16_bits)


def _check_header(buf: np.ndarray, codec: str, max_pixels: int) -> tuple[int, int, str]:
    """Read (width, height, "JPEG" or "PNG") from the stream's header and check the stream is
    complete, before decoding."""
    mv = buf.data  # the buffer without a copy (a contiguous 1-D uint8 array)
    head = bytes(mv[:8])
    if head.startswith(_JPEG_MAGIC):
        width, height, sos = _jpeg_size(mv)
        # Entropy-coded data stuffs every 0xFF, so the only FF D9 after the first scan is EOI.
        complete = buf[sos:].tobytes().rfind(b"\xff\xd9") >= 0
        kind = "JPEG"
    elif head == _PNG_MAGIC:
        width, height = _png_size(mv)
        complete = buf[-256:].tobytes().rfind(b"IEND") >= 0
        kind = "PNG"
    else:
        raise ImageDecodeError(
            "data",
            f"not a JPEG or PNG stream (starts with {head.hex(' ')}); format said {codec or 'nothing'}",
        )
    if width <= 0 or height <= 0:
        raise ImageDecodeError("data", f"{kind} header gives an empty size {width}x{height}")
    _check_pixels(height, width, max_pixels, "data", f"{kind} header claims")
    if not complete:
        raise ImageDecodeError("data", f"truncated {kind}: no end marker ({len(mv)} bytes)")
    return width, height, kind


# libjpeg decodes at 1/2, 1/4 or 1/8 scale in the DCT domain: far less work than a full decode.
_JPEG_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                       4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}

SizeFloor = Callable[[int, int], tuple[int, int]]


def jpeg_reduction(width: int, height: int, floor: tuple[int, int]) -> int:
    """Largest libjpeg scale denominator (8, 4, 2 or 1) whose output, ``ceil(width / r)`` x
    ``ceil(height / r)``, is still at least ``floor`` = (width, height) in both directions."""
    for r in (8, 4, 2):
        if -(-width // r) >= floor[0] and -(-height // r) >= floor[1]:
            return r
    return 1


def _decode_compressed(msg: object, max_pixels: int, size_floor: SizeFloor | None,
                       mono16_bits: int = FULL_DEPTH_BITS) -> tuple[np.ndarray, int, int]:
    """(BGR pixels, full width, full height); the pixels are a reduced-scale JPEG decode when
    ``size_floor`` (full width, height -> smallest acceptable width, height) allows one."""
    _check_max_pixels(max_pixels)
    fmt = _parse_format(_str_field(msg, "format"))
    buf = _as_bytes(_field(msg, "data"))
    if buf.size == 0:
        raise ImageDecodeError("data", "is empty")
    width, height, kind = _check_header(buf, fmt.codec, max_pixels)
    r = 1
    if size_floor is not None and kind == "JPEG":
        r = jpeg_reduction(width, height, size_floor(width, height))
    image = imdecode_bits(buf, _JPEG_REDUCED_FLAGS[r] | cv2.IMREAD_IGNORE_ORIENTATION, mono16_bits)
    if image is None:
        raise ImageDecodeError("data", f"corrupt image: OpenCV cannot decode these {buf.size} bytes")
    expected = (-(-height // r), -(-width // r))
    if image.shape[:2] != expected:
        scale = f" at 1/{r} scale" if r > 1 else ""
        raise ImageDecodeError(
            "data", f"decoded size {image.shape[1]}x{image.shape[0]}{scale} differs from header "
                    f"{width}x{height}")
    if fmt.rgb_order:
        cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=image)
    return image, width, height


@_wrap_unexpected
def decode_compressed(msg: object, max_pixels: int = DEFAULT_MAX_PIXELS,
                      mono16_bits: int = FULL_DEPTH_BITS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage-like message (JPEG or PNG) to BGR.

    The image dimensions are read from the stream header and checked against ``max_pixels``
    before the decoder allocates anything. EXIF orientation is ignored: the pixels stay as the
    camera wrote them.

    Args:
        msg: object with ``format`` (``"jpeg"``, ``"png"``, ``"rgb8; jpeg compressed bgr8"``, ...)
            and ``data``.
        max_pixels: largest width*height accepted.
        mono16_bits: low bits of a 16-bit PNG's samples that carry the picture
            (:func:`scale_16bit`); 16: OpenCV's strip to the high byte.

    Returns:
        New C-contiguous ``(H, W, 3)`` uint8 BGR array (16-bit PNGs are scaled to 8 bit).

    Raises:
        ImageDecodeError: unsupported ``format``; empty, truncated, corrupt or oversized ``data``.
    """
    return _decode_compressed(msg, max_pixels, None, mono16_bits)[0]


@_wrap_unexpected
def decode_any(msg: object, max_pixels: int = DEFAULT_MAX_PIXELS,
               mono16_bits: int = FULL_DEPTH_BITS) -> np.ndarray:
    """Decode an Image or CompressedImage-like message, chosen by its ``format``/``encoding`` field
    (``mono16_bits``: as :func:`decode_image` and :func:`decode_compressed` take it).

    Raises:
        ImageDecodeError: for any bad input; no other exception type escapes.
    """
    if hasattr(msg, "format"):
        return decode_compressed(msg, max_pixels, mono16_bits)
    if hasattr(msg, "encoding"):
        return decode_image(msg, max_pixels, mono16_bits)
    raise ImageDecodeError(
        "msg", f"{type(msg).__name__} has neither 'format' (CompressedImage) nor 'encoding' (Image)"
    )


class ImageView(NamedTuple):
    """Pixels in a stated channel order, possibly a zero-copy view of a message buffer.

    Attributes:
        array: ``(H, W, len(order))`` uint8 array; rows may be padded (``strides[0]`` > row bytes)
            and it may alias, read-only, the buffer of the message it came from.
        order: channel order, one of :data:`VIEW_ORDERS` (``"bgr"``, ``"rgb"``, ``"bgra"``,
            ``"rgba"``).
        full_size: (width, height) of the message's image when ``array`` is a reduced-scale
            decode of it (see :func:`decode_view`'s ``size_floor``); None when it is full size.
    """

    array: np.ndarray
    order: str
    full_size: tuple[int, int] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """``array.shape``: code that only looks at the size takes a view like an array."""
        return self.array.shape

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) of the image the message carries: detections are reported in it."""
        if self.full_size is not None:
            return self.full_size
        return self.array.shape[1], self.array.shape[0]

    def to_bgr(self) -> np.ndarray:
        """New C-contiguous ``(H, W, 3)`` BGR copy of ``array`` (for annotation or debug images)."""
        return _VIEW_TO_BGR[self.order](self.array)

    def full_bgr(self) -> np.ndarray:
        """BGR copy at :attr:`source_size` (a reduced decode is scaled back up), so that
        detections, which are in source pixels, can be drawn on it as they are."""
        bgr = self.to_bgr()
        if self.full_size is None or self.full_size == (bgr.shape[1], bgr.shape[0]):
            return bgr
        return cv2.resize(bgr, self.full_size, interpolation=cv2.INTER_LINEAR)


def source_size(image: np.ndarray | ImageView) -> tuple[int, int]:
    """(width, height) of the image a frame stands for: an ImageView's :attr:`~ImageView.source_size`
    (the full image of a reduced-scale decode), else the array's (or tensor's) own size."""
    if isinstance(image, ImageView):
        return image.source_size
    return int(image.shape[1]), int(image.shape[0])


_VIEW_TO_BGR: dict[str, Converter] = {
    "bgr": _copy,
    "rgb": _cvt(cv2.COLOR_RGB2BGR),
    "bgra": _cvt(cv2.COLOR_BGRA2BGR),
    "rgba": _cvt(cv2.COLOR_RGBA2BGR),
}
VIEW_ORDERS: tuple[str, ...] = tuple(_VIEW_TO_BGR)
# Encodings whose pixels a detector can resize as they lie in the message. mono8 is left out on
# purpose: OpenCV's 1-channel cubic resize rounds differently from its 3-channel one (by more than
# the 4-channel kernel's occasional grey level), so the gray plane would move the detections.
_VIEW_ENCODINGS = {"bgr8": "bgr", "8UC3": "bgr", "rgb8": "rgb", "bgra8": "bgra", "rgba8": "rgba"}


@_wrap_unexpected
def decode_view(msg: object, max_pixels: int = DEFAULT_MAX_PIXELS,
                size_floor: SizeFloor | None = None,
                mono16_bits: int = FULL_DEPTH_BITS) -> ImageView:
    """Decode without copying where the encoding allows: the cheap path into a detector.

    ``bgr8``, ``rgb8``, ``bgra8`` and ``rgba8`` Images give a view of the message buffer in the
    message's own channel order (no conversion, no copy), so the detector resizes straight from
    it and swaps channels on its small network input only. Every other message goes through
    :func:`decode_any` and comes back as a new BGR array.

    The view is only valid while the message's buffer is alive and unchanged; call
    :meth:`ImageView.to_bgr` for a copy that outlives it.

    Args:
        msg: a sensor_msgs/Image or CompressedImage-like message.
        max_pixels: largest ``height*width`` accepted, checked before any allocation.
        size_floor: for JPEG CompressedImages: given the full (width, height), the smallest
            (width, height) the consumer needs (a detector: its resized network input). The JPEG
            is then decoded at the smallest libjpeg scale (1/2, 1/4, 1/8) that still meets it,
            and the view's ``full_size`` says the full size. None: always full resolution.
        mono16_bits: as :func:`decode_any` takes it.

    Raises:
        ImageDecodeError: as :func:`decode_any`.
    """
    if hasattr(msg, "format"):
        image, width, height = _decode_compressed(msg, max_pixels, size_floor, mono16_bits)
        reduced = (width, height) != (image.shape[1], image.shape[0])
        return ImageView(image, "bgr", (width, height) if reduced else None)
    if hasattr(msg, "encoding"):
        order = _VIEW_ENCODINGS.get(_str_field(msg, "encoding"))
        if order is not None:
            _, view = _raw_view(msg, max_pixels)
            return ImageView(view, order)
    return ImageView(decode_any(msg, max_pixels, mono16_bits), "bgr")


def _gray16(bgr: np.ndarray) -> np.ndarray:
    # x * 257 spreads 0..255 over 0..65535 so that decoding's >> 8 gives x back exactly.
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * np.uint16(257)


_ENCODERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bgr8": lambda bgr: bgr,
    "rgb8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
    "bgra8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
    "rgba8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA),
    "mono8": lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
    "mono16": _gray16,
}
ENCODABLE_ENCODINGS: tuple[str, ...] = tuple(_ENCODERS)


def encode_image(
    bgr: np.ndarray, encoding: str, *, row_padding: int = 0, bigendian: bool = False
) -> tuple[int, bytes]:
    """Make the ``step`` and ``data`` of a sensor_msgs/Image from a BGR image.

    Args:
        bgr: ``(H, W, 3)`` uint8 BGR image.
        encoding: one of :data:`ENCODABLE_ENCODINGS`.
        row_padding: zero bytes appended to every row (exercises decoders' ``step`` handling).
        bigendian: byte order of 16-bit encodings; set ``is_bigendian`` to match.

    Returns:
        ``(step, data)``; ``height``/``width`` are ``bgr.shape[:2]``.

    Raises:
        ImageDecodeError: ``encoding`` not encodable or ``bgr`` not an (H, W, 3) uint8 array.
    """
    if encoding not in _ENCODERS:
        raise ImageDecodeError(
            "encoding", f"{encoding!r} cannot be encoded; encodable: {', '.join(ENCODABLE_ENCODINGS)}"
        )
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ImageDecodeError("image", "must be an (H, W, 3) uint8 BGR numpy array")
    if row_padding < 0:
        raise ImageDecodeError("step", f"row_padding must be >= 0, got {row_padding}")
    pixels = _ENCODERS[encoding](bgr)
    if pixels.dtype.itemsize > 1:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"), copy=False)
    height = pixels.shape[0]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    return rows.shape[1], rows.tobytes()


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEPTH_ENCODINGS",
    "ENCODABLE_ENCODINGS",
    "FULL_DEPTH_BITS",
    "MONO16_BITS_RANGE",
    "SUPPORTED_COMPRESSED_FORMATS",
    "SUPPORTED_ENCODINGS",
    "EncodingSpec",
    "ImageView",
    "SizeFloor",
    "VIEW_ORDERS",
    "decode_any",
    "decode_compressed",
    "decode_image",
    "decode_mono16",
    "decode_view",
    "imdecode_bits",
    "png_is_16bit",
    "scale_16bit",
    "encode_image",
    "jpeg_reduction",
    "source_size",
]
