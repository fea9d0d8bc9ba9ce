"""``driver_monitor``: a lifecycle node for the driver seat on the cabin camera: who drives (the
enrolled, consenting driver) and whether they watch the road (anyone, enrolled or not).

Subscribes to ``camera_topic`` (Image or CompressedImage) and, for the head pose's intrinsics, to
``camera_info_topic`` (sensor_msgs/CameraInfo), and publishes in the camera's namespace, with the
input header copied exactly (same topics and content as ``sense-perception replay``):

* ``<ns>/faces`` vision_msgs/Detection2DArray: every face; the driver's face has class_id
  ``driver``, the others ``face``;
* ``<ns>/driver_identity`` vision_msgs/Classification: one hypothesis, the driver id when
  identified, else the state (``no_face``, ``unknown``, ``uncertain``), with its score;
* ``<ns>/annotations`` foxglove_msgs/ImageAnnotations of the faces, captioned with what
  ``driver_identity`` carries (never a name), only while something subscribes
  (``publish_annotations``);
* ``<ns>/driver_attention`` vision_msgs/Classification: the attention state with its score, the
  escalation level ``level_<n>`` with its progress, each eye's openness
  (:func:`~sense_perception.face.results.attention_results`);
* ``<ns>/head_pose`` geometry_msgs/PoseStamped: the head in the camera optical frame, on frames
  where a face was measured;

the driver state, head angles, eye aspect ratios and PERCLOS in ``/diagnostics``, and the
std_srvs/Trigger service ``~/reload_gallery`` to re-read the gallery after ``sense-perception driver
enroll/forget`` (it is also re-read on its own when the file changes). It runs only with
``camera_role: cabin``.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any

from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo
from std_srvs.srv import Trigger
from vision_msgs.msg import Classification, Detection2DArray

from ..core.output import messages
from ..core.output.annotations import image_annotations, image_size_of
from ..core.output.topics import join_topic, output_namespace
from ..core.types import Header
from ..errors import SensePerceptionError
from ..face.results import (FACE_LABELS, attention_results, attention_values, face_captions,
                            face_detections, head_pose_message, identity_results, state_name)
from . import qos
from .convert import to_msg
from .frame_slots import Frame
from .node_common import PerceptionNode, resolve_transport
from .settings import DriverMonitorNodeSettings

NODE_NAME = "driver_monitor"


class DriverMonitorNode(PerceptionNode):
    """Lifecycle node around :class:`~sense_perception.face.pipeline.DriverIdentifier`."""

    SETTINGS = DriverMonitorNodeSettings

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.identifier: Any = None
        self._lock = threading.Lock()  # process() and reload_gallery share the identifier
        self._faces_pub: Any = None
        self._identity_pub: Any = None
        self._annotations_pub: Any = None
        self._attention_pub: Any = None
        self._pose_pub: Any = None
        self._camera_info_sub: Any = None
        self._last: dict[str, Any] = {}
        self._last_attention: Any = None
        self._reload_srv = self.create_service(Trigger, "~/reload_gallery", self._on_reload_gallery)

    def inputs(self, settings: DriverMonitorNodeSettings) -> list[tuple[str, type]]:
        return [(settings.camera_topic, resolve_transport(settings.camera_topic, settings.camera_transport))]

    def load(self, params: dict[str, Any], source: str) -> None:
        from ..face.pipeline import DriverIdentifier

        t0 = time.perf_counter()
        self.identifier = DriverIdentifier.from_params(params, source)
        self.get_logger().info(f"face models loaded in {time.perf_counter() - t0:.1f} s; gallery "
                               f"{self.identifier.gallery.path}: {len(self.identifier.index)} driver(s)")

    def make_outputs(self) -> None:
        ns = output_namespace(self.settings.camera_topic)
        out_qos = self.output_qos()
        self._faces_pub = self.create_lifecycle_publisher(Detection2DArray, join_topic(ns, "faces"), out_qos)
        self._identity_pub = self.create_lifecycle_publisher(
            Classification, join_topic(ns, "driver_identity"), out_qos)
        self._annotations_pub = self.make_annotations_publisher(ns)
        if self.identifier.attention is None:
            return
        self._attention_pub = self.create_lifecycle_publisher(
            Classification, join_topic(ns, "driver_attention"), out_qos)
        self._pose_pub = self.create_lifecycle_publisher(PoseStamped, join_topic(ns, "head_pose"),
                                                         out_qos)
        info_topic = self.settings.camera_info()
        if info_topic:
            # From configure on, so the intrinsics are there when frames start; best effort
            # receives from reliable and best-effort publishers alike.
            self._camera_info_sub = self.create_subscription(
                CameraInfo, info_topic, self._on_camera_info, qos.profile("best_effort", 1),
                event_callbacks=qos.subscription_events(info_topic, self.on_qos_event))

    def release(self) -> None:
        for pub in (self._faces_pub, self._identity_pub, self._annotations_pub, self._attention_pub,
                    self._pose_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._faces_pub = self._identity_pub = self._annotations_pub = None
        self._attention_pub = self._pose_pub = None
        if self._camera_info_sub is not None:
            self.destroy_subscription(self._camera_info_sub)
            self._camera_info_sub = None
        with self._lock:
            self.identifier = None
        self._last = {}
        self._last_attention = None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        identifier = self.identifier
        attention = getattr(identifier, "attention", None)
        if attention is not None and not attention.set_camera_info(msg):
            self.get_logger().warning(f"{self.settings.camera_info()}: {attention.camera_info_error}",
                                      throttle_duration_sec=30.0)

    def process(self, frames: list[Frame]) -> None:
        (frame,) = frames
        image = self.decode(frame)
        if image is None:
            return
        header = Header.from_msg(frame.msg.header)
        with self._lock:
            identifier = self.identifier
            if identifier is None:
                return
            try:
                result = identifier.process(image, header.seconds)
            except Exception as exc:  # noqa: BLE001  counted, frame dropped, node continues
                self.health.inference_error(
                    f"{self.input_topic(frame.source)}: {type(exc).__name__}: {exc}", 1)
                self.get_logger().error(f"identity pipeline failed, frame dropped: {exc!r}",
                                        throttle_duration_sec=5.0)
                return
        dets = face_detections(result)
        state = state_name(result)
        self._faces_pub.publish(to_msg(Detection2DArray, messages.detection2d_array(header, dets, FACE_LABELS)))
        self._identity_pub.publish(to_msg(Classification, messages.classification(
            header, identity_results(state, result.driver_id, result.score))))
        self.publish_annotations(self._annotations_pub, lambda: image_annotations(
            header, dets, FACE_LABELS, image_size_of(image), face_captions(dets, result)))
        attention = result.attention
        if attention is not None:
            self._attention_pub.publish(to_msg(Classification, messages.classification(
                header, attention_results(attention))))
            pose = head_pose_message(header, attention)
            if pose is not None:
                self._pose_pub.publish(to_msg(PoseStamped, pose))
            self._last_attention = attention
        self.health.frame_processed(time.monotonic() - frame.received)
        # No display name in diagnostics: they are broadcast; the pseudonymous id is enough.
        self._last = {"driver_state": state, "driver_id": result.driver_id or "",
                      "driver_score": f"{result.score:.3f}" if math.isfinite(result.score) else "n/a",
                      "driver_reason": result.reason, "faces": len(dets)}

    def _on_reload_gallery(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            identifier = self.identifier
            if identifier is None:
                response.success = False
                response.message = f"node is {self.lifecycle_state}; configure it first"
                return response
            try:
                identifier.reload_gallery(wait=False)  # never hold up frames on a held lock
            except SensePerceptionError as exc:
                response.success = False
                response.message = f"gallery reload failed: {exc}"
                self.get_logger().error(response.message)
                return response
            n = len(identifier.index)
        response.success = True
        response.message = f"gallery reloaded: {n} driver(s) enrolled"
        self.get_logger().info(response.message)
        return response

    def _models(self) -> list[Any]:
        engine = getattr(self.identifier, "engine", None)
        attention = getattr(self.identifier, "attention", None)
        models = [m.model for m in (getattr(engine, "detector", None), getattr(engine, "embedder", None))
                  if m is not None and hasattr(m, "model")]
        return models + (attention.estimator.models if attention is not None else [])

    def hardware_id(self) -> str:
        models = self._models()
        return models[0].provider if models else ""

    def diagnostic_extra(self) -> dict[str, Any]:
        identifier = self.identifier
        if identifier is None:
            return {}
        extra: dict[str, Any] = {"enrolled_drivers": len(identifier.index)}
        if identifier.gallery_error:  # a failed re-read: identity goes on with the old gallery
            extra["gallery_error"] = identifier.gallery_error
        for model in self._models():
            extra[f"provider[{model.name}]"] = model.provider
            if model.fallback_reasons:
                extra[f"provider_fallback[{model.name}]"] = " | ".join(model.fallback_reasons)
        extra.update(self._last or {"driver_state": "waiting for the first frame"})
        attention = identifier.attention
        if attention is not None:
            if self._last_attention is not None:
                extra.update(attention_values(self._last_attention))
            else:
                extra["attention_state"] = "waiting for the first frame"
            if attention.intrinsics is not None:  # a CameraInfo may arrive between frames
                extra["intrinsics"] = attention.intrinsics.source
            if attention.camera_info_error:
                extra["camera_info_error"] = attention.camera_info_error
        return extra


def main(args: list[str] | None = None) -> int:
    """Console entry point: ``driver_monitor [--ros-args ...]``."""
    from .run import run_nodes

    return run_nodes([DriverMonitorNode], args if args is not None else sys.argv)


if __name__ == "__main__":
    sys.exit(main())
