"""Decode an incoming image message without ever raising: size limits first, then the decoder.

A node's callback or a replay loop calls :func:`safe_decode` and gets ``(image, None)`` or
``(None, error)``; the caller counts the error in its pipeline's
:class:`~.frame_errors.FrameErrorLedger` (``HealthStats.decode_error``, or ``ledger`` here). The
``input.*`` parameters (:class:`InputLimits`) bound what a message may cost before any pixel buffer
is allocated, so a corrupt or hostile header (``100000 x 100000``) is a counted error, not an
out-of-memory kill.
"""
from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ...config import check_settings, setting
from ...errors import ImageDecodeError
from .frame_errors import FrameErrorLedger
from .image_decode import (FULL_DEPTH_BITS, MONO16_BITS_RANGE, ImageView, SizeFloor, decode_any,
                           decode_view)


@dataclass(frozen=True)
class InputLimits:
    """The ``input.*`` parameters: the largest image message a node or replay accepts, and how
    its 16-bit grey pixels are read.

    The defaults fit automotive cameras (8 MP front cameras, 4K cabin cameras, 12 MP
    surround stitches) with room to spare, while capping one decoded frame at 120 MB.

    Attributes:
        max_width: widest image, in pixels.
        max_height: tallest image, in pixels.
        max_pixels: largest ``width * height``; a decoded BGR frame costs 3 bytes per pixel.
        max_compressed_bytes: largest CompressedImage ``data``; checked before the codec runs.
        mono16_bits: low bits of a 16-bit grey pixel (``mono16`` Image, 16-bit PNG) that carry
            the picture: 16 takes the high byte; a 10- or 12-bit sensor publishing 0-1023 or
            0-4095 needs 10 or 12, or its frames read as black.
    """

    max_width: int = setting(8192, range=(1, None))
    max_height: int = setting(8192, range=(1, None))
    max_pixels: int = setting(40_000_000, range=(1, None))
    max_compressed_bytes: int = setting(32 * 1024 * 1024, range=(1, None))
    mono16_bits: int = setting(FULL_DEPTH_BITS, range=MONO16_BITS_RANGE)

    def __post_init__(self) -> None:
        for name in ("max_width", "max_height", "max_pixels", "max_compressed_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"input.{name} must be a positive integer, got {value!r}")
        low, high = MONO16_BITS_RANGE
        bits = self.mono16_bits
        if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
            raise ValueError(f"input.mono16_bits must be an integer in {low}..{high} (the bits of "
                             f"a 16-bit grey pixel that carry the picture; 12 for a 12-bit "
                             f"sensor), got {bits!r}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "config") -> InputLimits:
        """Read the ``input.*`` keys of flattened node parameters (unknown keys are errors)."""
        from ...config import section_from_params

        return section_from_params(cls, params, "input.", source)


_DEFAULT_LIMITS = InputLimits()


class Decoded(NamedTuple):
    """A frame :func:`safe_decode` decoded."""

    image: np.ndarray | ImageView  # an ImageView only when asked for with zero_copy
    error: None = None


class DecodeFailed(NamedTuple):
    """A frame :func:`safe_decode` could not decode."""

    image: None
    error: ImageDecodeError


# What safe_decode gives: exactly one of ``image`` and ``error`` is not None. Checking
# ``result.error is not None`` tells a type checker which one (an unpacked pair loses that).
DecodeResult = Decoded | DecodeFailed


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None  # the decoder names the field and its wrong type
    return int(value)


def _byte_length(data: Any) -> int | None:
    """Size in bytes of a message's ``data`` without copying it; None when it is not bytes-like."""
    if isinstance(data, (np.ndarray, memoryview)):
        return int(data.nbytes)
    if isinstance(data, array.array):
        return len(data) * data.itemsize
    if isinstance(data, (bytes, bytearray, list, tuple)):
        return len(data)
    return None


def _too_large(field: str, what: str, name: str, limit: int) -> ImageDecodeError:
    return ImageDecodeError(
        field,
        f"{what} exceeds input.{name}={limit}; the message is corrupt or hostile, or raise input.{name} "
        "for a camera that large",
    )


def _check_size(width: int, height: int, limits: InputLimits, compressed: bool) -> None:
    # A CompressedImage has no width/height fields: its dimensions come from the stream in "data".
    for value, name, field in ((width, "max_width", "width"), (height, "max_height", "height")):
        limit = getattr(limits, name)
        if value > limit:
            if compressed:
                raise _too_large("data", f"decoded image {field} {value} px", name, limit)
            raise _too_large(field, f"{value} px", name, limit)


def _decode_within(msg: object, limits: InputLimits, zero_copy: bool = False,
                   size_floor: SizeFloor | None = None) -> np.ndarray | ImageView:
    if hasattr(msg, "format"):
        size = _byte_length(getattr(msg, "data", None))
        if size is not None and size > limits.max_compressed_bytes:
            raise _too_large("data", f"{size} bytes", "max_compressed_bytes", limits.max_compressed_bytes)
        if zero_copy:
            view = decode_view(msg, limits.max_pixels, size_floor, limits.mono16_bits)
            # The codec has already allocated at most max_pixels; reject a shape outside the limits
            # anyway so that what passes does not depend on the transport.
            _check_size(*view.source_size, limits, compressed=True)
            return view
        image = decode_any(msg, limits.max_pixels, limits.mono16_bits)
        _check_size(image.shape[1], image.shape[0], limits, compressed=True)
        return image
    width = _int_or_none(getattr(msg, "width", None))
    height = _int_or_none(getattr(msg, "height", None))
    if width is not None and height is not None:
        _check_size(width, height, limits, compressed=False)
    if zero_copy:
        return decode_view(msg, limits.max_pixels, mono16_bits=limits.mono16_bits)
    return decode_any(msg, limits.max_pixels, limits.mono16_bits)


# Smaller frames decode, but are no camera frames: the pedestrian specialist's band tiles and the
# face detector need more pixels, and no real camera sends less (a broken driver or a cut recording
# does). The nodes and the replay file them as invalid frames, not as inference failures.
MIN_FRAME_PX = 32


def _check_frame_size(image: np.ndarray | ImageView, min_px: int) -> None:
    width, height = image.source_size if isinstance(image, ImageView) else image.shape[1::-1]
    if min(width, height) < min_px:
        raise ImageDecodeError("size", f"invalid frame: {width}x{height} px is too small to "
                                       f"process (at least {min_px}x{min_px}); check the camera "
                                       "driver or the recording")


def safe_decode(msg: object, limits: InputLimits | None = None, ledger: FrameErrorLedger | None = None,
                source: str = "", zero_copy: bool = False,
                size_floor: SizeFloor | None = None, min_px: int = 0) -> DecodeResult:
    """Decode a sensor_msgs/Image or CompressedImage-like message within ``limits``; never raises.

    Args:
        msg: any object with the fields of either message (rclpy, rosbags, a dataclass).
        limits: size limits; None means the :class:`InputLimits` defaults.
        ledger: where a failure is counted, under ``decode.<field>``; None counts nowhere.
        source: the topic or file the message came from, kept with the error in the ledger.
        zero_copy: for a raw Image, return an
            :class:`~sense_perception.core.imaging.image_decode.ImageView` from
            :func:`~sense_perception.core.imaging.image_decode.decode_view` (the detector's cheap path; it
            aliases the message buffer) instead of a BGR copy; a CompressedImage comes back as
            an ImageView too.
        size_floor: with ``zero_copy``, lets a JPEG decode at reduced scale down to this size
            (see :func:`~sense_perception.core.imaging.image_decode.decode_view`);
            :meth:`~sense_perception.core.detection.detector.ObjectDetector.decode_floor` gives it.
        min_px: a decoded frame narrower or lower than this is an error of field ``size``
            (:data:`MIN_FRAME_PX` for frames that go to perception).

    Returns:
        ``(image, None)`` with a new C-contiguous ``(H, W, 3)`` uint8 BGR array (an ImageView with
        ``zero_copy``), or ``(None, error)`` with an :class:`~sense_perception.errors.ImageDecodeError` whose ``field`` names the fault.
    """
    try:
        image = _decode_within(msg, limits or _DEFAULT_LIMITS, zero_copy, size_floor)
        _check_frame_size(image, min_px)
    except ImageDecodeError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - the promise is that nothing escapes a transport callback
        error = ImageDecodeError("msg", f"unexpected {type(exc).__name__} while decoding: {exc}")
    else:
        return Decoded(image)
    if ledger is not None:
        ledger.record_decode_error(error, source)
    return DecodeFailed(None, error)


__all__ = ["MIN_FRAME_PX", "DecodeFailed", "Decoded", "DecodeResult", "InputLimits", "safe_decode"]
