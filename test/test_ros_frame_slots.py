"""Latest-first frame slots of the nodes (ROS-free; waits bounded, durations never asserted)."""
from __future__ import annotations

import threading

from sense_perception.ros.frame_slots import LatestFrames


def test_newest_frame_wins_and_stale_ones_are_counted():
    stale: list[int] = []
    slots = LatestFrames(2, on_stale=stale.append)
    assert not slots.put(0, "a1")
    assert slots.put(0, "a2")  # a1 was never taken: dropped
    assert slots.put(0, "a3")
    assert not slots.put(1, "b1")
    frames = slots.take(timeout=1.0)
    assert [(f.source, f.msg) for f in frames] == [(0, "a3"), (1, "b1")]
    assert stale == [0, 0]
    assert slots.take(timeout=0.01) == []  # nothing is queued behind the newest frames


def test_gather_waits_for_the_other_cameras():
    slots = LatestFrames(2)
    slots.put(0, "a")
    threading.Timer(0.05, slots.put, args=(1, "b")).start()
    frames = slots.take(timeout=1.0, gather_s=5.0)  # returns as soon as every camera has a frame
    assert [f.msg for f in frames] == ["a", "b"]


def test_close_releases_a_waiting_worker():
    slots = LatestFrames(1)
    result: list = []
    t = threading.Thread(target=lambda: result.append(slots.take(timeout=30.0)))
    t.start()
    slots.close()
    t.join(timeout=10.0)
    assert not t.is_alive() and result == [[]]
    assert slots.closed and slots.take(timeout=0.01) == []


def test_clear_drops_waiting_frames():
    slots = LatestFrames(3)
    slots.put(0, 1)
    slots.put(2, 3)
    assert slots.clear() == 2
    assert slots.take(timeout=0.01) == []
