"""Stream timing of one camera: silent, late, rate out of bounds, stamps backwards or jumping,
a header stamp that does not advance (frozen), frame_id changing.

Two clocks are involved: the header stamp the camera put on a frame, and the arrival time (the
node's clock live, the bag's receive time in a replay). Gaps and the rate are measured on
arrivals; stamp order and jumps on the stamps.

Every frame the camera sent is measured, not only those judged: a node tells
:meth:`StreamTiming.arrived` of each frame as it arrives (its header needs no decoding), and the
conditions found up to a judged frame are raised with it. Measured on the judged frames alone, a
camera sending at 10 Hz behind a 0.3 s inference showed 3.3 Hz (``rate``, WARN, with
``expected_rate_hz`` set; a period learnt 3x too long without), and an inference longer than
``silent_periods`` periods made it ``late`` and its stamps ``stamp_jump`` (R69). Silence is
still counted from the frames judged (:meth:`StreamTiming.silent`): a frame that is never judged
(it cannot be decoded) proves no live camera.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .camera_settings import CameraHealthSettings

_LEARN_FRAMES = 10  # stamp intervals whose median gives the period when none is configured
_RATE_WINDOW = 20  # arrivals the rate is measured over
#: The shortest period learnt: that of ``camera_health.expected_rate_hz``'s highest value
#: (1000 Hz). Stamps a nanosecond apart (a driver stamping a frame counter into ``nanosec``, or a
#: burst of frames stamped as they were sent) gave a period of 1 ns: every frame ``late``, the
#: rate wrong for good, and ``silent`` (ERROR) raised at every check between two frames.
MIN_PERIOD_S = 1e-3
#: The period silence is counted in while none is known (``expected_rate_hz`` 0, the default, and
#: fewer than two frames measured): a camera slower than 1 Hz sets ``expected_rate_hz``. Silence
#: waited for the period learnt from ten stamp intervals, so with the shipped configuration a
#: camera that never sent a frame (unplugged, a wrong topic), or stopped within its first ten,
#: stayed ``ok`` for ever.
UNLEARNT_PERIOD_S = 1.0


@dataclass
class StreamTiming:
    """The timing checks of one camera stream; feed every frame to :meth:`frame` (a replay), or
    every frame to :meth:`arrived` as it arrives and each frame judged to :meth:`frame` (a node).
    Thread-safe: a node's transport callback and its inference thread both feed it."""

    settings: CameraHealthSettings
    period: float | None = None
    frame_id: str | None = None
    last_stamp: float | None = None
    last_arrival: float | None = None
    intervals: list[float] = field(default_factory=list)
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=_RATE_WINDOW))
    #: The last frame judged (:meth:`frame`): its arrival, from which silence is counted.
    judged_arrival: float | None = None
    judged_stamp: float | None = None

    def __post_init__(self) -> None:
        if self.settings.expected_rate_hz > 0:
            self.period = 1.0 / self.settings.expected_rate_hz
        self.lock = threading.RLock()
        self._fed: float | None = None  # the newest arrival measured by arrived()
        self._pending: list[str] = []  # conditions found since the last frame judged
        self._pending_metrics: dict[str, float] = {}
        # whether the stamps stood still on every frame measured since the last frame judged
        # (None: no step measured yet), :meth:`frame`'s `frozen`
        self._stood: bool | None = None
        self._measured = 0  # frames measured since the last frame judged
        #: The camera's frames the last frame judged stands for: those measured since the frame
        #: judged before it, itself included (1 where every frame is judged, as in a replay).
        self.frames_judged_for = 1

    def arrived(self, stamp: float, frame_id: str, arrival: float) -> None:
        """Measure a frame the camera sent, as it arrives (before it waits to be judged, or is
        replaced by a newer one unjudged); its conditions are raised with the next frame judged."""
        with self.lock:
            self._note(stamp, frame_id, arrival)
            self._fed = arrival if self._fed is None else max(self._fed, arrival)

    def frame(self, stamp: float, frame_id: str, arrival: float) -> tuple[list[str], dict[str, float]]:
        """The stream conditions shown since the previous frame judged, up to this one, and the
        timing metrics behind them. A frame not measured on arrival (:meth:`arrived`; a replay
        judges every frame) is measured now."""
        with self.lock:
            if self._fed is None or arrival > self._fed:
                self._note(stamp, frame_id, arrival)
            found, self._pending = self._pending, []
            self.frames_judged_for, self._measured = max(1, self._measured), 0
            if not self._stood:  # one advance since the last frame judged: not stood still
                found = [c for c in found if c != "frozen"]
            self._stood = None
            self.judged_arrival, self.judged_stamp = arrival, stamp
            return found, dict(self._pending_metrics)

    def _note(self, stamp: float, frame_id: str, arrival: float) -> None:
        """Measure one frame and keep what it shows until the next frame judged.

        Every condition shown by one of those frames is raised with the frame judged (each is an
        event: a gap, a step back, a new frame_id), except ``frozen`` from the stamps, which a
        frame judged shows only when the stamps stood still on every frame since the last one
        judged. A stamp is not frozen for one repeat: a 15 Hz sensor whose driver publishes
        each frame twice at 30 Hz (with its capture stamp) showed it on every other frame, which
        the replay, judging every frame, never raised (``raise_frames`` 5 in a row), while a
        node judging every second or third frame (behind its inference) raised ``frozen``
        (ERROR) after five of them."""
        stepped = self.last_stamp is not None
        self._measured += 1
        found, self._pending_metrics = self._measure(stamp, frame_id, arrival)
        self._pending += [c for c in found if c not in self._pending]
        if stepped:
            self._stood = "frozen" in found and self._stood is not False

    def _measure(self, stamp: float, frame_id: str,
                 arrival: float) -> tuple[list[str], dict[str, float]]:
        """The stream conditions one frame shows, and the timing metrics behind them."""
        s = self.settings
        found: list[str] = []
        metrics: dict[str, float] = {}
        if self.frame_id is not None and frame_id != self.frame_id:
            found.append("frame_id_changed")
        self.frame_id = frame_id
        if self.last_stamp is not None:
            step = stamp - self.last_stamp
            metrics["stamp_step_s"] = round(step, 6)
            if step == 0:
                found.append("frozen")
            elif step < 0:
                found.append("stamp_backwards")
            elif self.period is not None and step > s.stamp_jump_periods * self.period:
                found.append("stamp_jump")
            if step > 0 and self.period is None and s.expected_rate_hz <= 0:
                # a step shorter than any camera's period is no measure of it: the arrivals
                # then tell it (a burst, arriving at once as well, tells nothing)
                interval = step if step >= MIN_PERIOD_S or self.last_arrival is None else \
                    arrival - self.last_arrival
                if interval >= MIN_PERIOD_S:
                    self.intervals.append(interval)
                if len(self.intervals) >= _LEARN_FRAMES:
                    self.period = float(np.median(self.intervals))
        if self.last_arrival is not None and self.period is not None:
            gap = arrival - self.last_arrival
            metrics["gap_s"] = round(gap, 6)
            if gap > s.silent_periods * self.period:
                found.append("late")
        # The previous frame's stamp, not the newest seen: one frame stamped far ahead (a corrupt
        # header, 2**31 s) made every later frame 'stamp_backwards' for good; now the stamps are
        # flagged where they jump and go back, and the condition clears once they advance again.
        self.last_stamp = stamp
        self.last_arrival = arrival
        self.arrivals.append(arrival)
        rate = self.rate_hz()
        if rate is not None:
            metrics["rate_hz"] = round(rate, 3)
            if self.period is not None and abs(rate * self.period - 1.0) > s.rate_tolerance:
                found.append("rate")
        if self.period is not None:
            metrics["expected_hz"] = round(1.0 / self.period, 3)
        return found, metrics

    def rate_hz(self) -> float | None:
        """Arrival rate over the last frames; None until the window is full."""
        if len(self.arrivals) < _RATE_WINDOW:
            return None
        span = self.arrivals[-1] - self.arrivals[0]
        return (len(self.arrivals) - 1) / span if span > 0 else None

    def silence_period(self) -> float:
        """The period silence is counted in: the expected one; while it is being learnt, the
        median of the stamp intervals measured so far; before any, :data:`UNLEARNT_PERIOD_S`."""
        with self.lock:
            if self.period is not None:
                return self.period
            return float(np.median(self.intervals)) if self.intervals else UNLEARNT_PERIOD_S

    def silent(self, now: float) -> bool:
        """No frame judged for ``silent_periods`` periods (:meth:`silence_period`)."""
        with self.lock:
            return (self.judged_arrival is not None and now - self.judged_arrival
                    > self.settings.silent_periods * self.silence_period())
