"""The health of one camera, frame by frame: pixel conditions, stream timing and hysteresis.

:class:`CameraHealthMonitor` is what a node or the replay keeps per camera topic: feed each frame
to :meth:`~CameraHealthMonitor.update`, call :meth:`~CameraHealthMonitor.check` from a timer to
notice a silent stream, and read :meth:`~CameraHealthMonitor.status` for the diagnostic.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..first_last import KEEP_EACH_END, FirstLast
from ..frame_clock import FrameClock
from .camera_conditions import (FrameMetrics, detail_cells, frame_metrics, frozen,
                                image_conditions, small_copy)
from .camera_settings import CONDITIONS, CameraHealthSettings
from .contrast_drop import ContrastDropWatch
from .hysteresis import ConditionTracker
from .stream_health import StreamTiming

#: Conditions that make the camera's output untrustworthy (diagnostic level ERROR); the others
#: (late, rate, stamps, frame_id, size) are WARN: the pixels are still good.
ERROR_CONDITIONS = ("blocked", "low_visibility", "dark", "bright", "frozen", "silent")

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # diagnostic_msgs/DiagnosticStatus levels
_SIZES_KEPT = 4  # frame sizes whose last frame is kept for `frozen` (a few small copies)


def in_fault(status: dict[str, Any] | None) -> bool:
    """A camera's DiagnosticStatus dict (:meth:`CameraHealthBank.update`) says its pixels cannot
    be trusted (level ERROR); False without health (``camera_health.enabled`` false) and for a
    frame health could not judge (STALE: not known to be a fault)."""
    return status is not None and int(status["level"]) == ERROR


def _diagnostic(topic: str, level: int, message: str, values: dict[str, Any]) -> dict[str, Any]:
    """The DiagnosticStatus dict of camera ``topic``: named ``camera_health: <topic>``, its
    hardware_id the topic (:meth:`CameraHealthBank.status`, :meth:`CameraHealthBank.judge`)."""
    from ..output import messages

    return messages.diagnostic_status(f"camera_health: {topic}", level, message, topic, values)


@dataclass(frozen=True)
class HealthEvent:
    """A condition raised or cleared at ``stamp`` (seconds)."""

    stamp: float
    condition: str
    raised: bool

    def as_dict(self) -> dict[str, Any]:
        """``{"t", "condition", "raised"}`` for a report."""
        return {"t": round(self.stamp, 6), "condition": self.condition, "raised": self.raised}


@dataclass
class CameraHealthMonitor:
    """Per-camera health. One per camera topic; not thread-safe (one caller per camera).

    Attributes:
        topic: the camera topic (the diagnostic's hardware_id).
        settings: the ``camera_health.*`` parameters.
    """

    topic: str
    settings: CameraHealthSettings = field(default_factory=CameraHealthSettings)
    metrics: FrameMetrics | None = field(default=None, init=False)
    timing: dict[str, float] = field(default_factory=dict, init=False)
    frames: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._tracker = ConditionTracker({c: self.settings.hysteresis(c) for c in CONDITIONS})
        self._stream = StreamTiming(self.settings)
        s = self.settings
        self._film = ContrastDropWatch(s.film_drop, s.film_floor, s.film_fraction, s.film_hold,
                                       s.film_reference_s, s.film_brightness_change,
                                       s.film_arrival_s)
        # The last frame judged of each frame size (a few): a frame is compared, for `frozen`,
        # with the last one of its own size. Two sizes alternating frame by frame (a driver
        # switching modes, two cameras on one topic) compared every frame with one of the other
        # size, resampled differently: a frozen view was never `frozen`, and nothing said why.
        self._previous: dict[tuple[int, int], np.ndarray] = {}
        self._size: tuple[int, int] | None = None  # the last frame judged's (height, width)
        self._started: float | None = None
        # A camera that leaves header.stamp unset (0, as many drivers do) is timed by the
        # arrivals until it stamps a frame, by the FrameClock that times its tracks or its driver
        # attention: on its stamps every frame repeated the one before, and it was `frozen`
        # (ERROR) for as long as it ran, its silence and rate never checked (no period learnt).
        self._clock = FrameClock()

    def update(self, image: np.ndarray, stamp: float, frame_id: str = "",
               arrival: float | None = None) -> list[HealthEvent]:
        """Judge one decoded frame; the conditions it raised or cleared.

        Args:
            image: the decoded BGR (or grey) frame.
            stamp: its header stamp, seconds; 0 while the camera has never stamped a frame (a
                driver leaving the stamp unset): the frame is timed by ``arrival`` instead
                (exterior and cabin cameras alike; stamps that advanced and then stand still
                stay ``frozen``).
            frame_id: its header frame_id.
            arrival: when it arrived (node clock, or the bag's receive time); the stamp if None.
        """
        arrival = stamp if arrival is None else arrival
        with self._stream.lock:  # arrived() times frames on the transport's thread
            stamp = self._clock.time(self.topic, stamp, arrival)  # unstamped: by the arrival
        if self._started is None:
            self._started = arrival
        small = small_copy(image, self.settings.width)
        cells = detail_cells(small, self.settings)
        size = (int(image.shape[0]), int(image.shape[1]))
        self.metrics = frame_metrics(small, self._previous.pop(size, None), self.settings, cells)
        self._previous[size] = small
        while len(self._previous) > _SIZES_KEPT:
            del self._previous[next(iter(self._previous))]
        self.frames += 1
        seen = set(image_conditions(self.metrics, self.settings))
        if self._size is not None and size != self._size:
            # said (WARN): the film watch starts afresh at every new size, and `frozen` from the
            # pixels compares frames of one size only
            seen.add("size_changed")
        self._size = size
        lost = self._judge_film(seen, cells.brightness, cells.texture, stamp)
        if lost is not None:
            self.metrics = replace(self.metrics, contrast_lost=lost)
        if frozen(self.metrics, self.settings):
            seen.add("frozen")
        stream, self.timing = self._stream.frame(stamp, frame_id, arrival)
        seen.update(stream)
        # behind a slow inference each frame judged stands for the frames sent since the last
        changes = self._tracker.update(seen, stamp, self._stream.frames_judged_for)
        if self._tracker.set("silent", False, stamp):
            changes.append(("silent", False))
        return [HealthEvent(stamp, name, raised) for name, raised in changes]

    def arrived(self, stamp: float, frame_id: str, arrival: float) -> None:
        """A frame of this camera arrived (stamp, frame_id and arrival as :meth:`update` takes
        them): its stream timing is measured now, judged or not; the conditions it shows are
        raised with the next frame judged. Thread-safe against :meth:`update` and :meth:`check`
        (the stream timing's own lock), so the transport never waits for a frame being judged."""
        with self._stream.lock:
            self._stream.arrived(self._clock.time(self.topic, stamp, arrival), frame_id, arrival)

    def _judge_film(self, seen: set[str], brightness: np.ndarray, texture: np.ndarray,
                    stamp: float) -> float | None:
        """Add ``blocked`` to ``seen`` while a film that arrived on the lens is held
        (:mod:`.contrast_drop`); the share of the view that lost contrast (or the film's), None
        without a recent level."""
        if seen & {"dark", "bright"}:  # an exposure fault: its detail is not the scene's
            self._film.reset()
            return None
        lost = self._film.update(brightness, texture, self.settings.noise_floor, stamp)
        if lost is None:
            return None
        if self._film.film > 0:  # a film is held (a part lost gradually is not one)
            seen.add("blocked")
        return lost

    def check(self, now: float, waiting: float | None = None) -> list[HealthEvent]:
        """Raise ``silent`` when no frame came for ``silent_periods`` expected periods (call from a
        timer; ``now`` on the same clock as the arrivals). ``waiting``: the arrival of a frame
        the camera sent that is not judged yet (queued behind a slow inference): the camera is
        not silent for the time its frames wait in the node."""
        silent = self._stream.silent(now)
        period = self._stream.silence_period()  # known or not (it waited for one: never silent)
        if self._stream.judged_arrival is None and self._started is not None:
            silent = now - self._started > self.settings.silent_periods * period
        if silent and waiting is not None:
            silent = now - waiting > self.settings.silent_periods * period
        if not silent or not self._tracker.set("silent", True, now):
            return []
        # On the clock of the camera's other events, its stamps: the last one and the time since
        # its frame (``now`` is the arrival clock). A simulation's bag put the silence at the
        # wall-clock receive time (1.7e9 s) among events at its sim-time stamps (12 s), and its
        # clearing before its raising.
        timing = self._stream
        at = now if timing.judged_stamp is None or timing.judged_arrival is None else \
            timing.judged_stamp + (now - timing.judged_arrival)
        return [HealthEvent(at, "silent", True)]

    def start(self, now: float) -> None:
        """Start the silence clock before the first frame (a camera that never publishes)."""
        if self._started is None:
            self._started = now

    @property
    def conditions(self) -> list[str]:
        """The raised conditions."""
        return self._tracker.active

    @property
    def level(self) -> int:
        """OK (0), WARN (1) or ERROR (2), the diagnostic level."""
        active = self.conditions
        if any(c in ERROR_CONDITIONS for c in active):
            return ERROR
        return WARN if active else OK

    def values(self) -> dict[str, Any]:
        """The metrics behind the verdict: the last frame's pixels and the stream timing."""
        out: dict[str, Any] = {"frames": self.frames}
        if self.metrics is not None:
            out.update({k: v for k, v in self.metrics.as_dict().items() if v is not None})
        out.update(self.timing)
        apart = self._film.apart_s
        if apart is not None and self.settings.film_drop > 0:
            # said, not silent: frames judged more than MAX_FILM_STEP_S apart are compared for
            # no new film (a held one is held on)
            out["film_watch_blind_s"] = round(apart, 3)
        return out

    def message(self) -> str:
        """One line for the diagnostic: ``ok`` or the raised conditions."""
        active = self.conditions
        return ", ".join(active) if active else "ok"


def _pixels(image: Any, width: int) -> np.ndarray:
    """The BGR (or grey) array of a decoded frame: an ndarray, or an ImageView in any order;
    ``width`` is ``camera_health.width`` (an RGB frame's copy was 240 wide whatever it said)."""
    array = getattr(image, "array", image)
    order = getattr(image, "order", "bgr")
    if order.startswith("rgb") and array.ndim == 3:
        small = small_copy(array, width)  # swap channels on the small copy only
        return np.ascontiguousarray(small[:, :, 2::-1])
    return array


class CameraHealthBank:
    """The health of every camera of a node (or of a replay's pipeline).

    Thread-safe: a node judges its frames on its inference thread and checks for silence from
    its diagnostics timer, on another thread. Every method holds one lock, so a check and a
    frame never interleave: a check that read the old last arrival, then let the resumed
    camera's frame clear ``silent``, then raised ``silent`` anyway kept a camera that had resumed
    ``silent`` (ERROR) in ``/diagnostics`` until its next frame. :meth:`report` gives the faults
    and the statuses of one moment.

    Args:
        topics: the camera topics.
        settings: the ``camera_health.*`` parameters (each camera judged at its
            ``expected_rates_hz`` entry, :meth:`CameraHealthSettings.for_camera`).
        keep_events: keep the conditions raised or cleared for :meth:`summary` (a replay's
            report): the first and last ``keep_each_end`` per camera, with the count of the rest
            (a camera flickering between conditions raises or clears one every few frames, for
            the hours a bag lasts). A node runs for ever and reports only the current state: it
            keeps none.
        keep_each_end: events kept at each end of a camera's list.
    """

    def __init__(self, topics: list[str], settings: CameraHealthSettings,
                 keep_events: bool = True, keep_each_end: int = KEEP_EACH_END) -> None:
        self.settings = settings
        self.keep_events = keep_events
        # each camera at its own rate (camera_health.expected_rates_hz)
        self.monitors = {t: CameraHealthMonitor(t, settings.for_camera(t)) for t in topics}
        self._events: dict[str, FirstLast[HealthEvent]] = {
            t: FirstLast(keep_each_end, keep_each_end) for t in topics}
        self._seconds: dict[str, dict[str, float]] = {t: {} for t in topics}
        self._last_arrival: dict[str, float] = {}
        self._unjudged: dict[str, int] = {}
        # The newest arrival of a frame of each camera received and not yet judged nor dropped
        # (:meth:`received`, :meth:`settle`), under a lock of its own: the transport callback
        # never waits for a frame being judged.
        self._waiting: dict[str, float] = {}
        self._waiting_lock = threading.Lock()
        # re-entrant: update() gives status(), report() calls check() and statuses()
        self._lock = threading.RLock()

    def start(self, now: float) -> None:
        """Start every camera's silence clock (a node's activation, a replay's first message)."""
        with self._lock:
            self._start(now)

    def _start(self, now: float) -> None:
        with self._waiting_lock:  # frames of an earlier activation are gone with its inputs
            self._waiting.clear()
        for topic, monitor in self.monitors.items():
            monitor.start(now)
            self._last_arrival.setdefault(topic, now)  # its silence is counted from now

    def received(self, topic: str, arrival: float, stamp: float | None = None,
                 frame_id: str = "") -> None:
        """A frame of ``topic`` arrived at ``arrival`` (the clock of the arrivals) and waits to be
        judged: until it is judged or dropped (:meth:`settle`), :meth:`check` does not take the
        camera for silent. Call it from the transport callback, before the frame is queued.
        With its header ``stamp`` (seconds) and ``frame_id``, the camera's stream timing (late,
        rate, the stamps, the period learnt) is measured on every frame it sent, judged or not
        (:meth:`CameraHealthMonitor.arrived`): measured on the frames judged, a camera sending
        at its rate behind a slow inference was ``rate`` (WARN) and, behind an inference longer
        than ``silent_periods`` periods, ``late`` and ``stamp_jump`` (R69).

        Without it a camera sending at its rate was raised ``silent`` (ERROR) whenever an
        inference (of its previous frame, or a batch) took longer than ``silent_periods``
        periods: its newer frames waited in the node, and the silence was counted from the
        last frame judged."""
        with self._waiting_lock:
            if arrival > self._waiting.get(topic, float("-inf")):
                self._waiting[topic] = arrival
        if stamp is not None:  # never under self._lock: a frame being judged holds it
            self.monitors[topic].arrived(stamp, frame_id, arrival)

    def settle(self, topic: str, arrival: float) -> None:
        """The frame of ``topic`` that arrived at ``arrival`` was taken: judged, or dropped
        unjudged (it could not be decoded). A newer frame still waiting stays waiting; frames
        that are never judged (a stream of undecodable frames) leave the camera ``silent``."""
        with self._waiting_lock:
            if self._waiting.get(topic, float("inf")) <= arrival:
                del self._waiting[topic]

    def update(self, topic: str, image: Any, stamp: float, frame_id: str,
               arrival: float) -> dict[str, Any]:
        """Judge one frame of ``topic``; its camera's DiagnosticStatus dict after it."""
        with self._lock:
            self.settle(topic, arrival)
            monitor = self.monitors[topic]
            self._spend(topic, arrival)
            events = monitor.update(_pixels(image, self.settings.width), stamp, frame_id, arrival)
            if self.keep_events:
                self._events[topic].extend(events)
            return self.status(topic)

    def judge(self, topic: str, image: Any, stamp: float, frame_id: str,
              arrival: float) -> tuple[dict[str, Any], Exception | None]:
        """:meth:`update`, never raising: the frame's detections must not be lost to a fault of
        its health check (one was dropped whole). A judgement that raises gives the camera's
        status at level STALE naming the error (not a camera fault: :func:`in_fault` is false),
        and the error, for the caller to log; :meth:`summary` counts such frames per camera
        (``unjudged_frames``)."""
        with self._lock:
            return self._judge(topic, image, stamp, frame_id, arrival)

    def _judge(self, topic: str, image: Any, stamp: float, frame_id: str,
               arrival: float) -> tuple[dict[str, Any], Exception | None]:
        try:
            return self.update(topic, image, stamp, frame_id, arrival), None
        except Exception as exc:  # noqa: BLE001 - said in the status, counted, returned
            self._unjudged[topic] = self._unjudged.get(topic, 0) + 1
            text = f"{type(exc).__name__}: {exc}"[:300]
            return _diagnostic(topic, STALE, f"this frame could not be judged ({text}); its "
                               "detections go on",
                               {**self.monitors[topic].values(), "judge_error": text}), exc

    def unjudged(self, topic: str) -> int:
        """How many frames of ``topic`` could not be judged (:meth:`judge`)."""
        with self._lock:
            return self._unjudged.get(topic, 0)

    def _spend(self, topic: str, now: float) -> None:
        """Add the time since the last frame or check to the conditions ``topic`` holds.

        On the arrival clock (the bag's receive time, the node's monotonic clock): header stamps
        are what a faulty camera gets wrong. On them, one frame stamped 5 h ahead added 5 h to
        every condition held and stopped the count until the stamps caught up, and stamps stuck
        at 0 or going back counted nothing at all.
        """
        previous = self._last_arrival.get(topic)
        if previous is not None and now > previous:
            spent = self._seconds[topic]
            for condition in self.monitors[topic].conditions:
                spent[condition] = spent.get(condition, 0.0) + now - previous
        if previous is None or now > previous:
            self._last_arrival[topic] = now

    def check(self, now: float) -> None:
        """Raise ``silent`` on cameras that stopped (``now`` on the arrival clock), and count the
        time their conditions held since their last frame (a camera that stopped for good was
        ``silent`` for none of it)."""
        with self._lock:
            for topic, monitor in self.monitors.items():
                if topic in self._last_arrival:
                    self._spend(topic, now)
                with self._waiting_lock:
                    waiting = self._waiting.get(topic)
                events = monitor.check(now, waiting)
                if self.keep_events:
                    self._events[topic].extend(events)

    def report(self, now: float) -> tuple[str, list[dict[str, Any]]]:
        """:meth:`check` at ``now``, then :meth:`fault_text` and :meth:`statuses`, all of one
        moment (a node's ``/diagnostics``): its own status said ``camera_faults: none`` while the
        camera's status beside it, checked after, said ``silent`` (ERROR)."""
        with self._lock:
            self.check(now)
            return self.fault_text(), self.statuses()

    def status(self, topic: str) -> dict[str, Any]:
        """The DiagnosticStatus dict of one camera: named ``camera_health: <topic>``, hardware_id
        = its topic, the conditions in the message, the metrics in the values. The same live and
        in a replay (the node's name is added only in ``/diagnostics``)."""
        with self._lock:
            m = self.monitors[topic]
            return _diagnostic(topic, m.level, m.message(), m.values())

    def statuses(self) -> list[dict[str, Any]]:
        """One status per camera."""
        with self._lock:
            return [self.status(t) for t in self.monitors]

    def faults(self) -> dict[str, list[str]]:
        """The cameras in ERROR, with their conditions."""
        with self._lock:
            return {t: m.conditions for t, m in self.monitors.items() if m.level == ERROR}

    def fault_text(self) -> str:
        """``/front/image_raw (blocked)`` for each camera in ERROR, joined; "" when none."""
        return "; ".join(f"{t} ({', '.join(c)})" for t, c in self.faults().items())

    def summary(self) -> dict[str, Any]:
        """Per camera topic ``{"conditions_s": {condition: seconds}, "events": [...]}``; when
        events were left out (more than twice ``keep_each_end``), also ``events_total`` and
        ``events_left_out``: ``events`` then holds the first and the last ones; when frames could
        not be judged (:meth:`judge`), ``unjudged_frames``."""
        with self._lock:
            return self._summary()

    def _summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in self.monitors:
            events = self._events[t]
            out[t] = {"conditions_s": {c: round(s, 3) for c, s in sorted(self._seconds[t].items())},
                      "events": [e.as_dict() for e in events.items()]}
            if events.left_out:
                out[t].update(events_total=events.total, events_left_out=events.left_out)
            if self._unjudged.get(t):
                out[t]["unjudged_frames"] = self._unjudged[t]
        return out
