"""Driver attention in `sense-perception replay` and `sense-perception driver attention`.

The sample bag's cabin camera shows one real, frontal face for 8 s; nobody is enrolled, so the
identity stays unknown while attention works. A second bag built here from real images has the
face leave the seat, so that no_face escalates into alerts in the summary.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from replay_helpers import CABIN, SAMPLE_BAG, SHARED, copy_bag, input_stamps, read_output
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sense_perception.cli.main import main
from sense_perception.replay.engine import ReplayOptions, Replayer

CAMERA_INFO = "/camera/cabin/camera_info"
STATES = {"attentive", "distracted", "eyes_closed", "drowsy", "no_face"}
STORE = get_typestore(Stores.ROS2_JAZZY)


def _camera_info(k: list[float], stamp_ns: int) -> bytes:
    t = STORE.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="cabin_camera")
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                do_rectify=False)
    msg = t["sensor_msgs/msg/CameraInfo"](
        header=header, height=480, width=640, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.array(k, np.float64), r=np.eye(3).reshape(-1),
        p=np.zeros(12), binning_x=0, binning_y=0, roi=roi)
    return STORE.serialize_cdr(msg, "sensor_msgs/msg/CameraInfo")


def _config(tmp: Path, extra: str = "") -> Path:
    config = tmp / "params.yaml"  # an empty gallery: nobody enrolled
    config.write_text("driver_monitor:\n  ros__parameters:\n    gallery:\n"
                      f"      path: {tmp / 'gallery.json'}\n" + extra)
    return config


@pytest.fixture(scope="module")
def cabin_run(tmp_path_factory):
    """The sample bag's cabin camera plus a calibrated CameraInfo, replayed with --video-cabin."""
    tmp = tmp_path_factory.mktemp("attention_replay")
    first_ns = min(ts for (topic, ts) in input_stamps() if topic == CABIN)
    info = _camera_info([500.0, 0, 319.5, 0, 500.0, 239.5, 0, 0, 1], first_ns - 10_000_000)
    bag = copy_bag(SAMPLE_BAG, tmp / "bag", extra=[(CAMERA_INFO, "sensor_msgs/msg/CameraInfo",
                                                    None, first_ns - 10_000_000, info)])
    out = tmp / "out"
    result = Replayer(ReplayOptions(bag, out, topics=[], cabin=CABIN, config=_config(tmp),
                                    video_cabin=True)).run()
    return out, result


def test_attention_and_head_pose_topics_per_cabin_frame(cabin_run) -> None:
    out, result = cabin_run
    assert result.complete
    messages = read_output(out / "bag")
    topics = Counter(m.channel.topic for m in messages)
    assert topics["/camera/cabin/driver_attention"] == topics["/camera/cabin/head_pose"] == 8
    with Reader(out / "bag") as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
    assert types["/camera/cabin/head_pose"] == "geometry_msgs/msg/PoseStamped"
    assert types["/camera/cabin/driver_attention"] == "vision_msgs/msg/Classification"
    stamps = input_stamps()
    for m in messages:
        if m.channel.topic in ("/camera/cabin/driver_attention", "/camera/cabin/head_pose"):
            h = m.ros_msg.header  # header and bag time copied from the cabin frame
            assert (h.stamp.sec, h.stamp.nanosec, h.frame_id) == stamps[(CABIN, m.log_time_ns)]
    identity = [m.ros_msg.results[0].class_id for m in messages
                if m.channel.topic == "/camera/cabin/driver_identity"]
    assert set(identity) <= {"unknown", "uncertain"}  # nobody enrolled ...
    for m in messages:
        if m.channel.topic == "/camera/cabin/driver_attention":  # ... and attention works
            results = [(r.class_id, r.score) for r in m.ros_msg.results]
            assert results[0][0] == "attentive" and 0.0 <= results[0][1] <= 1.0
            assert results[1] == ("level_0", 0.0)
            assert [c for c, _ in results[2:]] == ["eye_openness_right", "eye_openness_left"]
            assert all(0.6 < s < 1.5 for _, s in results[2:])  # near the driver's own baseline
        if m.channel.topic == "/camera/cabin/head_pose":
            p = m.ros_msg.pose
            q = np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])
            assert abs(np.linalg.norm(q) - 1.0) < 1e-6
            # A face looking at the camera: head z along -z of the optical frame (a half turn
            # about x: |qx| near 1), 20 cm to 2 m in front of the lens.
            assert abs(q[0]) > 0.95
            assert 0.2 < p.position.z < 2.0


def test_summary_diagnostics_and_camera_info_from_the_bag(cabin_run) -> None:
    out, result = cabin_run
    summary = json.loads((out / "summary.json").read_text())
    attention = summary["attention"]
    assert attention["time_in_state_s"]["attentive"] == pytest.approx(7.0)  # 8 frames, 1 s apart
    assert sum(attention["time_in_state_s"].values()) == pytest.approx(7.0)
    assert attention["alerts"] == [] and attention["max_level"] == 0
    assert [e["state"] for e in attention["timeline"]] == ["attentive"]
    assert attention["intrinsics"].startswith("camera_info (640x480, fx 500.0")
    diag = [m.ros_msg for m in read_output(out / "bag") if m.channel.topic == "/diagnostics"]
    cabin = [s for d in diag for s in d.status if s.name == "sense_perception replay: driver_monitor"][-1]
    values = {kv.key: kv.value for kv in cabin.values}
    assert values["attention_state"] == "attentive" and values["attention_level"] == "0"
    for key in ("head_yaw_deg", "head_pitch_deg", "head_roll_deg", "eye_aspect_ratio_right",
                "eye_aspect_ratio_left", "perclos"):
        float(values[key])  # numbers, not "n/a": the last frame had a face
    assert values["intrinsics"].startswith("camera_info")


def test_cabin_video_shows_the_attention(cabin_run) -> None:
    out, result = cabin_run
    [video] = result.videos
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 640, 3)
    # The caption band at the bottom is darkened and carries text in the level's colour
    # (green, level 0: (80, 200, 80) in BGR, smoothed by the codec).
    band = frame[-22:].astype(int)
    greenish = (band[..., 1] > 120) & (band[..., 1] > band[..., 2] + 40) & (band[..., 1] > band[..., 0] + 40)
    assert greenish.sum() > 100


def test_uncalibrated_camera_info_is_reported_and_ignored(tmp_path) -> None:
    first_ns = min(ts for (topic, ts) in input_stamps() if topic == CABIN)
    info = _camera_info([0.0] * 9, first_ns - 10_000_000)
    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", extra=[(CAMERA_INFO, "sensor_msgs/msg/CameraInfo",
                                                         None, first_ns - 10_000_000, info)])
    result = Replayer(ReplayOptions(bag, tmp_path / "out", topics=[], cabin=CABIN,
                                    config=_config(tmp_path))).run()
    assert result.complete
    assert any("not calibrated" in note and CAMERA_INFO in note for note in result.notes)
    assert result.summary["attention"]["intrinsics"].startswith("default")


def test_implausible_camera_info_is_refused_with_its_value(tmp_path) -> None:
    """fx = 1e-30 put every face outside the image: a visible driver read as no_face while the
    replay said nothing. It is refused by value and the default intrinsics stay in use."""
    first_ns = min(ts for (topic, ts) in input_stamps() if topic == CABIN)
    info = _camera_info([1e-30, 0, 319.5, 0, 1e-30, 239.5, 0, 0, 1], first_ns - 10_000_000)
    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", extra=[(CAMERA_INFO, "sensor_msgs/msg/CameraInfo",
                                                         None, first_ns - 10_000_000, info)])
    result = Replayer(ReplayOptions(bag, tmp_path / "out", topics=[], cabin=CABIN,
                                    config=_config(tmp_path))).run()
    assert result.complete
    (note,) = [n for n in result.notes if CAMERA_INFO in n]
    assert "CameraInfo fx = 1e-30 px is implausible for a 640x480 image" in note
    attention = result.summary["attention"]
    assert attention["intrinsics"].startswith("default")
    assert attention["time_in_state_s"].get("no_face", 0.0) == 0.0  # the driver is seen
    from sense_perception.face.attention.head_pose import CameraInfoError, CameraIntrinsics

    base = {"width": 640, "height": 480, "d": [], "distortion_model": "plumb_bob"}
    for k, value in (([5000.0 * 640, 0, 320, 0, 500, 240, 0, 0, 1], "fx = 3.2e+06"),
                     ([500.0, 0, 320, 0, -1, 240, 0, 0, 1], "no focal length"),
                     ([500.0, 0, 99999, 0, 500, 240, 0, 0, 1], "cx = 99999")):
        with pytest.raises(CameraInfoError, match=re.escape(value)):
            CameraIntrinsics.from_camera_info({**base, "k": k})
    CameraIntrinsics.from_camera_info({**base, "k": [300.0, 0, 320, 0, 300, 240, 0, 0, 1]})


def test_attention_disabled_publishes_no_attention(tmp_path) -> None:
    config = _config(tmp_path, "    attention:\n      enabled: false\n")
    out = tmp_path / "out"
    result = Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[], cabin=CABIN, config=config)).run()
    topics = {m.channel.topic for m in read_output(out / "bag")}
    assert "/camera/cabin/faces" in topics and "/camera/cabin/driver_attention" not in topics
    assert "/camera/cabin/head_pose" not in topics and result.summary["attention"] is None


def _seat_bag(path: Path, stamped: bool = True) -> Path:
    """5 Hz cabin camera: the driver for 6 s, then an empty seat (a street frame) for 6 s;
    ``stamped`` false: every header stamp 0 (a driver leaving them unset), the bag time as it was."""
    portrait = cv2.imread(str(SHARED / "faces" / "obama_1_official_portrait_2012.jpg"))
    face = cv2.resize(portrait[:682, :910], (640, 480), interpolation=cv2.INTER_AREA)
    street = cv2.resize(cv2.imread(str(SHARED / "street" / "comma2k19_highway280_rav4_preview.png")),
                        (640, 480), interpolation=cv2.INTER_AREA)
    t = STORE.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/cabin/image_raw/compressed", "sensor_msgs/msg/CompressedImage",
                                     typestore=STORE)
        rng = np.random.default_rng(0)
        for k in range(60):
            # each frame with its own sensor noise, as a real camera's: a still photo repeated
            # exactly is a frozen camera (camera health), which attention reports as camera_fault
            image = (face, street)[0 if k < 30 else 1]
            noisy = np.clip(image + rng.normal(0.0, 1.5, image.shape), 0, 255).astype(np.uint8)
            jpeg = cv2.imencode(".jpg", noisy)[1].reshape(-1)
            ns = 1_700_000_000 * 10**9 + k * 200_000_000
            stamp = ns if stamped else 0
            header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
                sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="cabin")
            msg = t["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg",
                                                      data=jpeg)
            writer.write(conn, ns, STORE.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
    return path


def test_empty_seat_escalates_in_the_summary(tmp_path) -> None:
    bag = _seat_bag(tmp_path / "seat")
    config = _config(tmp_path, "    face:\n      driver_region: [0.0, 0.0, 1.0, 1.0]\n")
    result = Replayer(ReplayOptions(bag, tmp_path / "out", cabin="/cabin/image_raw/compressed",
                                    config=config)).run()
    attention = result.summary["attention"]
    spent = attention["time_in_state_s"]
    # The face leaves at 6.0 s; no_face from the first frame 0.5 s (no_face_s) later, at 6.6 s
    # (frames 0.2 s apart); level 1 after 3 s of it, level 2 after 5 s.
    assert spent["attentive"] == pytest.approx(6.6, abs=0.05)
    assert spent["no_face"] == pytest.approx(11.8 - 6.6, abs=0.05)
    t0 = 1_700_000_000.0
    assert [(round(a["t"] - t0, 1), a["level"], a["state"]) for a in attention["alerts"]] == [
        (9.6, 1, "no_face"), (11.6, 2, "no_face")]
    assert attention["max_level"] == 2
    assert [e["state"] for e in attention["timeline"]] == ["attentive", "no_face", "no_face", "no_face"]


def test_a_cabin_camera_that_never_stamps_its_frames_is_timed_by_the_bag_time(tmp_path) -> None:
    """R39: every header stamp 0 (a driver leaving them unset): attention, timed by the stamps,
    never saw time pass (no no_face time, no alert) and camera health called the camera frozen, a
    camera fault, for as long as it ran. Timed by the bag's receive time now, as the node times
    it by the arrivals: the summary is the stamped bag's; the outputs keep the stamps 0."""
    bag = _seat_bag(tmp_path / "seat", stamped=False)
    config = _config(tmp_path, "    face:\n      driver_region: [0.0, 0.0, 1.0, 1.0]\n")
    result = Replayer(ReplayOptions(bag, tmp_path / "out", cabin="/cabin/image_raw/compressed",
                                    config=config)).run()
    attention = result.summary["attention"]
    spent = attention["time_in_state_s"]
    assert spent["attentive"] == pytest.approx(6.6, abs=0.05), spent  # as the stamped bag's
    assert spent["no_face"] == pytest.approx(11.8 - 6.6, abs=0.05), spent
    t0 = 1_700_000_000.0
    assert [(round(a["t"] - t0, 1), a["level"], a["state"]) for a in attention["alerts"]] == [
        (9.6, 1, "no_face"), (11.6, 2, "no_face")]
    health = result.summary["camera_health"]["/cabin/image_raw/compressed"]
    assert "frozen" not in json.dumps(health), health  # no camera fault
    assert any(n.startswith("/cabin/image_raw/compressed: its header stamps are 0") and
               "driver attention" in n for n in result.notes), result.notes
    stamps = {(m.ros_msg.header.stamp.sec, m.ros_msg.header.stamp.nanosec)
              for m in read_output(tmp_path / "out" / "bag")
              if m.channel.topic == "/cabin/driver_attention"}
    assert stamps == {(0, 0)}  # the outputs keep the stamps as they came


def test_cli_driver_attention_prints_and_writes_json(tmp_path, capsys) -> None:
    faces = SHARED / "faces"
    out = tmp_path / "attention.json"
    images = [faces / "obama_2_congress_2009.jpg", faces / "eileen_collins_nasa_astronaut.png",
              SHARED / "street" / "comma2k19_highway280_rav4_preview.png"]
    assert main(["driver", "attention", *map(str, images), "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "yaw +" in printed and "eye openness (EAR) right" in printed and "no face found" in printed
    doc = json.loads(out.read_text())
    assert "yaw > 0 when the face turns towards the image's left" in doc["conventions"]
    turned, frontal, street = doc["images"]
    assert turned["yaw_deg"] > 5.0  # the speaker's nose points to the image's left
    assert set(turned["eye_aspect_ratio"]) == {"right", "left"}
    assert 0.15 < frontal["eye_aspect_ratio"]["left"] < 0.5
    assert street["faces"] == 0 and street["yaw_deg"] is None and street["reason"] == "no face found"
