"""Camera health shared by a node's two threads (SECURITY.md R55): the inference thread judges
frames while the diagnostics timer checks for silence. The interleavings are driven explicitly
(no timing assertion): the frame is handed to another thread at the exact point of the check
where the old code let it in."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from sense_perception.core.health.camera_health import ERROR, OK, CameraHealthBank
from sense_perception.core.health.camera_settings import CameraHealthSettings
from sense_perception.core.output.status import name_camera_faults

from support import REPO

TOPIC = "/cam/image_raw"
STREET = REPO.parent / "shared" / "data" / "street_labelled" / "pandaset_seq002_front" / "00.jpg"


def _frames() -> list[np.ndarray]:
    street = cv2.resize(cv2.imread(str(STREET)), (320, 180))
    rng = np.random.default_rng(0)
    return [np.clip(street.astype(np.int16) + rng.integers(-3, 4, street.shape), 0, 255)
            .astype(np.uint8) for _ in range(4)]


def _bank_gone_silent() -> tuple[CameraHealthBank, list[np.ndarray]]:
    """A 10 Hz camera that sent frames until t=100.3 s and then stopped (silent after 1 s)."""
    frames = _frames()
    bank = CameraHealthBank([TOPIC], CameraHealthSettings(expected_rate_hz=10.0), keep_events=False)
    bank.start(100.0)
    for i in range(3):
        assert bank.update(TOPIC, frames[i], 100.0 + i / 10, "cam", 100.0 + i / 10)["level"] == OK
    return bank, frames


def test_a_frame_arriving_during_the_silence_check_leaves_the_camera_not_silent():
    # The timer's check read the camera's last arrival (silent: 2 s without a frame), the
    # resumed camera's frame was judged on the inference thread (silent stays clear: it was
    # not raised yet), then the check raised `silent` from what it had read: the camera that
    # had just resumed stayed `silent` (ERROR) in /diagnostics until its next frame.
    bank, frames = _bank_gone_silent()
    stream = bank.monitors[TOPIC]._stream
    read_silence = stream.silent
    judged: list[dict] = []
    entered = threading.Event()

    def frame_thread() -> None:
        entered.set()
        judged.append(bank.update(TOPIC, frames[3], 102.2, "cam", 102.2))

    worker = threading.Thread(target=frame_thread)

    def silent_then_a_frame(now: float) -> bool:
        verdict = read_silence(now)  # the old last arrival: silent
        worker.start()  # the camera resumes: its frame is judged now
        assert entered.wait(10)
        worker.join(0.3)  # done at once on the old code; waits for the check on the new one
        return verdict

    stream.silent = silent_then_a_frame  # type: ignore[method-assign]
    bank.check(102.25)
    worker.join(10)
    assert not worker.is_alive()
    # (a gap of 19 periods: late, WARN, as for any camera that resumes)
    assert judged and judged[0]["message"] == "late, stamp_jump"
    status = bank.status(TOPIC)
    # was "silent, late, stamp_jump", ERROR, until the camera's next frame
    assert status["message"] == "late, stamp_jump", status
    assert bank.faults() == {}


def test_one_diagnostics_report_never_disagrees_with_itself():
    # The node named its cameras in ERROR (``camera_faults``, its own status's message) before
    # the silence check and published the cameras' statuses after it: one /diagnostics array
    # said "camera_faults: none" beside a camera status saying `silent` (ERROR).
    bank, _ = _bank_gone_silent()
    faults, statuses = bank.report(102.0)
    assert [s["level"] for s in statuses] == [ERROR] and "silent" in statuses[0]["message"]
    assert faults == f"{TOPIC} (silent)"
    named = name_camera_faults({"level": OK, "message": "ok"}, faults)
    assert named["message"] == f"camera fault: {TOPIC} (silent)"


def test_a_frame_waiting_behind_a_slow_inference_is_no_silence():
    """The silence was counted from the last frame judged: a 10 Hz camera whose frames waited
    in the node while one inference took 3 s (a batch of many cameras on a CPU) was raised
    ``silent`` (ERROR) in /diagnostics, and driver attention told of a camera fault, although
    the camera sent at its rate. A frame received and not yet judged now counts (R66); one
    taken and dropped unjudged (it could not be decoded) does not. Clocks injected."""
    bank, frames = _bank_gone_silent()  # judged until 100.2 s
    for i in range(3, 30):  # the camera goes on while the inference of 100.2's frame runs
        bank.received(TOPIC, 100.0 + i / 10)
    faults, [status] = bank.report(102.95)
    assert faults == "" and status["level"] == OK and status["message"] == "ok"
    # the frame taken next cannot be decoded (dropped unjudged): it proves nothing, and the
    # camera sends nothing more: silent, counted from the last frame judged
    bank.settle(TOPIC, 102.9)
    faults, [status] = bank.report(102.95)
    assert status["level"] == ERROR and "silent" in faults
    # a newer frame waiting is not settled by an older one taken
    bank.received(TOPIC, 103.5)
    bank.settle(TOPIC, 103.4)
    assert bank._waiting == {TOPIC: 103.5}
    bank.update(TOPIC, frames[3], 103.5, "cam", 103.5)  # judged: nothing waits
    assert bank._waiting == {} and "silent" not in bank.fault_text()


def test_a_slow_inference_is_no_late_or_rate_of_a_camera_sending_on_time():
    """The stream timing measured the frames judged: a 10 Hz camera whose frames waited behind a
    0.3 s inference (two of three replaced in the node's slot, unjudged) showed 3.3 Hz, ``rate``
    (WARN) for as long as it ran, and one inference of 1.5 s made it ``late`` and
    ``stamp_jump``, while the camera sent every frame on time. Every frame received is measured
    now (R69); a camera that really pauses is still ``late``, judged or not."""
    frames = _frames()
    bank = CameraHealthBank([TOPIC], CameraHealthSettings(expected_rate_hz=10.0), keep_events=False)
    bank.start(100.0)
    judged = [i for i in range(0, 75, 3)] + [i for i in range(90, 120, 3)]  # 1.5 s at 75..90
    for i in range(120):
        t = 100.0 + i / 10
        bank.received(TOPIC, t, t, "cam")
        if i in judged:
            status = bank.update(TOPIC, frames[i % 4], t, "cam", t)
            # was `rate` from the 20th frame judged, `late, rate, stamp_jump` at 90
            assert status["message"] == "ok", (i, status)
    values = dict((v["key"], v["value"]) for v in status["values"])
    assert values["rate_hz"] == "10.0" and values["gap_s"] == "0.1", values
    # the camera itself pauses 1.5 s; the frame after the pause is replaced unjudged
    bank.received(TOPIC, 113.5, 113.5, "cam")
    bank.received(TOPIC, 113.6, 113.6, "cam")
    status = bank.update(TOPIC, frames[0], 113.6, "cam", 113.6)
    assert "late" in status["message"] and "stamp_jump" in status["message"], status



def test_a_lens_covered_behind_a_slow_inference_is_raised_within_its_frames_not_five_inferences():
    """The hysteresis counted frames judged: a 10 Hz camera judged every 12th frame (a 1.2 s
    inference) turned black raised ``dark`` (3 frames) 2.4 s after the first black frame judged,
    and ``blocked``-like conditions (5 frames) 4.8 s after it, while a replay of the same camera
    raised them in 0.2 and 0.4 s. Each frame judged now stands for the frames received since
    the one before; a replay of the same frames, every one judged, is unchanged."""
    frames = _frames()
    black = np.zeros_like(frames[0])

    def run(every: int) -> float:
        """When (seconds after the first black frame) ``dark`` is raised, judging every Nth."""
        bank = CameraHealthBank([TOPIC], CameraHealthSettings(expected_rate_hz=10.0),
                                keep_events=False)
        bank.start(100.0)
        for i in range(200):
            t = 100.0 + i / 10
            image = frames[i % 4] if i < 60 else black  # covered at 106.0 s
            bank.received(TOPIC, t, t, "cam")
            if i % every == 0:
                status = bank.update(TOPIC, image, t, "cam", t)
                if "dark" in status["message"]:
                    assert i >= 60, (i, status)  # never before the lens is covered
                    return round(t - 106.0, 3)
        raise AssertionError("dark never raised")

    assert run(12) == 1.2  # the second black frame judged (was 2.4: the third)
    assert run(1) == 0.2  # every frame judged: three black frames, as before

def test_the_period_learnt_is_the_cameras_not_the_inferences():
    """Without ``expected_rate_hz`` the period was learnt from the stamps of the frames judged:
    behind a 0.3 s inference a 10 Hz camera was taken for a 3.3 Hz one (``expected_hz``), and
    its silence counted in periods three times too long."""
    frames = _frames()
    bank = CameraHealthBank([TOPIC], CameraHealthSettings(), keep_events=False)
    bank.start(100.0)
    for i in range(45):
        t = 100.0 + i / 10
        bank.received(TOPIC, t, t, "cam")
        if i % 3 == 0:
            status = bank.update(TOPIC, frames[i % 4], t, "cam", t)
    values = dict((v["key"], v["value"]) for v in status["values"])
    assert values["expected_hz"] == "10.0" and status["message"] == "ok", status
    # silence still counts from the last frame judged or waiting: 1.1 s after it, 11 periods
    faults, _ = bank.report(104.4 + 1.1)
    assert faults == f"{TOPIC} (silent)"


def test_a_stamp_repeated_once_between_two_frames_judged_is_no_frozen_camera():
    """A 15 Hz sensor whose driver publishes each frame twice at 30 Hz, with its capture stamp:
    the replay, judging every frame, saw the stamp stand still on every other frame and never
    raised ``frozen`` (5 in a row); a node judging every second or third frame (behind its
    inference) carried the repeat to each frame judged and raised ``frozen`` (ERROR, a camera
    fault) after five. A stream whose stamps stand still on every frame stays ``frozen``."""
    frames = _frames()
    for every in (1, 2, 3):
        bank = CameraHealthBank([TOPIC], CameraHealthSettings(), keep_events=False)
        bank.start(100.0)
        for i in range(60):
            t, stamp = 100.0 + i / 30, 100.0 + (i // 2) / 15
            bank.received(TOPIC, t, stamp, "cam")
            if i % every == every - 1:
                status = bank.update(TOPIC, frames[(i // 2) % 4], stamp, "cam", t)
                assert "frozen" not in status["message"], (every, i, status["message"])
        # the stamps stand still from here: frozen on the frames judged, whichever they are
        for i in range(60, 90):
            bank.received(TOPIC, 100.0 + i / 30, 102.0, "cam")
            if i % every == every - 1:
                status = bank.update(TOPIC, frames[i % 4], 102.0, "cam", 100.0 + i / 30)
        assert "frozen" in status["message"], (every, status["message"])
