"""Tests of the ROS-free sensor_msgs/Image and CompressedImage decoders.

Raw payloads are built by hand from known BGR patterns (numpy indexing only, no OpenCV), so the
decoders are checked against the ROS encoding definitions, not against their own inverse.
"""
from __future__ import annotations

import array
import struct
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import RawImage as Image
from sense_perception.core.imaging.image_decode import (ENCODABLE_ENCODINGS, SUPPORTED_ENCODINGS,
                                                        decode_any, decode_compressed,
                                                        decode_image, decode_mono16, encode_image)
from sense_perception.errors import ImageDecodeError

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
JPEG_PATH = STREET / "pandaset_seq002_front_camera_00.jpg"
PNG_PATH = STREET / "comma2k19_highway280_rav4_preview.png"

H, W = 6, 8  # even width (YUV 4:2:2), quadrant borders on even columns and rows
PAD_BYTE = 0xEE  # padding filler: leaks into the output if step is ignored


@dataclass
class CompressedImage:
    """A plain dataclass with the fields of sensor_msgs/CompressedImage."""

    format: str
    data: Any


def quadrants(values: list, h: int = H, w: int = W) -> np.ndarray:
    """(h, w, ...) array whose four quadrants hold values[0..3] (TL, TR, BL, BR)."""
    first = np.asarray(values[0])
    out = np.empty((h, w) + first.shape, first.dtype)
    hh, hw = h // 2, w // 2
    out[:hh, :hw], out[:hh, hw:], out[hh:, :hw], out[hh:, hw:] = (np.asarray(v) for v in values)
    return out


BGR_QUADS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (30, 60, 90)]
BGR = quadrants([np.array(c, np.uint8) for c in BGR_QUADS])
GRAY_QUADS = [10, 100, 200, 250]
GRAY = quadrants([np.uint8(g) for g in GRAY_QUADS])


def rows_to_msg(rows: np.ndarray, encoding: str, padding: int = 0, is_bigendian: int = 0) -> Image:
    """Pack (H, row_bytes) uint8 rows, each followed by ``padding`` filler bytes, into an Image."""
    rows = rows.reshape(rows.shape[0], -1).astype(np.uint8)
    pad = np.full((rows.shape[0], padding), PAD_BYTE, np.uint8)
    payload = np.concatenate([rows, pad], axis=1)
    return Image(rows.shape[0], W, encoding, is_bigendian, payload.shape[1], payload.tobytes())


def bgr_expected() -> np.ndarray:
    return BGR


def gray_expected() -> np.ndarray:
    return np.repeat(GRAY[..., None], 3, axis=2)


ALPHA = np.full((H, W, 1), 77, np.uint8)

# encoding -> (raw rows built by hand, expected BGR output)
EXACT_CASES = {
    "bgr8": (lambda: BGR, bgr_expected),
    "8UC3": (lambda: BGR, bgr_expected),
    "rgb8": (lambda: BGR[..., ::-1], bgr_expected),
    "bgra8": (lambda: np.concatenate([BGR, ALPHA], axis=2), bgr_expected),
    "rgba8": (lambda: np.concatenate([BGR[..., ::-1], ALPHA], axis=2), bgr_expected),
    "mono8": (lambda: GRAY, gray_expected),
    "8UC1": (lambda: GRAY, gray_expected),
    # 16-bit little-endian: low byte first; the low byte (0xAB) must be dropped by >> 8.
    "mono16": (lambda: np.stack([np.full((H, W), 0xAB, np.uint8), GRAY], axis=2), gray_expected),
}


@pytest.mark.parametrize("padding", [0, 1, 5, 64])
@pytest.mark.parametrize("encoding", sorted(EXACT_CASES))
def test_exact_encodings_with_row_padding(encoding: str, padding: int) -> None:
    make_rows, expected = EXACT_CASES[encoding]
    out = decode_image(rows_to_msg(make_rows(), encoding, padding))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, expected())


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_big_endian_16_bit(encoding: str, padding: int) -> None:
    # Big-endian: high byte first. With the bytes of the little-endian case this would give 0xAB.
    rows = np.stack([GRAY, np.full((H, W), 0xAB, np.uint8)], axis=2)
    msg = rows_to_msg(rows, encoding, padding, is_bigendian=1)
    if encoding == "mono16":
        np.testing.assert_array_equal(decode_image(msg), gray_expected())
    else:  # a depth image: no picture to decode (R31), read at full depth only
        with pytest.raises(ImageDecodeError, match="depth image"):
            decode_image(msg)
    full = decode_mono16(msg)
    assert full.dtype == np.uint16 and full.flags.c_contiguous
    np.testing.assert_array_equal(full, GRAY.astype(np.uint16) * 256 + 0xAB)


def test_decode_mono16_little_endian_keeps_depth() -> None:
    depth_mm = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 997  # up to ~47 m
    rows = depth_mm.astype("<u2").view(np.uint8).reshape(H, -1)
    msg = rows_to_msg(rows, "16UC1", padding=7)
    np.testing.assert_array_equal(decode_mono16(msg), depth_mm)
    # no picture of the scene: a detector must not run on it (SECURITY.md R31)
    with pytest.raises(ImageDecodeError, match="'16UC1' is a depth image") as excinfo:
        decode_image(msg)
    assert field_of(excinfo) == "encoding"


# --- YUV 4:2:2 ---------------------------------------------------------------------------------

# (Y, U, V) per quadrant: black, white, BT.601 red, BT.601 green.
YUV_QUADS = [(16, 128, 128), (235, 128, 128), (81, 90, 240), (145, 54, 34)]


def bt601_bgr(y: float, u: float, v: float) -> np.ndarray:
    """ITU-R BT.601 video-range YCbCr -> BGR (the conversion ROS drivers and OpenCV use)."""
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    return np.clip(np.round([c + 2.018 * d, c - 0.391 * d - 0.813 * e, c + 1.596 * e]), 0, 255)


def yuv422_rows(order: str, yuv: np.ndarray) -> np.ndarray:
    """Pack an (H, W, 3) YUV image into 4:2:2 rows; ``order`` is "UYVY" or "YUYV".

    U and V of a pixel pair are taken from its left pixel (the patterns are uniform per pair).
    """
    y = yuv[..., 0]
    u = yuv[:, 0::2, 1]
    v = yuv[:, 0::2, 2]
    planes = {"Y0": y[:, 0::2], "Y1": y[:, 1::2], "U": u, "V": v}
    names = ["U", "Y0", "V", "Y1"] if order == "UYVY" else ["Y0", "U", "Y1", "V"]
    return np.stack([planes[n] for n in names], axis=2).reshape(yuv.shape[0], -1)


YUV_ORDERS = {"yuv422": "UYVY", "uyvy": "UYVY", "yuv422_yuy2": "YUYV", "yuyv": "YUYV"}


@pytest.mark.parametrize("padding", [0, 2, 5])
@pytest.mark.parametrize("encoding", sorted(YUV_ORDERS))
def test_yuv422_known_colours(encoding: str, padding: int) -> None:
    yuv = quadrants([np.array(q, np.uint8) for q in YUV_QUADS])
    msg = rows_to_msg(yuv422_rows(YUV_ORDERS[encoding], yuv), encoding, padding)
    out = decode_image(msg)
    expected = quadrants([bt601_bgr(*q).astype(np.uint8) for q in YUV_QUADS])
    assert out.shape == (H, W, 3)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 2
    # The test colours are saturated: blue-ish stays blue-less etc.; guard against a U/V swap.
    assert tuple(out[H - 1, 0]) == pytest.approx((0, 0, 254), abs=2)


@pytest.mark.parametrize("encoding", sorted(YUV_ORDERS))
def test_yuv422_luma_order_within_pair(encoding: str) -> None:
    # Alternate black and white luma inside each pixel pair: catches Y0/Y1 or Y/chroma mix-ups.
    yuv = np.empty((2, W, 3), np.uint8)
    yuv[..., 1:] = 128
    yuv[:, 0::2, 0] = 16
    yuv[:, 1::2, 0] = 235
    rows = yuv422_rows(YUV_ORDERS[encoding], yuv)
    out = decode_image(Image(2, W, encoding, 0, rows.shape[1], rows.tobytes()))
    np.testing.assert_array_equal(out[:, 0::2], 0)
    np.testing.assert_array_equal(out[:, 1::2], 255)


# --- Bayer ------------------------------------------------------------------------------------

BAYER_PATTERNS = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}
CHANNEL = {"B": 0, "G": 1, "R": 2}


def mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """Sample a BGR image through a 2x2 colour filter; ``pattern`` lists TL, TR, BL, BR filters."""
    out = np.empty(bgr.shape[:2], np.uint8)
    for i, letter in enumerate(pattern):
        dy, dx = divmod(i, 2)
        out[dy::2, dx::2] = bgr[dy::2, dx::2, CHANNEL[letter]]
    return out


@pytest.mark.parametrize("padding", [0, 1, 6])
@pytest.mark.parametrize("encoding", sorted(BAYER_PATTERNS))
def test_bayer_uniform_patches(encoding: str, padding: int) -> None:
    # Two uniform patches whose R, G and B all differ, so any pattern shift changes the colour.
    left, right = (10, 100, 200), (220, 40, 120)
    h, w = 12, 24
    bgr = np.empty((h, w, 3), np.uint8)
    bgr[:, : w // 2] = left
    bgr[:, w // 2 :] = right
    raw = mosaic(bgr, BAYER_PATTERNS[encoding])
    pad = np.full((h, padding), PAD_BYTE, np.uint8)
    payload = np.concatenate([raw, pad], axis=1)
    out = decode_image(Image(h, w, encoding, 0, payload.shape[1], payload.tobytes()))
    # Demosaicing is exact inside a uniform patch; stay 2 px away from borders and the seam.
    np.testing.assert_array_equal(out[2:-2, 2 : w // 2 - 2], np.broadcast_to(left, (h - 4, w // 2 - 4, 3)))
    np.testing.assert_array_equal(out[2:-2, w // 2 + 2 : -2], np.broadcast_to(right, (h - 4, w // 2 - 4, 3)))


def test_every_supported_encoding_is_covered() -> None:
    covered = set(EXACT_CASES) | set(YUV_ORDERS) | set(BAYER_PATTERNS)
    assert covered == set(SUPPORTED_ENCODINGS)


# --- message objects and data containers --------------------------------------------------------

DATA_CONTAINERS = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "array.array": lambda b: array.array("B", b),  # what rclpy gives
    "numpy": lambda b: np.frombuffer(b, np.uint8),  # what rosbags gives
    "list": list,
}


@pytest.mark.parametrize("container", sorted(DATA_CONTAINERS))
def test_data_containers(container: str) -> None:
    msg = rows_to_msg(BGR[..., ::-1], "rgb8", padding=4)
    msg.data = DATA_CONTAINERS[container](msg.data)
    np.testing.assert_array_equal(decode_any(msg), BGR)


def test_output_does_not_alias_message_buffer() -> None:
    data = np.ascontiguousarray(BGR).reshape(-1).copy()
    msg = Image(H, W, "bgr8", 0, W * 3, data)
    out = decode_image(msg)
    assert not np.shares_memory(out, data)
    out[:] = 0  # writable and independent
    np.testing.assert_array_equal(data.reshape(H, W, 3), BGR)


def test_longer_data_is_accepted_and_trailing_bytes_ignored() -> None:
    msg = rows_to_msg(BGR, "bgr8")
    msg.data = msg.data + b"\x01" * 100
    np.testing.assert_array_equal(decode_image(msg), BGR)


@pytest.fixture(scope="module")
def typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _header(typestore):
    time = typestore.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2)
    return typestore.types["std_msgs/msg/Header"](stamp=time, frame_id="camera_front")


@pytest.mark.parametrize("encoding,padding", [("rgb8", 0), ("bgr8", 8), ("yuv422", 4), ("bayer_rggb8", 0)])
def test_rosbags_image_through_cdr(typestore, encoding: str, padding: int) -> None:
    street = cv2.imread(str(JPEG_PATH), cv2.IMREAD_COLOR)[:64, :96].copy()
    h, w = street.shape[:2]
    if encoding == "yuv422":
        rows = cv2.cvtColor(street, cv2.COLOR_BGR2YUV_UYVY).reshape(h, -1)
    elif encoding.startswith("bayer"):
        rows = mosaic(street, BAYER_PATTERNS[encoding])
    else:
        rows = (street[..., ::-1] if encoding == "rgb8" else street).reshape(h, -1)
    payload = np.concatenate([rows, np.full((h, padding), PAD_BYTE, np.uint8)], axis=1)
    image_t = typestore.types["sensor_msgs/msg/Image"]
    msg = image_t(
        header=_header(typestore), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=payload.shape[1], data=payload.reshape(-1),
    )
    # Deserialised data is a view into the CDR buffer, as when reading a bag.
    msg = typestore.deserialize_cdr(typestore.serialize_cdr(msg, image_t.__msgtype__), image_t.__msgtype__)
    out = decode_any(msg)
    assert out.shape == (h, w, 3)
    if encoding in ("rgb8", "bgr8"):
        np.testing.assert_array_equal(out, street)
    else:  # lossy (chroma subsampling / demosaicing) but close on a real image
        assert np.abs(out.astype(int) - street.astype(int)).mean() < 12


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono8", "yuv422", "yuv422_yuy2", "bayer_rggb8",
                                      "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"])
def test_agrees_with_rosbags_image(typestore, encoding: str) -> None:
    """Cross-check against rosbags-image on unpadded frames (the case it supports)."""
    from rosbags.image import image_to_cvimage

    rng = np.random.default_rng(0)
    h, w = 16, 20
    channels = {"rgb8": 3, "bgra8": 4, "mono8": 1}.get(encoding, 2 if encoding.startswith("yuv") else 1)
    data = rng.integers(0, 256, h * w * channels, dtype=np.uint8)
    msg = typestore.types["sensor_msgs/msg/Image"](
        header=_header(typestore), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * channels, data=data,
    )
    reference = image_to_cvimage(msg, "bgr8")
    np.testing.assert_array_equal(decode_image(msg), reference)


# --- compressed -----------------------------------------------------------------------------------


def street_bgr() -> np.ndarray:
    return cv2.imread(str(PNG_PATH), cv2.IMREAD_COLOR)


def test_real_jpeg_matches_reference_reader() -> None:
    data = JPEG_PATH.read_bytes()
    out = decode_compressed(CompressedImage("jpeg", data))
    reference = cv2.imread(str(JPEG_PATH), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert out.shape == reference.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, reference)


def test_jpeg_round_trip_real_image(typestore) -> None:
    src = street_bgr()
    ok, jpeg = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    msg_t = typestore.types["sensor_msgs/msg/CompressedImage"]
    msg = msg_t(header=_header(typestore), format="rgb8; jpeg compressed bgr8", data=jpeg.reshape(-1))
    msg = typestore.deserialize_cdr(typestore.serialize_cdr(msg, msg_t.__msgtype__), msg_t.__msgtype__)
    out = decode_any(msg)
    assert out.shape == src.shape
    assert cv2.PSNR(out, src) > 30  # lossy, but the same picture in the same channel order


def test_png_round_trip_real_image_is_exact() -> None:
    src = street_bgr()
    ok, png = cv2.imencode(".png", src)
    assert ok
    np.testing.assert_array_equal(decode_any(CompressedImage("png", png.tobytes())), src)
    np.testing.assert_array_equal(decode_any(CompressedImage("bgr8; png compressed bgr8", png)), src)


@pytest.mark.parametrize(
    "fmt", ["rgb8; png compressed", "bgr8; png compressed rgb8", "rgba8; png compressed rgb8"]
)
def test_compressed_rgb_channel_order_is_swapped(fmt: str) -> None:
    # compressed_image_transport: without "compressed bgr", a colour source's bytes are R, G, B.
    ok, png = cv2.imencode(".png", np.ascontiguousarray(BGR[..., ::-1]))
    assert ok
    np.testing.assert_array_equal(decode_compressed(CompressedImage(fmt, png.tobytes())), BGR)


def test_compressed_mono_and_16_bit_png() -> None:
    ok, png8 = cv2.imencode(".png", GRAY)
    assert ok
    out = decode_compressed(CompressedImage("mono8; png compressed ", png8))
    np.testing.assert_array_equal(out, gray_expected())
    depth = GRAY.astype(np.uint16) * 256 + 0x7F
    ok, png16 = cv2.imencode(".png", depth)
    assert ok
    out = decode_compressed(CompressedImage("mono16; png compressed ", png16))
    np.testing.assert_array_equal(out, gray_expected())  # scaled by >> 8, like raw mono16
    # the same PNG from a depth camera (compressed_image_transport on 16UC1) is no picture (R31)
    with pytest.raises(ImageDecodeError, match="depth image") as excinfo:
        decode_compressed(CompressedImage("16UC1; png compressed ", png16))
    assert field_of(excinfo) == "format"


def test_compressed_with_empty_format_sniffs_the_data() -> None:
    data = JPEG_PATH.read_bytes()
    assert decode_any(CompressedImage("", data)).shape[2] == 3


# --- errors ---------------------------------------------------------------------------------------


def field_of(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.field


def good_msg(**changes: Any) -> Image:
    msg = rows_to_msg(BGR, "bgr8", padding=2)
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"encoding": "rgb16"}, "encoding"),
        ({"encoding": "BGR8"}, "encoding"),
        ({"encoding": 3}, "encoding"),
        ({"height": 0}, "height"),
        ({"height": -4}, "height"),
        ({"width": 0}, "width"),
        ({"width": -1}, "width"),
        ({"height": "6"}, "height"),
        ({"width": 8.0}, "width"),
        ({"step": W * 3 - 1}, "step"),
        ({"step": 0}, "step"),
        ({"data": b"\x00" * (H * (W * 3 + 2) - 1)}, "data"),
        ({"data": b""}, "data"),
        ({"data": "abc"}, "data"),
        ({"data": None}, "data"),
        ({"data": np.zeros(H * (W * 3 + 2), np.uint16)}, "data"),
        ({"data": [300] * (H * (W * 3 + 2))}, "data"),
        ({"data": [0] * 10}, "data"),
    ],
)
def test_bad_image_names_field(changes: dict, field: str) -> None:
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_any(good_msg(**changes))
    assert field_of(excinfo) == field
    assert str(excinfo.value).startswith(f"{field}: ")


def test_unknown_encoding_lists_supported() -> None:
    with pytest.raises(ImageDecodeError, match="supported: .*bgr8.*yuv422_yuy2") as excinfo:
        decode_image(good_msg(encoding="nv12"))
    assert field_of(excinfo) == "encoding"


def test_missing_field_is_named() -> None:
    @dataclass
    class NoStep:
        height: int = H
        width: int = W
        encoding: str = "bgr8"
        is_bigendian: int = 0
        data: bytes = bytes(H * W * 3)

    with pytest.raises(ImageDecodeError) as excinfo:
        decode_any(NoStep())
    assert field_of(excinfo) == "step"


def test_odd_width_yuv422() -> None:
    msg = Image(2, 3, "yuv422", 0, 6, bytes(12))
    with pytest.raises(ImageDecodeError, match="even") as excinfo:
        decode_image(msg)
    assert field_of(excinfo) == "width"


def test_bad_is_bigendian_for_16_bit() -> None:
    msg = Image(2, 2, "mono16", 2, 4, bytes(8))
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_image(msg)
    assert field_of(excinfo) == "is_bigendian"
    assert decode_image(Image(1, 1, "mono16", True, 2, b"\x12\x34"))[0, 0, 0] == 0x12
    # For 8-bit encodings the byte order is irrelevant and not checked.
    assert decode_image(Image(2, 2, "mono8", 7, 2, bytes(4))).shape == (2, 2, 3)


def test_decode_mono16_rejects_other_encodings() -> None:
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_mono16(good_msg())
    assert field_of(excinfo) == "encoding"


def test_bad_max_pixels_and_unknown_message() -> None:
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_image(good_msg(), max_pixels=0)
    assert field_of(excinfo) == "max_pixels"
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_any(object())
    assert field_of(excinfo) == "msg"


def test_max_pixels_is_respected() -> None:
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_image(good_msg(), max_pixels=H * W - 1)
    assert field_of(excinfo) == "height*width"
    assert decode_image(good_msg(), max_pixels=H * W).shape == (H, W, 3)


def peak_allocation(func, *args) -> tuple[int, ImageDecodeError]:
    """Peak bytes traced while ``func(*args)`` runs, which must raise ImageDecodeError."""
    tracemalloc.start()
    try:
        with pytest.raises(ImageDecodeError) as excinfo:
            func(*args)
        return tracemalloc.get_traced_memory()[1], excinfo.value
    finally:
        tracemalloc.stop()


def test_huge_raw_header_does_not_allocate() -> None:
    msg = Image(100_000, 100_000, "bgr8", 0, 300_000, b"")
    peak, error = peak_allocation(decode_any, msg)
    assert error.field == "height*width" and "max_pixels" in str(error)
    assert peak < 1_000_000  # a decode of the claimed size would need 30 GB


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_png_bomb_header_is_rejected_before_decoding() -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + png_chunk(b"IEND", b"")
    )
    peak, error = peak_allocation(decode_any, CompressedImage("png", bomb))
    assert error.field == "data" and "100000x100000" in str(error)
    assert peak < 1_000_000


def test_jpeg_bomb_header_is_rejected_before_decoding() -> None:
    data = bytearray(JPEG_PATH.read_bytes())
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)
    peak, error = peak_allocation(decode_any, CompressedImage("jpeg", bytes(data)))
    assert error.field == "data" and "60000x60000" in str(error)
    assert peak < 5_000_000


@pytest.mark.parametrize("cut", [0.5, 0.9, -2, 400, 3])
def test_truncated_jpeg(cut: float) -> None:
    data = JPEG_PATH.read_bytes()
    end = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_any(CompressedImage("jpeg", data[:end]))
    assert field_of(excinfo) == "data"


@pytest.mark.parametrize("cut", [0.5, -12, 30])
def test_truncated_png(cut: float) -> None:
    data = PNG_PATH.read_bytes()
    end = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    with pytest.raises(ImageDecodeError) as excinfo:
        decode_any(CompressedImage("png", data[:end]))
    assert field_of(excinfo) == "data"


def test_corrupt_compressed_data() -> None:
    data = bytearray(PNG_PATH.read_bytes())
    data[200:4000] = bytes(3800)  # zero a span of the IDAT stream: zlib/CRC check fails
    for bad in (bytes(data), b"\xff\xd8\xff" + bytes(500), b"GIF89a" + bytes(100), b""):
        with pytest.raises(ImageDecodeError) as excinfo:
            decode_any(CompressedImage("png" if bad[:1] == b"\x89" else "jpeg", bad))
        assert field_of(excinfo) == "data"


@pytest.mark.parametrize(
    "fmt", ["tiff", "h264", "16UC1; compressedDepth png", "32FC1; compressedDepth", "webp"]
)
def test_unsupported_compressed_format(fmt: str) -> None:
    with pytest.raises(ImageDecodeError, match="jpeg, png") as excinfo:
        decode_any(CompressedImage(fmt, JPEG_PATH.read_bytes()))
    assert field_of(excinfo) == "format"


# --- encode_image ---------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("encoding", ENCODABLE_ENCODINGS)
def test_encode_image_round_trip(encoding: str, padding: int) -> None:
    step, data = encode_image(BGR, encoding, row_padding=padding)
    out = decode_image(Image(H, W, encoding, 0, step, data))
    if encoding.startswith("mono"):
        expected = cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY)
        np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, axis=2))
    else:
        np.testing.assert_array_equal(out, BGR)


def test_encode_image_rgb8_bytes_and_big_endian_mono16() -> None:
    step, data = encode_image(BGR, "rgb8")
    assert step == W * 3 and data[:3] == bytes(BGR[0, 0, ::-1])
    step, data = encode_image(BGR, "mono16", bigendian=True, row_padding=1)
    assert step == W * 2 + 1
    np.testing.assert_array_equal(
        decode_mono16(Image(H, W, "mono16", 1, step, data)),
        cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257,
    )


def test_encode_image_errors() -> None:
    with pytest.raises(ImageDecodeError) as excinfo:
        encode_image(BGR, "bayer_rggb8")
    assert field_of(excinfo) == "encoding"
    with pytest.raises(ImageDecodeError) as excinfo:
        encode_image(GRAY, "bgr8")
    assert field_of(excinfo) == "image"


# --- only ImageDecodeError escapes, whatever the input ----------------------------------------------

ints = st.one_of(st.integers(-3, 40), st.integers(-(2**70), 2**70), st.sampled_from([True, 1.5, "4", None]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=ints, width=ints, step=ints, is_bigendian=ints,
    encoding=st.one_of(st.sampled_from(SUPPORTED_ENCODINGS), st.text(max_size=8), st.none()),
    data=st.one_of(
        st.binary(max_size=600), st.lists(st.integers(-5, 300), max_size=50), st.none(), st.text(max_size=5)
    ),
)
def test_fuzz_raw_only_raises_image_decode_error(height, width, step, is_bigendian, encoding, data) -> None:
    msg = Image(height, width, encoding, is_bigendian, step, data)
    try:
        out = decode_any(msg, max_pixels=10_000)
    except ImageDecodeError:
        return
    assert out.shape == (height, width, 3) and out.dtype == np.uint8


_SMALL_JPEG = cv2.imencode(".jpg", BGR)[1].tobytes()
_SMALL_PNG = cv2.imencode(".png", BGR)[1].tobytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([_SMALL_JPEG, _SMALL_PNG]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 10_000),
    fmt=st.sampled_from(["jpeg", "png", "", "rgb8; jpeg compressed bgr8", "bgr8; png compressed", "bmp"]),
)
def test_fuzz_compressed_only_raises_image_decode_error(base, edits, cut, fmt) -> None:
    data = bytearray(base[: max(cut, 1)] if cut < len(base) else base)
    for pos, value in edits:
        data[pos % len(data)] = value
    try:
        out = decode_any(CompressedImage(fmt, bytes(data)))
    except ImageDecodeError:
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
