"""object_detector places detections live: the camera's CameraInfo (a real subscription) plus the
mount parameters give <ns>/detections_3d with ranged captions; without CameraInfo it publishes no
3-D and /diagnostics says why."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ros_helpers import (level, overrides, published_status, record_published, spin_publishing,
                         status_values, wait_for)
from test_frame_outputs_live_replay import _bag_frames

pytestmark = pytest.mark.ros

FRONT = "/camera/front/image_raw/compressed"
INFO = "/camera/front/camera_info"


def _camera_info() -> Any:
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo()
    info.header.frame_id = "front_camera"
    info.width, info.height = 960, 540
    info.k = [700.0, 0.0, 480.0, 0.0, 700.0, 270.0, 0.0, 0.0, 1.0]
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    return info


@contextmanager
def _active(context: Any, node: Any, probe: Any) -> Iterator[Any]:
    """``node`` configured and activated, spun with ``probe`` by the executor it yields; both are
    destroyed afterwards."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    executor.add_node(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        yield executor
    finally:
        node.stop()
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        probe.destroy_node()


def _send_calibration(node: Any, probe: Any, executor: Any, tf: bool = False) -> None:
    """Publish the front camera's CameraInfo until the node holds it (and, with ``tf``, the
    /tf_static frames published before)."""
    from sensor_msgs.msg import CameraInfo

    from sense_perception.ros import qos

    pub = probe.create_publisher(CameraInfo, INFO, qos.profile("reliable", 1))
    spin_publishing(executor, lambda: pub.publish(_camera_info()),
                    lambda: node.positions._camera(FRONT).info is not None
                    and (not tf or node.positions.tf.frames))


def test_camera_info_and_mount_parameters_give_detections_3d(context, monkeypatch):
    import rclpy

    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    recorded = record_published(monkeypatch)
    node = ObjectDetectorNode("positions_live", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], mount_height=1.4, mount_pitch=0.03,
        **{"runtime.intra_op_threads": 1}))
    probe = rclpy.create_node("positions_probe", context=context)
    with _active(context, node, probe) as executor:
        frames = _bag_frames(FRONT)
        node.process([Frame(0, frames[0], time.monotonic())])  # before any CameraInfo
        values = node.diagnostic_extra()
        assert values[f"positions[{FRONT}]"].startswith(
            f"no calibration: no sensor_msgs/CameraInfo on {INFO}")
        assert not any(m.topic.endswith("detections_3d") for m in recorded)
        _send_calibration(node, probe, executor)
        for msg in frames[1:]:
            node.process([Frame(0, msg, time.monotonic())])
        three_d = [m.message for m in recorded if m.topic == "/camera/front/detections_3d"]
        assert len(three_d) == len(frames) - 1
        assert all(m["header"]["frame_id"] == "base_link" for m in three_d)
        assert sum(len(m["detections"]) for m in three_d) > 0
        assert "detections placed" in node.diagnostic_extra()[f"positions[{FRONT}]"]


@pytest.mark.parametrize("bad", ["inverse", "nan", "millimetres"])
def test_a_bad_mount_parameter_fails_configure(context, bad):
    """The inverse transform, a nan (YAML .nan) or a translation in millimetres fail configure.
    A nan passed configure before: every frame then had no position, its reason shown only
    among /diagnostics' values."""
    import math

    import numpy as np
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.core.geometry import mount_transform
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    T = mount_transform(1.4, 0.03)
    if bad == "inverse":
        T = np.linalg.inv(T)
    elif bad == "nan":
        T[0, 3] = math.nan
    else:
        T[:3, 3] *= 1000.0
    node = ObjectDetectorNode(f"positions_bad_mount_{bad}", context=context,
                              parameter_overrides=overrides(camera_topics=[FRONT],
                                                            mount_transform=T.ravel().tolist()))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.positions is None  # nothing of the failed configuration is kept
    finally:
        node.destroy_node()



def _transform(parent: str, child: str, T: Any) -> Any:
    """A geometry_msgs/TransformStamped of the 4x4 transform ``T`` (child -> parent)."""
    from geometry_msgs.msg import TransformStamped
    from scipy.spatial.transform import Rotation

    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent, child
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = T[:3, 3].tolist()
    q.x, q.y, q.z, q.w = Rotation.from_matrix(T[:3, :3]).as_quat().tolist()
    return msg


def _send_tf_static(probe: Any, transforms: list[Any]) -> Any:
    """Publish ``transforms`` on /tf_static as tf2's static broadcaster does (latched); returns
    the publisher, which must live as long as the test."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         reliability=ReliabilityPolicy.RELIABLE)
    pub = probe.create_publisher(TFMessage, "/tf_static", latched)
    pub.publish(TFMessage(transforms=transforms))
    return pub


def test_tf_static_gives_the_mount(context):
    """No mount parameters: a latched /tf_static (sent before the node started) gives base_link ->
    front_camera; the CameraInfo the intrinsics."""
    import math

    import numpy as np
    import rclpy

    from sense_perception.core.geometry import mount_transform
    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    probe = rclpy.create_node("tf_probe", context=context)
    T = mount_transform(1.4, math.radians(2.0))
    tf_pub = _send_tf_static(probe, [_transform("base_link", "front_camera", T)])  # noqa: F841
    node = ObjectDetectorNode("positions_tf", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], **{"runtime.intra_op_threads": 1}))
    with _active(context, node, probe) as executor:
        _send_calibration(node, probe, executor, tf=True)
        np.testing.assert_allclose(node.positions.tf.lookup("base_link", "front_camera"), T,
                                   atol=1e-9)
        node.process([Frame(0, _bag_frames(FRONT)[0], time.monotonic())])
        assert node.diagnostic_extra()[f"positions[{FRONT}]"].endswith(
            f"({INFO} (CameraInfo and /tf_static))")


def test_a_bad_transform_beside_the_cameras_in_tf_static_leaves_its_mount(context):
    """robot_state_publisher sends every static transform in one latched message: a non-finite one
    (a lidar's NaN translation) refused the whole message, so the camera beside it lost its mount
    and the node said only 'no chain of transforms ... (frames known: none)'. Now the bad one is
    refused by name, and the camera is placed."""
    import math

    import rclpy

    from sense_perception.core.geometry import mount_transform
    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    probe = rclpy.create_node("tf_bad_probe", context=context)
    lidar = _transform("base_link", "lidar_top", mount_transform(1.9))
    lidar.transform.translation.x = math.nan  # a broken URDF value
    tf_pub = _send_tf_static(probe, [lidar, _transform(  # noqa: F841  kept alive for the test
        "base_link", "front_camera", mount_transform(1.4, math.radians(2.0)))])
    node = ObjectDetectorNode("positions_tf_bad", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], **{"runtime.intra_op_threads": 1}))
    with _active(context, node, probe) as executor:
        _send_calibration(node, probe, executor, tf=True)  # before the fix: no frame ever
        assert node.positions.tf.frames == ["base_link", "front_camera"]
        node.process([Frame(0, _bag_frames(FRONT)[0], time.monotonic())])
        placed = node.diagnostic_extra()[f"positions[{FRONT}]"]
        assert placed.endswith(f"({INFO} (CameraInfo and /tf_static))"), placed
        assert not placed.startswith("0 of"), placed
        # a camera whose own transform is the bad one is told why it has no mount
        try:
            node.positions.tf.lookup("base_link", "lidar_top")
        except Exception as exc:  # noqa: BLE001  the message is what is checked
            assert "refused: base_link -> lidar_top" in str(exc) and "non-finite" in str(exc), exc
        else:
            raise AssertionError("a refused transform gave a mount")


def test_a_tf_static_flood_of_new_frames_is_bounded_and_a_warn(context):
    """A publisher sending thousands of new child frames on /tf_static grew the node's transform
    store without bound. Now MAX_FRAMES frames are kept: the camera's mount stays, the rest are
    counted and named once in /diagnostics (WARN), the detections are placed."""
    import math

    import rclpy

    from sense_perception.core.geometry import mount_transform
    from sense_perception.core.geometry.tf_static import MAX_FRAMES
    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    probe = rclpy.create_node("tf_flood_probe", context=context)
    junk = _transform("base_link", "junk", mount_transform(1.0))
    flood = []
    for i in range(MAX_FRAMES + 20):
        msg = _transform("base_link", f"junk_{i}", mount_transform(1.0))
        msg.transform = junk.transform
        flood.append(msg)
    tf_pub = _send_tf_static(probe, [_transform(  # noqa: F841  kept alive for the test
        "base_link", "front_camera", mount_transform(1.4, math.radians(2.0))), *flood])
    node = ObjectDetectorNode("positions_tf_flood", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], no_input_warn_s=60.0, **{"runtime.intra_op_threads": 1}))
    with _active(context, node, probe) as executor:
        _send_calibration(node, probe, executor, tf=True)
        tree = node.positions.tf
        assert len(tree.frames) == MAX_FRAMES + 1 and tree.over_cap == 21, tree.over_cap
        node.process([Frame(0, _bag_frames(FRONT)[0], time.monotonic())])
        placed = node.diagnostic_extra()[f"positions[{FRONT}]"]
        assert placed.endswith(f"({INFO} (CameraInfo and /tf_static))"), placed
        status = published_status(node)
        assert level(status) == 1, status.message
        assert f"21 transform(s) of new frames not kept, beyond the cap of {MAX_FRAMES}" \
            in status.message, status.message


def test_an_absurd_mount_loses_the_positions_not_the_frames(context, monkeypatch):
    """A finite but absurd mount (1e200 m above the road) overflowed the range estimate: every
    frame was dropped as an inference error and the camera's 2-D detections were lost with its
    positions. Now only the positions are, with the reason and the fix. Given as mount_transform
    the node now refuses it at configure (test_a_bad_mount_parameter_fails_configure); from
    /tf_static, here, it comes while the node runs."""
    import rclpy

    from sense_perception.core.geometry import mount_transform
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    recorded = record_published(monkeypatch)
    T = mount_transform(1.4, 0.03)
    T[2, 3] = 1e200
    probe = rclpy.create_node("positions_absurd_probe", context=context)
    tf_pub = _send_tf_static(probe, [_transform("base_link", "front_camera", T)])  # noqa: F841
    node = ObjectDetectorNode("positions_absurd_mount", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], no_input_warn_s=60.0, **{"runtime.intra_op_threads": 1}))
    with _active(context, node, probe) as executor:
        _send_calibration(node, probe, executor, tf=True)
        frames = _bag_frames(FRONT)[:2]
        for i, msg in enumerate(frames):  # through the worker thread, as a camera callback does
            node._slots.put(0, msg)
            assert wait_for(lambda n=i + 1: node.health.snapshot().processed
                            + node.health.snapshot().inference_errors >= n)
        snap = node.health.snapshot()
        assert snap.inference_errors == 0 and snap.processed == len(frames), snap
        published = [m.topic for m in recorded]
        assert published.count("/camera/front/detections") == len(frames)
        assert "/camera/front/detections_3d" not in published
        reason = node.diagnostic_extra()[f"positions[{FRONT}]"]
        assert "1e+200) m in base_link" in reason and "fix: the translation is in metres" \
            in reason, reason
        assert level(published_status(node)) == 1


def test_cleanup_forgets_the_placements_and_a_shut_down_node_is_not_ok(context):
    """After cleanup /diagnostics showed the last configuration's positions[...] values; a node
    shut down for good (finalized) reported level OK 'ok' while processing nothing."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("positions_cleanup", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], mount_height=1.4, mount_pitch=0.03,
        **{"runtime.intra_op_threads": 1}))
    probe = rclpy.create_node("positions_cleanup_probe", context=context)
    with _active(context, node, probe) as executor:
        _send_calibration(node, probe, executor)
        node.process([Frame(0, _bag_frames(FRONT)[0], time.monotonic())])
        assert "detections placed" in status_values(published_status(node))[f"positions[{FRONT}]"]
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        status = published_status(node)
        assert not [k for k in status_values(status) if k.startswith("positions[")], status
        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
        status = published_status(node)
        assert level(status) == 1 and status.message.startswith("finalized"), status.message


def test_a_broken_camera_info_is_a_warn_and_the_2d_detections_go_on(context, monkeypatch):
    """A CameraInfo with a nan in K, through the node's real subscription: the frame's 2-D
    detections are published, no detections_3d, and /diagnostics is WARN naming the camera,
    the field and where it came from (it was level OK, the reason only among the values, and
    no log line said it). The next whole CameraInfo places the camera again and clears it; a
    missing calibration (no CameraInfo yet) is no WARN."""
    import math

    import rclpy
    from sensor_msgs.msg import CameraInfo

    from sense_perception.ros import qos
    from sense_perception.ros.frame_slots import Frame
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    recorded = record_published(monkeypatch)
    node = ObjectDetectorNode("positions_broken_info", context=context,
                              parameter_overrides=overrides(
                                  camera_topics=[FRONT], mount_height=1.4, mount_pitch=0.03,
                                  no_input_warn_s=60.0, **{"runtime.intra_op_threads": 1}))
    probe = rclpy.create_node("positions_broken_probe", context=context)
    with _active(context, node, probe) as executor:
        frames = _bag_frames(FRONT)
        node.process([Frame(0, frames[0], time.monotonic())])  # no CameraInfo yet: a state
        assert level(published_status(node)) == 0
        broken = _camera_info()
        broken.k = [math.nan] + list(broken.k)[1:]
        pub = probe.create_publisher(CameraInfo, INFO, qos.profile("reliable", 1))
        assert spin_publishing(executor, lambda: pub.publish(broken),
                               lambda: node.positions._camera(FRONT).info is not None)
        node.process([Frame(0, frames[1], time.monotonic())])
        status = published_status(node)
        expected = (f"positions[{FRONT}]: no calibration: {INFO} (CameraInfo and the mount "
                    "parameters): K has a non-finite number (nan or inf)")
        assert level(status) == 1 and expected in status.message, status.message
        topics = [m.topic for m in recorded]
        assert topics.count("/camera/front/detections") == 2
        assert "/camera/front/detections_3d" not in topics
        assert spin_publishing(executor, lambda: pub.publish(_camera_info()),
                               lambda: list(node.positions._camera(FRONT).info.k)[0] == 700.0)
        node.process([Frame(0, frames[2], time.monotonic())])
        status = published_status(node)
        assert level(status) == 0 and "positions[" not in status.message, status.message
        assert [m.topic for m in recorded].count("/camera/front/detections_3d") == 1
