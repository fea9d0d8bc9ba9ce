"""The same frames give the same message dicts live (the nodes' per-frame path) and in a replay.

Both go through :mod:`sense_perception.core.output.frame_outputs`; this checks the two callers: the
sample bag's frames are handed to an in-process object_detector and driver_monitor (their
``process``, as the worker thread calls it) and replayed, with the same parameters, and every
per-frame message dict is compared exactly (same CPU, same batches, same models). LabelInfo is
latched: the node publishes it once per activation with its clock's stamp, the replay once per
camera with the first frame's header, so it is compared without the header.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ros_helpers import ROOT, overrides, spin_publishing, record_published

pytestmark = pytest.mark.ros

SAMPLE_BAG = ROOT / "sense_perception" / "data" / "sample_bag"
FRONT = "/camera/front/image_raw/compressed"
CABIN = "/camera/cabin/image_raw/compressed"


def _bag_frames(topic: str, bag: Path = SAMPLE_BAG) -> list[Any]:
    """The bag's frames of ``topic`` as rclpy messages (as a live subscription receives them)."""
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader

    from sense_perception.ros.convert import msg_class

    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [deserialize_message(bytes(raw), msg_class(c.msgtype))
                for c, _, raw in reader.messages(connections=conns)]


def _replay(tmp: Path, topics: list[str], cabin: str | None, config: Path,
            monkeypatch: pytest.MonkeyPatch, calibration: Path | None = None,
            bag: Path = SAMPLE_BAG) -> list[tuple[str, str, dict]]:
    from sense_perception.replay import sink
    from sense_perception.replay.engine import ReplayOptions, Replayer

    written: list[tuple[str, str, dict]] = []
    real = sink.ResultSink.write

    def recording(self, timestamp, messages):
        messages = list(messages)
        written.extend((m.topic, m.msgtype, m.message) for m in messages)
        return real(self, timestamp, messages)

    monkeypatch.setattr(sink.ResultSink, "write", recording)
    result = Replayer(ReplayOptions(bag, tmp, topics=topics, cabin=cabin, config=config,
                                    calibration=calibration)).run()
    monkeypatch.setattr(sink.ResultSink, "write", real)
    assert result.complete
    return written


def _live(node: Any, context: Any, topic: str, annotations: str, publishers: Any,
          monkeypatch: pytest.MonkeyPatch, camera_info: tuple[str, Any] | None = None,
          bag: Path = SAMPLE_BAG) -> list[tuple[str, str, dict]]:
    """Run every frame of ``topic`` through ``node.process``, with a subscriber on ``annotations``
    (they are built only while subscribed: ``publishers()`` gives the node's publishers by row
    name), after ``camera_info`` (topic, CameraInfo) has reached the node; returns the per-frame
    messages."""
    import rclpy
    from foxglove_msgs.msg import ImageAnnotations
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.frame_slots import Frame

    recorded = record_published(monkeypatch)
    probe = rclpy.create_node(f"{node.get_name()}_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        probe.create_subscription(ImageAnnotations, annotations, lambda _m: None, 10)
        end = time.monotonic() + 20.0
        while publishers()["annotations"].get_subscription_count() == 0 and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert publishers()["annotations"].get_subscription_count() == 1
        if camera_info is not None:
            from sensor_msgs.msg import CameraInfo

            from sense_perception.ros import qos

            info_pub = probe.create_publisher(CameraInfo, camera_info[0], qos.profile("reliable", 1))
            executor.add_node(node)  # its CameraInfo subscription is served here
            assert spin_publishing(executor, lambda: info_pub.publish(camera_info[1]),
                                   lambda: node.positions._camera(topic).info is not None), \
                "no CameraInfo reached the node"
        for msg in _bag_frames(topic, bag):
            node.process([Frame(0, msg, time.monotonic())])
    finally:
        node.stop()
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        probe.destroy_node()
    return [(m.topic, m.msgtype, m.message) for m in recorded]


@pytest.fixture()
def params(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The same parameters for the nodes and the replay (an empty gallery: nobody is enrolled)."""
    # autoware.rois_topic: Autoware's ROIs too (one camera, so one topic without {index}).
    return {"object_detector": {"runtime.intra_op_threads": 1, "autoware.rois_topic": "/perception/rois_front"},
            "driver_monitor": {"runtime.intra_op_threads": 1,
                               "gallery.path": str(tmp_path / "gallery.json")}}


def _config(tmp_path: Path, params: dict[str, dict[str, Any]]) -> Path:
    import yaml

    def nest(flat: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in flat.items():
            *parents, last = key.split(".")
            node = out
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
        return out

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({n: {"ros__parameters": nest(p)} for n, p in params.items()}))
    return path


def _without_latched(messages: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    return [m for m in messages if not m[0].endswith("/label_info")]


def test_exterior_frames_give_the_same_messages_live_and_in_replay(context, tmp_path, params,
                                                                   monkeypatch):
    """Calibrated alike: live by a CameraInfo plus the mount parameters, in the replay by
    --calibration with the same numbers; so detections_3d, Autoware's DetectedObjects and the
    ROIs' kinematics are compared too."""
    import json

    from sensor_msgs.msg import CameraInfo

    from sense_perception.core.geometry import mount_transform
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    k = [700.0, 0.0, 480.0, 0.0, 700.0, 270.0, 0.0, 0.0, 1.0]
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({
        "K": [k[0:3], k[3:6], k[6:9]], "D": [0.0] * 5, "distortion_model": "plumb_bob",
        "width": 960, "height": 540, "T_base_link_camera": mount_transform(1.4, 0.03).tolist()}))
    info = CameraInfo(width=960, height=540, distortion_model="plumb_bob", d=[0.0] * 5, k=k)
    info.header.frame_id = "front_camera"
    # a transform: mount_height is refused with Autoware's outputs (base_link: the rear axle)
    params["object_detector"].update({"mount_transform": mount_transform(1.4, 0.03).ravel().tolist(),
                                      "autoware.objects_topic": "/perception/objects_front"})
    replayed = _replay(tmp_path / "replay", [FRONT], None, _config(tmp_path, params), monkeypatch,
                       calibration)
    node = ObjectDetectorNode("live_vs_replay_detector", context=context, parameter_overrides=overrides(
        camera_topics=[FRONT], **params["object_detector"]))
    live = _live(node, context, FRONT, "/camera/front/annotations", lambda: node._outputs[0][1],
                 monkeypatch, ("/camera/front/camera_info", info))
    topics = [t for t, _, _ in live]
    assert topics == ["/camera/front/detections", "/camera/front/detections_3d",
                      "/camera/front/annotations", "/perception/rois_front",
                      "/perception/objects_front", "/camera/front/camera_health"] * 4
    assert any(m["objects"] for t, _, m in live if t == "/perception/objects_front")
    assert live == _without_latched(replayed)
    [(_, _, info)] = [m for m in replayed if m[0].endswith("/label_info")]
    assert info["class_map"] and info["threshold"] > 0


def test_cabin_frames_give_the_same_messages_live_and_in_replay(context, tmp_path, params,
                                                                monkeypatch):
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    replayed = _replay(tmp_path / "replay", [], CABIN, _config(tmp_path, params), monkeypatch)
    node = DriverMonitorNode("live_vs_replay_driver", context=context, parameter_overrides=overrides(
        camera_topic=CABIN, **params["driver_monitor"]))
    live = _live(node, context, CABIN, "/camera/cabin/annotations", lambda: node._pubs, monkeypatch)
    assert {t.rsplit("/", 1)[1] for t, _, _ in live} == {
        "faces", "annotations", "driver_identity", "driver_attention", "head_pose", "camera_health"}
    assert len(live) >= 8 * 4
    assert live == replayed


def _dark_cabin_bag(path: Path) -> Path:
    """The sample bag's real cabin frames at 10 Hz: 3 s as recorded, 2 s under-exposed (x0.1 in
    linear light, by the seeded generator), 2 s as recorded."""
    import cv2
    import numpy as np
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from sense_perception.evaluation import degrade

    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(SAMPLE_BAG) as reader:
        frames = [cv2.imdecode(np.frombuffer(store.deserialize_cdr(raw, c.msgtype).data, np.uint8),
                               cv2.IMREAD_COLOR)
                  for c, _, raw in reader.messages([c for c in reader.connections if c.topic == CABIN])]
    t = store.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(CABIN, "sensor_msgs/msg/CompressedImage", typestore=store)
        for k in range(70):
            image = frames[k % len(frames)]
            if 30 <= k < 50:
                image = degrade.under_exposed(image, np.random.default_rng(k))
            ns = 1_700_000_000 * 10**9 + k * 100_000_000
            header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
                sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cabin_camera")
            msg = t["sensor_msgs/msg/CompressedImage"](
                header=header, format="jpeg", data=cv2.imencode(".jpg", image)[1].reshape(-1))
            writer.write(conn, ns, store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
    return path


def test_a_dark_cabin_camera_is_a_camera_fault_live_and_in_replay(context, tmp_path, params,
                                                                 monkeypatch):
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    bag = _dark_cabin_bag(tmp_path / "dark_cabin")
    replayed = _replay(tmp_path / "replay", [], CABIN, _config(tmp_path, params), monkeypatch,
                       bag=bag)
    node = DriverMonitorNode("live_dark_cabin", context=context, parameter_overrides=overrides(
        camera_topic=CABIN, **params["driver_monitor"]))
    live = _live(node, context, CABIN, "/camera/cabin/annotations", lambda: node._pubs,
                 monkeypatch, bag=bag)

    def states(messages: list[tuple[str, str, dict]],
               topic: str = "/camera/cabin/driver_attention") -> list[str]:
        return [m["results"][0]["class_id"] for t, _, m in messages if t == topic]

    def levels(messages: list[tuple[str, str, dict]]) -> list[int]:
        return [m["level"] for t, _, m in messages if t == "/camera/cabin/camera_health"]

    # the node's stream timing runs on its own clock (frames handed in back to back), so only
    # the attention and the health level are compared, not the timing values
    assert states(live) == states(replayed) and len(states(live)) == 70
    faulty = [i for i, s in enumerate(states(live)) if s == "camera_fault"]
    assert faulty and faulty == [i for i, level in enumerate(levels(live)) if level == 2]
    assert 30 <= faulty[0] and faulty[-1] < 69  # raised after the dark frames began, and cleared
    assert set(states(live)) == {"attentive", "camera_fault"}
    # the identity says camera_fault on the same frames, live as in the replay
    identity = states(live, "/camera/cabin/driver_identity")
    assert identity == states(replayed, "/camera/cabin/driver_identity") and len(identity) == 70
    assert [i for i, s in enumerate(identity) if s == "camera_fault"] == faulty
