"""Regenerate the bad-message corpus in this folder from a real street frame (run by hand, not by pytest).

Usage: ``python test/data/bad_images/make_corpus.py`` from the repository root, with ../shared beside it.

Each case is ``<name>.json`` (the message fields, optional ``limits`` and the expected outcome) plus
``<name>.bin`` (its ``data`` bytes). The payloads come from a 64x48 crop of the comma2k19 frame
(see NOTICE for its licence), re-encoded and then cut or patched, so the corpus stays a few kB.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[2].parent / "shared" / "data" / "street" / "comma2k19_highway280_rav4_preview.png"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"


def write(name: str, message: str, fields: dict, data: bytes, why: str, error_field: str | None,
          limits: dict | None = None, shape: list[int] | None = None) -> None:
    """Write one case; ``error_field`` None means the message must decode, to ``shape``."""
    case = {"message": message, "fields": fields, "why": why,
            "expect": {"error_field": error_field} if error_field else {"shape": shape}}
    if limits:
        case["limits"] = limits
    (HERE / f"{name}.json").write_text(json.dumps(case, indent=2) + "\n")
    (HERE / f"{name}.bin").write_bytes(data)


def raw(encoding: str, height: int, width: int, step: int, is_bigendian: int = 0) -> dict:
    return {"height": height, "width": width, "encoding": encoding, "is_bigendian": is_bigendian,
            "step": step}


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def main() -> None:
    street = cv2.imread(str(SOURCE), cv2.IMREAD_COLOR)
    crop = street[500:548, 550:614].copy()  # 64x48 of road, car and verge
    px = crop[:4, :6].tobytes()  # 4 rows x 6 columns of bgr8, 18 bytes a row
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    ok, png = cv2.imencode(".png", crop)
    assert ok
    jpeg, png = jpeg.tobytes(), png.tobytes()

    # --- sensor_msgs/Image ---------------------------------------------------------------------
    cases = [
        ("raw_unknown_encoding_nv12", raw("nv12", 4, 6, 6), px, "planar YUV 4:2:0 is not supported",
         "encoding"),
        ("raw_encoding_wrong_case", raw("BGR8", 4, 6, 18), px, "encodings are case-sensitive", "encoding"),
        ("raw_encoding_empty", raw("", 4, 6, 18), px, "no encoding at all", "encoding"),
        ("raw_encoding_rgb16", raw("rgb16", 4, 3, 18), px, "a ROS encoding this package does not decode",
         "encoding"),
        ("raw_step_smaller_than_row", raw("bgr8", 4, 6, 17), px[:68], "step one byte short of 6*3",
         "step"),
        ("raw_step_zero", raw("bgr8", 4, 6, 0), px, "step left at 0 by a driver", "step"),
        ("raw_rgba8_step_of_bgr8", raw("rgba8", 4, 6, 18), px, "bgr8 rows labelled rgba8", "step"),
        ("raw_bayer_step_short", raw("bayer_rggb8", 4, 6, 5), px[:20], "Bayer row of 6 needs step >= 6",
         "step"),
        ("raw_data_short_by_one", raw("bgr8", 4, 6, 18), px[:-1], "data one byte shorter than step*height",
         "data"),
        ("raw_data_empty", raw("bgr8", 4, 6, 18), b"", "header without pixels", "data"),
        ("raw_height_zero", raw("bgr8", 0, 6, 18), px, "zero rows", "height"),
        ("raw_width_zero", raw("bgr8", 4, 0, 18), px, "zero columns", "width"),
        ("raw_header_100000x100000", raw("bgr8", 100_000, 100_000, 300_000), px,
         "a hostile header: decoding would need 30 GB", "width"),
        ("raw_header_uint32_max", raw("mono8", 2**32 - 1, 2**32 - 1, 2**32 - 1), px,
         "every size field at its uint32 maximum", "width"),
        ("raw_width_over_limit", raw("mono8", 1, 10_000, 10_000), px, "a 10000 px wide line scan", "width"),
        ("raw_height_over_limit", raw("mono8", 9_000, 1, 1), px, "a 9000 px tall column", "height"),
        ("raw_pixels_over_limit", raw("mono8", 6_000, 8_000, 8_000), px,
         "48 MP: each side within limits, the product above input.max_pixels", "height*width"),
        ("raw_yuv422_odd_width", raw("yuv422", 2, 3, 6), px[:12], "UYVY packs pixel pairs", "width"),
        ("raw_yuv422_yuy2_odd_width", raw("yuv422_yuy2", 2, 5, 10), px[:20], "YUYV packs pixel pairs",
         "width"),
        ("raw_mono16_is_bigendian_2", raw("mono16", 2, 3, 6, is_bigendian=2), px[:12],
         "is_bigendian is a boolean byte", "is_bigendian"),
    ]
    for name, fields, data, why, field in cases:
        write(name, IMAGE, fields, data, why, field)
    write("raw_data_longer_than_step_x_height", IMAGE, raw("bgr8", 4, 6, 18), px + b"\x00" * 7,
          "control: trailing bytes after step*height are ignored (drivers over-allocate)", None,
          shape=[4, 6, 3])

    # --- sensor_msgs/CompressedImage ------------------------------------------------------------
    sof = jpeg.index(b"\xff\xc0")
    sof_len = struct.unpack_from(">H", jpeg, sof + 2)[0]
    dqt = jpeg.index(b"\xff\xdb")

    def patch(data: bytes, at: int, new: bytes) -> bytes:
        return data[:at] + new + data[at + len(new):]

    ihdr = png.index(b"IHDR") - 4  # chunk start: length, type, 13-byte body, CRC
    huge_ihdr = png_chunk(b"IHDR", struct.pack(">II", 100_000, 100_000) + png[ihdr + 16:ihdr + 21])
    idat = png.index(b"IDAT") + 4
    compressed = [
        ("jpeg_truncated_half", "jpeg", jpeg[: len(jpeg) // 2], "stream cut mid-scan", "data"),
        ("jpeg_truncated_20_bytes", "jpeg", jpeg[:20], "only the start of the headers", "data"),
        ("jpeg_missing_eoi", "jpeg", jpeg[:-2], "end-of-image marker missing", "data"),
        ("jpeg_sof_claims_65535x65535", "jpeg", patch(jpeg, sof + 5, struct.pack(">HH", 65535, 65535)),
         "frame header patched to the largest JPEG size (12 GB decoded)", "data"),
        ("jpeg_sof_zero_width", "jpeg", patch(jpeg, sof + 7, b"\x00\x00"), "frame header width 0", "data"),
        ("jpeg_dqt_length_1", "jpeg", patch(jpeg, dqt + 2, b"\x00\x01"), "segment length below 2",
         "data"),
        ("jpeg_without_frame_header", "jpeg", jpeg[:sof] + jpeg[sof + 2 + sof_len:],
         "scan data with no SOF segment", "data"),
        ("png_truncated_half", "png", png[: len(png) // 2], "stream cut inside IDAT", "data"),
        ("png_signature_only", "png", png[:8], "nothing after the PNG signature", "data"),
        ("png_ihdr_claims_100000x100000", "png", png[:ihdr] + huge_ihdr + png[ihdr + 25:],
         "a decompression bomb header: 30 GB decoded", "data"),
        ("png_ihdr_bad_crc", "png", patch(png, ihdr + 21, b"\x00\x00\x00\x00"), "IHDR checksum wrong",
         "data"),
        ("png_idat_zeroed", "png", patch(png, idat + 16, bytes(400)), "zlib stream corrupted", "data"),
        ("gif_labelled_jpeg", "jpeg", b"GIF89a" + bytes(26), "neither JPEG nor PNG", "data"),
        ("compressed_empty", "jpeg", b"", "no bytes at all", "data"),
        ("format_h264", "h264", jpeg, "a video codec name", "format"),
        ("format_compressed_depth", "16UC1; compressedDepth png", png,
         "compressed_depth_image_transport adds its own header", "format"),
    ]
    for name, fmt, data, why, field in compressed:
        write(name, COMPRESSED, {"format": fmt}, data, why, field)
    write("jpeg_over_max_compressed_bytes", COMPRESSED, {"format": "jpeg"}, jpeg,
          "larger than input.max_compressed_bytes", "data", limits={"max_compressed_bytes": 512})
    write("jpeg_wider_than_max_width", COMPRESSED, {"format": "jpeg"}, jpeg,
          "64 px wide against input.max_width=32", "data", limits={"max_width": 32})
    write("jpeg_valid_control", COMPRESSED, {"format": "rgb8; jpeg compressed bgr8"}, jpeg,
          "control: the unmodified crop decodes", None, shape=[48, 64, 3])
    write("png_labelled_jpeg_control", COMPRESSED, {"format": "jpeg"}, png,
          "control: the codec is sniffed from the bytes, as compressed_image_transport does", None,
          shape=[48, 64, 3])


if __name__ == "__main__":
    main()
