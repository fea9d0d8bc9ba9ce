"""Replay of the shipped sample bag: outputs, headers, identity, determinism, storage types, CLI."""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from golden_replay import GOLDEN, assert_matches_golden, golden_label_counts, replay_messages
from replay_helpers import (CABIN, FRONT, SAMPLE_BAG, SAMPLE_CALIBRATION, SAMPLE_COUNTS,
                            SAMPLE_INPUTS, WINDSHIELD, copy_bag,
                            enrol_sample_driver, input_stamps, read_output)
from rosbags.rosbag2 import Reader, StoragePlugin
from rosbags.interfaces import QosDurability

from sense_perception.cli.main import main
from sense_perception.replay.engine import ReplayOptions, Replayer, output_bag_name


@pytest.fixture(scope="module")
def detector():
    from sense_perception.core.detection.detector import ObjectDetector

    return ObjectDetector.from_params({}, "test")


@pytest.fixture(scope="module")
def gallery_config(tmp_path_factory):
    """A replay config whose gallery holds Obama, enrolled from two photos that are NOT in the bag."""
    tmp = tmp_path_factory.mktemp("gallery")
    gallery, driver_id = enrol_sample_driver(tmp)
    config = tmp / "params.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    gallery:\n"
                      f"      path: {gallery}\n")
    return config, driver_id


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, detector, gallery_config):
    """The sample bag replayed once with every output, shared by the checks below."""
    config, _ = gallery_config
    out = tmp_path_factory.mktemp("replay") / "out"
    result = Replayer(ReplayOptions(SAMPLE_BAG, out, cabin=CABIN, config=config, copy_input=True,
                                    video=True, video_cabin=True), detector=detector).run()
    return out, result


def _detections(bag_dir: Path) -> dict[tuple[str, int], bytes]:
    return {(m.channel.topic, m.log_time_ns): m.message.data for m in read_output(bag_dir)
            if m.channel.topic.endswith("/detections")}


def _close_counts(got: dict[str, int], want: dict[str, int]) -> bool:
    """Label counts equal on this CPU; another may keep or cut a detection scored at the threshold
    (the golden comparison allows that too): at most one per label apart."""
    return set(got) == set(want) and all(abs(got[k] - want[k]) <= 1 for k in want)


def test_sample_replay_summary(sample_run, gallery_config):
    out, result = sample_run
    _, driver_id = gallery_config
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary
    assert set(summary) == {"frames", "cameras", "identity", "attention", "latency_ms",
                            "throughput_fps", "skipped", "camera_health"}
    # clean cameras: no condition raised, per camera topic
    assert summary["camera_health"] == {t: {"conditions_s": {}, "events": []} for t in SAMPLE_COUNTS}
    assert summary["frames"] == sum(SAMPLE_COUNTS.values())
    assert {t: c["frames"] for t, c in summary["cameras"].items()} == SAMPLE_COUNTS
    assert summary["skipped"] == []
    assert result.complete
    # the detections per label: those of the golden replay (the bag's messages are compared to
    # it within tolerances in test_outputs_match_the_golden_replay), and of this run's own bag
    golden = golden_label_counts()
    own = golden_label_counts(replay_messages(out / "bag", driver_id, SAMPLE_INPUTS))
    for camera, ns in ((FRONT, "/camera/front/detections"), (WINDSHIELD, "/camera/windshield/detections")):
        assert summary["cameras"][camera]["detections"] == own[ns], camera
        assert _close_counts(own[ns], golden[ns]), (camera, own[ns], golden[ns])
    assert summary["cameras"][CABIN]["detections"] == {"face": 8}
    # identity: only on the cabin camera, and the enrolled driver is recognised
    assert summary["identity"][-1]["state"] == "identified"
    assert summary["identity"][-1]["driver"] == driver_id
    lat = summary["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    assert summary["throughput_fps"] > 0


def test_outputs_match_the_golden_replay(sample_run, gallery_config, detector):
    """Every output message (but the copied input) matches test/data/golden_replay.json within the
    tolerances stated in test/golden_replay.py (`make golden` regenerates it)."""
    out, _ = sample_run
    _, driver_id = gallery_config
    got = replay_messages(out / "bag", driver_id, SAMPLE_INPUTS)
    assert_matches_golden(got, threshold=detector.min_score)


def test_golden_comparison_can_fail():
    """The comparison catches a box moved by more than 0.1 px, a changed label or caption, a
    score off by more than 1e-3, a missing message."""
    golden = json.loads(GOLDEN.read_text())["topics"]
    assert_matches_golden(copy.deepcopy(golden), golden)
    edits = [
        ("/camera/front/detections", lambda m: m["detections"][0]["bbox"].update(size_x=m["detections"][0]["bbox"]["size_x"] + 0.3)),
        ("/camera/front/detections", lambda m: m["detections"][0]["results"][0]["hypothesis"].update(class_id="bus")),
        ("/camera/cabin/driver_identity", lambda m: m["results"][0].update(score=m["results"][0]["score"] + 0.01)),
        ("/camera/front/annotations", lambda m: m["texts"][0].update(text="bus 0.99")),
        ("/camera/cabin/head_pose", lambda m: m["pose"]["position"].update(z=m["pose"]["position"]["z"] + 0.01)),
        ("/camera/front/label_info", lambda m: m.update(threshold=0.5)),
        ("/camera/cabin/driver_attention",  # eye openness: within 1e-2
         lambda m: m["results"][3].update(score=m["results"][3]["score"] + 0.02)),
        ("/camera/front/detections_3d", lambda m: _moved_3d(m, "pose", 0.01)),
        ("/camera/front/detections_3d", lambda m: _moved_3d(m, "bbox", 0.01)),
        ("/camera/front/detections_3d",  # covariance: within 1 %
         lambda m: m["detections"][0]["results"][0]["pose"]["covariance"].__setitem__(
             0, m["detections"][0]["results"][0]["pose"]["covariance"][0] * 1.05)),
        ("/camera/front/detections_3d",
         lambda m: m["detections"][0]["results"][0]["hypothesis"].update(class_id="bus")),
    ]
    for topic, edit in edits:
        changed = copy.deepcopy(golden)
        edit(changed[topic][0]["msg"])
        with pytest.raises(AssertionError):
            assert_matches_golden(changed, golden)
    fewer = copy.deepcopy(golden)
    fewer["/camera/cabin/faces"].pop()
    with pytest.raises(AssertionError):
        assert_matches_golden(fewer, golden)
    fewer_3d = copy.deepcopy(golden)
    fewer_3d["/camera/front/detections_3d"][0]["msg"]["detections"].pop()
    with pytest.raises(AssertionError):
        assert_matches_golden(fewer_3d, golden)


def _moved_3d(msg: dict, part: str, metres: float) -> None:
    """Move the first 3-D detection's pose (``pose``) or box centre (``bbox``) along x."""
    detection = msg["detections"][0]
    position = detection["results"][0]["pose"]["pose"]["position"] if part == "pose" else \
        detection["bbox"]["center"]["position"]
    position["x"] += metres


def test_output_bag_is_named_after_the_input_bag(sample_run, tmp_path):
    out, _ = sample_run
    assert sorted(p.name for p in (out / "bag").iterdir()) == ["metadata.yaml", "sample_bag.mcap"]
    import yaml

    info = yaml.safe_load((out / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["relative_file_paths"] == [f["path"] for f in info["files"]] == ["sample_bag.mcap"]
    with Reader(out / "bag") as reader:  # rosbag2 readers find it through metadata.yaml
        assert reader.message_count == info["message_count"] > 0
    assert output_bag_name(Path("/data/drives/drive_0412.mcap")) == "drive_0412"
    assert output_bag_name(Path("/data/drives/drive_0412")) == "drive_0412"


def test_output_bag_read_independently(sample_run, gallery_config):
    out, _ = sample_run
    messages = read_output(out / "bag")
    topics = Counter(m.channel.topic for m in messages)
    assert topics["/camera/front/detections"] == 4
    assert topics["/camera/windshield/detections"] == 1
    assert topics["/camera/front/label_info"] == topics["/camera/windshield/label_info"] == 1
    assert topics["/camera/cabin/faces"] == topics["/camera/cabin/driver_identity"] == 8
    assert topics["/camera/cabin/driver_attention"] == topics["/camera/cabin/head_pose"] == 8
    assert "/camera/cabin/detections" not in topics  # the cabin camera gets no object detection
    golden = json.loads(GOLDEN.read_text())["topics"]
    assert topics["/diagnostics"] == len(golden["/diagnostics"])  # one a second of bag time, and at the end
    assert {t: topics[t] for t in SAMPLE_COUNTS} == SAMPLE_COUNTS  # --copy-input

    stamps = input_stamps()
    by_input_ns = {"/camera/front": FRONT, "/camera/windshield": WINDSHIELD, "/camera/cabin": CABIN}
    for m in messages:
        ns = m.channel.topic.rsplit("/", 1)[0]
        if m.channel.topic.endswith(("/detections", "/faces", "/driver_identity", "/driver_attention",
                                     "/head_pose")):
            source = by_input_ns[ns]
            # bag time and header copied from the input frame
            sec, nanosec, frame_id = stamps[(source, m.log_time_ns)]
            h = m.ros_msg.header
            assert (h.stamp.sec, h.stamp.nanosec, h.frame_id) == (sec, nanosec, frame_id)
    front = [m.ros_msg for m in messages if m.channel.topic == "/camera/front/detections"]
    assert len(front) == len(golden["/camera/front/detections"])
    for det_array, want in zip(front, golden["/camera/front/detections"], strict=True):
        labels = [d.results[0].hypothesis.class_id for d in det_array.detections]
        want_labels = [d["results"][0]["hypothesis"]["class_id"] for d in want["msg"]["detections"]]
        assert _close_counts(dict(Counter(labels)), dict(Counter(want_labels))), (labels, want_labels)
        for d in det_array.detections:
            assert d.header.stamp == det_array.header.stamp
            assert 0 <= d.bbox.center.position.x <= 960 and 0 <= d.bbox.center.position.y <= 540
            assert d.bbox.size_x > 0 and d.bbox.size_y > 0
    info = next(m.ros_msg for m in messages if m.channel.topic == "/camera/front/label_info")
    assert [c.class_name for c in info.class_map][:2] and "car" in [c.class_name for c in info.class_map]
    _, driver_id = gallery_config
    identity = [m.ros_msg for m in messages if m.channel.topic == "/camera/cabin/driver_identity"]
    assert identity[-1].results[0].class_id == driver_id
    assert identity[-1].results[0].score >= 0.4
    faces = [m.ros_msg for m in messages if m.channel.topic == "/camera/cabin/faces"]
    assert all([d.results[0].hypothesis.class_id for d in f.detections] == ["driver"] for f in faces)


def test_copy_input_is_byte_identical(sample_run):
    out, _ = sample_run
    calibration = SAMPLE_CALIBRATION
    with Reader(SAMPLE_BAG) as reader:
        # --copy-input copies the images (every one of them) and the calibration the replay
        # reads (the front camera's CameraInfo, /tf_static), with the recorded QoS
        original = {(c.topic, ts): bytes(raw) for c, ts, raw in reader.messages()
                    if c.topic in calibration
                    or (c.msgtype.startswith("sensor_msgs/msg/") and c.msgtype.endswith("Image"))}
    assert {topic for topic, _ in original} == set(SAMPLE_COUNTS) | calibration
    output = read_output(out / "bag")
    copied = {(m.channel.topic, m.log_time_ns): m.message.data for m in output
              if m.channel.topic in set(SAMPLE_COUNTS) | calibration}
    assert copied == original
    # /tf_static keeps its recorded transient-local QoS (a late subscriber still gets the mount)
    with Reader(out / "bag") as reader:
        (tf,) = [c for c in reader.connections if c.topic == "/tf_static"]
        assert [q.durability for q in tf.ext.offered_qos_profiles] == [QosDurability.TRANSIENT_LOCAL]


def _corners(d) -> list[tuple[float, float]]:
    """The 4 corners of a Detection2D's box, clockwise from the top-left."""
    cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
    x1, y1, x2, y2 = cx - d.bbox.size_x / 2, cy - d.bbox.size_y / 2, cx + d.bbox.size_x / 2, cy + d.bbox.size_y / 2
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def test_annotations_for_every_camera_match_the_boxes(sample_run, gallery_config):
    """``<ns>/annotations`` per camera, decoded independently (mcap-ros2-support) under the exact
    schema name Foxglove recognises: one closed polyline per Detection2D of the same frame, through
    its box's corners, and every timestamp equal to the frame's header stamp."""
    out, _ = sample_run
    messages = read_output(out / "bag")
    by_topic: dict[str, dict[tuple, object]] = {}
    for m in messages:
        by_topic.setdefault(m.channel.topic, {})[(m.log_time_ns,)] = m
    for ns, boxes_topic, camera in (("/camera/front", "detections", FRONT),
                                    ("/camera/windshield", "detections", WINDSHIELD),
                                    ("/camera/cabin", "faces", CABIN)):
        annotations, boxes = by_topic[f"{ns}/annotations"], by_topic[f"{ns}/{boxes_topic}"]
        assert len(annotations) == SAMPLE_COUNTS[camera] == len(boxes)  # one per frame, empty too
        for key, ann in annotations.items():
            assert ann.schema.name == "foxglove_msgs/msg/ImageAnnotations"
            assert ann.channel.message_encoding == "cdr"
            det = boxes[key].ros_msg
            msg = ann.ros_msg
            assert len(msg.points) == len(msg.texts) == len(det.detections) and msg.circles == []
            stamp = (det.header.stamp.sec, det.header.stamp.nanosec)
            for poly, text, d in zip(msg.points, msg.texts, det.detections, strict=True):
                assert poly.type == 2  # LINE_LOOP: a closed box
                # same float32 box through two float64 formulas (centre/size vs corners)
                np.testing.assert_allclose([(p.x, p.y) for p in poly.points], _corners(d), atol=1e-6)
                assert (poly.timestamp.sec, poly.timestamp.nanosec) == stamp
                assert (text.timestamp.sec, text.timestamp.nanosec) == stamp
                assert text.text.startswith(d.results[0].hypothesis.class_id + " ")
                assert 0.0 < poly.outline_color.a <= 1.0 and poly.thickness > 0
    _, driver_id = gallery_config
    cabin = [m.ros_msg for m in messages if m.channel.topic == "/camera/cabin/annotations"]
    texts = [t.text for a in cabin for t in a.texts]
    # the driver's face carries what driver_identity publishes, never the enrolled display name
    assert any(t.startswith(f"driver {driver_id} ") for t in texts)
    assert not any("Obama" in t or "Barack" in t for t in texts)


def test_videos(sample_run):
    out, result = sample_run
    assert sorted(p.name for p in result.videos) == sorted(
        ["camera_front_image_raw_compressed.mp4", "camera_windshield_image_raw.mp4",
         "camera_cabin_image_raw_compressed.mp4"])
    cap = cv2.VideoCapture(str(out / "video" / "camera_front_image_raw_compressed.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    # 4 frames at 0, 1, 4 and 7 s on a 1 fps grid: 8 slots, gaps held
    assert len(frames) == 8 and frames[0].shape == (540, 960, 3)


def test_replay_twice_identical_and_sqlite3(tmp_path, sample_run, detector):
    out, _ = sample_run
    first = _detections(out / "bag")
    again = tmp_path / "again"
    Replayer(ReplayOptions(SAMPLE_BAG, again, topics=[FRONT, WINDSHIELD]), detector=detector).run()
    assert _detections(again / "bag") == first
    # the same recording in sqlite3 storage gives the same detections
    sqlite_bag = copy_bag(SAMPLE_BAG, tmp_path / "sqlite_bag", StoragePlugin.SQLITE3)
    assert list(sqlite_bag.glob("*.db3"))
    via_sqlite = tmp_path / "via_sqlite"
    result = Replayer(ReplayOptions(sqlite_bag, via_sqlite, topics=[FRONT, WINDSHIELD]),
                      detector=detector).run()
    assert result.complete
    assert _detections(via_sqlite / "bag") == first


def test_cli_replay_and_refuses_existing_out(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    assert main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", WINDSHIELD]) == 2
    assert "--force" in capsys.readouterr().err
    assert not (out / "summary.json").exists()
    assert main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", WINDSHIELD, "--force"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"][WINDSHIELD]["frames"] == 1
    assert (out / "keep.txt").read_text() == "user file"  # --force replaces only replay outputs
    assert "summary.json" in capsys.readouterr().out


def test_cli_bad_topic_is_fatal(tmp_path, capsys):
    assert main(["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "o"), "--topics", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "/nope" in err and FRONT in err


class _CountingDetector:
    """The real detector, recording how many images each detect() call got."""

    def __init__(self, detector):
        self._detector = detector
        self.batches: list[int] = []

    def __getattr__(self, name):
        return getattr(self._detector, name)

    def detect(self, images):
        self.batches.append(len(images))
        return self._detector.detect(images)


def test_cameras_close_in_time_share_one_detect_call(tmp_path, detector):
    counting = _CountingDetector(detector)
    Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[FRONT, WINDSHIELD]),
             detector=counting).run()
    # front frame 00 and the windshield frame are 4 ms apart: one call; the later front frames alone
    assert counting.batches == [2, 1, 1, 1]
    counting.batches.clear()
    Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out2", topics=[FRONT, WINDSHIELD],
                           batch_window_s=0.001), detector=counting).run()
    assert counting.batches == [1, 1, 1, 1, 1]
