"""One camera's frame failing after decode never costs the other cameras' frames of its batch, and
a frame dropped after it was judged still publishes its ``<ns>/camera_health`` (SECURITY.md R39).

The nodes are built in the test process and their ``process`` is called as the inference thread
calls it, with two cameras' frames in one batch; a failure is injected for one camera's frame.
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from ros_helpers import DATA, image_msg, overrides, read_bgr, record_published

pytestmark = pytest.mark.ros

CAM_A = "/sp_isolation/cam_a/image_raw"
CAM_B = "/sp_isolation/cam_b/image_raw"


def _topics(published: list[Any]) -> list[str]:
    return [m.topic for m in published]


def test_a_frame_failing_after_inference_drops_that_frame_alone_and_keeps_its_health(
        context, monkeypatch):
    """process() ran judge_camera and each frame's tracking/positions/outputs (ExteriorSteps.frame)
    unguarded: one frame raising there ended the whole batch, the other camera's frame never
    published. And a frame whose inference failed was judged but published nothing on
    <ns>/camera_health: a consumer synchronising on it saw a gap exactly when things went wrong.
    A frame camera health cannot judge is detected all the same (it was dropped whole)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.core import exterior_steps
    from sense_perception.core.output.annotations import image_size_of
    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("isolation_detector", context=context, parameter_overrides=overrides(**{
        "camera_topics": [CAM_A, CAM_B], "no_input_warn_s": 60.0,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    street = read_bgr(DATA / "street" / "pandaset_seq002_front_camera_00.jpg")[::4, ::4].copy()
    small = street[:, : street.shape[1] // 2].copy()  # cam_a's frames: told apart by their size

    def batch(sec: int) -> list[Frame]:
        now = time.monotonic()
        return [Frame(0, image_msg(small, sec, 0, "cam_a"), now),
                Frame(1, image_msg(street, sec, 0, "cam_b"), now)]

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        published = record_published(monkeypatch)
        real_frame = exterior_steps.ExteriorSteps.frame

        def failing_frame(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
            if topic == CAM_A:
                raise RuntimeError("injected: tracking failed on cam_a")
            return real_frame(self, topic, *args, **kwargs)

        monkeypatch.setattr(exterior_steps.ExteriorSteps, "frame", failing_frame)
        node.process(batch(1))
        topics = _topics(published)
        assert "/sp_isolation/cam_b/detections" in topics, topics  # the batch went on
        assert "/sp_isolation/cam_a/detections" not in topics, topics
        assert topics.count("/sp_isolation/cam_a/camera_health") == 1, topics  # judged: published
        snap = node.health.snapshot()
        assert snap.inference_errors == 1 and "injected" in snap.last_error, snap
        monkeypatch.setattr(exterior_steps.ExteriorSteps, "frame", real_frame)

        # inference itself failing on cam_a's frame: its camera health is published, not its boxes
        published.clear()
        real_detect = node.detector.detect

        def failing_detect(images: list[Any]) -> Any:
            if any(image_size_of(image) == (small.shape[1], small.shape[0]) for image in images):
                raise RuntimeError("injected: inference failed on cam_a")
            return real_detect(images)

        monkeypatch.setattr(node.detector, "detect", failing_detect)
        node.process(batch(2))
        topics = _topics(published)
        assert "/sp_isolation/cam_b/detections" in topics, topics
        assert "/sp_isolation/cam_a/detections" not in topics, topics
        [health] = [m.message for m in published if m.topic == "/sp_isolation/cam_a/camera_health"]
        assert health["name"] and health["level"] == 0, health  # the camera is fine: ok
        assert node.health.snapshot().inference_errors == 2
        # camera health failing on one frame: that frame is detected all the same (it was
        # dropped whole), its camera_health says STALE naming the error; no frame is lost
        published.clear()
        monkeypatch.setattr(node.detector, "detect", real_detect)
        bank = node.camera_health
        real_update = bank.update
        monkeypatch.setattr(bank, "update", lambda topic, *a: (
            (_ for _ in ()).throw(ValueError("injected: health failed")) if topic == CAM_A
            else real_update(topic, *a)))
        node.process(batch(3))
        topics = _topics(published)
        assert "/sp_isolation/cam_b/detections" in topics, topics
        assert "/sp_isolation/cam_a/detections" in topics, topics
        [health] = [m.message for m in published if m.topic == "/sp_isolation/cam_a/camera_health"]
        assert health["level"] == 3 and "injected: health failed" in health["message"], health
        assert node.health.snapshot().inference_errors == 2 and bank.unjudged(CAM_A) == 1
    finally:
        node.stop()
        node.destroy_node()


def test_a_cabin_frame_whose_pipeline_fails_still_publishes_its_camera_health(context, tmp_path,
                                                                             monkeypatch):
    """driver_monitor judged a frame whose identity pipeline then raised, and published nothing
    for it: <ns>/camera_health had a gap exactly when things went wrong. Its camera health is
    published now (the table's judged rows), its faces and driver results are not."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.frame_slots import Frame

    gallery = tmp_path / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    topic = "/sp_isolation/cabin/image_raw"
    node = DriverMonitorNode("isolation_driver", context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": [0.0, 0.0, 1.0, 1.0],
        "gallery.path": str(gallery), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    face = read_bgr(DATA / "faces" / "obama_3_blue_room_2010.jpg")[::2, ::2].copy()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        published = record_published(monkeypatch)

        def failing(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("injected: identity pipeline failed")

        real_process = node.identifier.process
        monkeypatch.setattr(node.identifier, "process", failing)
        node.process([Frame(0, image_msg(face, 1, 0, "cabin"), time.monotonic())])
        assert _topics(published) == ["/sp_isolation/cabin/camera_health"], _topics(published)
        assert node.health.snapshot().inference_errors == 1

        # camera health failing: the driver pipeline runs all the same, and a frame not judged
        # is no camera fault (attention is not told camera_fault)
        published.clear()
        monkeypatch.setattr(node.identifier, "process", real_process)
        faults = []
        monkeypatch.setattr(node.identifier, "process", lambda image, t, camera_fault=False: (
            faults.append(camera_fault), real_process(image, t, camera_fault=camera_fault))[1])
        monkeypatch.setattr(node.camera_health, "update", failing)
        node.process([Frame(0, image_msg(face, 2, 0, "cabin"), time.monotonic())])
        topics = _topics(published)
        assert "/sp_isolation/cabin/driver_identity" in topics and faults == [False], topics
        [health] = [m.message for m in published if m.topic == "/sp_isolation/cabin/camera_health"]
        assert health["level"] == 3, health
        assert node.health.snapshot().inference_errors == 1
    finally:
        node.stop()
        node.destroy_node()
