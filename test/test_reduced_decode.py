"""Reduced-scale JPEG decoding for the detector (libjpeg DCT scaling), on real street frames.

A JPEG CompressedImage may be decoded at 1/2, 1/4 or 1/8 scale when that is still at least the
network's resized input. Boxes must come back in the pixels of the full image the message carries,
the strong detections must be those of a full decode, recall on the hand-labelled frames must not
drop, and the ``input.*`` limits must still apply to the full size.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from support import DEV_SET, detect_all
from sense_perception.core.boxes import pairwise_iou
from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
from sense_perception.core.detection.duplicates import DuplicateSettings
from sense_perception.core.imaging.frame_guard import InputLimits, safe_decode
from sense_perception.core.imaging.image_decode import ImageView, decode_view, jpeg_reduction
from sense_perception.core.runtime.session import RuntimeOptions
from sense_perception.core.detection.tiling import TilingConfig
from sense_perception.errors import ImageDecodeError

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
JPEGS = sorted(STREET.glob("pandaset_*.jpg"))
CPU = RuntimeOptions(providers=("CPUExecutionProvider",))


@dataclass
class Compressed:
    """The fields of a sensor_msgs/CompressedImage."""

    data: bytes | np.ndarray
    format: str = "bgr8; jpeg compressed bgr8"


def jpeg_message(path: Path) -> Compressed:
    return Compressed(np.fromfile(str(path), np.uint8))


@pytest.fixture(scope="module", params=["picodet_s_416", "yolox_nano"])
def detector(request) -> ObjectDetector:
    return ObjectDetector(DetectorConfig(model=request.param), CPU)


@pytest.mark.parametrize("width, height, floor, expected", [
    (1920, 1080, (416, 416), 2),   # PicoDet stretches to 416x416: 960x540 still covers it
    (1920, 1080, (416, 234), 4),   # YOLOX letterbox: 480x270 covers 416x234
    (1280, 720, (416, 416), 1),    # 640x360 would be below 416 rows: full decode
    (3840, 2160, (416, 416), 4),
    (4000, 4000, (416, 416), 8),
    (1281, 833, (416, 416), 2),    # libjpeg rounds up: 641x417
    (416, 416, (416, 416), 1),
])
def test_jpeg_reduction_picks_the_smallest_scale_that_covers_the_floor(width, height, floor,
                                                                        expected):
    assert jpeg_reduction(width, height, floor) == expected


def test_decode_view_reduces_a_jpeg_and_keeps_the_full_size():
    assert len(JPEGS) == 4, f"expected the 4 PandaSet frames in {STREET}"
    msg = jpeg_message(JPEGS[0])
    full = cv2.imread(str(JPEGS[0]))
    view = decode_view(msg, size_floor=lambda w, h: (416, 416))
    assert view.array.shape == (540, 960, 3) and view.order == "bgr"
    assert view.full_size == (1920, 1080) == view.source_size
    # The DCT-domain 1/2 decode is an anti-aliased downscale of the same picture.
    area = cv2.resize(full, (960, 540), interpolation=cv2.INTER_AREA)
    assert np.abs(view.array.astype(np.int16) - area).mean() < 3.0
    assert view.full_bgr().shape == full.shape
    # No floor, or a floor only the full image meets: a full decode, no full_size.
    for plain in (decode_view(msg), decode_view(msg, size_floor=lambda w, h: (w, h))):
        assert plain.full_size is None and np.array_equal(plain.array, full)


def test_png_and_rgb_ordered_jpeg():
    full = cv2.imread(str(JPEGS[1]))
    png = Compressed(cv2.imencode(".png", full)[1], "bgr8; png compressed bgr8")
    view = decode_view(png, size_floor=lambda w, h: (416, 416))
    assert view.full_size is None and np.array_equal(view.array, full)  # PNG has no DCT scaling
    # compressed_image_transport's "rgb8; jpeg compressed rgb8": channels swapped back to BGR.
    rgb_jpeg = cv2.imencode(".jpg", cv2.cvtColor(full, cv2.COLOR_BGR2RGB))[1]
    bgr_jpeg = cv2.imencode(".jpg", full)[1]
    floor = lambda w, h: (416, 416)  # noqa: E731
    swapped = decode_view(Compressed(rgb_jpeg, "rgb8; jpeg compressed rgb8"), size_floor=floor)
    plain = decode_view(Compressed(bgr_jpeg), size_floor=floor)
    assert swapped.full_size == plain.full_size == (1920, 1080)
    assert np.abs(swapped.array.astype(np.int16) - plain.array).mean() < 2.0


def test_limits_apply_to_the_full_size_and_bad_data_still_errors():
    msg = jpeg_message(JPEGS[0])
    floor = lambda w, h: (416, 416)  # noqa: E731
    image, error = safe_decode(msg, InputLimits(max_width=1000), zero_copy=True, size_floor=floor)
    assert image is None and error.field == "data" and "width 1920" in str(error)
    image, error = safe_decode(msg, zero_copy=True, size_floor=floor)
    assert error is None and isinstance(image, ImageView) and image.full_size == (1920, 1080)
    truncated = Compressed(bytes(msg.data[: len(msg.data) // 2]))
    image, error = safe_decode(truncated, zero_copy=True, size_floor=floor)
    assert image is None and isinstance(error, ImageDecodeError) and "truncated" in str(error)


def test_boxes_of_a_reduced_view_are_in_full_image_pixels(detector):
    half = cv2.imread(str(JPEGS[2]))[::2, ::2].copy()  # any image, declared as half of its source
    plain = detector.detect([half])[0]
    scaled = detector.detect([ImageView(half, "bgr", (half.shape[1] * 2, half.shape[0] * 2))])[0]
    assert len(plain) > 3
    np.testing.assert_array_equal(scaled.labels, plain.labels)
    np.testing.assert_array_equal(scaled.scores, plain.scores)
    np.testing.assert_allclose(scaled.boxes, plain.boxes * 2, rtol=1e-5, atol=1e-3)


def test_strong_detections_match_a_full_decode(detector):
    floor = detector.decode_floor
    assert floor is not None
    # Strong: a raw score of 0.5 or more (its calibrated value per label, scores being calibrated).
    cut = np.array([float(detector.calibration.map_of(n)(0.5)) for n in detector.label_names])
    for path in JPEGS:
        msg = jpeg_message(path)
        full = detector.detect([decode_view(msg)])[0]
        view = decode_view(msg, size_floor=floor)
        assert view.full_size == (1920, 1080) and view.array.shape[0] < 1080
        reduced = detector.detect([view])[0]
        assert reduced.boxes[:, 2].max() > view.array.shape[1]  # reported in full-image pixels
        strong = full.scores >= cut[full.labels]
        assert strong.sum() >= 3, path.name
        iou = pairwise_iou(full.boxes[strong], reduced.boxes)
        same = full.labels[strong, None] == reduced.labels[None, :]
        best = np.where(same, iou, 0.0).max(axis=1)
        assert (best >= 0.5).all(), f"{path.name}: a strong detection lost ({best.round(2)})"


@pytest.mark.slow
def test_recall_on_labelled_frames_does_not_drop(detector):
    """Reduced against full decode of the 80 developer-set JPEGs (1920x1080, decoded at 960x540
    for PicoDet's 416x416 input), scored at IoU 0.3 like the rest of that set."""
    from sense_perception.evaluation.ground_truth import load_ground_truth
    from sense_perception.evaluation.scoring import evaluate

    frames = load_ground_truth(DEV_SET)

    def scores(size_floor):
        found = detect_all(detector, frames, lambda g: decode_view(
            jpeg_message(g.path), size_floor=size_floor))
        return evaluate(frames, found, None, detector.label_names, iou=0.3)

    full, reduced = scores(None), scores(detector.decode_floor)
    # Measured, cars found / false positives per image over all classes: PicoDet (1/2 scale)
    # 574 and 3.3 (full) vs 574 and 2.8 (reduced); YOLOX-Nano (1/4 scale) 486 and 1.3 vs 498 and
    # 0.6. YOLOX reports fewer trucks from a 1/4-scale decode (47 -> 28 of 100, false positives
    # 51 -> 16): docs/performance.md.
    assert reduced.classes["car"].tp >= full.classes["car"].tp - 3
    assert reduced.fp_per_image <= full.fp_per_image + 0.5


def test_decode_floor_is_off_when_disabled_or_tiling():
    off = ObjectDetector(DetectorConfig(reduced_jpeg_decode=False), CPU)
    assert off.decode_floor is None
    tiled = ObjectDetector(DetectorConfig(), CPU, TilingConfig(mode="horizon_bands"))
    assert tiled.decode_floor is None
    # A reduced view handed to a tiling detector anyway still reports full-image pixels.
    view = decode_view(jpeg_message(JPEGS[0]), size_floor=lambda w, h: (416, 416))
    dets = tiled.detect([view])[0]
    assert len(dets) and dets.boxes[:, 2].max() > 960 and dets.boxes[:, 2].max() <= 1920


def test_bad_full_size_is_a_clear_error():
    det = ObjectDetector(DetectorConfig(), CPU)
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ImageDecodeError, match="full_size"):
        det.detect([ImageView(image, "bgr", (0, 100))])


def test_replay_of_full_hd_jpegs_reports_full_image_pixels(tmp_path):
    from replay_helpers import FRONT, SAMPLE_BAG, copy_bag, read_output
    from rosbags.typesys import Stores, get_typestore

    from sense_perception.replay.engine import ReplayOptions, Replayer

    store = get_typestore(Stores.ROS2_JAZZY)
    frames = iter(JPEGS)

    def full_hd(topic, msgtype, timestamp, raw):
        if topic != FRONT:
            return []
        msg = store.deserialize_cdr(raw, msgtype)
        msg.data = np.fromfile(str(next(frames)), np.uint8)
        return [(topic, msgtype, timestamp, bytes(store.serialize_cdr(msg, msgtype)))]

    bag = copy_bag(SAMPLE_BAG, tmp_path / "hd", edit=full_hd)
    detections = {}
    # Two decodes of one model: without the duplicates step, whose nested-box and one-label-per-
    # vehicle choices may fall either way for boxes a pixel apart (tested in test_duplicates.py).
    no_duplicates = DuplicateSettings(nested_containment=0.0, vehicle_nms_iou=0.0)
    for reduced in (True, False):
        det = ObjectDetector(DetectorConfig(reduced_jpeg_decode=reduced, duplicates=no_duplicates), CPU)
        out = tmp_path / f"out_{reduced}"
        result = Replayer(ReplayOptions(bag, out, topics=[FRONT], video=reduced),
                          detector=det).run()
        assert result.summary["frames"] == 4 and result.complete
        if reduced:  # the annotated video shows the camera's full resolution, not the decode's
            (video,) = result.videos
            capture = cv2.VideoCapture(str(video))
            ok, first = capture.read()
            capture.release()
            assert ok and first.shape == (1080, 1920, 3)
        detections[reduced] = [m.ros_msg for m in read_output(out / "bag")
                               if m.channel.topic.endswith("/detections")]
    assert len(detections[True]) == len(detections[False]) == 4
    for fast, slow in zip(detections[True], detections[False], strict=True):
        assert (fast.header.stamp.sec, fast.header.stamp.nanosec) == (slow.header.stamp.sec,
                                                                      slow.header.stamp.nanosec)
        centres = np.array([[d.bbox.center.position.x, d.bbox.center.position.y]
                            for d in fast.detections])
        assert centres[:, 0].max() > 960  # full-image pixels, not the 960x540 decode's
        strong = [d for d in slow.detections if d.results[0].hypothesis.score >= 0.5]
        assert strong
        for d in strong:
            near = [e for e in fast.detections
                    if e.results[0].hypothesis.class_id == d.results[0].hypothesis.class_id
                    and abs(e.bbox.center.position.x - d.bbox.center.position.x) < 0.25 * d.bbox.size_x
                    and abs(e.bbox.center.position.y - d.bbox.center.position.y) < 0.25 * d.bbox.size_y]
            assert near, f"strong {d.results[0].hypothesis.class_id} lost at reduced decode"
