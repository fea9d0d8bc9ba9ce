"""Driver attention over time, for the driver seat: state, escalation level and their hysteresis.

Time is the frames' header stamps (seconds), never the wall clock, so a live camera, a replayed
bag and a simulation at any speed give the same states. Time going backwards (a bag restarted, a
simulation reset) starts afresh once the next frame is behind too; one frame stamped in the past
is taken at the last frame's time, so it cannot clear an alert either. A pause longer than ``max_gap_s`` counts as ``max_gap_s``. One
frame stamped far ahead (a corrupt header) followed by frames back on the camera's clock is not a
restart: the frames go on from the stamp before it, so such a header cannot clear an alert.

States, checked in this order (the first that holds wins):

``camera_fault``
    the cabin camera's health is in fault (blocked, dark, bright, low visibility, frozen: the
    ERROR conditions of :mod:`~sense_perception.core.health.camera_health`, which already
    carry their own raise / clear hysteresis). Nothing about the driver can be seen, so nothing is
    concluded: no face is not counted as missing, no pose or eye as off the road or closed, the
    inattention timer holds where it was (it neither runs up nor back), nothing is learned for
    the calibration, and the distracted / eyes-closed debounces start afresh once the camera is
    back (the first frames after a fault are judged as if the driver had just appeared). A fault
    longer than ``recalibrate_after_s`` may hide a driver change: the driver is learned again.
``no_face``
    no driver face for ``no_face_s``.
``eyes_closed``
    both eyes closed (EAR below ``eye_closed_ratio`` of the driver's open-eye baseline) for
    ``eyes_closed_s``; it ends once the eyes are open (above ``eye_open_ratio``) for
    ``attentive_after_s``.
``distracted``
    head pose outside the on-road cone around the driver's neutral pose (``yaw_limit_deg``,
    ``pitch_down_limit_deg``, ``pitch_up_limit_deg``) for ``distracted_after_s``; it ends once
    the pose is back inside ``cone_exit_fraction`` of the cone for ``attentive_after_s``.
``drowsy``
    PERCLOS (the share of the last ``perclos_window_s`` with the eyes closed) at or above
    ``perclos_threshold``, once ``perclos_min_s`` of eye observations exist; it ends below
    ``perclos_exit_threshold``.
``attentive``
    none of the above.

The neutral pose (yaw, pitch) and the open-eye EAR baseline are the driver's own: the medians over
the first ``calibration_s`` of face time, the neutral clamped to ``max_neutral_offset_deg`` around
the configured ``neutral_yaw_deg`` / ``neutral_pitch_deg``. Until then the medians of what was seen
so far are used (the first seconds assume the driver watches the road, as openpilot's learned pose
offsets do). After ``recalibrate_after_s`` without a face (a driver change) they are learned again.

Escalation follows openpilot's driver-monitoring policy (selfdrive/monitoring/helpers.py): an
inattention timer runs while the state is distracted or eyes_closed (and no_face, with
``no_face_escalates``, openpilot's "maybe distracted"); ``level_times_s`` (default 3, 5, 11 s: its
11 s ``_DISTRACTED_TIME`` with the pre-alert 8 s and the prompt 6 s before the end) raise the level
to 1 (pre-alert), 2 (prompt) and 3 (terminal). While attentive the timer runs back, faster the
deeper it is (openpilot's recovery factors 1.25 to 5); level 1 clears as soon as the driver is
attentive, levels 2 and 3 only once the timer is back below their time. (openpilot keeps its
terminal alert until the system disengages; with no disengagement here, level 3 recovers like 2.)
``drowsy`` holds the level at ``drowsy_min_level`` at least.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ...config import check_settings, setting
from ...core.stamp_order import StampOrder
from ...limits import MAX_THREADS


#: Items a time window (PERCLOS, the state scores) holds at most, whatever the frame stamps.
WINDOW_SLOTS = 16384
#: The largest recovery factor: openpilot's run from 1.25 to 5. An infinite one (its open range let
#: .inf through) made the timer NaN (infinity times 0) and no inattention ever raised an alert.
MAX_RECOVERY_FACTOR = 100.0
#: Calibration samples (yaw, pitch, EAR) kept at most: beyond, every second one is dropped, so
#: a calibration that never completes (stamps that stand still) costs bounded memory and time.
MAX_CALIBRATION_SAMPLES = 4096


class AttentionState(str, Enum):
    """What the driver seat shows, as published in ``driver_attention``."""

    ATTENTIVE = "attentive"
    DISTRACTED = "distracted"
    EYES_CLOSED = "eyes_closed"
    DROWSY = "drowsy"
    NO_FACE = "no_face"
    CAMERA_FAULT = "camera_fault"


#: States during which the inattention timer runs (no_face only with ``no_face_escalates``).
_INATTENTIVE = (AttentionState.DISTRACTED, AttentionState.EYES_CLOSED)


@dataclass
class AttentionConfig:
    """The ``attention.*`` parameters of driver_monitor.

    Attributes:
        enabled: estimate head pose, eye openness and attention at all.
        intra_op_threads: onnxruntime threads per operator of the face mesh and iris networks;
            0 = ``runtime.intra_op_threads``. These networks are small: one thread each leaves the
            other cores to the identity networks instead of contending with their thread pools.
        min_face_px: driver faces narrower than this (pixels) are too small for the mesh and
            count as no face.
        mesh_min_score: the mesh network's face-presence probability a face needs.
        calibration_s: face time over which the neutral pose and the open-eye EAR are learned
            (> 0; to keep the configured neutral pose, set max_neutral_offset_deg to 0).
        recalibrate_after_s: seconds without a face after which they are learned again.
        neutral_yaw_deg, neutral_pitch_deg: the pose of a driver watching the road as this camera
            sees it, before and around the learned one (0, 0: a camera straight ahead of the face).
        max_neutral_offset_deg: most the learned neutral may differ from the configured one.
        yaw_limit_deg: on-road cone half-width in yaw around the neutral pose.
        pitch_down_limit_deg: how far below the neutral pitch the head may point (lap, phone).
        pitch_up_limit_deg: how far above it.
        cone_exit_fraction: a distracted driver is back on the road inside this fraction of the
            cone (angular hysteresis, 0 < f <= 1).
        distracted_after_s: pose outside the cone this long makes the state distracted.
        attentive_after_s: pose inside the cone and eyes open this long end distracted/eyes_closed.
        eye_closed_ratio: EAR below this fraction of the open-eye baseline is a closed eye.
        eye_open_ratio: EAR above this fraction is open again (hysteresis: >= eye_closed_ratio).
        eyes_closed_s: eyes closed this long make the state eyes_closed (a blink lasts 0.1-0.4 s).
        perclos_window_s: PERCLOS window.
        perclos_threshold: PERCLOS at which the driver is drowsy.
        perclos_exit_threshold: PERCLOS below which drowsy ends (<= perclos_threshold).
        perclos_min_s: seconds of eye observations in the window before PERCLOS may say drowsy.
        no_face_s: no driver face this long makes the state no_face.
        no_face_escalates: no_face runs the inattention timer (a driver out of view may not watch).
        level_times_s: inattention seconds to reach levels 1, 2 and 3 (increasing).
        recovery_factor_min, recovery_factor_max: how much faster than real time the timer runs
            back while attentive, near zero and near the terminal time.
        drowsy_min_level: the least level while drowsy (0: drowsiness alone raises no alert).
        score_window_s: the state's score is the share of this last stretch of frames that showed
            its condition (for drowsy: PERCLOS).
        max_gap_s: a pause between frames counts at most this long.
    """

    enabled: bool = True
    intra_op_threads: int = setting(1, range=(0, MAX_THREADS))
    min_face_px: int = setting(32, range=(0, None))
    mesh_min_score: float = setting(0.5, range=(0.0, 1.0), constraint="below 1")
    calibration_s: float = setting(5.0, range=(0.0, None), constraint="above 0")
    recalibrate_after_s: float = setting(10.0, range=(0.0, None))
    neutral_yaw_deg: float = setting(
        0.0, "yaw (degrees) of a driver watching the road, as this camera sees it: 0 for a "
        "camera straight ahead of the face",
        range=(-180.0, 180.0))
    neutral_pitch_deg: float = setting(
        0.0, "pitch (degrees) of a driver watching the road, as this camera sees it: 0 for a "
        "camera straight ahead of the face",
        range=(-90.0, 90.0))
    max_neutral_offset_deg: float = setting(30.0, range=(0.0, None))
    yaw_limit_deg: float = setting(29.0, range=(0.0, None), constraint="above 0")
    pitch_down_limit_deg: float = setting(18.5, range=(0.0, None), constraint="above 0")
    pitch_up_limit_deg: float = setting(30.0, range=(0.0, None), constraint="above 0")
    cone_exit_fraction: float = setting(0.8, range=(0.0, 1.0), constraint="above 0")
    distracted_after_s: float = setting(0.5, range=(0.0, None))
    attentive_after_s: float = setting(0.5, range=(0.0, None))
    eye_closed_ratio: float = setting(0.5, range=(0.0, 1.5), constraint="above 0, at most eye_open_ratio")
    eye_open_ratio: float = setting(0.65, range=(0.0, 1.5), constraint="at least eye_closed_ratio, below 1.5")
    eyes_closed_s: float = setting(1.0, range=(0.0, None))
    perclos_window_s: float = setting(60.0, range=(0.0, None), constraint="above 0")
    perclos_threshold: float = setting(0.15, range=(0.0, 1.0), constraint="at least perclos_exit_threshold")
    perclos_exit_threshold: float = setting(0.10, range=(0.0, 1.0), constraint="above 0, at most perclos_threshold")
    perclos_min_s: float = setting(20.0, range=(0.0, None))
    no_face_s: float = setting(0.5, range=(0.0, None))
    no_face_escalates: bool = True
    level_times_s: list[float] = setting(
        [3.0, 5.0, 11.0],
        range="three increasing positive seconds (levels 1, 2, 3)")
    recovery_factor_min: float = setting(
        1.25, "while attentive the inattention timer runs back at least this much faster than "
        "time (near 0)",
        range=(0.0, MAX_RECOVERY_FACTOR), constraint="above 0, at most recovery_factor_max")
    recovery_factor_max: float = setting(
        5.0, "while attentive the inattention timer runs back at most this much faster than "
        "time (near the terminal time)",
        range=(0.0, MAX_RECOVERY_FACTOR), constraint="at least recovery_factor_min")
    drowsy_min_level: int = setting(1, range=(0, 3))
    score_window_s: float = setting(1.0, range=(0.0, None), constraint="above 0")
    max_gap_s: float = setting(1.0, range=(0.0, None), constraint="above 0")

    def __post_init__(self) -> None:
        def positive(*names: str) -> None:
            for name in names:
                if not getattr(self, name) > 0:
                    raise ValueError(f"attention.{name} must be > 0, got {getattr(self, name)}")

        def at_least_zero(*names: str) -> None:
            for name in names:
                if not getattr(self, name) >= 0:
                    raise ValueError(f"attention.{name} must be >= 0, got {getattr(self, name)}")

        positive("calibration_s", "yaw_limit_deg", "pitch_down_limit_deg", "pitch_up_limit_deg",
                 "perclos_window_s", "score_window_s", "max_gap_s", "recovery_factor_min")
        at_least_zero("intra_op_threads", "min_face_px", "recalibrate_after_s",
                      "max_neutral_offset_deg", "distracted_after_s", "attentive_after_s",
                      "eyes_closed_s", "perclos_min_s", "no_face_s")
        if not 0.0 <= self.mesh_min_score < 1.0:
            raise ValueError(f"attention.mesh_min_score must be in [0, 1), got {self.mesh_min_score}")
        if not 0.0 < self.cone_exit_fraction <= 1.0:
            raise ValueError("attention.cone_exit_fraction must be in (0, 1], got "
                             f"{self.cone_exit_fraction}")
        if not 0.0 < self.eye_closed_ratio <= self.eye_open_ratio < 1.5:
            raise ValueError(f"attention.eye_closed_ratio ({self.eye_closed_ratio}) and "
                             f"eye_open_ratio ({self.eye_open_ratio}) need 0 < closed <= open "
                             "(hysteresis) and open < 1.5")
        if not 0.0 < self.perclos_exit_threshold <= self.perclos_threshold <= 1.0:
            raise ValueError(f"attention.perclos_exit_threshold ({self.perclos_exit_threshold}) and "
                             f"perclos_threshold ({self.perclos_threshold}) need 0 < exit <= "
                             "threshold <= 1")
        if self.perclos_min_s > self.perclos_window_s:
            raise ValueError(f"attention.perclos_min_s ({self.perclos_min_s}) cannot exceed "
                             f"perclos_window_s ({self.perclos_window_s})")
        times = [float(t) for t in self.level_times_s]
        if len(times) != 3 or not 0 < times[0] < times[1] < times[2]:
            raise ValueError("attention.level_times_s must be three increasing positive seconds "
                             f"(levels 1, 2, 3), got {self.level_times_s}")
        if not self.recovery_factor_max <= MAX_RECOVERY_FACTOR:
            raise ValueError(f"attention.recovery_factor_max must be at most {MAX_RECOVERY_FACTOR:g}, "
                             f"got {self.recovery_factor_max}")
        if self.recovery_factor_max < self.recovery_factor_min:
            raise ValueError(f"attention.recovery_factor_max ({self.recovery_factor_max}) must be >= "
                             f"recovery_factor_min ({self.recovery_factor_min})")
        if not 0 <= self.drowsy_min_level <= 3:
            raise ValueError(f"attention.drowsy_min_level must be 0..3, got {self.drowsy_min_level}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them


@dataclass(frozen=True)
class Observation:
    """What one frame shows of the driver seat (from :mod:`.estimator`).

    Attributes:
        face: a driver face was measured (mesh and pose).
        yaw, pitch: head pose in degrees (NaN without a face; a face whose pose is not finite
            counts as no face measured).
        ear: mean eye aspect ratio of both eyes (NaN when not measured).
        camera_fault: the cabin camera's health is in fault on this frame: ``face`` and the
            measurements say nothing about the driver.
    """

    face: bool
    yaw: float = math.nan
    pitch: float = math.nan
    ear: float = math.nan
    camera_fault: bool = False


@dataclass(frozen=True)
class AttentionStatus:
    """The attention state after one frame.

    Attributes:
        state: the state.
        level: escalation level 0 (none), 1 (pre-alert), 2 (prompt), 3 (terminal).
        score: share of the last ``score_window_s`` showing the state's condition (drowsy: PERCLOS).
        level_score: inattention timer over the terminal time, 0..1 (openpilot's 1 - awareness).
        perclos: PERCLOS over the window so far (NaN before any eye observation).
        calibrated: the neutral pose and EAR baseline are learned.
        neutral_yaw, neutral_pitch: the neutral pose in use (degrees).
        ear_baseline: the open-eye EAR in use (NaN before any).
        openness: mean EAR over the baseline (1 = as open as usual; NaN without eyes).
        off_road: this frame's pose is outside the on-road cone.
        eyes_closed: this frame's eyes count as closed.
        alert: the level rose on this frame.
    """

    state: AttentionState
    level: int
    score: float
    level_score: float
    perclos: float
    calibrated: bool
    neutral_yaw: float
    neutral_pitch: float
    ear_baseline: float
    openness: float
    off_road: bool
    eyes_closed: bool
    alert: bool


class _Debounce:
    """A flag that turns on once its condition has held ``on_s`` and off once its opposite has
    held ``off_s``, counted from the first frame that showed it (stamped time)."""

    active: bool
    _held: float | None  # seconds the change has shown so far; None: no change pending

    def __init__(self, on_s: float, off_s: float) -> None:
        self.on_s, self.off_s = on_s, off_s
        self.reset()

    def update(self, condition: bool, dt: float) -> bool:
        if condition == self.active:
            self._held = None
        else:
            # The first frame showing the change starts the count; the time before it did not.
            self._held = 0.0 if self._held is None else self._held + dt
            if self._held >= (self.on_s if condition else self.off_s):
                self.active, self._held = condition, None
        return self.active

    def reset(self) -> None:
        self.active = False
        self._held = None


class _Window:
    """Time-weighted share of a stretch of frames with a flag set: running sums, O(1) per frame.

    Frames closer together than ``span_s / WINDOW_SLOTS`` share one item, so a window holds at
    most about ``WINDOW_SLOTS`` items whatever the stamps: a camera whose stamps stand still (a
    driver that leaves them at 0, paused sim time) or creep by nanoseconds grew it by one item a
    frame for ever. Real frame rates (below ``WINDOW_SLOTS / span_s``) never share an item."""

    def __init__(self, span_s: float) -> None:
        self.span = span_s
        self._slot = span_s / WINDOW_SLOTS
        self._items: deque[tuple[float, float, float]] = deque()  # (t, dt, flagged dt)
        self.total = 0.0
        self.flagged = 0.0

    def add(self, t: float, dt: float, flag: bool) -> None:
        flagged = dt if flag else 0.0
        self.total += dt
        self.flagged += flagged
        if self._items and abs(t - self._items[-1][0]) < self._slot:
            first, old_dt, old_flagged = self._items[-1]
            self._items[-1] = (first, old_dt + dt, old_flagged + flagged)
        else:
            self._items.append((t, dt, flagged))
        while self._items and self._items[0][0] <= t - self.span:
            _, old_dt, old_flagged = self._items.popleft()
            self.total -= old_dt
            self.flagged -= old_flagged

    def retime(self, t: float) -> None:
        """Stamp ``t`` on the newest items stamped after it (the frame stamped far ahead before
        the stream came back to ``t``): an item from the future would stay in the window, and
        keep every later one there, until its time came."""
        dt = flagged = 0.0
        while self._items and self._items[-1][0] > t:
            _, item_dt, item_flagged = self._items.pop()
            dt, flagged = dt + item_dt, flagged + item_flagged
        if dt or flagged:
            self._items.append((t, dt, flagged))

    def __len__(self) -> int:
        return len(self._items)

    def share(self, empty: float = math.nan) -> float:
        return min(max(self.flagged / self.total, 0.0), 1.0) if self.total > 1e-9 else empty

    def clear(self) -> None:
        self._items.clear()
        self.total = self.flagged = 0.0


class AttentionMonitor:
    """The attention state machine of one driver seat. Feed it one :class:`Observation` per frame.

    Args:
        config: the ``attention.*`` parameters.
    """

    def __init__(self, config: AttentionConfig | None = None) -> None:
        self.config = config or AttentionConfig()
        c = self.config
        self._levels = [float(t) for t in c.level_times_s]
        self._distracted = _Debounce(c.distracted_after_s, c.attentive_after_s)
        self._closed = _Debounce(c.eyes_closed_s, c.attentive_after_s)
        self._perclos = _Window(c.perclos_window_s)
        self._scores = {s: _Window(c.score_window_s) for s in AttentionState}
        self.time_in_state: dict[str, float] = {s.value: 0.0 for s in AttentionState}
        self._order = StampOrder()  # a restart, or one frame stamped in the past?
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new drive): calibration, timers, windows; totals are kept."""
        self._last_t: float | None = None
        self._order.reset()
        # The stamp before the previous frame when that frame jumped more than max_gap_s ahead.
        self._before_jump: float | None = None
        self._absent: float | None = None  # seconds since the first frame without a face
        self._fault: float | None = None  # seconds since the first frame of a camera fault
        self._forget_driver()
        self.state = AttentionState.NO_FACE
        self.level = 0
        self._timer = 0.0
        for window in self._scores.values():
            window.clear()

    def _forget_driver(self) -> None:
        self._calib_time = 0.0
        self._yaws: list[float] = []
        self._pitches: list[float] = []
        self._ears: list[float] = []
        self.neutral = (self.config.neutral_yaw_deg, self.config.neutral_pitch_deg)
        self.ear_baseline = math.nan
        self._off_road = False
        self._eye_closed = False
        self._distracted.reset()
        self._closed.reset()
        self._perclos.clear()
        self._drowsy = False

    @property
    def held(self) -> dict[str, int]:
        """Items held now: ``windows`` (the time windows' items, about ``WINDOW_SLOTS`` each at
        most) and ``samples`` (calibration samples, ``MAX_CALIBRATION_SAMPLES`` per list at most):
        bounded whatever the stamps."""
        windows = [self._perclos, *self._scores.values()]
        return {"windows": sum(len(w) for w in windows),
                "samples": len(self._yaws) + len(self._pitches) + len(self._ears)}

    @property
    def calibrated(self) -> bool:
        """The neutral pose and the EAR baseline are learned (``calibration_s`` of face time)."""
        return self._calib_time >= self.config.calibration_s

    # -- per frame ---------------------------------------------------------------------------------

    def update(self, t: float, obs: Observation) -> AttentionStatus:
        """Advance to stamp ``t`` (seconds) with this frame's observation."""
        c = self.config
        if obs.face and not (math.isfinite(obs.yaw) and math.isfinite(obs.pitch)):
            # A pose that is not a number tells nothing about the head. Learned, one NaN made the
            # neutral NaN until the driver changed, and no pose was ever off the road again.
            obs = Observation(False, camera_fault=obs.camera_fault)
        if self._last_t is not None and self._before_jump is not None \
                and self._before_jump <= t < self._last_t:
            # Back on the camera's clock after one frame stamped far ahead: a corrupt header,
            # not a restart; resetting would clear a raised alert and learn the calibration
            # again from whatever pose the driver has now.
            self._last_t = self._before_jump
            self._order.rewind(self._before_jump)
            for window in (self._perclos, *self._scores.values()):
                window.retime(self._before_jump)
        # Time going back for two frames is a restarted bag or a simulation reset: afresh. One
        # frame stamped in the past (an uninitialised 0) is taken at the last frame's time, for
        # the same reason as above.
        stamp = t
        t, _ = self._order.step(t, on_restart=self.reset)
        if t == stamp:  # (a frame held at the last time tells nothing about a jump ahead)
            jump = self._last_t is not None and t - self._last_t > c.max_gap_s
            self._before_jump = self._last_t if jump else None
        dt = 0.0 if self._last_t is None else min(t - self._last_t, c.max_gap_s)
        self._last_t = t
        if obs.camera_fault:
            # the camera sees nothing of the driver: neither a face nor its absence is evidence
            self._absent = None
            self._fault = 0.0 if self._fault is None else self._fault + dt
            if self._fault >= c.recalibrate_after_s:
                self._forget_driver()  # the seat may have changed hands meanwhile
        elif obs.face:
            self._fault = None
            self._absent = None
            self._observe(t, dt, obs)
        else:
            self._fault = None
            self._absent = 0.0 if self._absent is None else self._absent + dt
            if self._absent >= c.recalibrate_after_s:
                self._forget_driver()
        previous_state = self.state
        self.state = self._decide(obs)
        if self.state in (AttentionState.NO_FACE, AttentionState.CAMERA_FAULT) \
                and previous_state is not self.state:
            self._distracted.reset()  # a face that comes back is judged afresh
            self._closed.reset()
            if self.state is AttentionState.CAMERA_FAULT:  # the last pose seen is stale
                self._off_road = self._eye_closed = False
        self._score_windows(t, dt, obs)
        # The time since the last frame belonged to the state that frame ended in.
        self.time_in_state[previous_state.value] += dt
        alert = self._escalate(previous_state, dt)
        return AttentionStatus(
            state=self.state, level=self.level, score=self._state_score(),
            level_score=self._timer / self._levels[2], perclos=self._perclos.share(),
            calibrated=self.calibrated, neutral_yaw=self.neutral[0], neutral_pitch=self.neutral[1],
            ear_baseline=self.ear_baseline,
            openness=obs.ear / self.ear_baseline if obs.face and self.ear_baseline > 0 else math.nan,
            off_road=self._off_road, eyes_closed=self._eye_closed, alert=alert)

    def _observe(self, t: float, dt: float, obs: Observation) -> None:
        c = self.config
        eyes = math.isfinite(obs.ear) and obs.ear > 0
        if not self.calibrated:
            self._learn(obs, eyes)
            self._calib_time += dt
        self._off_road = self._off_road_now(obs.yaw, obs.pitch)
        if eyes and self.ear_baseline > 0:
            ratio = obs.ear / self.ear_baseline
            # Closed below the lower ratio, open again only above the higher one: hysteresis.
            self._eye_closed = ratio < (c.eye_open_ratio if self._eye_closed else c.eye_closed_ratio)
            self._perclos.add(t, dt, self._eye_closed)
        self._distracted.update(self._off_road, dt)
        self._closed.update(self._eye_closed and eyes, dt)
        if self._perclos.total >= c.perclos_min_s:
            limit = c.perclos_exit_threshold if self._drowsy else c.perclos_threshold
            self._drowsy = self._perclos.share(0.0) >= limit

    def _learn(self, obs: Observation, eyes: bool) -> None:
        c = self.config
        for samples in (self._yaws, self._pitches, self._ears):
            if len(samples) >= MAX_CALIBRATION_SAMPLES:  # thinned evenly, never grown for ever
                del samples[::2]
        self._yaws.append(obs.yaw)
        self._pitches.append(obs.pitch)
        lim = c.max_neutral_offset_deg
        yaw = min(max(float(np.median(self._yaws)), c.neutral_yaw_deg - lim), c.neutral_yaw_deg + lim)
        pitch = min(max(float(np.median(self._pitches)), c.neutral_pitch_deg - lim),
                    c.neutral_pitch_deg + lim)
        self.neutral = (yaw, pitch)
        if eyes:
            self._ears.append(obs.ear)
            self.ear_baseline = float(np.median(self._ears))

    def _off_road_now(self, yaw: float, pitch: float) -> bool:
        c = self.config
        # Inside a shrunken cone to come back, the full cone to leave: angular hysteresis.
        k = c.cone_exit_fraction if self._off_road else 1.0
        dyaw, dpitch = yaw - self.neutral[0], pitch - self.neutral[1]
        return bool(abs(dyaw) > k * c.yaw_limit_deg or dpitch < -k * c.pitch_down_limit_deg
                    or dpitch > k * c.pitch_up_limit_deg)

    def _decide(self, obs: Observation) -> AttentionState:
        c = self.config
        if obs.camera_fault:
            return AttentionState.CAMERA_FAULT
        if not obs.face:
            if self.state is AttentionState.CAMERA_FAULT:
                return AttentionState.NO_FACE  # the camera is back and sees no driver: say so
            # A face missing for a moment (a hand, a turn of the head) keeps the state.
            return AttentionState.NO_FACE if (self._absent or 0.0) >= c.no_face_s else self.state
        if self._closed.active:
            return AttentionState.EYES_CLOSED
        if self._distracted.active:
            return AttentionState.DISTRACTED
        if self._drowsy:
            return AttentionState.DROWSY
        return AttentionState.ATTENTIVE

    def _score_windows(self, t: float, dt: float, obs: Observation) -> None:
        seen = obs.face and not obs.camera_fault
        raw = {
            AttentionState.CAMERA_FAULT: obs.camera_fault,
            AttentionState.NO_FACE: not obs.face and not obs.camera_fault,
            AttentionState.EYES_CLOSED: seen and self._eye_closed,
            AttentionState.DISTRACTED: seen and self._off_road,
            AttentionState.ATTENTIVE: seen and not self._off_road and not self._eye_closed,
        }
        for state, flag in raw.items():
            self._scores[state].add(t, dt, flag)

    def _state_score(self) -> float:
        if self.state is AttentionState.DROWSY:
            return self._perclos.share(0.0)
        window = self._scores[self.state]
        return window.share(1.0)  # the first frame alone: its own condition decided

    def _inattentive(self, state: AttentionState) -> bool:
        return state in _INATTENTIVE or (state is AttentionState.NO_FACE
                                         and self.config.no_face_escalates)

    def _escalate(self, previous: AttentionState, dt: float) -> bool:
        """Run the inattention timer over the time since the last frame (in ``previous``); a
        camera fault holds it (neither inattention nor attention was seen)."""
        c = self.config
        terminal = self._levels[2]
        if self._inattentive(previous):
            self._timer = min(self._timer + dt, terminal)
        elif previous in (AttentionState.ATTENTIVE, AttentionState.DROWSY):
            factor = c.recovery_factor_min + (c.recovery_factor_max - c.recovery_factor_min) * (
                self._timer / terminal)
            self._timer = max(self._timer - factor * dt, 0.0)
        inattentive = self._inattentive(self.state)
        level = sum(self._timer >= t for t in self._levels)
        if not inattentive and level == 1:
            level = 0  # the pre-alert clears as soon as the driver pays attention
        if self.state is AttentionState.DROWSY:
            level = max(level, c.drowsy_min_level)
        alert = level > self.level
        self.level = level
        return alert
