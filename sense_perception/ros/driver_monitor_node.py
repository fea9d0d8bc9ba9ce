"""``driver_monitor``: a lifecycle node for the driver seat on the cabin camera: who drives (the
enrolled, consenting driver) and whether they watch the road (anyone, enrolled or not).

Subscribes to ``camera_topic`` (Image or CompressedImage) and, for the head pose's intrinsics, to
``camera_info_topic`` (sensor_msgs/CameraInfo), and publishes in the camera's namespace, with the
input header copied exactly (same topics and content as ``sense-perception replay``):

* ``<ns>/faces`` vision_msgs/Detection2DArray: every face; the driver's face has class_id
  ``driver``, the others ``face``;
* ``<ns>/driver_identity`` vision_msgs/Classification: one hypothesis, the driver id when
  identified, else the state (``no_face``, ``unknown``, ``uncertain``, ``camera_fault``), with its score;
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
``camera_role: cabin``. The per-frame outputs are the rows of
:data:`~sense_perception.core.output.frame_outputs.CABIN_OUTPUTS`.
"""
from __future__ import annotations

import sys
import threading
import time
from functools import partial
from typing import Any

from sensor_msgs.msg import CameraInfo
from std_srvs.srv import Trigger

from ..durations import duration
from ..core.health.camera_health import in_fault
from ..core.output.annotations import image_size_of
from ..core.output.frame_outputs import (CABIN_OUTPUTS, DIAGNOSTIC_ARRAY, DIAGNOSTICS_TOPIC,
                                         CabinFrame, enabled_outputs, judged_outputs, output_topic,
                                         switches, taken_topics)
from ..core.output.status import driver_hardware_id, driver_last, driver_values, driver_warnings
from ..core.output.topics import output_namespace, output_namespaces, rectified_topic
from ..core.runtime.warm_up import WarmUpJob
from ..core.types import Header
from ..errors import SensePerceptionError
from ..face.privacy import check_not_exterior
from . import qos
from .frame_slots import Frame
from .node_common import PerceptionNode, node_params, resolve_transport
from .settings import DriverMonitorNodeSettings

NODE_NAME = "driver_monitor"
#: How long the gallery service and a cleanup wait for the frame the driver pipeline is in (about
#: 30 ms on a CPU): they run on the executor's thread, and a face model that never returns (a hung
#: GPU call) held them, and with them every callback of the node (/diagnostics), for ever (R69).
PIPELINE_WAIT_S = 1.0


class DriverMonitorNode(PerceptionNode):
    """Lifecycle node around :class:`~sense_perception.face.pipeline.DriverIdentifier`."""

    SETTINGS = DriverMonitorNodeSettings
    TIMED_BY_ARRIVAL = "driver attention, identity"

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.identifier: Any = None
        self._lock = threading.Lock()  # process() and reload_gallery share the identifier
        self._ns = ""
        self._pubs: dict[str, Any] = {}  # row name of CABIN_OUTPUTS -> publisher
        self._camera_info_sub: Any = None
        self._last: dict[str, Any] = {}
        self._last_attention: Any = None
        self._reload_srv = self.create_service(Trigger, "~/reload_gallery", self._on_reload_gallery)

    def inputs(self, settings: DriverMonitorNodeSettings) -> list[tuple[str, type]]:
        self.check_remapped_exterior(settings)
        self.check_private_handover([settings.camera_topic], "camera_topic", "object_detector",
                                    "cabin_camera_topic", "could run exterior detection on the "
                                    "driver's face (its debug image and annotations publish it)")
        return [(settings.camera_topic, resolve_transport(settings.camera_topic, settings.camera_transport))]

    def check_remapped_exterior(self, settings: DriverMonitorNodeSettings) -> None:
        """Refuse a ``camera_topic`` that the node's remap rules (``-r FROM:=TO``) turn into one
        of ``exterior_camera_topics``, or that one of them is turned into: the subscription
        takes the remapped name, and the settings compare the names as given (R40).

        Raises:
            PrivacyError: naming the camera, its remapped name and the fix.
        """
        topic = settings.camera_topic
        resolved = self.resolve_topic_name(topic)
        exterior = {name for t in settings.exterior_camera_topics
                    for name in (t, self.resolve_topic_name(t))}
        check_not_exterior(resolved, exterior, "camera_topic", "exterior_camera_topics "
                           f"(object_detector's camera_topics; {topic} remapped to {resolved})",
                           "remove the remap rule that joins them (--ros-args -r, a launch "
                           "file's remappings), or set camera_topic to the in-cabin camera")

    def check_remapped_outputs(self, attention: bool) -> None:
        """Refuse an output that the node's remap rules move onto its own camera or CameraInfo
        input (it would read what it publishes), onto another of its outputs or endpoints of
        another message type, onto an image topic, or onto an exterior camera or one of
        object_detector's outputs (``exterior_camera_topics``): the publishers take the
        remapped names, which the settings' checks of the names as given never saw. Only
        object_detector's outputs were checked (R45); ``-r /cabin/faces:=/cabin/image_raw`` put
        the faces on the image the node read, and ``annotations`` of the driver's face could be
        moved onto an exterior camera's topics (R57).

        Raises:
            ConfigError: naming the remap, what it clashes with and the fix.
        """
        from ..core.output.remaps import Endpoint, check_remapped_outputs

        settings = self.settings
        on = switches(settings, attention=attention)
        ns = output_namespace(settings.camera_topic)
        ends = [Endpoint(DIAGNOSTICS_TOPIC, DIAGNOSTIC_ARRAY, "the /diagnostics output", True)]
        ends += [Endpoint(topic, f"sensor_msgs/msg/{cls.__name__}",
                          f"the image input of the cabin camera '{topic}'", False)
                 for topic, cls in self._inputs]
        ends += [Endpoint(output_topic(row, ns, on), row.msgtype, f"driver_monitor's {row.name} output",
                          True) for row in enabled_outputs(CABIN_OUTPUTS, on)]
        if attention and settings.camera_info():
            ends.append(Endpoint(settings.camera_info(), "sensor_msgs/msg/CameraInfo",
                                 "the cabin camera's CameraInfo input", False))
        exterior = list(settings.exterior_camera_topics)
        foreign = taken_topics(exterior, output_namespaces(exterior))
        check_remapped_outputs(ends, self.resolve_topic_name,
                               lambda t: self.resolve_topic_name(t, only_expand=True), foreign)

    def load(self, params: dict[str, Any], source: str) -> None:
        from ..face.pipeline import DriverIdentifier

        # before any model loads or the gallery is read: a refused remap costs nothing
        self.check_remapped_outputs(bool(params.get("attention.enabled", True)))
        # A new lock with each pipeline: a face model hung in the pipeline a cleanup let go
        # holds the old one for ever, and the worker of every later configure waited for it:
        # the node never processed a frame again until it was restarted (R72).
        self._lock = threading.Lock()
        t0 = time.perf_counter()
        # Ctrl-C or SIGTERM shuts the context down: a wait for the gallery lock ends then (a
        # SIGTERM raises nothing in Python, so it waited its whole bound, 30 s)
        # The face models load (and the gallery is read) in a thread of their own, bounded as
        # the warm-up: a session creation that hung held configure, and the executor, for ever
        # (R85). What it builds is taken only here: one returning late is dropped.
        self.identifier = self.load_bounded(
            partial(DriverIdentifier.from_params, params, source, stopping=self._stopping),
            "the face models", self.settings.warm_up_timeout_s)
        self.get_logger().info(f"face models loaded in {time.perf_counter() - t0:.1f} s; gallery "
                               f"{self.identifier.gallery.path}: {len(self.identifier.index)} driver(s)")

    def warm_up_job(self) -> WarmUpJob | None:
        from ..core.runtime.warm_up import warm_up_driver

        # bound now: a warm-up left hung by this configure never warms a later one's pipeline
        return partial(warm_up_driver, self.identifier)

    def make_outputs(self) -> None:
        self._ns = output_namespace(self.settings.camera_topic)
        on = switches(self.settings, attention=self.identifier.attention is not None)
        self._pubs = self.make_publishers(CABIN_OUTPUTS, self._ns, on)
        if self.identifier.attention is None:
            return
        info_topic = self.settings.camera_info()
        if info_topic:
            # From configure on, so the intrinsics are there when frames start; best effort
            # receives from reliable and best-effort publishers alike.
            self._camera_info_sub = self.create_subscription(
                CameraInfo, info_topic, self._on_camera_info, qos.profile("best_effort", 1),
                event_callbacks=qos.subscription_events(info_topic, self.on_qos_event))
            # a CameraInfo latched before the node started reaches no volatile subscription
            self.latch_inputs(CameraInfo, {info_topic: self._on_camera_info})

    def release(self) -> None:
        self.destroy_publishers(self._pubs)
        self._pubs = {}
        if self._camera_info_sub is not None:
            self.destroy_subscription(self._camera_info_sub)
            self._camera_info_sub = None
        lock = self._lock  # (a configure makes a new one)
        if lock.acquire(timeout=PIPELINE_WAIT_S):
            try:
                self.identifier = None
            finally:
                lock.release()
        else:  # the worker is stuck in the pipeline: it publishes nothing once it returns
            self.identifier = None
            self.get_logger().error(
                f"the driver pipeline has not returned from a frame for {duration(PIPELINE_WAIT_S)} more; "
                "the models are let go without it (it publishes nothing if it returns); the "
                "next configure loads them anew, without waiting for it; restart the node if "
                "its inference is hung again")
        self._last = {}
        self._last_attention = None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        identifier = self.identifier
        attention = getattr(identifier, "attention", None)
        # a rectified cabin image (image_rect*) is described by P, not by the raw K and D
        if attention is not None and not attention.set_camera_info(
                msg, rectified_topic(self.input_topic(0))):
            self.get_logger().warning(f"{self.settings.camera_info()}: {attention.camera_info_error}",
                                      throttle_duration_sec=30.0)

    def process(self, frames: list[Frame]) -> None:
        (frame,) = frames
        image = self.decode(frame)
        if image is None:
            return
        header = Header.from_msg(frame.msg.header)
        status = self.judge_camera(frame, image)
        # (a worker let go while it waits behind a hung pipeline gives up: R72)
        with self.worker_lock(self._lock, frames):
            identifier = self.identifier
            if identifier is None:
                return
            try:
                # a blocked or dark cabin camera: attention says camera_fault, holds its timers;
                # a camera that never stamps its frames is timed by their arrival
                result = identifier.process(image, self.frame_seconds(frame, header),
                                            camera_fault=in_fault(status))
            except Exception as exc:  # noqa: BLE001  counted, frame dropped, node continues
                if not self.context.ok():
                    raise  # stopped with the frame in flight: the worker loop counts it, no fault
                self.health.inference_error(
                    f"{self.input_topic(frame.source)}: {type(exc).__name__}: {exc}", 1)
                self.get_logger().error(f"identity pipeline failed, frame dropped: {exc!r}",
                                        throttle_duration_sec=5.0)
                # judged: its camera health is published, its faces and driver results are not
                try:
                    self.publish_frame(self._pubs, judged_outputs(CABIN_OUTPUTS), self._ns,
                                       CabinFrame(header, None, image_size_of(image), status))
                except Exception as pub_exc:  # noqa: BLE001 - said, the node goes on
                    if not self.context.ok():
                        raise  # as above: lost to the stop
                    self.get_logger().error(f"the camera health of a dropped frame was not "
                                            f"published: {pub_exc!r}", throttle_duration_sec=5.0)
                return
            # returned after a deactivate let this worker go: the node may be active again,
            # its frame seconds old (R72)
            self.drop_if_retired(frames)
            if self.identifier is not identifier:
                # a cleanup let this pipeline go while it was hung (PIPELINE_WAIT_S): its frame
                # was judged with the models and gallery of before; set as the last driver or
                # published (on the publishers of a later configure), a driver forgotten since
                # stayed in /diagnostics and on the outputs (R71)
                self.get_logger().warning("a frame the driver pipeline returned from after the "
                                          "node's cleanup is dropped")
                return
            # Published and kept under the lock: once a reload answered, no frame judged with
            # the drivers before it is published or shown in /diagnostics (a forgotten driver).
            self.publish_frame(self._pubs, CABIN_OUTPUTS, self._ns,
                               CabinFrame(header, result, image_size_of(image), status))
            if result.attention is not None:
                self._last_attention = result.attention
            self._last = driver_last(result)
        self.health.frame_processed(time.monotonic() - frame.received)

    def _on_reload_gallery(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        lock = self._lock  # (a configure makes a new one)
        if not lock.acquire(timeout=PIPELINE_WAIT_S):
            running = self._watch.running_s()
            response.success = False
            response.message = (
                "the gallery was not reloaded: the driver pipeline has not returned from a frame "
                f"for {duration(running or PIPELINE_WAIT_S)} (see /diagnostics); call again once it "
                "has, or restart the node if its inference is hung")
            self.get_logger().warning(response.message, throttle_duration_sec=5.0)
            return response
        try:
            return self._reload_gallery(response)
        finally:
            lock.release()

    def _reload_gallery(self, response: Trigger.Response) -> Trigger.Response:
        """The service's work, with ``self._lock`` held."""
        identifier = self.identifier
        if identifier is None:
            response.success = False
            # a node shut down cannot be configured again: "configure it first" led nowhere
            response.message = ("node is finalized (shut down); restart it"
                                if self.lifecycle_state == "finalized"
                                else f"node is {self.lifecycle_state}; configure it first")
            return response
        try:
            # wait=False: never hold up frames on a held lock; the same drivers keep the
            # evidence gathered (a caller hammering the service must not reset it each time)
            changed = identifier.reload_gallery(wait=False, keep_if_unchanged=True)
        except SensePerceptionError as exc:
            response.success = False
            self.get_logger().error(f"gallery reload failed: {exc}")  # (full text: local log only)
            # the caller may be any participant of the domain (R93)
            response.message = self.for_domain(f"gallery reload failed: {exc}")
            return response
        n = len(identifier.index)
        if changed:
            # The last frame's driver was judged with the gallery before: a forgotten
            # driver's id must not stay in /diagnostics until the next frame (never, with
            # the camera off).
            self._last = {"driver_state": "gallery reloaded: waiting for the next frame"}
        response.success = True
        # read after this call began either way; the same drivers: identification goes on
        response.message = (f"gallery reloaded: {n} driver(s) enrolled"
                            + ("" if changed else " (unchanged)"))
        if changed:  # a caller hammering the service with nothing changed: no line each time
            self.get_logger().info(response.message)
        return response

    def hardware_id(self) -> str:
        return driver_hardware_id(self.identifier)

    def private_paths(self) -> list[tuple[str, str]]:
        """The home folder, and the gallery's file, folder and key file as the node's
        ``gallery.path`` and ``gallery.key_file`` name them now (default: both default gallery
        names): a gallery error on ``/rosout`` or in ``/diagnostics`` named them in full (R93)."""
        from ..face.domain_text import gallery_paths

        try:
            params = node_params(self)
        except Exception:  # noqa: BLE001  rclpy still building the node: the default names
            params = {}
        gallery = params.get("gallery.path")
        key_file = params.get("gallery.key_file")
        return super().private_paths() + gallery_paths(
            gallery if isinstance(gallery, str) else "", key_file if isinstance(key_file, str) else "")

    def diagnostic_extra(self) -> dict[str, Any]:
        return driver_values(self.identifier, self._last, self._last_attention)

    def diagnostic_warnings(self) -> list[str]:
        return driver_warnings(self.identifier)


def main(args: list[str] | None = None) -> int:
    """Console entry point: ``driver_monitor [--ros-args ...]``."""
    from .run import run_nodes

    return run_nodes([DriverMonitorNode], args if args is not None else sys.argv)


if __name__ == "__main__":
    sys.exit(main())
