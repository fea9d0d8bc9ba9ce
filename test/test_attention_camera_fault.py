"""A dark or blocked cabin camera in a replay: driver attention and driver identity say
``camera_fault`` (not distracted, not no_face, not unknown) while the camera's health is in fault,
attention's timers hold, and both are back once the camera clears: attentive, and the enrolled
driver identified again without re-collecting evidence (the fault is shorter than
``identity.max_gap_s``).

The bag is built from the real cabin frames of the sample bag (one frontal driver), played at
10 Hz, with a stretch of them under-exposed (x0.1 in linear light) or covered by opaque soiling
by the seeded generator of :mod:`sense_perception.evaluation.degrade`.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from replay_helpers import CABIN, SAMPLE_BAG, enrol_sample_driver, read_output
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sense_perception.evaluation import degrade
from sense_perception.replay.engine import ReplayOptions, Replayer

STORE = get_typestore(Stores.ROS2_JAZZY)
BASE_NS = 1_700_000_000 * 10**9
PERIOD_NS = 100_000_000
# 3 s clean (calibration), 2 s of a fault, 3 s clean
PLAN = ["clean"] * 30 + ["fault"] * 20 + ["clean"] * 30


def cabin_frames() -> list[np.ndarray]:
    """The sample bag's real cabin frames, decoded."""
    out = []
    with Reader(SAMPLE_BAG) as reader:
        for conn, _, raw in reader.messages([c for c in reader.connections if c.topic == CABIN]):
            msg = STORE.deserialize_cdr(raw, conn.msgtype)
            out.append(cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR))
    assert len(out) == 8
    return out


def write_bag(path: Path, fault: str) -> None:
    frames = cabin_frames()
    t = STORE.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(CABIN, "sensor_msgs/msg/CompressedImage", typestore=STORE)
        for k, kind in enumerate(PLAN):
            image = frames[k % len(frames)]
            if kind == "fault":  # the same seed each frame: the same mud stays on the lens
                image = getattr(degrade, fault)(image, np.random.default_rng(3), *(
                    (0.6,) if fault == "soil_opaque" else ()))
            ns = BASE_NS + k * PERIOD_NS
            header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
                sec=ns // 10**9, nanosec=ns % 10**9), frame_id="cabin_camera")
            msg = t["sensor_msgs/msg/CompressedImage"](
                header=header, format="jpeg", data=cv2.imencode(".jpg", image)[1].reshape(-1))
            writer.write(conn, ns, STORE.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))


@pytest.fixture(scope="module", params=["under_exposed", "soil_opaque"])
def replayed(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"cabin_{request.param}")
    write_bag(tmp / "bag", request.param)
    gallery, driver_id = enrol_sample_driver(tmp)
    config = tmp / "params.yaml"
    config.write_text(f"driver_monitor:\n  ros__parameters:\n    gallery:\n      path: {gallery}\n")
    result = Replayer(ReplayOptions(tmp / "bag", tmp / "out", topics=[], cabin=CABIN,
                                    config=config)).run()
    assert result.complete
    result.driver_id = driver_id
    return request.param, tmp / "out", result


def _per_frame(out: Path, topic: str = "/camera/cabin/driver_attention"
               ) -> tuple[list[str], list[int], list[str]]:
    """Per cabin frame: the state ``topic`` publishes (attention by default), the camera's health
    level and its conditions."""
    messages = read_output(out / "bag")
    states = [m.ros_msg.results[0].class_id for m in messages if m.channel.topic == topic]
    health = [m.ros_msg for m in messages if m.channel.topic == "/camera/cabin/camera_health"]
    assert len(states) == len(health) == len(PLAN)
    return states, [h.level for h in health], [h.message for h in health]


def test_attention_reports_the_camera_fault_while_the_health_is_in_error(replayed):
    fault, out, result = replayed
    states, health, conditions = _per_frame(out)
    condition = {"under_exposed": "dark", "soil_opaque": "blocked"}[fault]
    in_error = [i for i, level in enumerate(health) if level == 2]
    assert in_error, "the generator's fault must raise the cabin camera's health"
    assert all(condition in conditions[i] for i in in_error)
    # exactly the frames whose camera health is in ERROR say camera_fault
    assert [i for i, s in enumerate(states) if s == "camera_fault"] == in_error
    # never taken for the driver looking away, closing the eyes or leaving the seat
    assert set(states) == {"attentive", "camera_fault"}, set(states)
    # attentive before, and again on the first frame after the camera clears
    assert states[:in_error[0]] == ["attentive"] * in_error[0]
    assert states[in_error[-1] + 1:] == ["attentive"] * (len(PLAN) - in_error[-1] - 1)
    assert in_error[-1] + 1 < len(PLAN)  # it did clear (hysteresis), within the bag


def test_no_alert_and_the_time_is_counted_as_camera_fault(replayed):
    _, out, result = replayed
    attention = result.summary["attention"]
    spent = attention["time_in_state_s"]
    assert spent.get("camera_fault", 0.0) >= 1.0 and spent.get("no_face", 0.0) == 0.0
    assert spent.get("distracted", 0.0) == 0.0
    assert attention["alerts"] == [] and attention["max_level"] == 0, attention
    assert [e["state"] for e in attention["timeline"]] == ["attentive", "camera_fault", "attentive"]


def test_identity_says_camera_fault_and_is_judged_again_after_it(replayed):
    _, out, result = replayed
    who, health, _ = _per_frame(out, "/camera/cabin/driver_identity")
    in_error = [i for i, level in enumerate(health) if level == 2]
    first_degraded = PLAN.index("fault")
    # a degraded frame neither votes nor empties the seat: the identity says camera_fault exactly
    # while the health is in ERROR, and never unknown (the enrolled driver taken for a stranger)
    assert [i for i, w in enumerate(who) if w == "camera_fault"] == in_error
    assert set(who) <= {result.driver_id, "uncertain", "camera_fault", "no_face"}, set(who)
    # no_face only on covered frames before the health's hysteresis raised the fault
    assert all(first_degraded <= i < in_error[0] for i, w in enumerate(who) if w == "no_face")
    assert who[first_degraded - 1] == result.driver_id  # identified before the fault
    # the fault outlasted identity.max_gap_s (2 s): evidence is collected afresh, then the
    # driver is identified again
    after = who[in_error[-1] + 1:]
    assert set(after) == {"uncertain", result.driver_id} and after[-1] == result.driver_id
    assert after == sorted(after, key=lambda w: w != "uncertain")  # uncertain, then identified
