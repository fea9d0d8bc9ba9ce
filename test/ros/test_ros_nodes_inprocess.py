"""Node behaviour checked in-process (no DDS traffic needed): failure paths and parameter handling."""
from __future__ import annotations

import time

import pytest

from ros_helpers import DATA, image_msg, read_bgr, require_ros

pytestmark = pytest.mark.ros


@pytest.fixture()
def context(ros_env, monkeypatch):
    require_ros()
    import rclpy

    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR"):
        monkeypatch.setenv(key, ros_env[key])
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _params(**values):
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in values.items()]


def _wait(predicate, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.05)
    return predicate()


def test_inference_failure_drops_the_frame_counts_it_and_the_node_continues(context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("inproc_detector", context=context, parameter_overrides=_params(**{
        "camera_topics": ["/sp_inproc/cam/image_raw"], "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        msg = image_msg(read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg"), 5, 0, "cam")
        real_detect = node.detector.detect

        def failing_detect(images):  # fault injection: what an onnxruntime error looks like to the node
            raise RuntimeError("injected: onnxruntime Run() failed")

        node.detector.detect = failing_detect
        node._slots.put(0, msg)  # the same path a camera callback takes, through the worker thread
        assert _wait(lambda: node.health.snapshot().inference_errors == 1)
        snap = node.health.snapshot()
        assert snap.dropped_error == 1 and snap.processed == 0
        status = node.health.report("n")
        assert status["level"] == 2 and "injected: onnxruntime Run() failed" in status["message"]
        node.detector.detect = real_detect
        node._slots.put(0, msg)
        assert _wait(lambda: node.health.snapshot().processed == 1), "worker stopped after a failure"
        assert node._worker.is_alive()
    finally:
        node.stop()
        node.destroy_node()


def test_unknown_parameter_leaves_the_node_unconfigured_with_the_reason(context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("inproc_typo", context=context,
                              parameter_overrides=_params(camera_topic="/typo/image_raw"))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == "unconfigured"
        assert "unknown parameter(s) camera_topic" in node.config_error
        assert "camera_topics" in node.config_error  # the valid names are listed
    finally:
        node.destroy_node()


def test_identity_is_refused_on_an_exterior_camera(context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    node = DriverMonitorNode("inproc_driver", context=context,
                             parameter_overrides=_params(camera_role="front", camera_topic="/front/image_raw"))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.identifier is None and node.lifecycle_state == "unconfigured"
        assert "refused" in node.config_error and "front" in node.config_error
    finally:
        node.destroy_node()


def test_node_parameters_are_declared_with_descriptions(context):
    from sense_perception.ros.object_detector_node import ObjectDetectorNode
    from sense_perception.ros.settings import ObjectDetectorSettings

    node = ObjectDetectorNode("inproc_params", context=context)
    try:
        import dataclasses

        for f in dataclasses.fields(ObjectDetectorSettings):
            assert node.has_parameter(f.name)
            descriptor = node.describe_parameter(f.name)
            assert descriptor.description, f.name
        assert node.get_parameter("input_reliability").value == "best_effort"
    finally:
        node.destroy_node()
