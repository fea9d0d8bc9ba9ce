"""R32: a simulator reset, a paused simulation and a recording played in a loop.

Time jumps back (to near 0 after a scenario restart, to the first stamp at each loop of
``ros2 bag play --loop``) or stands still (a paused simulation). Every stateful part must go on
from there: nothing waits for the old time to come back, nothing is held for ever.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from sense_perception.cli.main import main
from sense_perception.face.decision import DriverState
from sense_perception.face.gallery import GalleryStore
from sense_perception.face.pipeline import DriverIdentifier, FaceEngine
from sense_perception.replay.diagnostics import ArrivalClock
from sense_perception.replay.video import CameraVideo

from replay_helpers import FRONT, SAMPLE_BAG, read_output
from test_face_identity import OBAMA, enrol, face_engine, read, settings


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceEngine]:
    yield from face_engine(tmp_path_factory)


def _frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def test_the_video_grid_goes_on_after_time_jumps_back_or_far_ahead(tmp_path):
    """A 1 Hz camera on a 10 fps grid: each frame is held over its second. After the stamps went
    back (a loop) no frame was held again until they passed where they had been (the second loop
    played 10 times too fast); after a jump ahead every later frame was held max_hold times."""
    image = np.zeros((32, 48, 3), np.uint8)
    video = CameraVideo(tmp_path / "loop.mp4", fps=10.0)
    for _loop in range(2):
        for i in range(5):
            video.write(image, 1000.0 + i)  # 1000..1004 s, then the same again
    video.close()
    # each loop: 1 + 4 x 10 slots; the step back itself is not held
    assert video._slots == _frames(tmp_path / "loop.mp4") == 82

    video = CameraVideo(tmp_path / "ahead.mp4", fps=10.0, max_hold_s=2.0)
    for i in range(10):
        video.write(image, 0.1 * i)  # 10 Hz
    for i in range(10):
        video.write(image, 5000.0 + 0.1 * i)  # a simulation restarted at a later time
    video.close()
    # the jump is held 2 s (max_hold), the frames after it are not held again (was 10 + 10 x 21)
    assert video._slots == _frames(tmp_path / "ahead.mp4") == 10 + 20 + 10

    video = CameraVideo(tmp_path / "paused.mp4", fps=10.0)
    for _ in range(5):
        video.write(image, 7.0)  # a paused simulation: one stamp, frames keep coming
    video.write(image, 7.1)
    video.close()
    assert video._slots == 6


def test_the_arrival_clock_takes_a_step_back_as_no_time_passing():
    """The replay's health clock (silences, condition seconds, the once-a-second /diagnostics)
    waited, on a step back in receive time, for the bag time to pass where it had been. The bag
    readers give time order now (a folder of two loops is merged: R31), and the clock never goes
    back for a stream that does step back."""
    clock = ArrivalClock()
    loop = [0, 10**9, 4 * 10**9, 7 * 10**9]
    assert [clock.step(t) for t in loop + loop] == [0, 10**9, 4 * 10**9, 7 * 10**9,
                                                    7 * 10**9, 8 * 10**9, 11 * 10**9, 14 * 10**9]


def test_a_folder_of_two_loops_is_replayed_in_receive_time_order(tmp_path):
    """The same recording twice in one bag folder (two loops, or a recording on simulation time
    split across a reset): its files are merged by receive time, as rosbags reads one MCAP file,
    so every frame is replayed and time never steps back in the replay."""
    bag = tmp_path / "looped"
    bag.mkdir()
    for i in range(2):
        shutil.copy(SAMPLE_BAG / "sample_bag.mcap", bag / f"loop_{i}.mcap")
    out = tmp_path / "out"
    assert main(["replay", str(bag), "--out", str(out), "--topics", FRONT, "--video"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 8
    received = []
    for m in read_output(out / "bag"):
        if m.channel.topic == "/diagnostics":
            status = next(s for s in m.ros_msg.status if s.name.endswith("object_detector"))
            received.append(int({v.key: v.value for v in status.values}["frames_received"]))
    # once a second of the merged bag time (frames 1 s, 3 s and 3 s apart, two at each) and at
    # the end: every frame counted, in order
    assert received == sorted(received) and received[-1] == 8 and len(received) >= 4, received
    assert _frames(out / "video" / "camera_front_image_raw_compressed.mp4") >= 8


def test_a_settled_identity_is_checked_again_while_the_stamps_stand_still(tmp_path, engine,
                                                                          monkeypatch):
    """identity.embed_interval_s skips the embedding of a settled face for that long: measured on
    the stamps alone, a paused simulation's (or a camera's that never sets them) skipped it for
    as long as they stood still, and the identity was never checked again. The monotonic clock
    bounds the skip too, as it does the gallery's re-read."""
    store = GalleryStore(tmp_path / "gallery.json")
    face = read(OBAMA[1])
    _, _, emb, _ = engine.driver_embedding(read(OBAMA[0]))
    enrol(store, "Barack", emb)
    ident = DriverIdentifier(settings(store.path, **{"identity.embed_interval_s": 0.2,
                                                     "attention.enabled": False}), store, engine)
    embedded: list[int] = []
    original = ident.engine.embed
    monkeypatch.setattr(ident.engine, "embed",
                        lambda image, marks: embedded.append(1) or original(image, marks))
    states = [ident.process(face, 0.1 * i).state for i in range(8)]
    assert states[-1] is DriverState.IDENTIFIED
    before = len(embedded)
    for _ in range(3):  # paused: one stamp, while the frames (and wall time) go on
        time.sleep(0.25)
        assert ident.process(face, 0.1 * 7).state is DriverState.IDENTIFIED  # the same stamp
    assert len(embedded) >= before + 2, "no embedding while the stamps stood still"
