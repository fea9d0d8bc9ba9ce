"""HealthStats: the ROS-free numbers behind /diagnostics (no timing asserted: an injected clock)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from sense_perception.core.output import messages
from sense_perception.core.health.stats import HealthStats


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def values(status: dict) -> dict[str, str]:
    return {kv["key"]: kv["value"] for kv in status["values"]}


def test_counts_rates_and_latency_percentiles():
    clock = Clock()
    h = HealthStats(["/a", "/b"], latency_window=100, clock=clock)
    for i in range(11):  # 10 Hz on /a for one second
        clock.t = 100.0 + i * 0.1
        h.frame_received("/a")
    h.frames_processed(np.linspace(0.001, 0.100, 100))  # 1..100 ms
    h.frames_dropped_stale(3)
    snap = h.snapshot(no_input_after_s=3.0)
    assert snap.received == 11 and snap.processed == 100 and snap.dropped_stale == 3
    assert snap.input_rate_hz["/a"] == pytest.approx(10.0)
    assert snap.input_rate_hz["/b"] == 0.0 and snap.seconds_since_input["/b"] is None
    assert snap.latency_p50_ms == pytest.approx(50.5, abs=0.01)
    assert snap.latency_p99_ms == pytest.approx(99.01, abs=0.01)


def test_latency_ring_keeps_only_the_newest_window():
    h = HealthStats(latency_window=10)
    h.frames_processed(np.full(25, 1.0))
    for _ in range(10):
        h.frame_processed(0.002)
    snap = h.snapshot()
    assert snap.processed == 35
    assert snap.latency_p99_ms == pytest.approx(2.0)


def test_report_levels_error_then_recovery():
    clock = Clock()
    h = HealthStats(["/cam"], clock=clock)
    h.frame_received("/cam")
    status = h.report("/object_detector", "CPUExecutionProvider", {"state": "active"})
    assert status["level"] == messages.OK and status["message"] == "ok"
    assert list(values(status))[0] == "state"  # node-specific values come first
    h.decode_error("/cam", "step: 10 is smaller than width * 3 = 1920")
    status = h.report("/object_detector")
    assert status["level"] == messages.ERROR
    assert "1 frame(s) failed to decode" in status["message"] and "/cam: step" in status["message"]
    assert values(status)["decode_errors"] == "1"
    status = h.report("/object_detector")  # nothing new since the previous report
    assert status["level"] == messages.OK and values(status)["decode_errors"] == "1"
    h.inference_error("RuntimeError: boom", frames=2)
    status = h.report("/object_detector")
    assert status["level"] == messages.ERROR and "inference failed 1 time(s)" in status["message"]
    assert values(status)["frames_dropped_error"] == "2"


def test_no_input_and_qos_events_warn():
    clock = Clock()
    h = HealthStats(["/cam", "/other"], clock=clock)
    clock.t += 5.0
    h.frame_received("/other")
    status = h.report("n", no_input_after_s=3.0)
    assert status["level"] == messages.WARN
    assert "no input for 3 s on /cam" in status["message"] and "/other" not in status["message"]
    assert h.report("n", no_input_after_s=3.0, expect_input=False)["level"] == messages.OK
    h.restart_silence_clock()
    assert h.report("n", no_input_after_s=3.0)["level"] == messages.OK
    h.qos_event("/cam: a publisher offers incompatible QoS (RELIABILITY); total 1")
    status = h.report("n")
    assert status["level"] == messages.WARN and "incompatible QoS" in status["message"]
    assert values(status)["qos_incompatible_events"] == "1"


def test_thread_safe_counting():
    h = HealthStats(["/cam"])

    def worker() -> None:
        for _ in range(2000):
            h.frame_received("/cam")
            h.frame_processed(0.01)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    snap = h.snapshot()
    assert snap.received == 8000 and snap.processed == 8000
