"""Replay outputs checked with real ROS 2 typesupport, and --publish into a live graph (.venv-ros)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy")

from rclpy.serialization import deserialize_message  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402

from sense_perception.replay.engine import ReplayOptions, Replayer
from sense_perception.ros.convert import msg_class
from sense_perception.replay.typestore import make_typestore

from ros_helpers import own_domain_id

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_BAG = ROOT / "sense_perception" / "data" / "sample_bag"
FRONT = "/camera/front/image_raw/compressed"
CABIN = "/camera/cabin/image_raw/compressed"


@pytest.fixture()
def ros_env(monkeypatch, tmp_path):
    # no packet leaves the machine; parallel runs do not see each other
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(own_domain_id()))
    config = tmp_path / "params.yaml"  # an empty gallery of its own: identity runs, nobody is known
    config.write_text(f"driver_monitor:\n  ros__parameters:\n    gallery:\n"
                      f"      path: {tmp_path / 'gallery.json'}\n")
    return config


def test_replay_never_imports_rclpy_where_rclpy_is_importable(monkeypatch):
    """The replay needs no ROS: checked here, where importing rclpy would succeed (in the plain
    venv the same check could not fail)."""
    monkeypatch.syspath_prepend(str(ROOT / "test"))
    from replay_helpers import assert_replay_never_imports_rclpy

    assert rclpy is not None  # importable in this interpreter: the subprocess check can fail
    assert_replay_never_imports_rclpy()


def test_every_output_message_deserialises_with_rclpy(tmp_path, ros_env):
    out = tmp_path / "out"
    result = Replayer(ReplayOptions(SAMPLE_BAG, out, cabin=CABIN, config=ros_env,
                                    copy_input=True)).run()
    assert result.complete
    store = make_typestore()
    seen = set()
    annotated = 0
    with Reader(out / "bag") as reader:
        for conn, _, raw in reader.messages():
            msg = deserialize_message(bytes(raw), msg_class(conn.msgtype))
            ref = store.deserialize_cdr(raw, conn.msgtype)
            if hasattr(ref, "header"):
                assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
                    ref.header.stamp.sec, ref.header.stamp.nanosec, ref.header.frame_id)
            if conn.msgtype == "vision_msgs/msg/Detection2DArray":
                assert len(msg.detections) == len(ref.detections)
                for a, b in zip(msg.detections, ref.detections, strict=True):
                    assert a.results[0].hypothesis.class_id == b.results[0].hypothesis.class_id
                    assert a.bbox.size_x == b.bbox.size_x and a.bbox.center.position.y == \
                        b.bbox.center.position.y
            if conn.msgtype == "vision_msgs/msg/Detection3DArray":
                assert [(d.results[0].hypothesis.class_id, d.bbox.center.position.x,
                         d.results[0].pose.covariance[0]) for d in msg.detections] == [
                    (d.results[0].hypothesis.class_id, d.bbox.center.position.x,
                     d.results[0].pose.covariance[0]) for d in ref.detections]
            if conn.msgtype == "geometry_msgs/msg/PoseStamped":  # the driver's head pose
                assert (msg.pose.orientation.x, msg.pose.orientation.w, msg.pose.position.z) == (
                    ref.pose.orientation.x, ref.pose.orientation.w, ref.pose.position.z)
            if conn.msgtype == "foxglove_msgs/msg/ImageAnnotations":
                # the project's .msg files built into real typesupport read what rosbags wrote
                assert type(msg).__module__.startswith("foxglove_msgs.msg")
                assert len(msg.points) == len(ref.points) and len(msg.texts) == len(ref.texts)
                for a, b in zip(msg.points, ref.points, strict=True):
                    assert a.type == b.type == type(a).LINE_LOOP
                    assert [(p.x, p.y) for p in a.points] == [(p.x, p.y) for p in b.points]
                    assert (a.timestamp.sec, a.timestamp.nanosec) == (b.timestamp.sec, b.timestamp.nanosec)
                    assert (a.outline_color.r, a.outline_color.a) == (b.outline_color.r, b.outline_color.a)
                assert [x.text for x in msg.texts] == [x.text for x in ref.texts]
                annotated += len(msg.points)
            seen.add(conn.msgtype)
    assert annotated > 0
    assert seen == {"sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image",
                    "vision_msgs/msg/Detection2DArray", "vision_msgs/msg/LabelInfo",
                    "vision_msgs/msg/Detection3DArray",  # the calibrated front camera
                    "vision_msgs/msg/Classification", "diagnostic_msgs/msg/DiagnosticArray",
                    "foxglove_msgs/msg/ImageAnnotations", "geometry_msgs/msg/PoseStamped",
                    "diagnostic_msgs/msg/DiagnosticStatus",  # <ns>/camera_health
                    # --copy-input: the front camera's calibration the replay read
                    "sensor_msgs/msg/CameraInfo", "tf2_msgs/msg/TFMessage"}


def test_publish_plays_bag_and_results_with_clock(tmp_path, ros_env):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage
    from vision_msgs.msg import Detection2DArray

    rclpy.init()
    node = rclpy.create_node("replay_listener")
    got: dict[str, list] = {"clock": [], "image": [], "detections": [], "cabin": []}
    node.create_subscription(Clock, "/clock", lambda m: got["clock"].append(
        m.clock.sec + m.clock.nanosec * 1e-9), 100)
    node.create_subscription(CompressedImage, FRONT, lambda m: got["image"].append(m), 10)
    node.create_subscription(Detection2DArray, "/camera/front/detections",
                             lambda m: got["detections"].append(m), 10)
    # the cabin camera (the driver's face) is played only with --publish-cabin (R80)
    node.create_subscription(CompressedImage, CABIN, lambda m: got["cabin"].append(m), 10)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            rclpy.spin_once(node, timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        start = time.monotonic()
        # rate 2: the 7 s of recording play in about 3.5 s
        result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[FRONT], publish=True,
                                        rate=2.0)).run()
        elapsed = time.monotonic() - start
        time.sleep(0.5)
    finally:
        stop.set()
        spinner.join(timeout=3)
        node.destroy_node()
        rclpy.shutdown()
    assert result.complete
    assert elapsed >= 3.0  # recorded timing honoured (7 s of bag at rate 2)
    clock = got["clock"]
    assert len(clock) > 20 and clock == sorted(clock)
    with Reader(SAMPLE_BAG) as reader:  # bag times of the first and last message
        first, last = reader.start_time * 1e-9, reader.end_time * 1e-9
    assert first - 1e-3 <= clock[0] and clock[-1] <= last + 1e-3
    # discovery may miss the very first frame; later ones must arrive, intact
    assert len(got["image"]) >= 2 and len(got["detections"]) >= 2
    assert got["cabin"] == [] and any("--publish-cabin" in n for n in result.notes)
    store = make_typestore()
    with Reader(SAMPLE_BAG) as reader:
        recorded = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages()
                    if c.topic == FRONT]
    frames = {(m.header.stamp.sec, m.header.stamp.nanosec): bytes(m.data) for m in recorded}
    for image in got["image"]:
        assert bytes(image.data) == frames[(image.header.stamp.sec, image.header.stamp.nanosec)]
    assert all(any(d.results[0].hypothesis.class_id == "car" for d in m.detections)
               for m in got["detections"])


def test_publish_imports_no_module_a_bag_names_and_skips_a_topic_ros_cannot_name(tmp_path, ros_env,
                                                                                monkeypatch):
    """R48: ``replay --publish`` imported whatever module a bag's message type named
    (``idlelib/idle/X`` ran IDLE's main(), waiting on its window; a package's ``__init__`` ran for
    ``pkg/msg/X``), and a topic name ROS 2 refuses (``/1cam``, a space) ended the replay in an
    InvalidTopicNameException traceback before its first frame. Both are a named skip now, nothing
    imported, and the bag's other topics are still published."""
    import sys

    from sense_perception.replay.publish import LivePublisher
    from sense_perception.replay.reader import BagMessage
    from sense_perception.replay.skips import SkipLog
    from std_msgs.msg import String

    marker = tmp_path / "imported"
    for package in ("evilpkg", "evil_msgs"):  # a plain package, and one with a msg/ folder
        (tmp_path / package / "msg").mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text(
            f"open({str(marker)!r}, 'a').write('{package}\\n')\n")
        (tmp_path / package / "msg" / "__init__.py").write_text(
            f"open({str(marker)!r}, 'a').write('{package}.msg\\n')\nX = type('X', (), {{}})\n")
        (tmp_path / package / "run.py").write_text(f"open({str(marker)!r}, 'a').write('run\\n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = rclpy.serialization.serialize_message(String(data="x"))
    skipped = SkipLog()
    publisher = LivePublisher(rate=1e6, skipped=skipped)
    try:
        hostile = [("/a", "evilpkg/run/X"), ("/b", "evilpkg/msg/X"), ("/c", "evil_msgs/msg/X"),
                   ("/d", "os/path/join"), ("/1cam", "std_msgs/msg/String"),
                   ("/a b", "std_msgs/msg/String")]
        publisher.advertise([(topic, msgtype, []) for topic, msgtype in hostile])
        for i, (topic, msgtype) in enumerate([*hostile, ("/fine", "std_msgs/msg/String")]):
            publisher.play(BagMessage(topic, msgtype, 1000 + i, raw))
    finally:
        publisher.close()
    assert not marker.exists(), marker.read_text()
    assert not {"evilpkg", "evil_msgs"} & set(sys.modules)
    assert publisher.published == 1  # /fine
    reasons = {e["topic"]: e["reason"] for e in skipped.entries()}
    assert set(reasons) == {topic for topic, _ in hostile}, reasons
    assert "is not a ROS 2 message type name" in reasons["/a"]
    for topic in ("/b", "/c"):
        assert "is not an installed ROS 2 interface package; nothing was imported" in reasons[topic]
    assert "is not a ROS 2 message type name" in reasons["/d"]  # os/path: no msg, srv or action
    for topic in ("/1cam", "/a b"):
        assert reasons[topic].startswith("not published: not a valid ROS 2 topic name"), reasons


def test_publish_never_plays_a_bags_recorded_results_beside_the_new_ones(tmp_path, ros_env):
    """R48: an output bag replayed again (or a recording of a live object_detector) holds
    `<ns>/detections`...: replay --publish played those beside its own results, two
    Detection2DArray for one frame, and a recorded topic of another type kept its publisher, the
    new results sent as that type. The replay's result topics are reserved now: the bag's
    messages there are a named skip, the results go out with their own type."""
    from sense_perception.replay.engine import _result_topics
    from sense_perception.replay.publish import LivePublisher
    from sense_perception.replay.reader import BagMessage
    from sense_perception.replay.skips import SkipLog
    from std_msgs.msg import String
    from vision_msgs.msg import Detection2DArray

    reserved = _result_topics([FRONT, CABIN], CABIN)
    assert {"/camera/front/detections", "/camera/front/label_info", "/camera/front/annotations",
            "/camera/cabin/driver_identity", "/camera/cabin/faces"} <= reserved
    assert FRONT not in reserved and "/camera/cabin/detections" not in reserved
    skipped = SkipLog()
    publisher = LivePublisher(rate=1e6, skipped=skipped, node_name="results_reserved")
    topic = "/camera/front/detections"
    try:
        publisher.reserve(reserved)
        publisher.advertise([(topic, "std_msgs/msg/String", [])])  # recorded as another type
        raw = rclpy.serialization.serialize_message(String(data="old"))
        publisher.play(BagMessage(topic, "std_msgs/msg/String", 1, raw))
        new = rclpy.serialization.serialize_message(Detection2DArray())
        publisher.publish(topic, "vision_msgs/msg/Detection2DArray", new)
        assert publisher._pubs[topic].msg_type is Detection2DArray
    finally:
        publisher.close()
    assert publisher.published == 1
    [entry] = skipped.entries()
    assert entry["topic"] == topic and "publishes its own results on this topic" in entry["reason"]


def test_publish_bounds_the_history_depth_a_bags_qos_asks_for(tmp_path, ros_env):
    """R48: a bag topic offering a QoS depth of 2**31 (crafted or corrupt) raised TypeError out of
    rclpy when replay --publish made its publisher, before the first frame; a depth of 10**9 with
    transient-local durability kept every frame played in memory. Depths are bounded now."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                    QosTime)

    from sense_perception.replay import publish
    from sense_perception.replay.publish import LivePublisher

    MAX_DEPTH = getattr(publish, "MAX_DEPTH", 1000)
    never = QosTime(sec=0, nsec=0)
    publisher = LivePublisher(rate=1e6, node_name="deep_qos")
    try:
        for topic, depth in (("/deep/a", 2**31), ("/deep/b", 10**9), ("/deep/c", 5)):
            publisher.advertise([(topic, "std_msgs/msg/String", [Qos(
                QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                never, never, QosLiveliness.AUTOMATIC, never, False)])])
            assert publisher._pubs[topic].qos_profile.depth == min(depth, MAX_DEPTH)
    finally:
        publisher.close()
