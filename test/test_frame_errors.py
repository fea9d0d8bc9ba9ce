"""FrameErrorLedger (counts of lost frames by kind), InputLimits (``input.*``) and safe_decode's API."""
from __future__ import annotations

import array
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from sense_perception.config import load_params
from sense_perception.core.imaging.frame_errors import (DECODE_PREFIX, INFERENCE, STALE,
                                                        FrameErrorLedger, decode_kind)
from sense_perception.core.imaging.frame_guard import (MIN_FRAME_PX, DecodeResult, InputLimits,
                                                       safe_decode)
from sense_perception.errors import ConfigError, ImageDecodeError

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"


def Image(height: Any, width: Any, encoding: Any, is_bigendian: Any, step: Any, data: Any) -> SimpleNamespace:
    """An object with the fields of sensor_msgs/Image (the decoders read fields by name)."""
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
                           step=step, data=data)


def CompressedImage(format: Any, data: Any) -> SimpleNamespace:  # noqa: A002 - the message's field name
    """An object with the fields of sensor_msgs/CompressedImage."""
    return SimpleNamespace(format=format, data=data)


# --- FrameErrorLedger -----------------------------------------------------------------------------


def test_counts_frames_by_kind_with_last_message_and_source() -> None:
    ledger = FrameErrorLedger()
    assert ledger.as_dict() == {"total": 0, "kinds": {}}
    kind = ledger.record_decode_error(ImageDecodeError("step", "17 is less than 18"), "/cam/front")
    assert kind == "decode.step"
    ledger.record_decode_error(ImageDecodeError("step", "5 is less than 6"), "/cam/rear")
    ledger.record_decode_error(ImageDecodeError("data", "truncated JPEG"), "/cam/front")
    ledger.record_inference_error(RuntimeError("CUDA out of memory"), frames=4, source="detector")
    ledger.record_stale(3, "/cam/front")
    ledger.record("dropped.queue_full", "queue of 2 full", 2)

    assert ledger.count("decode.step") == 2 and ledger.count("decode.data") == 1
    assert ledger.count(INFERENCE) == 4 and ledger.count(STALE) == 3 and ledger.count("nothing") == 0
    assert ledger.total() == 12 and ledger.total(DECODE_PREFIX) == 3 and ledger.total("dropped.") == 2
    assert ledger.last_message("decode.step") == "step: 5 is less than 6"
    assert ledger.last_message(INFERENCE) == "RuntimeError: CUDA out of memory"
    assert ledger.last_message("never") is None
    assert ledger.as_dict() == {
        "total": 12,
        "kinds": {
            "decode.data": {"count": 1, "last_message": "data: truncated JPEG", "last_source": "/cam/front"},
            "decode.step": {"count": 2, "last_message": "step: 5 is less than 6", "last_source": "/cam/rear"},
            "dropped.queue_full": {"count": 2, "last_message": "queue of 2 full", "last_source": ""},
            "inference": {"count": 4, "last_message": "RuntimeError: CUDA out of memory",
                          "last_source": "detector"},
            "stale": {"count": 3, "last_message": "3 frame(s) replaced by newer ones before processing",
                      "last_source": "/cam/front"},
        },
    }


def test_diagnostic_values_are_flat_strings() -> None:
    ledger = FrameErrorLedger()
    ledger.record_decode_error(ImageDecodeError("encoding", "'nv12' is not supported"), "/cam/front")
    ledger.record_inference_error("session failed", frames=2)
    values = ledger.diagnostic_values()
    assert values == {
        "lost_frames": "3",
        "lost[decode.encoding]": "1",
        "last_error[decode.encoding]": "/cam/front: encoding: 'nv12' is not supported",
        "lost[inference]": "2",
        "last_error[inference]": "session failed",
    }
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())


def test_long_messages_are_cut() -> None:
    ledger = FrameErrorLedger(max_message_chars=20)
    ledger.record(INFERENCE, "x" * 1000)
    assert ledger.last_message(INFERENCE) == "x" * 17 + "..."
    ledger.record(INFERENCE, "y" * 20)
    assert ledger.last_message(INFERENCE) == "y" * 20


def test_reset_returns_the_snapshot_and_clears() -> None:
    ledger = FrameErrorLedger()
    ledger.record_stale(5)
    before = ledger.as_dict()
    assert ledger.reset() == before and before["total"] == 5
    assert ledger.as_dict() == {"total": 0, "kinds": {}}


@pytest.mark.parametrize("kind,frames", [("", 1), ("stale", -1)])
def test_record_rejects_caller_bugs(kind: str, frames: int) -> None:
    with pytest.raises(ValueError):
        FrameErrorLedger().record(kind, "m", frames)


def test_decode_kind() -> None:
    assert decode_kind("height*width") == "decode.height*width"


def test_concurrent_records_are_all_counted() -> None:
    ledger = FrameErrorLedger()
    n_threads, per_thread = 8, 2000
    kinds = [decode_kind("step"), decode_kind("data"), INFERENCE, STALE]
    start = threading.Barrier(n_threads + 1)
    snapshots: list[dict] = []
    done = threading.Event()

    def writer(i: int) -> None:
        start.wait()
        for j in range(per_thread):
            ledger.record(kinds[(i + j) % len(kinds)], f"thread {i} item {j}", 1, f"/t{i}")

    def reader() -> None:
        start.wait()
        while not done.is_set():
            snapshots.append(ledger.as_dict())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_threads)]
    watcher = threading.Thread(target=reader)
    for t in threads + [watcher]:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()

    assert ledger.total() == n_threads * per_thread
    for kind in kinds:
        assert ledger.count(kind) == n_threads * per_thread // len(kinds)
    # Snapshots are consistent (total == sum of counts) and never go backwards.
    totals = [s["total"] for s in snapshots]
    assert all(s["total"] == sum(k["count"] for k in s["kinds"].values()) for s in snapshots)
    assert totals == sorted(totals)


# --- InputLimits: the input.* parameters ----------------------------------------------------------------


def test_defaults_fit_car_cameras() -> None:
    limits = InputLimits()
    assert (limits.max_width, limits.max_height) == (8192, 8192)
    assert limits.max_pixels == 40_000_000 and limits.max_compressed_bytes == 32 * 1024 * 1024
    assert limits.max_pixels >= 3840 * 2160 * 4  # four stitched 4K frames
    assert 3 * limits.max_pixels <= 128 * 1024 * 1024  # one decoded BGR frame stays below 128 MiB


def write_params(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [/cam]\n    input:\n" + body)
    return path


def test_limits_from_ros_parameter_yaml(tmp_path: Path) -> None:
    path = write_params(tmp_path, "      max_width: 4096\n      max_pixels: 10000000\n")
    limits = InputLimits.from_params(load_params(path, "object_detector"), str(path))
    assert limits == InputLimits(max_width=4096, max_pixels=10_000_000)


@pytest.mark.parametrize(
    "body,words",
    [
        ("      max_widht: 4096\n", ["input.max_widht", "input.max_width"]),
        ("      max_width: 0\n", ["input.max_width", "positive"]),
        ("      max_pixels: -5\n", ["input.max_pixels", "positive"]),
        ("      max_compressed_bytes: big\n", ["input.max_compressed_bytes", "int"]),
    ],
)
def test_bad_limits_are_config_errors(tmp_path: Path, body: str, words: list[str]) -> None:
    path = write_params(tmp_path, body)
    with pytest.raises(ConfigError) as excinfo:
        InputLimits.from_params(load_params(path, "object_detector"), str(path))
    for word in words:
        assert word in str(excinfo.value)
    assert str(path) in str(excinfo.value)


# --- safe_decode's contract -----------------------------------------------------------------------------


def test_frames_below_the_perception_floor_are_invalid_frames_raw_and_compressed() -> None:
    street = cv2.imread(str(STREET / "pandaset_seq002_front_camera_00.jpg"), cv2.IMREAD_COLOR)
    crop = np.ascontiguousarray(street[500:520, 800:830])  # 30x20 px: decodes, but is no frame
    jpeg = CompressedImage("jpeg", cv2.imencode(".jpg", crop)[1].tobytes())
    for msg in (Image(20, 30, "bgr8", 0, 90, crop.tobytes()), jpeg):
        for zero_copy in (False, True):
            ledger = FrameErrorLedger()
            image, error = safe_decode(msg, ledger=ledger, zero_copy=zero_copy, min_px=MIN_FRAME_PX)
            assert image is None and error.field == "size"
            assert "invalid frame: 30x20 px is too small to process (at least 32x32)" in str(error)
            assert "tiling" not in str(error) and ledger.as_dict()["total"] == 1
            assert safe_decode(msg, zero_copy=zero_copy).error is None  # only where asked
    whole = Image(*street.shape[:2], "bgr8", 0, street.shape[1] * 3, street.tobytes())
    assert safe_decode(whole, min_px=MIN_FRAME_PX).error is None


def test_result_is_a_pair() -> None:
    crop = cv2.imread(str(STREET / "pandaset_seq002_front_camera_00.jpg"), cv2.IMREAD_COLOR)[500:520, 800:830]
    msg = Image(20, 30, "bgr8", 0, 90, crop.tobytes())
    image, error = safe_decode(msg)
    assert error is None and isinstance(safe_decode(msg), DecodeResult)
    np.testing.assert_array_equal(image, crop)
    image, error = safe_decode(Image(20, 30, "bgr8", 0, 89, crop.tobytes()))  # no ledger: fine
    assert image is None and error.field == "step"


def test_compressed_size_limit_counts_every_container() -> None:
    data = (STREET / "pandaset_seq002_front_camera_00.jpg").read_bytes()
    limits = InputLimits(max_compressed_bytes=len(data) - 1)
    ledger = FrameErrorLedger()
    for container in (bytes, bytearray, memoryview, lambda b: array.array("B", b),
                      lambda b: np.frombuffer(b, np.uint8)):
        _, error = safe_decode(CompressedImage("jpeg", container(data)), limits, ledger, "/cam")
        assert error.field == "data" and f"{len(data)} bytes" in str(error)
        assert "input.max_compressed_bytes" in str(error)
    assert ledger.count("decode.data") == 5
    assert safe_decode(CompressedImage("jpeg", data), InputLimits(max_compressed_bytes=len(data)))[1] is None


def test_unexpected_exceptions_become_counted_errors() -> None:
    class Hostile:
        @property
        def format(self) -> str:
            raise RuntimeError("driver bug")

    ledger = FrameErrorLedger()
    image, error = safe_decode(Hostile(), None, ledger, "/cam")
    assert image is None and error.field == "msg" and "RuntimeError" in str(error)
    assert ledger.count("decode.msg") == 1
    assert ledger.as_dict()["kinds"]["decode.msg"]["last_source"] == "/cam"


def test_shared_ledger_across_decoding_threads() -> None:
    ledger = FrameErrorLedger()
    good = Image(2, 2, "mono8", 0, 2, bytes(4))
    bad = Image(2, 2, "mono8", 0, 1, bytes(4))
    per_thread = 500

    def work() -> None:
        for i in range(per_thread):
            safe_decode(bad if i % 2 else good, None, ledger, "/cam")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.as_dict()["total"] == ledger.count("decode.step") == 4 * per_thread // 2
