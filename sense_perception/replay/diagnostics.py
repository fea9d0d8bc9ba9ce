"""The ``/diagnostics`` a replay writes: the statuses the nodes would publish for the same frames.

One :class:`~sense_perception.core.health.stats.HealthStats` per pipeline (object_detector for the
exterior cameras, driver_monitor for the cabin camera) counts what happened to each frame. Its
clock is the bag time, so input rates and silences are those of the recording; latencies are wall
time from a frame's decode to its results. Each status has the node's keys
(:mod:`sense_perception.core.output.status` and :meth:`HealthStats.report`), named
``sense_perception replay: <node>`` so it is not mistaken for a live node's.
"""
from __future__ import annotations

from typing import Any, Callable

from ..core.health.camera_health import CameraHealthBank
from ..core.health.stats import HealthStats
from ..core.output import messages
from ..core.output.frame_outputs import DIAGNOSTIC_ARRAY, DIAGNOSTICS_TOPIC
from ..core.output.status import camera_values, name_camera_faults
from ..core.types import Header

DIAGNOSTICS_PERIOD_NS = 1_000_000_000
STATUS_PREFIX = "sense_perception replay: "


class PipelineHealth:
    """The counters and the status values of one pipeline in a replay.

    Args:
        node: the node name this pipeline stands for (``object_detector``, ``driver_monitor``).
        topics: its camera topics.
        clock: the current bag time in seconds.
        no_input_warn_s: the node's ``no_input_warn_s``: silence in bag time that warns.
        annotations: the node's ``annotations`` diagnostic (on / off).
        values: the pipeline's own key/values
            (:func:`~sense_perception.core.output.status.detector_values`...), asked at each report.
        hardware_id: what the status is about, asked at each report.
        warnings: problems that make the level at least WARN (the node's ``diagnostic_warnings``),
            asked at each report.
        cameras: the health of its cameras (None with ``camera_health.enabled`` false): one
            status per camera, and the pipeline's status names those in ERROR.
    """

    def __init__(self, node: str, topics: list[str], clock: Callable[[], float],
                 no_input_warn_s: float, annotations: str,
                 values: Callable[[], dict[str, Any]], hardware_id: Callable[[], str],
                 warnings: Callable[[], list[str]] | None = None,
                 cameras: CameraHealthBank | None = None) -> None:
        self.node = node
        self.cameras = cameras
        self.topics = topics
        self.stats = HealthStats(topics, clock=clock)
        self._no_input = no_input_warn_s
        self._annotations = annotations
        self._values = values
        self._hardware_id = hardware_id
        self._warnings = warnings

    def status(self) -> dict[str, Any]:
        """The DiagnosticStatus dict, like the node's (the node also reports ``input_qos``, a live
        subscription's QoS, which a bag does not have)."""
        extra = {"state": "active", **self._values(), "annotations": self._annotations,
                 **camera_values(self.cameras)}
        status = self.stats.report(STATUS_PREFIX + self.node, self._hardware_id(), extra, self._no_input)
        warnings = self._warnings() if self._warnings is not None else []
        if warnings:  # as the node does (PerceptionNode.publish_diagnostics)
            status["message"] = "; ".join(([] if status["level"] == messages.OK else [status["message"]]) + warnings)
            status["level"] = max(status["level"], messages.WARN)
        return name_camera_faults(status, self.cameras)

    def camera_statuses(self, now: float) -> list[dict[str, Any]]:
        """One status per camera (hardware_id = its topic), after a silence check at ``now``."""
        if self.cameras is None:
            return []
        self.cameras.check(now)
        return [{**s, "name": f"{STATUS_PREFIX}{self.node} {s['name']}"}
                for s in self.cameras.statuses()]


class ArrivalClock:
    """The replay's arrival clock: the bag time of each message, never going back.

    A bag's receive times go back where a recording made on simulation time (``ros2 bag record
    --use-sim-time``) meets a simulator reset, or where storage files of two runs or loops lie in
    one bag folder. On those times the replay's silence checks, input rates, the seconds counted
    per camera condition and the once-a-second ``/diagnostics`` all waited for the bag time to
    come back past where it had been (a second loop wrote no ``/diagnostics`` at all). Here a
    step back is taken as no time passing: the clock goes on from where it was.
    """

    def __init__(self) -> None:
        self._offset = 0  # ns added to the bag time: the steps back so far
        self._last: int | None = None

    def step(self, timestamp: int) -> int:
        """The arrival time (ns) of a message received at bag time ``timestamp`` (ns)."""
        arrival = int(timestamp) + self._offset
        if self._last is not None and arrival < self._last:
            self._offset += self._last - arrival
            arrival = self._last
        self._last = arrival
        return arrival


class ReplayDiagnostics:
    """Writes the pipelines' statuses to ``/diagnostics`` once per second of bag time.

    Args:
        pipelines: the pipelines of this replay.
        emit: writes (topic, msgtype, bag time ns, message dict).
    """

    def __init__(self, pipelines: list[PipelineHealth],
                 emit: Callable[[str, str, int, dict[str, Any]], None]) -> None:
        self.pipelines = pipelines
        self._emit = emit
        self._next: int | None = None
        self._started = False

    def start(self) -> None:
        """Count silences from now (the first message's bag time), as a node does on activation:
        the pipelines' and their cameras' (``camera_health`` ``silent``)."""
        if not self._started:
            self._started = True
            for p in self.pipelines:
                p.stats.restart_silence_clock()
                if p.cameras is not None:  # a camera with no frame at all is silent, as live
                    p.cameras.start(p.stats.now())

    def maybe_write(self, timestamp: int, header: Header, arrival: int | None = None) -> None:
        """Write the statuses when a second passed since the last ones on the arrival clock
        (``arrival``, ns: :class:`ArrivalClock`; the bag time ``timestamp`` when None)."""
        arrival = timestamp if arrival is None else arrival
        if self._next is None or arrival >= self._next:
            self._next = arrival + DIAGNOSTICS_PERIOD_NS
            self.write(timestamp, header, arrival)

    def write(self, timestamp: int, header: Header, arrival: int | None = None) -> None:
        """Write the statuses now at bag time ``timestamp``, stamped with ``header``'s time (no
        frame id); the cameras' silences are checked at ``arrival`` (ns; ``timestamp`` if None)."""
        now = (timestamp if arrival is None else arrival) * 1e-9
        statuses = [p.status() for p in self.pipelines]
        statuses += [s for p in self.pipelines for s in p.camera_statuses(now)]
        self._emit(DIAGNOSTICS_TOPIC, DIAGNOSTIC_ARRAY, timestamp,
                   messages.diagnostic_array(Header(header.sec, header.nanosec, ""), statuses))
