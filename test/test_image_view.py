"""Zero-copy decode (decode_view / ImageView) and detection from views, on real street frames.

A view must hold the same pixels as decode_any (row padding included), and a detector fed the view
must give the detections of the BGR image. A bgr8 view runs the same 3-channel resize kernel on the
same pixel values as the BGR array, so its detections are identical bit for bit. Other orders run the
resize on other bytes (rgb8) or with another kernel (4-channel bgra8/rgba8, which OpenCV rounds a few
pixels one grey level differently on some CPUs), so they agree within the cross-path tolerances of
``support.assert_detections_close``: same labels and count, boxes within 0.1 px, scores within 1e-3.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from support import RawImage, assert_detections_close
from sense_perception.core.detection.detector import (CALIBRATED_DEFAULTS, DetectorConfig,
                                                      ObjectDetector)
from sense_perception.core.imaging.image_decode import (ImageView, decode_any, decode_view,
                                                        encode_image)
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.core.types import Detections
from sense_perception.errors import ImageDecodeError

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
FRAMES = sorted(STREET.glob("*.jpg")) + sorted(STREET.glob("*.png"))
CPU = RuntimeOptions(providers=("CPUExecutionProvider",))
VIEW_ENCODINGS = {"bgr8": "bgr", "rgb8": "rgb", "bgra8": "bgra", "rgba8": "rgba"}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    assert len(FRAMES) == 5, f"expected the 5 street frames in {STREET}"
    return [cv2.imread(str(p)) for p in FRAMES]


def message(bgr: np.ndarray, encoding: str, padding: int = 0) -> RawImage:
    step, data = encode_image(bgr, encoding, row_padding=padding)
    return RawImage(bgr.shape[0], bgr.shape[1], encoding, 0, step, data)


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", sorted(VIEW_ENCODINGS))
def test_view_equals_decode_any_with_row_padding(frames: list[np.ndarray], encoding: str,
                                                 padding: int) -> None:
    msg = message(frames[0], encoding, padding)
    view = decode_view(msg)
    assert view.order == VIEW_ENCODINGS[encoding]
    assert view.array.shape == frames[0].shape[:2] + (len(view.order),)
    # Zero copy: the view reads the message's own bytes, padded rows and all.
    assert np.shares_memory(view.array, np.frombuffer(msg.data, np.uint8))
    assert view.array.strides[0] == msg.step
    bgr = view.to_bgr()
    np.testing.assert_array_equal(bgr, decode_any(msg))
    np.testing.assert_array_equal(bgr, frames[0])
    assert bgr.flags.c_contiguous and bgr.flags.writeable


@pytest.mark.parametrize("encoding", ["mono8", "mono16", "yuv422"])
def test_other_encodings_fall_back_to_a_bgr_copy(frames: list[np.ndarray], encoding: str) -> None:
    image = frames[0][:6, :8]
    if encoding == "yuv422":
        msg = RawImage(2, 2, "yuv422", 0, 4, bytes([128, 16, 128, 16, 128, 235, 128, 235]))
    else:
        msg = message(image, encoding, padding=3)
    view = decode_view(msg)
    assert view.order == "bgr"
    np.testing.assert_array_equal(view.array, decode_any(msg))


def test_compressed_falls_back_to_decode_any(frames: list[np.ndarray]) -> None:
    @dataclass
    class Compressed:
        format: str
        data: bytes

    msg = Compressed("jpeg", cv2.imencode(".jpg", frames[0])[1].tobytes())
    view = decode_view(msg)
    assert view.order == "bgr"
    np.testing.assert_array_equal(view.array, decode_any(msg))


def test_view_decode_errors_name_the_field(frames: list[np.ndarray]) -> None:
    msg = message(frames[0][:4, :4], "rgb8")
    msg.step = 5
    with pytest.raises(ImageDecodeError) as info:
        decode_view(msg)
    assert info.value.field == "step"
    with pytest.raises(ImageDecodeError) as info:
        decode_view(RawImage(4, 4, "rgb9", 0, 12, bytes(48)))
    assert info.value.field == "encoding"


def assert_same(a: Detections, b: Detections, exact: bool, what: str = "") -> None:
    """Bit for bit where the same kernel ran on the same bytes, within tolerance otherwise."""
    if exact:
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.labels, b.labels)
    else:
        # Every label's default threshold (calibrated: cars, trucks, pedestrians, the rest).
        assert_detections_close(a, b, threshold=tuple(CALIBRATED_DEFAULTS.values()), what=what)


@pytest.fixture(scope="module", params=["picodet_s_416", "yolox_nano"])
def detector(request: pytest.FixtureRequest) -> ObjectDetector:
    return ObjectDetector(DetectorConfig(model=request.param), CPU)


def test_detections_from_views_equal_bgr(detector: ObjectDetector,
                                         frames: list[np.ndarray]) -> None:
    expected = detector.detect(frames)
    assert sum(len(d) for d in expected) > 10  # real frames: real detections to compare
    for encoding in sorted(VIEW_ENCODINGS):
        views = [decode_view(message(f, encoding, padding=7)) for f in frames]
        got = detector.detect(views)  # batched, mixed sizes
        # Same batch of 5, same pixels: identical for bgr8 views.
        for want, have in zip(expected, got, strict=True):
            assert_same(have, want, encoding == "bgr8", encoding)
        # One by one, and mixed with a plain BGR array in one batch: other batch shapes, so the
        # inference may round differently even for the same pixels.
        assert_same(detector.detect([views[0]])[0], expected[0], False, f"{encoding} alone")
        mixed = detector.detect([frames[1], views[2]])
        assert_same(mixed[0], expected[1], False, "bgr array in a batch of 2")
        assert_same(mixed[1], expected[2], False, f"{encoding} in a batch of 2")


def test_tiled_detections_from_a_view_equal_bgr(frames: list[np.ndarray]) -> None:
    det = ObjectDetector.from_params({"detector.model": "picodet_s_416",
                                      "runtime.providers": ["CPUExecutionProvider"],
                                      "tiling.mode": "horizon_bands"})
    view = decode_view(message(frames[1], "rgba8", padding=4))
    assert_same(det.detect([view])[0], det.detect([frames[1]])[0], False, "tiled rgba8")


def test_bad_views_raise_named_errors(frames: list[np.ndarray]) -> None:
    det = ObjectDetector(DetectorConfig(model="picodet_s_416", batching=False), CPU)
    with pytest.raises(ImageDecodeError) as info:
        det.detect([ImageView(frames[0], "yuv")])
    assert info.value.field == "images[0].order"
    with pytest.raises(ImageDecodeError) as info:
        det.detect([ImageView(frames[0], "rgba")])  # 3 channels, order says 4
    assert info.value.field == "images[0].array"


def test_safe_decode_zero_copy_keeps_the_input_limits(frames: list[np.ndarray]) -> None:
    from sense_perception.core.imaging.frame_guard import InputLimits, safe_decode

    msg = message(frames[0], "rgb8", padding=2)
    image, error = safe_decode(msg, zero_copy=True)
    assert error is None and isinstance(image, ImageView) and image.order == "rgb"
    np.testing.assert_array_equal(image.to_bgr(), frames[0])
    image, error = safe_decode(msg)  # default: a BGR copy, as before
    assert error is None and isinstance(image, np.ndarray)
    np.testing.assert_array_equal(image, frames[0])
    small = InputLimits(max_width=100)
    image, error = safe_decode(msg, small, zero_copy=True)
    assert image is None and error.field == "width"


def test_view_reports_its_shape(frames: list[np.ndarray]) -> None:
    view = decode_view(message(frames[0], "bgra8"))
    assert view.shape == frames[0].shape[:2] + (4,)
