"""``input.mono16_bits``: 16-bit grey frames of a 10- or 12-bit sensor read as the picture, not black.

Such sensors publish their values in the low bits of mono16 (0-1023, 0-4095); the high byte that a
16-bit read takes is then 0-3 or 0-15, a frame camera health calls ``dark`` and the detectors find
nothing in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sense_perception.config import ConfigError, load_params
from sense_perception.core.imaging.frame_guard import InputLimits, safe_decode
from sense_perception.core.imaging.image_decode import decode_image, scale_16bit
from sense_perception.core.imaging.image_file import read_image_file
from sense_perception.core.imaging.mono16_depth import Mono16DepthWatch
from sense_perception.errors import ImageDecodeError
from support import RawImage as Image

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street" / "pandaset_seq002_front_camera_10.jpg"


@dataclass
class CompressedImage:
    format: str
    data: Any


def grey_street() -> np.ndarray:
    image = cv2.imread(str(STREET), cv2.IMREAD_GRAYSCALE)
    assert image is not None, STREET
    return cv2.resize(image, (320, 180), interpolation=cv2.INTER_AREA)


def twelve_bit(grey: np.ndarray) -> np.ndarray:
    """What a 12-bit sensor publishes for this picture: 0-4095 in the low bits."""
    return grey.astype(np.uint16) * 16 + 8


def mono16(pixels: np.ndarray, big: bool = False) -> Image:
    h, w = pixels.shape
    return Image(h, w, "mono16", int(big), w * 2, pixels.astype(">u2" if big else "<u2").tobytes())


@pytest.mark.parametrize("big", [False, True])
def test_a_12_bit_camera_reads_as_its_picture_with_12_bits(big: bool) -> None:
    grey = grey_street()
    msg = mono16(twelve_bit(grey), big)
    as_16 = decode_image(msg)
    assert as_16.max() <= 15  # the high byte of 0-4095: the black frame users got
    picture = decode_image(msg, mono16_bits=12)
    assert picture.shape == (*grey.shape, 3)
    np.testing.assert_allclose(picture[..., 0].astype(int), grey.astype(int), atol=1)
    assert (picture[..., 0] == picture[..., 2]).all()


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("pad", [1, 2, 3])
def test_a_12_bit_frame_with_padded_rows_reads_as_its_picture(big: bool, pad: int) -> None:
    """Rows padded by ``pad`` bytes (``step`` = width * 2 + pad): an odd pad leaves every other
    row's 16-bit values at an odd address, which numpy reads but OpenCV's scaling did not (R61:
    those rows came out as other values, many saturated at 255)."""
    grey = grey_street()[:40, :60]
    pixels = twelve_bit(grey).astype(">u2" if big else "<u2")
    h, w = pixels.shape
    data = b"".join(row.tobytes() + b"\x00" * pad for row in pixels)
    msg = Image(h, w, "mono16", int(big), w * 2 + pad, data)
    picture = decode_image(msg, mono16_bits=12)
    np.testing.assert_allclose(picture[..., 0].astype(int), grey.astype(int), atol=1)
    np.testing.assert_array_equal(decode_image(msg)[..., 0], twelve_bit(grey) >> 8)


def test_16_bits_is_the_high_byte_as_before() -> None:
    pixels = np.array([[0, 255, 256, 65535], [0x1234, 0xABCD, 0x00FF, 0x8000]], np.uint16)
    out = decode_image(mono16(pixels), mono16_bits=16)[..., 0]
    np.testing.assert_array_equal(out, pixels >> 8)


def test_values_beyond_the_bits_saturate() -> None:
    pixels = np.array([[0, 1023, 1024, 65535]], np.uint16)
    np.testing.assert_array_equal(scale_16bit(pixels, 10)[0], [0, 255, 255, 255])
    with pytest.raises(ImageDecodeError, match="mono16_bits"):
        scale_16bit(pixels, 17)


def test_a_16_bit_png_frame_and_file_take_the_setting(tmp_path: Path) -> None:
    grey = grey_street()
    ok, png = cv2.imencode(".png", twelve_bit(grey))
    assert ok
    msg = CompressedImage("mono16; png compressed ", png.tobytes())
    default = safe_decode(msg, InputLimits())
    assert default.image is not None and default.image.max() <= 15
    decoded = safe_decode(msg, InputLimits(mono16_bits=12))
    assert decoded.error is None and decoded.image is not None
    np.testing.assert_allclose(decoded.image[..., 1].astype(int), grey.astype(int), atol=1)
    # the detector's cheap path (an ImageView) gives the same pixels
    view = safe_decode(msg, InputLimits(mono16_bits=12), zero_copy=True).image
    np.testing.assert_array_equal(view.to_bgr(), decoded.image)  # type: ignore[union-attr]
    path = tmp_path / "cabin_12bit.png"
    path.write_bytes(png.tobytes())
    np.testing.assert_array_equal(read_image_file(path, InputLimits(mono16_bits=12)), decoded.image)
    assert read_image_file(path).max() <= 15
    # an 8-bit PNG is not touched by the setting
    ok, png8 = cv2.imencode(".png", grey)
    eight = safe_decode(CompressedImage("mono8; png compressed ", png8.tobytes()), InputLimits(mono16_bits=12))
    np.testing.assert_array_equal(eight.image[..., 0], grey)  # type: ignore[index]


def test_a_raw_frame_through_safe_decode_takes_the_setting() -> None:
    grey = grey_street()
    msg = mono16(twelve_bit(grey))
    for zero_copy in (False, True):
        result = safe_decode(msg, InputLimits(mono16_bits=12), zero_copy=zero_copy, min_px=32)
        assert result.error is None
        image = result.image.to_bgr() if zero_copy else result.image  # type: ignore[union-attr]
        np.testing.assert_allclose(image[..., 0].astype(int), grey.astype(int), atol=1)


@pytest.mark.parametrize("value, expected", [
    (17, "input.mono16_bits must be an integer in 8..16"),
    (7, "input.mono16_bits must be an integer in 8..16"),
    (True, "input.mono16_bits"),
    ("12", "input.mono16_bits"),
])
def test_a_bad_mono16_bits_is_a_config_error(value: Any, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        InputLimits.from_params({"input.mono16_bits": value}, "test.yaml")


def test_mono16_bits_is_read_from_a_config_of_either_node(tmp_path: Path) -> None:
    config = tmp_path / "cabin12.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    input:\n      mono16_bits: 12\n")
    assert InputLimits.from_params(load_params(config, "driver_monitor"), str(config)).mono16_bits == 12
    assert InputLimits.from_params(load_params(config, "object_detector"), str(config)).mono16_bits == 16


def test_the_watch_names_the_setting_once_for_a_shallow_camera() -> None:
    grey = grey_street()
    watch = Mono16DepthWatch()
    note = watch.check("/cabin/image_raw", mono16(twelve_bit(grey)), 16)
    assert note is not None and "input.mono16_bits" in note and "/cabin/image_raw" in note
    assert "fit in 12 bits" in note
    assert watch.check("/cabin/image_raw", mono16(twelve_bit(grey)), 16) is None  # once per camera
    # a camera using the whole word, one already set to its bits, another encoding: nothing said
    full = grey.astype(np.uint16) * 257
    assert Mono16DepthWatch().check("/a", mono16(full), 16) is None
    assert Mono16DepthWatch().check("/a", mono16(twelve_bit(grey)), 12) is None
    mono8 = Image(grey.shape[0], grey.shape[1], "mono8", 0, grey.shape[1], grey.tobytes())
    assert Mono16DepthWatch().check("/a", mono8, 16) is None


def test_the_watch_looks_at_the_first_frame_it_can_read() -> None:
    """R61: the watch marked a camera as looked at before decoding its first mono16 frame, so a
    first frame it could not read (cut short, a driver starting up) was the one looked at, and
    the 12-bit frames after it never named the setting. The first readable frame is looked at."""
    grey = grey_street()
    good = mono16(twelve_bit(grey))
    cut = Image(good.height, good.width, "mono16", 0, good.step, good.data[: good.step])
    watch = Mono16DepthWatch()
    assert watch.check("/cabin/image_raw", cut, 16) is None  # unreadable: nothing to judge yet
    note = watch.check("/cabin/image_raw", good, 16)
    assert note is not None and "input.mono16_bits" in note
    assert watch.check("/cabin/image_raw", good, 16) is None  # once


def _mono16_bag(path: Path, pixels: np.ndarray, frames: int = 3) -> Path:
    """A rosbag2 MCAP of ``frames`` mono16 Images (``pixels``) on /camera/ir/image_raw at 10 Hz."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    Time, Header = store.types["builtin_interfaces/msg/Time"], store.types["std_msgs/msg/Header"]
    RosImage = store.types["sensor_msgs/msg/Image"]
    h, w = pixels.shape
    data = np.frombuffer(pixels.astype("<u2").tobytes(), np.uint8)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/camera/ir/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i in range(frames):
            ns = 1_700_000_000_000_000_000 + i * 100_000_000
            msg = RosImage(header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="ir"),
                           height=h, width=w, encoding="mono16", is_bigendian=0, step=w * 2, data=data)
            writer.write(conn, ns, store.serialize_cdr(msg, msg.__msgtype__))
    return path


def test_a_replay_names_the_setting_once_for_a_12_bit_camera(tmp_path: Path, caplog) -> None:
    from sense_perception.cli.main import main

    bag = _mono16_bag(tmp_path / "ir", twelve_bit(grey_street()))
    with caplog.at_level("WARNING"):
        assert main(["replay", str(bag), "--out", str(tmp_path / "default")]) == 0
    notes = [r.getMessage() for r in caplog.records if "input.mono16_bits" in r.getMessage()]
    assert len(notes) == 1 and "/camera/ir/image_raw" in notes[0], notes  # once, not per frame
