"""The attention state machine on pose sequences: states, their timing, hysteresis and escalation.

The sequences are built from a recorded driver: the head poses and eye aspect ratios measured on
the eight cabin frames of the sample bag (one real face, slightly different each frame), played at
a fixed camera rate; a turned head adds a yaw offset to them, closed eyes scale their EAR. Time is
the stamps alone: these runs take milliseconds for minutes of stamped time.
"""
from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
from replay_helpers import CABIN, SAMPLE_BAG
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from sense_perception.config import section_from_params
from sense_perception.errors import ConfigError
from sense_perception.face.attention.state import (AttentionConfig, AttentionMonitor,
                                                   AttentionState, Observation)

ATTENTIVE, DISTRACTED = AttentionState.ATTENTIVE, AttentionState.DISTRACTED
EYES_CLOSED, DROWSY, NO_FACE = AttentionState.EYES_CLOSED, AttentionState.DROWSY, AttentionState.NO_FACE
CAMERA_FAULT = AttentionState.CAMERA_FAULT
RATE = 10.0  # Hz


@pytest.fixture(scope="module")
def recorded() -> list[Observation]:
    """The sample bag's cabin driver, measured frame by frame by the real pipeline."""
    from sense_perception.core.runtime.session import RuntimeOptions
    from sense_perception.face.attention.estimator import AttentionEstimator
    from sense_perception.face.yunet import YuNetDetector

    cpu = RuntimeOptions(providers=("CPUExecutionProvider",), intra_op_threads=1)
    detector, estimator = YuNetDetector(options=cpu), AttentionEstimator(options=cpu)
    store = get_typestore(Stores.ROS2_JAZZY)
    out = []
    with Reader(SAMPLE_BAG) as reader:
        for conn, _, raw in reader.messages([c for c in reader.connections if c.topic == CABIN]):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            image = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
            faces = detector.detect(image)
            measured = estimator.measure(image, faces.boxes[0], faces.landmarks[0])
            assert measured.measured, measured.reason
            out.append(measured.observation())
    assert len(out) == 8
    return out


class Driver:
    """Plays observations into a monitor at ``rate`` Hz; records (t, status) of every frame."""

    def __init__(self, recorded: list[Observation], config: AttentionConfig | None = None,
                 rate: float = RATE, t0: float = 1000.0) -> None:
        self.recorded, self.rate, self.t = recorded, rate, t0
        self.monitor = AttentionMonitor(config or AttentionConfig())
        self.frames: list[tuple[float, object]] = []
        self._k = 0

    def play(self, seconds: float, yaw: float = 0.0, eyes: float = 1.0, face: bool = True,
             yaw_abs: float | None = None, fault: bool = False):
        for _ in range(int(round(seconds * self.rate))):
            base = self.recorded[self._k % len(self.recorded)]
            self._k += 1
            obs = Observation(False, camera_fault=True) if fault else Observation(False) \
                if not face else Observation(
                True, base.yaw + yaw if yaw_abs is None else yaw_abs + (base.yaw - self.mean_yaw),
                base.pitch, base.ear * eyes)
            self.frames.append((self.t, self.monitor.update(self.t, obs)))
            self.t += 1.0 / self.rate
        return self.frames[-1][1]

    @property
    def mean_yaw(self) -> float:
        return float(np.mean([o.yaw for o in self.recorded]))

    def first(self, since: float, predicate) -> float:
        """Stamp of the first frame at or after ``since`` whose status satisfies ``predicate``."""
        return next(t for t, s in self.frames if t >= since - 1e-9 and predicate(s))


def test_recorded_driver_is_attentive_and_calibrates(recorded) -> None:
    d = Driver(recorded)
    status = d.play(10.0)
    assert status.state is ATTENTIVE and status.level == 0 and status.calibrated
    assert status.score == pytest.approx(1.0)
    # the neutral pose is the driver's own: the median of the calibration frames
    assert status.neutral_yaw == pytest.approx(np.median([o.yaw for o in recorded]), abs=0.5)
    assert status.ear_baseline == pytest.approx(np.median([o.ear for o in recorded]), rel=0.05)
    assert 0.8 < status.openness < 1.2 and not status.off_road and not status.eyes_closed
    assert math.isfinite(status.perclos) and status.perclos == 0.0


def test_distracted_after_the_configured_time_then_escalates_3_5_11(recorded) -> None:
    config = AttentionConfig()
    d = Driver(recorded, config)
    d.play(6.0)
    turned = d.t
    d.play(0.3, yaw=45.0)  # a glance shorter than distracted_after_s
    assert d.monitor.state is ATTENTIVE
    d.play(0.7, yaw=0.0)
    turned = d.t
    d.play(14.0, yaw=45.0)
    t_distracted = d.first(turned, lambda s: s.state is DISTRACTED)
    period = 1.0 / RATE
    assert config.distracted_after_s - 1e-6 <= t_distracted - turned <= config.distracted_after_s + period
    assert all(s.state is ATTENTIVE for t, s in d.frames if turned <= t < t_distracted)
    for level, after in zip((1, 2, 3), config.level_times_s, strict=True):
        t_level = d.first(t_distracted, lambda s, lv=level: s.level >= lv)
        # the inattention timer runs from the first distracted frame, one frame period late at most
        assert after - 1e-6 <= t_level - t_distracted <= after + period, (level, t_level - t_distracted)
        assert [s.alert for t, s in d.frames if t == t_level] == [True]
    assert d.frames[-1][1].level == 3 and d.frames[-1][1].level_score == pytest.approx(1.0)
    assert sum(s.alert for _, s in d.frames) == 3


def test_back_to_attentive_with_hysteresis_and_recovery(recorded) -> None:
    config = AttentionConfig()
    d = Driver(recorded, config)
    d.play(6.0)
    d.play(12.0, yaw=45.0)
    assert d.monitor.state is DISTRACTED and d.monitor.level == 3
    # Back inside the cone but outside its exit fraction (0.8): still off the road.
    inside = 0.9 * config.yaw_limit_deg
    d.play(2.0, yaw=inside)
    assert d.monitor.state is DISTRACTED and d.frames[-1][1].off_road
    back = d.t
    d.play(6.0, yaw=0.0)
    t_attentive = d.first(back, lambda s: s.state is ATTENTIVE)
    assert config.attentive_after_s - 1e-6 <= t_attentive - back <= config.attentive_after_s + 0.1
    levels = [s.level for t, s in d.frames if t >= t_attentive]
    assert levels == sorted(levels, reverse=True)  # the level only comes down while attentive
    # the terminal level ends with the first attentive interval, the prompt level after recovery
    assert levels[0] == 3 and levels[1] == 2
    # openpilot's recovery (1.25x to 5x real time): from 11 s down to the 5 s of level 2 takes
    # ln(5 / 2.95) / 0.341 = 1.5 s, then level 1 clears at once, so level 0 within 2 s
    t_zero = d.first(t_attentive, lambda s: s.level == 0)
    assert 1.2 <= t_zero - t_attentive <= 2.0
    assert d.frames[-1][1].level_score < 0.1


def test_no_face_after_no_face_s_escalates_and_recalibrates(recorded) -> None:
    config = AttentionConfig()
    d = Driver(recorded, config)
    d.play(6.0)
    gone = d.t
    d.play(0.3, face=False)  # a hand in front of the face for a moment keeps the state
    assert d.monitor.state is ATTENTIVE
    d.play(4.0, face=False)
    t_none = d.first(gone, lambda s: s.state is NO_FACE)
    assert config.no_face_s - 1e-6 <= t_none - gone <= config.no_face_s + 0.1
    assert d.monitor.level == 1  # no_face runs the inattention timer (no_face_escalates)
    assert d.monitor.calibrated
    d.play(config.recalibrate_after_s, face=False)  # the seat stays empty: a new driver may come
    assert not d.monitor.calibrated
    status = d.play(1.0)
    assert status.state is ATTENTIVE and not status.calibrated

    quiet = Driver(recorded, replace(config, no_face_escalates=False))
    quiet.play(6.0)
    status = quiet.play(8.0, face=False)
    assert status.state is NO_FACE and status.level == 0


def test_eyes_closed_after_eyes_closed_s_but_not_for_blinks(recorded) -> None:
    config = AttentionConfig()
    d = Driver(recorded, config)
    d.play(6.0)
    for _ in range(5):  # blinks: 0.2 s closed every 3 s
        d.play(0.2, eyes=0.2)
        d.play(2.8)
    assert all(s.state is ATTENTIVE for _, s in d.frames)
    assert any(s.eyes_closed for _, s in d.frames)  # the blinks were seen as closed eyes
    closed = d.t
    d.play(3.0, eyes=0.2)
    t_closed = d.first(closed, lambda s: s.state is EYES_CLOSED)
    assert config.eyes_closed_s - 1e-6 <= t_closed - closed <= config.eyes_closed_s + 0.1
    # Half open is not open: the open threshold (0.65 of the baseline) is above the closed one.
    d.play(1.0, eyes=0.6)
    assert d.monitor.state is EYES_CLOSED
    opened = d.t
    d.play(1.0)
    t_open = d.first(opened, lambda s: s.state is not EYES_CLOSED)
    assert config.attentive_after_s - 1e-6 <= t_open - opened <= config.attentive_after_s + 0.1
    # 5 s of closed eyes in the last 26 s: PERCLOS 0.19, so the driver is drowsy now
    status = d.frames[-1][1]
    assert status.state is DROWSY and status.perclos == pytest.approx(5.0 / 26.0, abs=0.02)


def test_drowsy_by_perclos_and_back(recorded) -> None:
    config = AttentionConfig()
    d = Driver(recorded, config)
    d.play(6.0)
    start = d.t
    # Long, slow blinks: 0.7 s closed every 3 s (PERCLOS 0.23), each shorter than eyes_closed_s.
    for _ in range(20):
        d.play(0.7, eyes=0.2)
        d.play(2.3)
    t_drowsy = d.first(start, lambda s: s.state is DROWSY)
    # PERCLOS needs perclos_min_s of eye observations first (the 6 s before count too)
    assert t_drowsy - (start - 6.0) >= config.perclos_min_s - 1e-6
    assert all(s.state is not EYES_CLOSED for _, s in d.frames)
    drowsy = [s for t, s in d.frames if t >= t_drowsy]
    assert all(s.level >= config.drowsy_min_level for s in drowsy if s.state is DROWSY)
    assert drowsy[-1].perclos == pytest.approx(0.7 / 3.0, abs=0.03)
    assert drowsy[-1].score == pytest.approx(drowsy[-1].perclos)
    # Normal blinking again (0.2 s every 4 s, PERCLOS 0.05): drowsy ends once the 60 s window
    # holds less than perclos_exit_threshold, not as soon as it is below perclos_threshold.
    awake = d.t
    for _ in range(20):
        d.play(0.2, eyes=0.2)
        d.play(3.8)
    t_awake = d.first(awake, lambda s: s.state is ATTENTIVE)
    below_entry = d.first(awake, lambda s: s.perclos < config.perclos_threshold)
    assert t_awake > below_entry
    assert [s.perclos for t, s in d.frames if t == t_awake][0] < config.perclos_exit_threshold
    assert d.frames[-1][1].state is ATTENTIVE and d.frames[-1][1].level == 0


def test_timing_follows_stamps_at_any_frame_rate(recorded) -> None:
    onsets = []
    for rate in (5.0, 10.0, 30.0):
        d = Driver(recorded, rate=rate)
        d.play(6.0)
        turned = d.t
        d.play(8.0, yaw=-45.0)
        onsets.append((d.first(turned, lambda s: s.state is DISTRACTED) - turned,
                       d.first(turned, lambda s: s.level >= 2) - turned, 1.0 / rate))
    for distracted, level2, period in onsets:
        assert 0.5 - 1e-6 <= distracted <= 0.5 + period
        assert 5.5 - 1e-6 <= level2 <= 5.5 + 2 * period


def test_time_going_backwards_starts_afresh_and_gaps_are_capped(recorded) -> None:
    d = Driver(recorded)
    d.play(6.0)
    d.play(6.0, yaw=45.0)
    assert d.monitor.level >= 2
    level = d.monitor.level
    d.t -= 100.0  # the bag was restarted
    status = d.play(0.1)  # one frame behind: a stray stamp or a restart? not yet known
    assert status.level == level and status.calibrated
    status = d.play(0.1)  # the next one goes on from there: a restart, afresh
    assert status.state is ATTENTIVE and status.level == 0 and not status.calibrated
    # A 30 s pause between two frames counts as max_gap_s, not as 30 s of the state.
    d = Driver(recorded)
    d.play(6.0)
    d.play(0.6, yaw=45.0)
    before = d.monitor.time_in_state["distracted"]
    d.t += 30.0
    d.play(0.1, yaw=45.0)
    assert d.monitor.time_in_state["distracted"] - before <= d.monitor.config.max_gap_s + 0.11
    assert d.monitor.level == 0  # 1.1 s of inattention at most: no alert


def test_stamps_that_stand_still_or_creep_keep_the_state_bounded(recorded) -> None:
    """A camera stamping every frame 0, or advancing a nanosecond a frame, never lets calibration
    finish nor a window empty: each frame added an item to every window and a sample to each
    calibration list, and took the median of all of them, for ever. Both stay bounded now, and a
    real frame rate still gives the same PERCLOS as before."""
    from sense_perception.face.attention.state import MAX_CALIBRATION_SAMPLES

    for rate in (0.0, 1e9):  # stamps: all 0; 1 ns apart
        d = Driver(recorded, rate=1.0, t0=0.0)
        for k in range(2 * MAX_CALIBRATION_SAMPLES + 10):
            base = recorded[k % len(recorded)]
            d.monitor.update(k / rate if rate else 0.0, Observation(True, base.yaw, base.pitch, base.ear))
        assert not d.monitor.calibrated
        held = d.monitor.held
        assert held["windows"] <= 6, held
        assert held["samples"] <= 3 * MAX_CALIBRATION_SAMPLES, held
        # the samples left are spread over the whole stream: the same median
        assert d.monitor.neutral[0] == pytest.approx(np.median([o.yaw for o in recorded]), abs=0.5)
    d = Driver(recorded, rate=30.0)  # 60 s PERCLOS window at 30 Hz: one item per frame, as before
    d.play(20.0)
    d.play(2.0, eyes=0.2)
    status = d.play(1.0)
    assert status.perclos == pytest.approx(2.0 / 23.0, abs=0.01)
    assert d.monitor.held["windows"] == len(d.frames) + 5 * int(d.monitor.config.score_window_s * 30 + 1)


def test_a_frame_stamped_far_ahead_keeps_the_alert_and_leaves_no_item_from_the_future(recorded) -> None:
    """One corrupt header stamp (2**31 - 1 s) between frames on the camera's clock: not a restart
    (the alert and the calibration stay), and the windows' item from that frame is brought back
    to the camera's clock: left in the future, it kept every later item in its window for ever."""
    d = Driver(recorded)
    d.play(6.0)
    d.play(6.0, yaw=45.0)
    level = d.monitor.level
    assert level >= 2
    t = d.t
    d.monitor.update(2**31 - 1.0, Observation(True, recorded[0].yaw + 45.0, recorded[0].pitch,
                                               recorded[0].ear))
    d.t = t
    status = d.play(1.0, yaw=45.0)
    assert status.level >= level and status.calibrated and status.state is DISTRACTED
    d.play(150.0)  # longer than the 60 s PERCLOS window: one item per frame of the last 60 s
    assert d.monitor.held["windows"] <= 60 * RATE + 5 * (RATE + 1) + 1, d.monitor.held


def test_time_in_state_adds_up(recorded) -> None:
    d = Driver(recorded)
    d.play(6.0)
    d.play(4.0, yaw=45.0)
    d.play(2.0, face=False)
    d.play(3.0)
    spent = d.monitor.time_in_state
    assert sum(spent.values()) == pytest.approx(d.frames[-1][0] - d.frames[0][0], abs=1e-6)
    # distracted from 0.5 s after the turn, and held for no_face_s once the face is gone; the
    # returning face is judged afresh: attentive at once
    assert spent["distracted"] == pytest.approx(3.5 + 0.5, abs=0.15)
    assert spent["no_face"] == pytest.approx(1.5, abs=0.15)
    assert spent["attentive"] == pytest.approx(6.0 + 0.5 + 3.0, abs=0.15)


def test_neutral_pose_is_learned_and_clamped(recorded) -> None:
    """A camera beside the driver sees the road pose at yaw 30: that is attentive once learned,
    and a look 'at the camera' (yaw 0) is 30 deg off the road."""
    d = Driver(recorded)
    d.play(8.0, yaw_abs=30.0)
    assert d.monitor.state is ATTENTIVE and d.monitor.neutral[0] == pytest.approx(30.0, abs=1.0)
    d.play(2.0, yaw_abs=0.0)
    assert d.monitor.state is DISTRACTED
    fixed = Driver(recorded, AttentionConfig(max_neutral_offset_deg=0.0))
    fixed.play(8.0, yaw_abs=30.0)  # 30 deg from the configured neutral (0): off the road
    assert fixed.monitor.neutral == (0.0, 0.0) and fixed.monitor.state is DISTRACTED
    mounted = Driver(recorded, AttentionConfig(neutral_yaw_deg=30.0, max_neutral_offset_deg=0.0))
    assert mounted.play(8.0, yaw_abs=30.0).state is ATTENTIVE


def test_looking_down_has_its_own_limit(recorded) -> None:
    config = AttentionConfig()
    d = Driver(recorded, config)
    d.play(6.0)
    pitch = float(np.median([o.pitch for o in recorded]))
    down = Observation(True, recorded[0].yaw, pitch - config.pitch_down_limit_deg - 5.0, recorded[0].ear)
    for _ in range(10):
        status = d.monitor.update(d.t, down)
        d.t += 0.1
    assert status.state is DISTRACTED
    up = Observation(True, recorded[0].yaw, pitch + config.pitch_down_limit_deg + 5.0, recorded[0].ear)
    d.play(2.0)
    for _ in range(10):
        status = d.monitor.update(d.t, up)
        d.t += 0.1
    assert status.state is ATTENTIVE  # 23.5 deg up is inside pitch_up_limit_deg (30)


@pytest.mark.parametrize("params, fragment", [
    ({"attention.level_times_s": [5.0, 3.0, 11.0]}, "level_times_s"),
    ({"attention.eye_closed_ratio": 0.8, "attention.eye_open_ratio": 0.6}, "hysteresis"),
    ({"attention.perclos_exit_threshold": 0.3}, "perclos_exit_threshold"),
    ({"attention.calibration_s": 0.0}, "calibration_s"),
    ({"attention.cone_exit_fraction": 1.5}, "cone_exit_fraction"),
    ({"attention.perclos_min_s": 90.0}, "perclos_min_s"),
    ({"attention.yaw_limt_deg": 20.0}, "unknown parameter 'attention.yaw_limt_deg'"),
    # .inf (an open range let it through): the timer became NaN (inf * 0), never an alert
    ({"attention.recovery_factor_max": math.inf}, "recovery_factor_max"),
    ({"attention.recovery_factor_min": math.inf, "attention.recovery_factor_max": math.inf},
     "recovery_factor"),
    ({"attention.recovery_factor_max": 1e308}, "recovery_factor_max"),
])
def test_bad_attention_parameters_are_refused_by_name(params, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        section_from_params(AttentionConfig, params, "attention.", "my.yaml")


def test_camera_fault_holds_the_timers_and_resumes_cleanly(recorded) -> None:
    # a blocked or dark cabin camera says nothing about the driver: a state of its own, not
    # no_face nor distracted; the inattention timer neither runs up nor back while it lasts
    config = AttentionConfig()
    d = Driver(recorded, config)
    d.play(6.0)
    d.play(2.0, yaw=45.0)  # distracted 1.5 s: the timer has run, no level yet
    held = d.frames[-1][1]
    assert held.state is DISTRACTED and held.level == 0 and held.level_score > 0.1
    start = d.t
    d.play(8.0, fault=True)  # 8 s: without the fault, distraction would reach level 2
    during = [s for t, s in d.frames if t >= start]
    assert all(s.state is CAMERA_FAULT for s in during)
    assert all(s.level_score == pytest.approx(held.level_score, abs=0.011) for s in during)
    assert not any(s.alert or s.off_road or s.eyes_closed for s in during)
    assert during[-1].score == pytest.approx(1.0) and during[-1].calibrated
    assert d.monitor.time_in_state["camera_fault"] == pytest.approx(8.0 - 0.1, abs=0.11)
    assert d.monitor.time_in_state["no_face"] == 0.0
    # the camera is back and the head still turned: judged afresh, distracted only after
    # distracted_after_s, and the timer goes on from where it was held
    back = d.t
    d.play(1.0, yaw=45.0)
    t_distracted = d.first(back, lambda s: s.state is DISTRACTED)
    assert config.distracted_after_s - 1e-6 <= t_distracted - back <= config.distracted_after_s + 0.1
    assert all(s.state is ATTENTIVE for t, s in d.frames if back <= t < t_distracted)
    # a fault, then the driver facing the road: attentive on the first frame back
    d.play(1.0, fault=True)
    back = d.t
    d.play(3.0)
    after = [s for t, s in d.frames if t >= back]
    assert after[0].state is ATTENTIVE and all(s.state is ATTENTIVE for s in after)
    assert after[-1].level_score < held.level_score  # recovering only once seen attentive


def test_camera_fault_is_not_a_missing_face_and_a_long_one_recalibrates(recorded) -> None:
    config = AttentionConfig(no_face_s=0.5, recalibrate_after_s=10.0)
    d = Driver(recorded, config)
    d.play(6.0)
    assert d.monitor.calibrated
    d.play(3.0, fault=True)
    assert d.monitor.state is CAMERA_FAULT and d.monitor.calibrated  # 3 s: the same driver
    t_back = d.t
    d.play(0.3, face=False)  # the camera is back (its health cleared) and sees no driver
    assert d.frames[-3][0] == pytest.approx(t_back) and d.frames[-3][1].state is NO_FACE
    d.play(2.0)
    d.play(11.0, fault=True)  # longer than recalibrate_after_s: the seat may have changed hands
    assert d.monitor.state is CAMERA_FAULT and not d.monitor.calibrated


def test_one_frame_stamped_in_the_past_keeps_the_alert_and_the_calibration(recorded) -> None:
    """One frame stamped 0 (an uninitialised header) between frames on the camera's clock was
    taken for a restarted bag: it cleared a raised alert and the calibration. It is taken at the
    last frame's time now; only a second frame behind makes a restart."""
    d = Driver(recorded)
    d.play(6.0)
    d.play(6.0, yaw=45.0)
    level = d.monitor.level
    assert level >= 2
    base = recorded[0]
    status = d.monitor.update(0.0, Observation(True, base.yaw + 45.0, base.pitch, base.ear))
    assert status.level == level and status.calibrated and status.state is DISTRACTED
    status = d.play(1.0, yaw=45.0)
    assert status.level >= level and status.calibrated and status.state is DISTRACTED
    assert d.monitor.time_in_state["distracted"] == pytest.approx(7.0 - 0.5, abs=0.2)


def test_the_state_machine_loads_no_inference_runtime() -> None:
    """The seat's state machine shares only a limit with the sessions (``MAX_THREADS``, from
    sense_perception.limits): importing it for that one number loaded onnxruntime."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, sense_perception.face.attention.state as s; "
            "print(s.AttentionConfig.__dataclass_fields__['intra_op_threads'].metadata['range'], "
            "'onnxruntime' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert got.stdout.split() == ["(0,", "256)", "False"], got.stderr


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_pose_that_is_not_finite_is_no_face_and_never_poisons_the_calibration(recorded, bad) -> None:
    """A face measured with a NaN (or infinite) yaw and pitch during calibration: learned, the NaN
    made the neutral pose NaN for as long as the driver stayed, and a driver then looking 45 deg
    away for 10 s stayed attentive with no alert. Such a pose counts as no face measured."""
    d = Driver(recorded)
    base = recorded[0]
    d.monitor.update(d.t, Observation(True, bad, bad, base.ear))
    d.t += 1.0 / RATE
    d.play(6.0)
    assert all(math.isfinite(v) for v in d.monitor.neutral), d.monitor.neutral
    assert d.monitor.neutral[0] == pytest.approx(np.median([o.yaw for o in recorded]), abs=0.5)
    status = d.play(10.0, yaw=45.0)
    assert status.state is DISTRACTED and status.level >= 2
    # mid-stream, a stray non-finite pose is one frame without a face: the state holds
    d.monitor.update(d.t, Observation(True, bad, 0.0, base.ear))
    assert d.monitor.state is DISTRACTED and math.isfinite(d.monitor.neutral[0])
