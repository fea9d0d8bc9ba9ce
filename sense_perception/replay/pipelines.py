"""The perception of a replay: exterior frames through the object detector (batched across cameras
close in bag time) and the tracker, cabin frames through the driver pipeline.

:func:`build_core` builds the core objects from the config file like the nodes do. Each stage turns decoded frames into their results (:class:`ExteriorFrame`, :class:`CabinFrame`)
and hands them, with the messages they publish
(:func:`~sense_perception.core.output.frame_outputs.frame_messages`), to a callback; a frame whose
inference raises goes to ``on_failure`` and the replay goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..config import load_params, section_from_params
from ..core.autoware.rois import AutowareConfig
from ..core.exterior_steps import ExteriorSteps
from ..core.health.camera_health import CameraHealthBank, in_fault
from ..core.health.camera_settings import CameraHealthSettings, health_settings_type
from ..core.health.inference_guard import safe_detect
from ..core.imaging.frame_guard import InputLimits
from ..core.imaging.image_decode import ImageView
from ..core.output.annotations import image_size_of
from ..core.output.frame_outputs import (CABIN_OUTPUTS, EXTERIOR_OUTPUTS, CabinFrame, ExteriorFrame,
                                         Message, Output, enabled_outputs, frame_messages,
                                         judged_outputs)
from ..core.types import Header
from ..model_load import load_models
from ..ros.settings import DriverMonitorNodeSettings, ObjectDetectorSettings

LOG = logging.getLogger(__name__)

EXTERIOR, CABIN = "exterior", "cabin"  # camera roles: object_detector's cameras, driver_monitor's
NODES = {EXTERIOR: "object_detector", CABIN: "driver_monitor"}


@dataclass
class ReplayCore:
    """The core objects and parameters of a replay, by camera role (:data:`EXTERIOR`, :data:`CABIN`).

    Attributes:
        limits: the ``input.*`` size limits of the node that would handle each role's cameras.
        settings: that node's own parameters (which outputs are on, when silence warns).
        health: the ``camera_health.*`` parameters of each role's node.
        detector, trackers: exterior cameras (None without them; trackers None with tracking off).
        identifier: the driver pipeline (None without a cabin camera).
        ignore: the exterior cameras' ignore regions
            (:class:`~sense_perception.core.detection.ignore_regions.IgnoreRegions`; None without
            exterior cameras).
    """

    limits: dict[str, InputLimits]
    settings: dict[str, Any]
    health: dict[str, CameraHealthSettings]
    detector: Any = None
    trackers: Any = None
    identifier: Any = None
    ignore: Any = None


def build_core(config: Path | None, exterior: bool, cabin: bool, detector: Any = None,
               identifier: Any = None, exterior_topics: Sequence[str] = (),
               autoware: AutowareConfig | None = None, command: str = "replay") -> ReplayCore:
    """Build what a replay needs from the config file, like the nodes do.

    Args:
        config: the ROS 2 parameter file (None: defaults).
        exterior, cabin: whether there are exterior cameras / a cabin camera to build for.
        detector, identifier: prebuilt ones to use instead (tests and the fleet share them).
        exterior_topics: the exterior cameras: the mount parameters serve one camera only
            (:func:`~sense_perception.core.geometry.positioner.check_one_mount`, before any
            model loads).
        autoware: the ``autoware.*`` settings: ``mount_height`` is refused with Autoware's
            outputs on (:func:`~sense_perception.core.geometry.positioner.check_mount_for_autoware`).
        command: the command that waits for the models' load, bounded by each node's
            ``warm_up_timeout_s`` (:func:`~sense_perception.model_load.load_models`, R87).

    Raises:
        ConfigError / ModelError / PrivacyError from the core.
    """
    source = str(config) if config else "default parameters"
    params = {role: load_params(config, node) for role, node in NODES.items()}
    limits = {role: InputLimits.from_params(params[role], source) for role in NODES}
    settings = {EXTERIOR: _node_settings(ObjectDetectorSettings, params[EXTERIOR], source),
                CABIN: _node_settings(DriverMonitorNodeSettings, params[CABIN], source)}
    health = {role: health_settings_type(node).from_params(params[role], source)
              for role, node in NODES.items()}
    if exterior_topics:
        from ..core.geometry.positioner import check_mount_for_autoware, check_one_mount

        check_one_mount(exterior_topics, settings[EXTERIOR].mount_parameter())
        if autoware is not None:
            check_mount_for_autoware(settings[EXTERIOR].mount_parameter(),
                                     [autoware.rois_topic, autoware.objects_topic])
    # the loads are bounded as the nodes' (R87): one that never returned held the replay for ever
    if exterior and detector is None:
        from ..core.detection.detector_setup import build_detector

        detector = load_models(partial(build_detector, params[EXTERIOR], source),
                               "the detector's models", params[EXTERIOR], source, command)
    if cabin and identifier is None:
        from ..face.pipeline import DriverIdentifier

        identifier = load_models(partial(DriverIdentifier.from_params, params[CABIN], source),
                                 "the face models", params[CABIN], source, command,
                                 NODES[CABIN])
    trackers = ignore = None
    if exterior:
        from ..core.detection.ignore_regions import IgnoreRegions
        from ..core.tracking.ground_motion import VelocityConfig
        from ..core.tracking.tracker import TrackerBank, TrackingConfig

        ignore = IgnoreRegions.from_params(params[EXTERIOR], source)

        tracking = TrackingConfig.from_params(params[EXTERIOR], source)
        # read with tracking off too, as the node's configure reads it: a bad tracking.velocity.*
        # beside tracking.enabled: false failed the node and was ignored by the replay (R75)
        velocity = VelocityConfig.from_params(params[EXTERIOR], source)
        if tracking.enabled:
            trackers = TrackerBank(tracking, detector.label_names, velocity)
    return ReplayCore(limits, settings, health, detector, trackers, identifier, ignore)


def autoware_settings(config: Path | None) -> AutowareConfig:
    """object_detector's ``autoware.*`` parameters (Autoware's ROIs) from the config file."""
    source = str(config) if config else "default parameters"
    return section_from_params(AutowareConfig, load_params(config, NODES[EXTERIOR]), "autoware.", source)


def camera_info_entries(config: Path | None, exterior: Sequence[str]) -> list[tuple[str, str]]:
    """Per replayed exterior camera: (what names its CameraInfo, the entry of object_detector's
    ``camera_info_topics`` for it: a topic, ``auto`` or ""), as the node reads it (R67: the replay
    read ``<ns>/camera_info`` whatever the config said). One entry (or one value for all) serves
    every camera; entries per camera of the config's ``camera_topics`` serve the replayed camera
    of the same camera (:func:`~..core.output.topics.same_camera`: another transport or image of
    its namespace; a relative name: every camera it may resolve to).

    Raises:
        ConfigError: the entries differ per camera and a replayed camera is none of the config's
            ``camera_topics``, so nothing names its CameraInfo; naming it and the fix.
    """
    source = str(config) if config else "default parameters"
    settings = _node_settings(ObjectDetectorSettings, load_params(config, NODES[EXTERIOR]), source)
    entries = [str(e) for e in settings.camera_info_topics]
    what = f"object_detector.camera_info_topics of {source}"
    if len(set(entries)) == 1:
        return [(what, entries[0]) for _ in exterior]
    from ..core.output.topics import may_be_camera, same_camera

    named = list(zip(map(str, settings.camera_topics), entries, strict=True))
    out = []
    guessed: dict[str, list[str]] = {}  # a relative name -> the replayed cameras it served
    for camera in exterior:
        # the camera of the same topic first; else of the same camera (another image or
        # transport of its namespace, R70), or that a relative name may resolve to: compared
        # by transport alone, a bag of the rectified image of a camera the config names raw,
        # or of a camera it names relatively, was refused (R71)
        found = next(((c, e, test is may_be_camera)
                      for test in (_same_image, same_camera, may_be_camera)
                      for c, e in named if test(c, camera)), None)
        if found is not None and found[2]:
            guessed.setdefault(found[0], []).append(camera)
            _one_camera_per_name(found[0], guessed[found[0]], what)
        entry = None if found is None else found[1]
        if entry is None:
            from ..errors import ConfigError

            raise ConfigError(
                f"{what} names each camera's CameraInfo by its camera_topics "
                f"({', '.join(map(str, settings.camera_topics))}), but the replayed camera "
                f"{camera} is none of them, so nothing names its CameraInfo; fix: pass --topics "
                "with the config's cameras, or list it in camera_topics with its entry of "
                "camera_info_topics (or give camera_info_topics one entry, auto)")
        out.append((what, entry))
    return out


def _one_camera_per_name(name: str, cameras: list[str], what: str) -> None:
    """Refuse one relative camera name serving several replayed cameras: a node resolves it in
    its one namespace, so it is one camera, and a bare ``image_raw`` may be any of them (R74:
    each would have been placed with that camera's CameraInfo).

    Raises:
        ConfigError: naming the name, the cameras and the fix.
    """
    if len(cameras) > 1:
        from ..errors import ConfigError

        raise ConfigError(
            f"{what} names each camera's CameraInfo by its camera_topics, and the relative name "
            f"{name} may be each of the replayed cameras {', '.join(cameras)} (a node resolves "
            "it in its own namespace, which a replay does not know), but it is one camera; fix: "
            "name the cameras by their absolute topics in camera_topics, or pass --topics with "
            "the one it is")


def _same_image(a: str, b: str) -> bool:
    """Whether topics ``a`` and ``b`` carry one image (either transport)."""
    from ..core.output.topics import image_base_topic

    return image_base_topic(a) == image_base_topic(b)


def _node_settings(cls: type, params: dict[str, Any], source: str) -> Any:
    """A node's own (top-level) parameters from its flattened parameters, defaults for the rest,
    checked as the node checks them (a mount_height of -1.5 placed objects below the road)."""
    settings: Any = section_from_params(cls, {k: v for k, v in params.items() if "." not in k}, "",
                                        source, strict=False)
    settings.validate()
    return settings


class DecodedFrame(NamedTuple):
    """A camera frame of the bag, decoded."""

    topic: str
    timestamp: int  # bag time, ns
    header: Header
    image: np.ndarray | ImageView  # a view of the message buffer on exterior cameras
    started: float  # perf_counter() when its decode began
    # the replay's arrival clock, s (bag time that never goes back: diagnostics.ArrivalClock);
    # None: the bag time
    arrival: float | None = None
    # what times its tracks or driver attention (FrameClock); None: its header's stamp
    time: float | None = None

    @property
    def seconds(self) -> float:
        """The seconds a frame's tracks and velocities (exterior) or driver attention and
        identity (cabin), and its video, are timed with."""
        return self.header.seconds if self.time is None else self.time

    @property
    def latency_ms(self) -> float:
        """Milliseconds since its decode began."""
        return (time.perf_counter() - self.started) * 1e3


Failure = Callable[[list[DecodedFrame], Exception], None]
# a frame dropped after it was judged, and the messages it still publishes (its camera health)
Judged = Callable[[DecodedFrame, list[Message]], None]


def judge(health: CameraHealthBank | None, frame: DecodedFrame) -> dict[str, Any] | None:
    """The camera's health status after ``frame`` (arrival: the replay's arrival clock); None
    without health. A judgement that raises gives a STALE status naming the error and the frame
    goes on (:meth:`CameraHealthBank.judge`; summary.json counts it as ``unjudged_frames``),
    warned once per camera."""
    if health is None:
        return None
    h = frame.header
    arrival = frame.timestamp * 1e-9 if frame.arrival is None else frame.arrival
    status, error = health.judge(frame.topic, frame.image, h.seconds, h.frame_id, arrival)
    if error is not None and health.unjudged(frame.topic) == 1:  # a repeating fault: once
        LOG.warning("camera health could not judge a frame of %s (its detections go on; "
                    "summary.json counts such frames as unjudged_frames): %r", frame.topic, error)
    return status


class ExteriorStage:
    """Object detection of the exterior cameras.

    Args:
        detector, trackers: the core objects (trackers None with tracking off).
        namespaces: output namespace of each exterior topic.
        switches: which switchable outputs are on (:func:`~.frame_outputs.switches`).
        window_ns: frames of different cameras this close in bag time share one ``detect`` call.
        on_result: gets each frame, its results and the messages it publishes.
        on_failure: gets the frames whose inference raised, and the exception.
        autoware: the ``autoware.*`` settings (Autoware's ROIs), None: none.
        positions: places each frame's detections on the road
            (:class:`~sense_perception.core.geometry.positioner.CameraPositions`); None: no 3-D.
        health: the cameras' health (None with ``camera_health.enabled`` false); every frame is
            judged, those whose inference fails too.
        ignore: the cameras' ignore regions (None: none); detections in them are dropped before
            tracking.
        on_judged: gets a frame dropped after it was judged (its detection, tracking or
            positions raised) and the messages it still publishes: its camera health (the
            table's judged rows), as the node publishes it; None: nothing.
    """

    def __init__(self, detector: Any, trackers: Any, namespaces: dict[str, str],
                 switches: dict[str, Any], window_ns: float,
                 on_result: Callable[[DecodedFrame, ExteriorFrame, list[Message]], None],
                 on_failure: Failure, autoware: AutowareConfig | None = None,
                 positions: Any = None, health: CameraHealthBank | None = None,
                 ignore: Any = None, on_judged: Judged | None = None) -> None:
        self.health = health
        self._on_judged = on_judged
        self.steps = ExteriorSteps(detector, trackers, positions, ignore, autoware)
        self.detector = detector
        self.namespaces = namespaces
        self.outputs: list[Output] = enabled_outputs(EXTERIOR_OUTPUTS, switches, live=False)
        self.switches = switches
        self.window_ns = window_ns
        self.pending: list[DecodedFrame] = []
        self._on_result = on_result
        self._on_failure = on_failure
        self._latched_done: set[str] = set()

    def add(self, frame: DecodedFrame) -> None:
        """Queue ``frame``; detect the queue once every camera has a frame in it, or when this
        frame is another of a queued camera or too far in bag time from the first."""
        pending = self.pending
        if pending and (frame.topic in {p.topic for p in pending}
                        or frame.timestamp - pending[0].timestamp > self.window_ns):
            self.flush()
        pending.append(frame)
        if len(pending) == len(self.namespaces):
            self.flush()

    def flush(self) -> None:
        """Detect every queued frame (one batch) and hand out the results."""
        if not self.pending:
            return
        # a judgement that raises gives a STALE status, the frame goes on (judge)
        judged = [(frame, judge(self.health, frame)) for frame in self.pending]
        results = safe_detect(self.detector, [f.image for f, _ in judged]) if judged else []
        for (frame, status), outcome in zip(judged, results, strict=True):
            if outcome.error is not None:
                self._on_failure([frame], outcome.error)
                self._judged(frame, status)
                continue
            try:
                result = self.steps.frame(frame.topic, frame.header, outcome.detections,
                                          image_size_of(frame.image), status, t=frame.seconds)
            except Exception as exc:  # noqa: BLE001 - tracking, positions: as inference
                self._on_failure([frame], exc)
                self._judged(frame, status)
                continue
            first = frame.topic not in self._latched_done
            self._latched_done.add(frame.topic)
            rows = [o for o in self.outputs if first or not o.latched]  # latched: once per camera
            self._on_result(frame, result, frame_messages(rows, self.namespaces[frame.topic], result,
                                                          switches=self.switches))
        self.pending.clear()

    def _judged(self, frame: DecodedFrame, status: dict[str, Any] | None) -> None:
        """Hand out the camera health of a frame dropped after it was judged (``on_judged``)."""
        if self._on_judged is None or status is None:
            return
        dropped = ExteriorFrame.judged(frame.header, self.detector, image_size_of(frame.image),
                                       status)
        self._on_judged(frame, frame_messages(judged_outputs(self.outputs),
                                              self.namespaces[frame.topic], dropped,
                                              switches=self.switches))


class CabinStage:
    """The driver pipeline on the cabin camera.

    Args:
        identifier: the :class:`~sense_perception.face.pipeline.DriverIdentifier`.
        ns: the cabin camera's output namespace.
        switches: which switchable outputs are on.
        on_result: gets each frame, its results and the messages it publishes.
        on_failure: gets the frame whose pipeline raised, and the exception.
        on_judged: gets a frame dropped after it was judged (the driver pipeline raised) and the
            messages it still publishes: its camera health, as the node publishes it.
    """

    def __init__(self, identifier: Any, ns: str, switches: dict[str, bool],
                 on_result: Callable[[DecodedFrame, CabinFrame, list[Message]], None],
                 on_failure: Failure, health: CameraHealthBank | None = None,
                 on_judged: Judged | None = None) -> None:
        self.health = health
        self._on_judged = on_judged
        self.identifier = identifier
        self.ns = ns
        self.outputs: list[Output] = enabled_outputs(CABIN_OUTPUTS, switches, live=False)
        self._on_result = on_result
        self._on_failure = on_failure

    def process(self, frame: DecodedFrame) -> None:
        """Run the driver pipeline on one frame and hand out its results."""
        status = None
        try:
            status = judge(self.health, frame)
            # frame.seconds: the bag's receive time for a camera that never stamps its frames
            result = self.identifier.process(frame.image, frame.seconds,
                                              camera_fault=in_fault(status))
        except Exception as exc:  # noqa: BLE001 - one bad frame must not end the replay
            self._on_failure([frame], exc)
            if self._on_judged is not None and status is not None:  # its camera health
                dropped = CabinFrame(frame.header, None, image_size_of(frame.image), status)
                self._on_judged(frame, frame_messages(judged_outputs(self.outputs), self.ns,
                                                      dropped))
            return
        cabin = CabinFrame(frame.header, result, image_size_of(frame.image), status)
        self._on_result(frame, cabin, frame_messages(self.outputs, self.ns, cabin))
