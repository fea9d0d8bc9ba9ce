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

and ``/diagnostics``. Frames are handled latest-first: frames from all cameras that are waiting are
detected in one batched call; a frame overwritten before inference reached it is dropped and
counted. All perception happens in :class:`sense_perception.core.detection.detector.ObjectDetector`.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from ..core.output import messages
from ..core.output.annotations import image_annotations, image_size_of
from ..core.health.inference_guard import safe_detect
from ..core.output.topics import join_topic, output_namespaces
from ..core.types import Header
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
        self._outputs: list[dict[str, Any]] = []

    # -- configuration ------------------------------------------------------------------------------

    def inputs(self, settings: ObjectDetectorSettings) -> list[tuple[str, type]]:
        return [(topic, resolve_transport(topic, tr))
                for topic, tr in zip(settings.camera_topics, settings.transports())]

    def load(self, params: dict[str, Any], source: str) -> None:
        from ..core.detection.detector_setup import build_detector
        from ..core.tracking.tracker import TrackerBank, TrackingConfig

        self.GATHER_S = self.settings.batch_wait_ms / 1000.0
        t0 = time.perf_counter()
        from ..core.detection.ignore_regions import IgnoreRegions

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
        out_qos, latched = self.output_qos(), qos.label_info_profile()
        spaces = output_namespaces([t for t, _ in self._inputs])
        for (topic, _), ns in zip(self._inputs, spaces):
            names = {k: join_topic(ns, k) for k in ("detections", "label_info", "detections_image")}
            self._outputs.append({
                "ns": ns,
                "detections": self.create_lifecycle_publisher(
                    Detection2DArray, names["detections"], out_qos,
                    event_callbacks=qos.publisher_events(names["detections"], self.on_qos_event)),
                "label_info": self.create_lifecycle_publisher(LabelInfo, names["label_info"], latched),
                "debug": self.create_lifecycle_publisher(Image, names["detections_image"], out_qos)
                if self.settings.publish_debug_image else None,
                "annotations": self.make_annotations_publisher(ns),
            })

    def on_outputs_active(self) -> None:
        stamp = self.get_clock().now().seconds_nanoseconds()
        info = to_msg(LabelInfo, messages.label_info(
            Header(int(stamp[0]), int(stamp[1]), ""), self.detector.label_names,
            self.detector.min_score))
        for out in self._outputs:
            out["label_info"].publish(info)

    def release(self) -> None:
        for out in self._outputs:
            for key in ("detections", "label_info", "debug", "annotations"):
                if out[key] is not None:
                    self.destroy_lifecycle_publisher(out[key])
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
        names = detector.label_names
        latencies = []
        # A failed batch is retried frame by frame: only the frame at fault is dropped and counted.
        for (frame, image), (dets, error) in zip(decoded, safe_detect(detector, [img for _, img in decoded])):
            topic = self.input_topic(frame.source)
            if error is not None:
                self.health.inference_error(f"{topic}: {type(error).__name__}: {error}", 1)
                self.get_logger().error(f"inference failed on a frame of {topic}, dropped: {error!r}",
                                        throttle_duration_sec=5.0)
                continue
            header = Header.from_msg(frame.msg.header)
            size = image_size_of(image)
            regions = self.ignore.outlines(topic, *size) if self.ignore else []
            dets = self.ignore.apply(topic, dets, *size) if self.ignore else dets
            if self.trackers is not None:
                dets = self.trackers.update(topic, dets, header.seconds)
            out = self._outputs[frame.source]
            out["detections"].publish(to_msg(Detection2DArray, messages.detection2d_array(header, dets, names)))
            debug = out["debug"]
            if debug is not None and debug.get_subscription_count() > 0:
                debug.publish(to_msg(Image, _image_dict(header, _annotate(image, dets, names,
                                                                          regions))))
            self.publish_annotations(out["annotations"], lambda h=header, d=dets, s=size, r=regions:
                                     image_annotations(h, d, names, s, ignore_regions=r))
            latencies.append(time.monotonic() - frame.received)
        if latencies:
            self.health.frames_processed(np.asarray(latencies, np.float64))

    # -- diagnostics --------------------------------------------------------------------------------

    def hardware_id(self) -> str:
        return self.detector.provider if self.detector is not None else ""

    def diagnostic_extra(self) -> dict[str, Any]:
        d = self.detector
        if d is None:
            return {}
        extra = {"model": d.model_name, "provider": d.provider,
                 "preprocess": getattr(d, "preprocess_device", ""), "labels": len(d.label_names),
                 "batching": "on" if d.batch_dynamic else "off",
                 "tracking": "on" if self.trackers is not None else "off"}
        for model, provider in getattr(d, "providers", {}).items():  # several models
            extra[f"provider[{model}]"] = provider
        if d.fallback_reasons:
            extra["provider_fallback"] = " | ".join(d.fallback_reasons)
        return extra


def _annotate(image: Any, dets: Any, names: Any, regions: Any = ()) -> np.ndarray:
    from ..core.output.annotate import draw_detections
    from ..core.imaging.image_decode import ImageView

    # An ImageView aliases the message (or is a reduced decode): draw on a full-size BGR copy.
    bgr = image.full_bgr() if isinstance(image, ImageView) else image
    return draw_detections(bgr, dets, names, copy=False, ignore_regions=regions)


def _image_dict(header: Header, bgr: np.ndarray) -> dict[str, Any]:
    """sensor_msgs/Image fields of a BGR uint8 array."""
    h, w = bgr.shape[:2]
    return {"header": messages.header_msg(header), "height": h, "width": w, "encoding": "bgr8",
            "is_bigendian": 0, "step": w * 3, "data": memoryview(np.ascontiguousarray(bgr)).cast("B")}


def main(args: list[str] | None = None) -> int:
    """Console entry point: ``object_detector [--ros-args ...]``."""
    from .run import run_nodes

    return run_nodes([ObjectDetectorNode], args if args is not None else sys.argv)


if __name__ == "__main__":
    sys.exit(main())
