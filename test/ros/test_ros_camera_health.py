"""Camera health on the live nodes (in-process): a camera going dark raises ERROR in its own
/diagnostics status, the object_detector's status names it, and its detections keep flowing."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ros_helpers import (DATA, image_msg, level, overrides, published_statuses, read_bgr,
                         record_published,
                         status_values)

pytestmark = pytest.mark.ros


def test_a_dark_camera_is_named_and_its_detections_keep_flowing(context, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    cam = "/sp_health/front/image_raw"
    node = ObjectDetectorNode("health_detector", context=context, parameter_overrides=overrides(**{
        "camera_topics": [cam], "no_input_warn_s": 60.0, "runtime.intra_op_threads": 1,
        "camera_health.dark.raise_frames": 2}))
    recorded = record_published(monkeypatch)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")[::2, ::2].copy()
        node.process([Frame(0, image_msg(street, 5, 0, "front"), time.monotonic())])
        own, camera = published_statuses(node)
        assert camera.hardware_id == cam and level(camera) == 0 and camera.message == "ok"
        assert status_values(own)["camera_faults"] == "none"
        dark = np.zeros_like(street)
        for i in range(3):  # a lens cap: raised after camera_health.dark.raise_frames = 2
            node.process([Frame(0, image_msg(dark, 6 + i, 0, "front"), time.monotonic())])
        own, camera = published_statuses(node)
        assert level(camera) == 2 and camera.message == "dark" and camera.hardware_id == cam
        assert {"mean", "highlight"} <= set(status_values(camera))
        assert level(own) >= 1 and f"camera fault: {cam} (dark)" in own.message
        assert status_values(own)["camera_faults"] == f"{cam} (dark)"
        # every frame, dark ones too, still published its detections and its health
        published = [m.topic for m in recorded]
        assert published.count("/sp_health/front/detections") == 4
        assert published.count("/sp_health/front/camera_health") == 4
    finally:
        node.stop()
        node.destroy_node()


def test_a_dark_cabin_camera_is_a_camera_fault_not_a_missing_face(context, tmp_path):
    """driver_monitor: a covered cabin lens is a camera fault in its status, beside (not instead
    of) the driver state; a face that is merely absent raises no camera fault."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.frame_slots import Frame

    cam = "/sp_health/cabin/image_raw"
    node = DriverMonitorNode("health_driver", context=context, parameter_overrides=overrides(**{
        "camera_topic": cam, "gallery.path": str(tmp_path / "gallery.json"),
        "runtime.intra_op_threads": 1, "camera_health.dark.raise_frames": 2}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        # an empty seat: a real street frame has no driver face, and the camera is fine
        seat = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_40.jpg")[::3, ::3].copy()
        node.process([Frame(0, image_msg(seat, 5, 0, "cabin"), time.monotonic())])
        own, camera = published_statuses(node)
        assert level(camera) == 0 and status_values(own)["camera_faults"] == "none"
        assert "camera fault" not in own.message
        for i in range(3):  # the lens covered: dark
            node.process([Frame(0, image_msg(np.zeros_like(seat), 6 + i, 0, "cabin"),
                                time.monotonic())])
        own, camera = published_statuses(node)
        assert level(camera) == 2 and camera.message == "dark" and camera.hardware_id == cam
        values = status_values(own)
        assert values["camera_faults"] == f"{cam} (dark)" and f"camera fault: {cam} (dark)" in own.message
        assert level(own) >= 1 and "driver_state" in values  # the driver state is reported apart
    finally:
        node.stop()
        node.destroy_node()


def test_one_frame_stamped_far_ahead_does_not_leave_the_camera_warning_for_ever(context):
    """A single corrupt header stamp (2**31 - 1 s, far ahead of the camera's clock) made every later
    frame 'stamp_backwards' until the camera's clock passed it (year 2038): the camera's
    /diagnostics stayed at WARN for good. Now the jump and the step back are flagged, and the
    camera is ok again once its stamps advance."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    cam = "/sp_health_stamp/front/image_raw"
    node = ObjectDetectorNode("health_stamp_detector", context=context, parameter_overrides=overrides(**{
        "camera_topics": [cam], "no_input_warn_s": 60.0, "runtime.intra_op_threads": 1,
        "camera_health.expected_rate_hz": 10.0}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")[::4, ::4].copy()
        seen: set[str] = set()

        def frame(i: int, sec: int, nanosec: int) -> str:
            image = np.roll(street, 9 * i, axis=1)  # a moving scene: never frozen
            node.process([Frame(0, image_msg(image, sec, nanosec, "front"), time.monotonic())])
            _, camera = published_statuses(node)
            seen.update(camera.message.split(", "))
            return camera.message

        for i in range(3):
            frame(i, 5, i * 100_000_000)
        frame(3, 2**31 - 1, 0)  # one corrupt header
        messages = [frame(4 + i, 5, (3 + i) * 100_000_000 % 1_000_000_000) if i < 7 else
                    frame(4 + i, 6, (i - 7) * 100_000_000) for i in range(17)]
        assert {"stamp_jump", "stamp_backwards"} <= seen, seen
        assert "stamp_backwards" not in messages[-1], messages
        assert "stamp_jump" not in messages[-1], messages
    finally:
        node.stop()
        node.destroy_node()


def test_a_frame_queued_behind_an_inference_keeps_its_camera_from_silent(context, monkeypatch):
    """The node counted a camera's silence from its last frame judged: frames queued behind a
    slow inference left a camera sending at its rate ``silent`` (ERROR). The transport callback
    now tells the camera health a frame waits (R66); a frame taken that cannot be decoded does
    not keep the camera from ``silent``. Arrivals injected, no sleep."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.core.health.publication_gaps import PublicationGaps
    from sense_perception.ros.frame_slots import Frame, LatestFrames
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    cam = "/sp_queued/front/image_raw"
    node = ObjectDetectorNode("queued_detector", context=context, parameter_overrides=overrides(**{
        "camera_topics": [cam], "no_input_warn_s": 60.0, "runtime.intra_op_threads": 1,
        "camera_health.expected_rate_hz": 10.0}))
    record_published(monkeypatch)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg")[::2, ::2].copy()
        node.process([Frame(0, image_msg(street, 5, 0, "front"), time.monotonic() - 2.0)])
        slots = LatestFrames(1)  # the frame waits here, as behind an inference in flight
        on_image = node._make_callback(slots, 0, cam, PublicationGaps(node.count_publishers))
        on_image(image_msg(street, 7, 0, "front"), {})
        faults, [camera] = node.camera_health.report(time.monotonic() + 0.5)
        assert faults == "" and camera["message"] == "ok"  # judged 2.5 s ago, one waits 0.5 s
        [frame] = slots.take(0.0)
        frame.msg.height *= 2  # cannot be decoded: taken, never judged
        assert node.decode(frame) is None
        faults, [camera] = node.camera_health.report(time.monotonic() + 0.5)
        assert "silent" in faults and camera["message"] == "silent"
    finally:
        node.stop()
        node.destroy_node()


def test_a_camera_rate_for_no_camera_of_the_node_is_refused_at_configure(context):
    """``camera_health.expected_rates_hz`` naming a topic that is none of the node's cameras
    would never apply: configure fails naming it (as for ``detector.ignore_regions.polygons``);
    a camera's compressed topic names that camera."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    cams = ["/sp_rates/front/image_raw", "/sp_rates/left/image_raw"]
    node = ObjectDetectorNode("rates_detector", context=context, parameter_overrides=overrides(**{
        "camera_topics": cams, "runtime.intra_op_threads": 1,
        "camera_health.expected_rates_hz": ["/sp_rates/front/image_raw/compressed: 30",
                                            "/sp_rates/rear/image_raw: 10"]}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "camera_health.expected_rates_hz" in node.config_error
        assert "names /sp_rates/rear/image_raw, which is not a camera topic" in node.config_error
        assert "as camera_topics lists it" in node.config_error
    finally:
        node.stop()
        node.destroy_node()
