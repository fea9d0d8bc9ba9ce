"""A node's private camera topic handed to the other node is resolved as rclpy resolves it for
the node that names it (in-process, SECURITY.md R81).

driver_monitor's ``camera_topic: ~/image_raw`` is ``/driver_monitor/image_raw`` at the root. The
config loader and the launch files handed it to object_detector as ``cabin_camera_topic``
unresolved, where it resolved under object_detector's own name (``/object_detector/image_raw``):
an object_detector whose ``camera_topics`` named ``/driver_monitor/image_raw`` took the driver's
camera (its debug image and annotations publish the face). ``run`` hands both nodes' cameras as
the nodes resolve them; a private exterior camera handed on as given was driver_monitor's own.
"""
from __future__ import annotations

from typing import Any

import pytest

from ros_helpers import level, overrides, published_status

pytestmark = pytest.mark.ros


def test_a_private_cabin_camera_is_driver_monitors_to_object_detector(context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.node import Node

    from sense_perception.config import load_params
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    config = tmp_path / "private.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: "
                      "[/sp_private/driver_monitor/image_raw, '~/image_raw']\n"
                      "driver_monitor:\n  ros__parameters:\n    camera_topic: '~/image_raw'\n")
    params = load_params(config, "object_detector")
    monitor = Node("driver_monitor", namespace="/sp_private", context=context)
    node = ObjectDetectorNode(namespace="/sp_private", context=context,
                              parameter_overrides=overrides(**params))
    try:
        # the cabin camera as object_detector resolves what it was handed: driver_monitor's
        cabin = node.resolve_topic_name(params["cabin_camera_topic"])
        assert cabin == monitor.resolve_topic_name("~/image_raw") == \
            "/sp_private/driver_monitor/image_raw"  # was: /sp_private/object_detector/image_raw
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # was: SUCCESS
        own = published_status(node)
        assert level(own) == 2 and "is the cabin camera" in own.message, own.message
        assert "/sp_private/driver_monitor/image_raw" in own.message, own.message
        # its own private ~/image_raw is another camera: taken (was: refused as the cabin's)
        settings = node.SETTINGS(camera_topics=["~/image_raw"],
                                 cabin_camera_topic=params["cabin_camera_topic"])
        settings.validate()
        assert [t for t, _ in node.inputs(settings)] == ["~/image_raw"]
    finally:
        node.destroy_node()
        monitor.destroy_node()


def test_run_hands_a_private_exterior_camera_as_object_detectors(context):
    from sense_perception.cli.run import hand_exterior_cameras
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    detector = ObjectDetectorNode(namespace="/sp_private_run", context=context,
                                  parameter_overrides=overrides(camera_topics=["~/front"]))
    monitor = DriverMonitorNode(namespace="/sp_private_run", context=context,
                                parameter_overrides=overrides(camera_topic="~/front"))
    try:
        hand_exterior_cameras(detector, monitor)
        exterior: Any = monitor.get_parameter("exterior_camera_topics").value
        resolved = {monitor.resolve_topic_name(t) for t in exterior}
        # was: ~/front too, which driver_monitor resolves to its own camera and refused
        assert resolved == {"/sp_private_run/object_detector/front"}, exterior
        settings = monitor.SETTINGS(camera_topic="~/front", exterior_camera_topics=list(exterior))
        settings.validate()
        assert [t for t, _ in monitor.inputs(settings)] == ["~/front"]
    finally:
        monitor.destroy_node()
        detector.destroy_node()
