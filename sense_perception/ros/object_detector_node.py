"""``object_detector``: a lifecycle node detecting objects and pedestrians in one or more cameras.

Per camera topic ``<ns>/<image>`` (sensor_msgs/Image, or CompressedImage for ``.../compressed``) it
publishes, with the input header copied exactly:

* ``<ns>/detections`` vision_msgs/Detection2DArray, one per processed frame, empty when nothing is
  found (class_id = label name, id = track id or "");
* ``<ns>/label_info`` vision_msgs/LabelInfo, transient-local, once per activation;
* ``<ns>/detections_image`` sensor_msgs/Image (bgr8) with the boxes drawn, built only while
  something subscribes (``publish_debug_image``);
* ``<ns>/annotations`` foxglove_msgs/ImageAnnotations (a closed polyline and a caption per
  detection, timestamp = the image's stamp: Foxglove draws them over the camera image), built
  only while something subscribes (``publish_annotations``);

and ``/diagnostics``. The per-frame outputs are the rows of
:data:`~sense_perception.core.output.frame_outputs.EXTERIOR_OUTPUTS`. Frames are handled latest-first: frames from all cameras that are waiting are
detected in one batched call; a frame overwritten before inference reached it is dropped and
counted. All perception happens in :class:`sense_perception.core.detection.detector.ObjectDetector`.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ..core.health.inference_guard import safe_detect
from ..core.output.annotations import image_size_of
from ..core.output.frame_outputs import EXTERIOR_OUTPUTS, ExteriorFrame, frame_messages, switches
from ..core.output.status import detector_hardware_id, detector_values
from ..core.output.topics import output_namespaces
from ..core.types import Detections, Header
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
        self._outputs: list[tuple[str, dict[str, Any]]] = []  # (namespace, publishers) per input

    # -- configuration ------------------------------------------------------------------------------

    def inputs(self, settings: ObjectDetectorSettings) -> list[tuple[str, type]]:
        return [(topic, resolve_transport(topic, tr))
                for topic, tr in zip(settings.camera_topics, settings.transports(), strict=True)]

    def load(self, params: dict[str, Any], source: str) -> None:
        from ..core.detection.detector_setup import build_detector
        from ..core.tracking.tracker import TrackerBank, TrackingConfig

        from ..core.detection.ignore_regions import IgnoreRegions

        self.GATHER_S = self.settings.batch_wait_ms / 1000.0
        t0 = time.perf_counter()
        self.ignore = IgnoreRegions.from_params(params, source)
        self.ignore.check_topics(list(self.settings.camera_topics), source)
        self.detector = build_detector(params, source)
        tracking = TrackingConfig.from_params(params, source)
        self.trackers = TrackerBank(tracking, self.detector.label_names) if tracking.enabled else None
        self.get_logger().info(
            f"model {self.detector.model_name} on {self.detector.provider} (pre-processing on "
            f"{self.detector.preprocess_device}) loaded in "
            f"{time.perf_counter() - t0:.1f} s; {len(self.detector.label_names)} labels; tracking "
            f"{'on' if self.trackers else 'off'}")
        for reason in self.detector.fallback_reasons:
            self.get_logger().info(f"provider fallback: {reason}")

    def make_outputs(self) -> None:
        spaces = output_namespaces([t for t, _ in self._inputs])
        on = switches(self.settings)
        self._outputs = [(ns, self.make_publishers(EXTERIOR_OUTPUTS, ns, on)) for ns in spaces]

    def on_outputs_active(self) -> None:
        stamp = self.get_clock().now().seconds_nanoseconds()
        detector = self.detector
        frame = ExteriorFrame(Header(int(stamp[0]), int(stamp[1]), ""), Detections(),
                              detector.label_names, detector.min_score)
        latched = [row for row in EXTERIOR_OUTPUTS if row.latched]
        for ns, pubs in self._outputs:
            for message in frame_messages(latched, ns, frame, lambda row, pubs=pubs: row.name in pubs):
                pub = pubs[message.output.name]
                pub.publish(to_msg(pub.msg_type, message.message))

    def release(self) -> None:
        for _, pubs in self._outputs:
            self.destroy_publishers(pubs)
        self._outputs = []
        self.detector = None
        self.trackers = None
        self.ignore = None

    # -- frames -------------------------------------------------------------------------------------

    def process(self, frames: list[Frame]) -> None:
        # The detector reads raw rgb8/bgr8/... Images in place and JPEGs at the smallest scale it
        # needs; full-size BGR only for the debug image.
        floor = self.detector.decode_floor
        decoded = [(f, self.decode(f, zero_copy=True, size_floor=floor)) for f in frames]
        decoded = [(f, img) for f, img in decoded if img is not None]
        if not decoded:
            return
        detector = self.detector
        latencies = []
        # A failed batch is retried frame by frame: only the frame at fault is dropped and counted.
        for (frame, image), (dets, error) in zip(
                decoded, safe_detect(detector, [img for _, img in decoded]), strict=True):
            topic = self.input_topic(frame.source)
            if error is not None:
                self.health.inference_error(f"{topic}: {type(error).__name__}: {error}", 1)
                self.get_logger().error(f"inference failed on a frame of {topic}, dropped: {error!r}",
                                        throttle_duration_sec=5.0)
                continue
            header = Header.from_msg(frame.msg.header)
            size = image_size_of(image)
            regions = self.ignore.outlines(topic, *size) if self.ignore else []
            if self.ignore:
                dets = self.ignore.apply(topic, dets, *size)
            if self.trackers is not None:
                dets = self.trackers.update(topic, dets, header.seconds)
            ns, pubs = self._outputs[frame.source]
            self.publish_frame(pubs, EXTERIOR_OUTPUTS, ns, ExteriorFrame(
                header, dets, detector.label_names, detector.min_score, size, image, regions))
            latencies.append(time.monotonic() - frame.received)
        if latencies:
            self.health.frames_processed(np.asarray(latencies, np.float64))

    # -- diagnostics --------------------------------------------------------------------------------

    def hardware_id(self) -> str:
        return detector_hardware_id(self.detector)

    def diagnostic_extra(self) -> dict[str, Any]:
        return detector_values(self.detector, self.trackers)


def main(args: list[str] | None = None) -> int:
    """Console entry point: ``object_detector [--ros-args ...]``."""
    from .run import run_nodes

    return run_nodes([ObjectDetectorNode], args if args is not None else sys.argv)


if __name__ == "__main__":
    sys.exit(main())
