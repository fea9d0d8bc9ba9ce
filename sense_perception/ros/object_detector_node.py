"""``object_detector``: a lifecycle node detecting objects and pedestrians in one or more cameras.

Per camera topic ``<ns>/<image>`` (sensor_msgs/Image, or CompressedImage for ``.../compressed``) it
publishes, with the input header copied exactly:

* ``<ns>/detections`` vision_msgs/Detection2DArray, one per processed frame, empty when nothing is
  found (class_id = label name, id = track id or "");
* ``<ns>/label_info`` vision_msgs/LabelInfo, transient-local, once per activation;
* ``<ns>/detections_3d`` vision_msgs/Detection3DArray in base_link: the road users' ground
  positions, when the camera is calibrated (its CameraInfo, ``camera_info_topics``, plus the
  base_link -> camera chain of ``/tf_static`` or the ``mount_*`` parameters); without a
  calibration none, and ``/diagnostics`` says why (``positions[<camera>]``);
* ``<ns>/detections_image`` sensor_msgs/Image (bgr8) with the boxes drawn, built only while
  something subscribes (``publish_debug_image``);
* ``<ns>/annotations`` foxglove_msgs/ImageAnnotations (a closed polyline and a caption per
  detection, timestamp = the image's stamp: Foxglove draws them over the camera image), built
  only while something subscribes (``publish_annotations``);
* ``<ns>/camera_health`` diagnostic_msgs/DiagnosticStatus, one per frame: whether the camera can
  be trusted (blocked, low_visibility, dark, bright, frozen, stream timing; ``camera_health.*``);
* with ``autoware.rois_topic`` set, Autoware's ROIs (tier4_perception_msgs/DetectedObjectsWithFeature,
  reliable, keep last 1, as autoware_tensorrt_yolox) on that topic per camera, and a check of each camera's CameraInfo
  (:mod:`sense_perception.core.autoware`; docs/autoware.md); placed detections carry their
  kinematics and shape;
* with ``autoware.objects_topic`` set, Autoware's autoware_perception_msgs/DetectedObjects of each
  calibrated camera: the placed road users in base_link, with the twist (relative to base_link)
  while a track's velocity is steady (``tracking.velocity.*``);

and ``/diagnostics``: the node's status (naming any camera in ERROR) and one per camera. The per-frame outputs are the rows of
:data:`~sense_perception.core.output.frame_outputs.EXTERIOR_OUTPUTS`. Frames are handled latest-first: frames from all cameras that are waiting are
detected in one batched call; a frame overwritten before inference reached it is dropped and
counted. All perception happens in :class:`sense_perception.core.detection.detector.ObjectDetector`.
"""
from __future__ import annotations

import sys
import threading
import time
from functools import partial
from typing import Any, Callable

import numpy as np

from ..config import section_from_params
from ..core.autoware.camera_info import CameraInfoWatch
from ..core.autoware.rois import AutowareConfig, check_camera_info_topic, rois_topics
from ..core.exterior_steps import ExteriorSteps
from ..core.health.inference_guard import safe_detect
from ..core.message_types import CAMERA_INFO, TF_MESSAGE, TF_STATIC
from ..core.output.annotations import image_size_of
from ..core.output.frame_outputs import (DIAGNOSTIC_ARRAY, DIAGNOSTICS_TOPIC, EXTERIOR_OUTPUTS,
                                         ExteriorFrame, enabled_outputs, frame_messages,
                                         judged_outputs, output_topic, switches, taken_topics)
from ..core.output.status import detector_hardware_id, detector_values
from ..core.output.topics import output_namespaces
from ..core.runtime.warm_up import WarmUpJob
from ..core.types import Detections, Header
from ..face.privacy import check_cabin_not_exterior
from . import qos
from .convert import to_msg
from .frame_slots import Frame
from .node_common import PerceptionNode, resolve_transport
from .settings import ObjectDetectorSettings

NODE_NAME = "object_detector"


class ObjectDetectorNode(PerceptionNode):
    """Lifecycle node around :class:`~sense_perception.core.detection.detector.ObjectDetector`.

    Args:
        node_name: ROS node name.
        **kwargs: passed to :class:`rclpy.lifecycle.LifecycleNode` (namespace, parameter_overrides,
            cli_args, context...).
    """

    SETTINGS = ObjectDetectorSettings

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.detector: Any = None
        self.trackers: Any = None
        self.ignore: Any = None
        self.steps: Any = None  # ExteriorSteps: what follows detection, as in the replay
        self._outputs: list[tuple[str, dict[str, Any]]] = []  # (namespace, publishers) per input
        self.autoware = AutowareConfig()
        self._switches: dict[str, Any] = {}
        self.camera_infos: CameraInfoWatch | None = None  # while Autoware's ROIs are on
        self._camera_info_subs: list[Any] = []
        self.positions: Any = None  # CameraPositions: the cameras' calibrations (3-D positions)
        self._calibration_subs: list[Any] = []
        # held around each batch's detect (worker_lock); a new one with each detector, so that
        # one hung in a detector a cleanup let go never holds the next configure's worker
        self._detect_lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------------------

    def inputs(self, settings: ObjectDetectorSettings) -> list[tuple[str, type]]:
        self.check_remapped_cabin(settings)
        self.check_private_handover(settings.camera_topics, "camera_topics entry",
                                    "driver_monitor", "exterior_camera_topics",
                                    "could run face identification on this exterior camera")
        return [(topic, resolve_transport(topic, tr))
                for topic, tr in zip(settings.camera_topics, settings.transports(), strict=True)]

    def check_remapped_cabin(self, settings: ObjectDetectorSettings) -> None:
        """Refuse a camera that the node's remap rules (``--ros-args -r FROM:=TO``, a launch
        file's ``remappings``, ``run``'s global ones) turn into the cabin camera, or that the
        cabin camera is turned into: the subscription takes the remapped name, so the settings'
        own check of the names as given (SECURITY.md P12) let the detector subscribe to the
        driver's camera and publish their face in its debug image and annotations (R40).

        Raises:
            PrivacyError: naming the camera, its remapped name and the fix.
        """
        cabin = settings.cabin_camera_topic
        if not cabin:
            return
        resolved = [self.resolve_topic_name(topic) for topic in settings.camera_topics]
        cabin_resolved = self.resolve_topic_name(cabin)
        moved = [f"{t} remapped to {r}" for t, r in zip(settings.camera_topics, resolved,
                                                        strict=True) if r != t]
        if cabin_resolved != cabin:
            moved.append(f"{cabin} remapped to {cabin_resolved}")
        if not moved:
            return  # no remap on either: the settings checked the names as given
        for name in dict.fromkeys((cabin, cabin_resolved)):
            check_cabin_not_exterior(
                name, resolved, "cabin_camera_topic",
                f"camera_topics through the node's remap rules ({'; '.join(moved)})",
                "fix: remove the remap rule that joins them (--ros-args -r, a launch file's "
                "remappings), or the camera from camera_topics")

    def check_remapped_outputs(self) -> None:
        """Refuse an output that the node's remap rules move onto a camera image, one of the
        node's own inputs (a loop: it would read what it publishes) or another endpoint with a
        message type of its own, or onto driver_monitor's topics: the publishers take the
        remapped names, which the settings' checks of the names as given never saw (R45).

        Raises:
            ConfigError: naming the remap, what it clashes with and the fix.
        """
        from ..core.output.remaps import Endpoint, check_remapped_outputs

        settings, on = self.settings, switches(self.settings, autoware=self.autoware)
        ends = [Endpoint(DIAGNOSTICS_TOPIC, DIAGNOSTIC_ARRAY, "the /diagnostics output", True)]
        for (camera, cls), ns in zip(self._inputs, output_namespaces([t for t, _ in self._inputs]),
                                     strict=True):
            ends.append(Endpoint(camera, f"sensor_msgs/msg/{cls.__name__}",
                                 f"the image input of camera '{camera}'", False))
            ends += [Endpoint(output_topic(row, ns, on), row.msgtype,
                              f"the {row.name} output of camera '{camera}'", True)
                     for row in enabled_outputs(EXTERIOR_OUTPUTS, on)]
        infos = list(settings.info_topics())
        if self.autoware.enabled and self.autoware.camera_info_topic:
            infos += settings.autoware_info_topics(self.autoware.camera_info_topic)
        ends += [Endpoint(t, CAMERA_INFO, "a CameraInfo input", False) for t in dict.fromkeys(infos) if t]
        if self.positions.mount is None:
            ends.append(Endpoint(TF_STATIC, TF_MESSAGE, f"the {TF_STATIC} input", False))
        foreign = taken_topics([], [], cabin=settings.cabin_camera_topic)
        check_remapped_outputs(ends, self.resolve_topic_name,
                               lambda t: self.resolve_topic_name(t, only_expand=True), foreign)

    def load(self, params: dict[str, Any], source: str) -> None:
        from ..core.detection.detector_setup import build_detector
        from ..core.geometry.positioner import check_mount_for_autoware
        from ..core.geometry.positioner import CameraPositions
        from ..core.detection.ignore_regions import IgnoreRegions
        from ..core.tracking.ground_motion import VelocityConfig
        from ..core.tracking.tracker import TrackerBank, TrackingConfig

        self.positions = CameraPositions(mount=self.settings.mount(),  # a bad mount: first
                                         noise=self.settings.position_noise())

        self.GATHER_S = self.settings.batch_wait_ms / 1000.0
        t0 = time.perf_counter()
        self.ignore = IgnoreRegions.from_params(params, source)
        self.ignore.check_topics(list(self.settings.camera_topics), source)
        # The topics first, before any model loads: a clash is refused in a moment.
        self.autoware = section_from_params(AutowareConfig, params, "autoware.", source)
        # Refuses clashes: two cameras on one topic, or a topic an input or another output has.
        cameras = list(self.settings.camera_topics)
        taken = taken_topics(cameras, output_namespaces(cameras), {
            info: f"the CameraInfo input of camera '{camera}'"
            for camera, info in zip(cameras, self.settings.info_topics(), strict=True)},
            self.settings.cabin_camera_topic)
        rois = rois_topics(cameras, self.autoware.rois_topic, taken=taken)
        if self.autoware.enabled:  # the CameraInfo check runs only with the ROIs on
            check_camera_info_topic(cameras, self.autoware.camera_info_topic, [
                ("camera_info_topics", info) for info in self.settings.info_entries()])
        objects = rois_topics(cameras, self.autoware.objects_topic, "autoware.objects_topic", {
            **taken, **{t: f"the ROI output of camera '{c}'"
                        for c, t in zip(cameras, rois, strict=True) if t}})
        check_mount_for_autoware(self.settings.mount_parameter(),
                                 [self.autoware.rois_topic, self.autoware.objects_topic])
        self.check_remapped_outputs()
        self._detect_lock = threading.Lock()
        # The models load in a thread of their own, bounded as the warm-up: a session creation
        # or a first run at load that hung held configure, and the executor, for ever (R85).
        # What it builds is taken only here: one returning late is dropped.
        self.detector = self.load_bounded(partial(build_detector, params, source),
                                          "the detector's models",
                                          self.settings.warm_up_timeout_s)
        tracking = TrackingConfig.from_params(params, source)
        velocity = VelocityConfig.from_params(params, source)
        self.trackers = TrackerBank(tracking, self.detector.label_names, velocity) \
            if tracking.enabled else None
        self.steps = ExteriorSteps(self.detector, self.trackers, self.positions, self.ignore,
                                   self.autoware)
        if "animal" in self.detector.label_names and (self.autoware.enabled or any(objects)):
            self.get_logger().warning(
                "detector.animals: animals reach Autoware as ANIMAL 8; roi_detected_object_fusion "
                "indexes its can_assign_matrix with the ROI's label: give it 9 labels or more "
                "(Autoware's parameter files have 8), or set detector.animals: false")
        for what, topics in (("ROIs", rois), ("DetectedObjects", objects)):
            if any(topics):
                self.get_logger().info(f"Autoware {what}: " + ", ".join(
                    f"{camera} -> {topic}"
                    for camera, topic in zip(self.settings.camera_topics, topics, strict=True)))
        self.get_logger().info(
            f"model {self.detector.model_name} on {self.detector.provider} (pre-processing on "
            f"{self.detector.preprocess_device}) loaded in "
            f"{time.perf_counter() - t0:.1f} s; {len(self.detector.label_names)} labels; tracking "
            f"{'on' if self.trackers else 'off'}")
        for reason in self.detector.fallback_reasons:
            self.get_logger().info(f"provider fallback: {reason}")

    def warm_up_job(self) -> WarmUpJob | None:
        from ..core.runtime.warm_up import warm_up_detector

        # bound now: a warm-up left hung by this configure never warms a later one's detector
        return partial(warm_up_detector, self.detector, len(self._inputs))

    def make_outputs(self) -> None:
        spaces = output_namespaces([t for t, _ in self._inputs])
        on = self._switches = switches(self.settings, autoware=self.autoware)
        # Kept camera by camera: a camera whose outputs cannot be made fails configure, and
        # release() destroys the cameras' made before it (a list built at once lost them).
        self._outputs = []
        for ns in spaces:
            self._outputs.append((ns, self.make_publishers(EXTERIOR_OUTPUTS, ns, on)))
        # CameraInfo readers by topic: one subscription per topic serves the 3-D positions and
        # Autoware's CameraInfo check alike.
        readers: dict[str, list[Callable[[Any], None]]] = {}
        self._watch_camera_infos(readers)
        self._subscribe_calibration(readers)
        self._subscribe_camera_infos(readers)

    def _subscribe_camera_infos(self, readers: dict[str, list[Callable[[Any], None]]]) -> None:
        from sensor_msgs.msg import CameraInfo

        each = {topic: partial(_each, tuple(callbacks)) for topic, callbacks in readers.items()}
        for topic, callback in each.items():
            self._camera_info_subs.append(self.create_subscription(
                CameraInfo, topic, callback, qos.profile("best_effort", 1, what="input")))
        # a CameraInfo latched before the node started reaches no volatile subscription
        self.latch_inputs(CameraInfo, each)

    def _watch_camera_infos(self, readers: dict[str, list[Callable[[Any], None]]]) -> None:
        """With Autoware's ROIs on, check each camera's CameraInfo for what Autoware's fusion would
        silently ignore: warned once per problem, and in /diagnostics."""
        cameras = [t for t, _ in self._inputs]
        if not self.autoware.enabled or not self.autoware.camera_info_topic:
            return
        watch = self.camera_infos = CameraInfoWatch(cameras)
        topics = dict(zip(self.settings.camera_topics,
                          self.settings.autoware_info_topics(self.autoware.camera_info_topic),
                          strict=True))
        for camera in cameras:
            topic = topics[camera]
            readers.setdefault(topic, []).append(partial(self._check_camera_info, watch, camera))

    def _check_camera_info(self, watch: CameraInfoWatch, camera: str, msg: Any) -> None:
        self._warn_camera_info(camera, watch.camera_info(camera, msg))

    def _warn_camera_info(self, camera: str, problems: list[str]) -> None:
        for problem in problems:
            # throttled: a frame_id changing every frame is a new problem every frame
            self.get_logger().warning(f"{camera} CameraInfo: {problem}. Autoware's fusion would "
                                      "ignore or misplace this camera", throttle_duration_sec=5.0)

    def _subscribe_calibration(self, readers: dict[str, list[Callable[[Any], None]]]) -> None:
        """CameraInfo of every camera (added to ``readers``) and /tf_static: what places the
        detections on the road."""
        for camera, info_topic in zip(self.settings.camera_topics, self.settings.info_topics(),
                                      strict=True):
            if not info_topic:
                continue
            self.positions.camera_info_topic(camera, info_topic)
            readers.setdefault(info_topic, []).append(
                partial(self._on_camera_info, camera, info_topic))
        if self.positions.mount is not None:
            return
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self.positions.tf_note = ("tf2_msgs is not installed, so /tf_static cannot be read; "
                                      "fix: install ros-$ROS_DISTRO-tf2-msgs, or set "
                                      "mount_transform or mount_height")
            self.get_logger().warning(self.positions.tf_note)
            return
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        # tf2's static listener profile: latched, so transforms sent before we started arrive.
        latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self._calibration_subs.append(self.create_subscription(
            TFMessage, TF_STATIC, self._on_tf_static, latched))

    def _on_tf_static(self, msg: Any) -> None:
        self.positions.tf_static(msg)
        if note := self.positions.new_tf_note():  # once; /diagnostics WARNs while it holds
            self.get_logger().warning(note)

    def on_outputs_active(self) -> None:
        stamp = self.get_clock().now().seconds_nanoseconds()
        detector = self.detector
        frame = ExteriorFrame(Header(int(stamp[0]), int(stamp[1]), ""), Detections(),
                              detector.label_names, detector.min_score)
        latched = [row for row in EXTERIOR_OUTPUTS if row.latched]
        for ns, pubs in self._outputs:
            for message in frame_messages([row for row in latched if row.name in pubs], ns, frame):
                pub = pubs[message.output.name]
                pub.publish(to_msg(pub.msg_type, message.message))

    def _on_camera_info(self, camera: str, topic: str, msg: Any) -> None:
        self.positions.camera_info(camera, msg, topic)

    def release(self) -> None:
        for _, pubs in self._outputs:
            self.destroy_publishers(pubs)
        self._outputs = []
        for sub in self._camera_info_subs:
            self.destroy_subscription(sub)
        self._camera_info_subs = []
        self.camera_infos = None
        for sub in self._calibration_subs:
            self.destroy_subscription(sub)
        self._calibration_subs = []
        self.detector = None
        self.trackers = None
        self.ignore = None
        self.steps = None
        self.positions = None  # configure builds them anew; /diagnostics shows no stale placements

    # -- frames -------------------------------------------------------------------------------------

    def process(self, frames: list[Frame]) -> None:
        # The detector reads raw rgb8/bgr8/... Images in place and JPEGs at the smallest scale it
        # needs; full-size BGR only for the debug image.
        floor = self.detector.decode_floor
        decoded = [(f, self.decode(f, zero_copy=True, size_floor=floor)) for f in frames]
        decoded = [(f, img) for f, img in decoded if img is not None]
        if not decoded:
            return
        # Every decoded frame is judged, those whose inference fails too; each frame's steps are
        # its own: one that fails (its detection, tracking, positions, outputs) drops that frame
        # alone, counted and logged, and the other cameras' frames of the batch go on.
        # (a judgement that raises gives a STALE status, the frame goes on: judge_camera)
        judged = [(frame, image, self.judge_camera(frame, image)) for frame, image in decoded]
        latencies = []
        # A failed batch is retried frame by frame: only the frame at fault is dropped and counted.
        # The detector's own lock would hold this worker for ever behind a detect hung in an
        # earlier activation; this one lets it go once the node does (R72).
        with self.worker_lock(self._detect_lock, frames):
            outcomes = safe_detect(self.detector, [img for _, img, _ in judged]) if judged else []
        self.drop_if_retired(frames)  # returned after a deactivate let this worker go (R72)
        for (frame, image, status), outcome in zip(judged, outcomes, strict=True):
            if outcome.error is not None:
                self._frame_failed(frame, "inference", outcome.error, status, image)
                continue
            topic = self.input_topic(frame.source)
            header = Header.from_msg(frame.msg.header)
            ns, pubs = self._outputs[frame.source]
            try:
                result = self.steps.frame(topic, header, outcome.detections, image_size_of(image),
                                          status, image, t=self.frame_seconds(frame, header))
            except Exception as exc:  # noqa: BLE001 - tracking, positions: as inference
                self._frame_failed(frame, "tracking and positions", exc, status, image)
                continue
            try:
                # a camera in ERROR keeps publishing: its health says how far to trust the detections
                self.publish_frame(pubs, EXTERIOR_OUTPUTS, ns, result, self._switches)
                if self.camera_infos is not None:
                    self._warn_camera_info(topic, self.camera_infos.image_frame(
                        topic, header.frame_id, image_size_of(image)))
                for problem in self.positions.new_problems([topic]):  # each reason once
                    self.get_logger().warning(f"{problem}; the 2-D detections go on without 3-D")
            except Exception as exc:  # noqa: BLE001 - as inference: this frame's alone
                self._frame_failed(frame, "publishing", exc)
                continue
            latencies.append(time.monotonic() - frame.received)
        if latencies:
            self.health.frames_processed(np.asarray(latencies, np.float64))

    def _frame_failed(self, frame: Frame, step: str, error: Exception,
                      status: dict[str, Any] | None = None, image: Any = None) -> None:
        """Count and log (throttled) a frame dropped because ``step`` raised ``error``, as an
        inference error; the frame's camera health ``status`` (judged before the failure; None:
        not judged) is still published on ``<ns>/camera_health`` (the :func:`judged_outputs`
        rows), its detections are not.

        Raises:
            Exception: ``error`` again once the node's context is shut down (Ctrl-C, SIGTERM
                invalidate the publishers first): the frames in flight are lost to the stop, not
                a fault, and the worker loop counts them so (it logged an ERROR here)."""
        if not self.context.ok():
            raise error
        topic = self.input_topic(frame.source)
        self.health.inference_error(f"{topic}: {step}: {type(error).__name__}: {error}", 1)
        self.get_logger().error(f"{step} failed on a frame of {topic}, dropped: {error!r}",
                                throttle_duration_sec=5.0)
        if status is None:
            return
        ns, pubs = self._outputs[frame.source]
        health = ExteriorFrame.judged(Header.from_msg(frame.msg.header), self.detector,
                                      image_size_of(image), status)
        try:
            self.publish_frame(pubs, judged_outputs(EXTERIOR_OUTPUTS), ns, health, self._switches)
        except Exception as exc:  # noqa: BLE001 - said, the node goes on
            if not self.context.ok():
                raise  # stopped meanwhile: as above
            self.get_logger().error(f"the camera health of a dropped frame of {topic} was not "
                                    f"published: {exc!r}", throttle_duration_sec=5.0)

    # -- diagnostics --------------------------------------------------------------------------------

    def hardware_id(self) -> str:
        return detector_hardware_id(self.detector)

    def diagnostic_extra(self) -> dict[str, Any]:
        values = detector_values(self.detector, self.trackers)
        if self.camera_infos is not None:
            values.update({f"camera_info[{c}]": s for c, s in self.camera_infos.status().items()})
        if self.positions is not None:
            values.update(self.positions.diagnostic_values(self.settings.camera_topics))
        return values

    def diagnostic_warnings(self) -> list[str]:
        warnings = self.camera_infos.warnings() if self.camera_infos is not None else []
        if self.positions is not None:  # a calibration received but refused
            warnings += self.positions.warnings(self.settings.camera_topics)
        return warnings


def _each(callbacks: tuple[Callable[[Any], None], ...], msg: Any) -> None:
    """Hand one message to every reader of its topic."""
    for callback in callbacks:
        callback(msg)


def main(args: list[str] | None = None) -> int:
    """Console entry point: ``object_detector [--ros-args ...]``."""
    from .run import run_nodes

    return run_nodes([ObjectDetectorNode], args if args is not None else sys.argv)


if __name__ == "__main__":
    sys.exit(main())
