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


def test_a_renamed_node_with_a_private_camera_is_refused_not_leaked(context, tmp_path):
    """R87: the hand-over gives the other node a private camera as ``<node>/X`` under the name
    the launch files and the config loader give the node; renamed (``-r __node:=NEW``), rclpy
    resolves ``~/X`` to ``<ns>/NEW/X``, which the other node's exclusion does not see (here an
    object_detector whose camera_topics names the renamed driver_monitor's cabin camera takes
    it: that process cannot know the rename). The renamed node, which alone knows its name,
    refuses its configure naming the camera and the fix (was: SUCCESS, nothing said); ``run``,
    which hands the topics as the nodes resolve them, is not refused."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.config import load_params
    from sense_perception.errors import PrivacyError
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ns, cabin = "/sp_renamed", "/sp_renamed/cabin_monitor/image_raw"
    config = tmp_path / "private.yaml"
    # object_detector's cameras given apart (its launch file's camera_topics:=, -p): the file's
    # would reach driver_monitor's exterior_camera_topics, which refuses them itself
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_topic: '~/image_raw'\n")
    gallery = tmp_path / "gallery"
    gallery.mkdir(mode=0o700)
    rename = ["--ros-args", "-r", "__node:=cabin_monitor"]
    monitor = DriverMonitorNode(namespace=ns, context=context, cli_args=rename,
                                parameter_overrides=overrides(
                                    **load_params(config, "driver_monitor"),
                                    **{"attention.enabled": False,
                                       "gallery.path": str(gallery / "gallery.json"),
                                       "runtime.providers": ["CPUExecutionProvider"]}))
    params = {**load_params(config, "object_detector"), "camera_topics": [cabin]}
    detector = ObjectDetectorNode(namespace=ns, context=context,
                                  parameter_overrides=overrides(**params))
    renamed_detector = ObjectDetectorNode(namespace=ns, context=context,
                                          cli_args=["--ros-args", "-r", "__node:=yolox"])
    try:
        assert monitor.get_name() == "cabin_monitor"
        assert monitor.resolve_topic_name("~/image_raw") == cabin
        # what object_detector was handed resolves under the name driver_monitor was not given
        assert detector.resolve_topic_name(params["cabin_camera_topic"]) == \
            f"{ns}/driver_monitor/image_raw"
        settings = detector.SETTINGS(camera_topics=[cabin],
                                     cabin_camera_topic=params["cabin_camera_topic"])
        settings.validate()
        assert [t for t, _ in detector.inputs(settings)] == [cabin]  # it cannot see it
        # ... so the renamed driver_monitor refuses, naming what would leak and the fix
        assert monitor.trigger_configure() == TransitionCallbackReturn.FAILURE  # was: SUCCESS
        message = monitor.config_error
        assert message.startswith("camera_topic ~/image_raw is private: rclpy resolves it under "
                                  "this node's name cabin_monitor (renamed from driver_monitor"), \
            message
        assert f"to {cabin}" in message and "as driver_monitor/image_raw" in message, message
        assert "exterior detection on the driver's face" in message, message
        assert f"fix: name the camera by its absolute topic (camera_topic: {cabin}" in message
        # a renamed object_detector's private camera, likewise (driver_monitor would not know
        # it for an exterior camera)
        private = renamed_detector.SETTINGS(camera_topics=["~/front"])
        private.validate()
        with pytest.raises(PrivacyError, match=f"camera_topics entry ~/front is private: .* to "
                                               f"{ns}/yolox/front, .* as object_detector/front"):
            renamed_detector.inputs(private)
        # run hands the topics as the nodes resolve them: taken there
        renamed_detector.cameras_handed_resolved = True
        assert [t for t, _ in renamed_detector.inputs(private)] == ["~/front"]
    finally:
        renamed_detector.destroy_node()
        detector.destroy_node()
        monitor.destroy_node()
