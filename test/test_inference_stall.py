"""InferenceWatch (SECURITY.md R69): a batch whose inference never returns is named, with the
frames that wait behind it, once it has run longer than ``inference_stall_s``; the worker's
thread is really stuck in ``detect`` here, the time is an injected clock."""
from __future__ import annotations

import threading

import numpy as np

from sense_perception.core.health.inference_guard import InferenceWatch, safe_detect


class _HungDetector:
    """``detect`` that does not return until released (a hung GPU call)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def detect(self, images):
        self.entered.set()
        self.release.wait(30)
        return [[] for _ in images]


def test_a_batch_that_never_returns_is_named_with_the_frames_waiting_behind_it():
    now = [50.0]
    watch = InferenceWatch(clock=lambda: now[0])
    detector = _HungDetector()
    frames = [np.zeros((32, 32, 3), np.uint8)] * 2
    took: list[float | None] = []

    def worker() -> None:
        watch.begin(["/a/image_raw", "/b/image_raw"], {"/a/image_raw": 4, "/b/image_raw": 4})
        try:
            safe_detect(detector, frames)
        finally:
            took.append(watch.end())

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert detector.entered.wait(10)
        received = {"/a/image_raw": 4, "/b/image_raw": 4}
        now[0] = 54.0
        assert watch.running_s() == 4.0 and watch.stalled(5.0, received) is None
        now[0] = 56.0
        text, first = watch.stalled(5.0, received)
        assert first and text.startswith(
            "inference has not returned for 6 s (inference_stall_s 5; its batch: /a/image_raw, "
            "/b/image_raw); no frame has arrived since it began")
        received["/b/image_raw"] = 9  # one camera goes on sending
        text, first = watch.stalled(5.0, received)
        assert not first and "frames are waiting: 5 received since it began (/b/image_raw: 5)" in text
        assert "restart the node" in text
    finally:
        detector.release.set()
        thread.join(10)
    assert took == [6.0]  # said to have stalled: the caller logs that it returned
    assert watch.running_s() is None and watch.stalled(5.0, received) is None
    watch.begin(["/a/image_raw"], received)  # a batch that returns in time is no stall
    assert watch.end() is None
