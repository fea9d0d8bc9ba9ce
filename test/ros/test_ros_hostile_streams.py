"""Hostile camera streams and service calls against the running nodes (built in the test process,
frames sent as real messages through a real publisher and the node's own subscription and
inference thread): what a node holds must stay bounded whatever the stamps, and a forgotten
driver must not be shown after the gallery was reloaded.

SECURITY.md R18 names these tests.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from ros_helpers import DATA, image_msg, overrides, published_status, read_bgr, status_values

pytestmark = pytest.mark.ros

WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]  # a portrait: the face is anywhere, not at a driver's seat position
FACE = DATA / "faces" / "obama_3_blue_room_2010.jpg"


class Camera:
    """A camera publisher in the node's context, spun with the node on one executor."""

    def __init__(self, context: Any, node: Any, topic: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = node
        self.pub_node = rclpy.create_node(f"camera_{node.get_name()}", context=context)
        self.pub = self.pub_node.create_publisher(Image, topic, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self.executor.add_node(self.pub_node)

    def send(self, msg: Any, timeout: float = 20.0) -> None:
        """Publish ``msg`` (again, until it arrives: discovery) and wait until the node's
        inference thread has processed it."""
        target = self.node.health.snapshot().processed + 1
        end = time.monotonic() + timeout
        while self.node.health.snapshot().processed < target:
            assert time.monotonic() < end, f"frame not processed within {timeout} s"
            if self.node.health.snapshot().received < target:
                self.pub.publish(msg)
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.pub_node.destroy_node()


def _driver_monitor(context: Any, name: str, topic: str, gallery: Any, **params: Any) -> Any:
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    node = DriverMonitorNode(name, context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": WHOLE_IMAGE,
        "gallery.path": str(gallery), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1, **params}))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return node


def test_a_cabin_camera_stamping_every_frame_zero_holds_bounded_attention_state(context, tmp_path):
    """A camera driver that leaves every header stamp at 0 (or paused sim time): the attention's
    time windows never saw time pass, so nothing left them; each frame added an item to six
    windows, for as long as the node ran (30 frames: 155 items). Now frames without time between
    them share an item."""
    gallery = tmp_path / "gallery" / "gallery.json"
    gallery.parent.mkdir(mode=0o700)
    face = read_bgr(FACE)[::2, ::2].copy()
    topic = "/sp_hostile_zero/cabin/image_raw"
    node = _driver_monitor(context, "hostile_zero_stamps", topic, gallery)
    camera = Camera(context, node, topic)
    try:
        monitor = node.identifier.attention.monitor
        rng = np.random.default_rng(0)
        for _ in range(30):  # a live camera's noise: the pixels are never frozen
            noisy = np.clip(face + rng.normal(0.0, 2.0, face.shape), 0, 255).astype(np.uint8)
            camera.send(image_msg(noisy, 0, 0, "cabin"))
        values = status_values(published_status(node))
        assert values["faces"] == "1" and values["frames_processed"] == "30", values
        # one item per window (six); calibration samples only from the first frames: from the
        # fifth, camera health calls stamps that stand still frozen, a camera fault
        assert monitor.held["windows"] <= 6, f"attention holds {monitor.held} after 30 frames"
        assert monitor.held["samples"] <= 3 * 5, monitor.held
    finally:
        camera.close()
        node.stop()
        node.destroy_node()
