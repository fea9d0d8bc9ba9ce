"""Replay building blocks: typestore, dict -> rosbags conversion, naming, skips, summary, video,
and the reproducible sample bag."""
from __future__ import annotations

import importlib.util
import json
import shutil

import cv2
import numpy as np
import pytest
from replay_helpers import (CABIN, FRONT, ROOT, SAMPLE_BAG, SAMPLE_COUNTS, SHARED, WINDSHIELD,
                            assert_replay_never_imports_rclpy, input_stamps)
from rich.console import Console

from sense_perception.core.output import messages
from sense_perception.core.types import Detections, Header
from sense_perception.errors import BagError
from sense_perception.replay.skips import SkipLog
from sense_perception.replay.summary import SummaryBuilder, render_table, write_summary
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore
from sense_perception.replay.video import CameraVideo, video_name
from sense_perception.core.output.topics import camera_namespace


@pytest.fixture(scope="module")
def store():
    return make_typestore()


def test_typestore_has_jazzy_and_vision_msgs(store):
    for name in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                 "diagnostic_msgs/msg/DiagnosticArray", "rosgraph_msgs/msg/Clock",
                 "vision_msgs/msg/Detection2DArray", "vision_msgs/msg/LabelInfo",
                 "vision_msgs/msg/Classification"):
        assert name in store.fielddefs
    # the upstream vision_msgs 4.x hash: rclpy typesupport built from the same .msg agrees
    assert store.hash_rihs01("vision_msgs/msg/Detection2DArray").startswith("RIHS01_")


def test_converter_round_trip(store):
    convert = MessageConverter(store)
    dets = Detections(np.array([[10, 20, 110, 220], [0, 0, 5, 5]], np.float32),
                      np.array([0.9, 0.4], np.float32), np.array([1, 0], np.int32),
                      np.array([7, -1], np.int64))
    header = Header(12, 34, "cam")
    msg = convert("vision_msgs/msg/Detection2DArray", messages.detection2d_array(header, dets, ["a", "car"]))
    raw = store.serialize_cdr(msg, "vision_msgs/msg/Detection2DArray")
    back = store.deserialize_cdr(raw, "vision_msgs/msg/Detection2DArray")
    assert (back.header.stamp.sec, back.header.stamp.nanosec, back.header.frame_id) == (12, 34, "cam")
    first = back.detections[0]
    assert first.id == "7" and back.detections[1].id == ""
    assert first.results[0].hypothesis.class_id == "car"
    assert first.results[0].hypothesis.score == pytest.approx(0.9, abs=1e-6)
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (60.0, 120.0)
    assert (first.bbox.size_x, first.bbox.size_y) == (100.0, 200.0)
    assert first.results[0].pose.covariance.shape == (36,)
    # omitted fields take ROS defaults
    empty = convert("sensor_msgs/msg/CompressedImage", {"format": "jpeg"})
    assert empty.header.frame_id == "" and empty.data.dtype == np.uint8 and empty.data.size == 0
    info = convert("vision_msgs/msg/LabelInfo", messages.label_info(header, ["a", "b"], 0.3))
    assert [c.class_id for c in info.class_map] == [0, 1]


def test_converter_names_the_bad_field(store):
    convert = MessageConverter(store)
    with pytest.raises(BagError, match=r"Detection2DArray\.detections\[0\]\.bbox.*size_z"):
        convert("vision_msgs/msg/Detection2DArray",
                {"detections": [{"bbox": {"size_z": 1.0}}]})
    with pytest.raises(BagError, match=r"stamp\.sec.*'soon'"):
        convert("std_msgs/msg/Header", {"stamp": {"sec": "soon"}})
    with pytest.raises(BagError, match="covariance: needs exactly 36"):
        convert("geometry_msgs/msg/PoseWithCovariance", {"covariance": [0.0] * 3})
    with pytest.raises(BagError, match="not in the typestore"):
        convert("acme_msgs/msg/Nope", {})


@pytest.mark.parametrize("topic, ns", [
    ("/camera/front/image_raw", "/camera/front"),
    ("/camera/front/image_raw/compressed", "/camera/front"),
    ("/image", "/image"),
    ("image_raw/compressed", "/image_raw"),
])
def test_camera_namespace(topic, ns):
    assert camera_namespace(topic) == ns


def test_skip_log_aggregates():
    log = SkipLog()
    log.add("/a", "corrupt")
    log.add("/a", "corrupt", 2)
    log.add("/b", "other")
    log.add("/c", "nothing", 0)
    assert log.entries() == [{"topic": "/a", "reason": "corrupt", "count": 3},
                             {"topic": "/b", "reason": "other", "count": 1}]
    assert log.total() == 4 and log


def test_summary_builder(tmp_path):
    builder = SummaryBuilder(["/a", "/cabin"])
    builder.add_frame("/a", np.array(["car", "car", "pedestrian"], dtype=object), 10.0)
    builder.add_frame("/a", [], 30.0)
    builder.add_frame("/cabin", ["face"], 20.0)
    for t, state, driver in [(1.0, "uncertain", None), (2.0, "uncertain", None),
                             (3.0, "identified", "drv-1"), (4.0, "identified", "drv-1")]:
        builder.add_identity(t, state, driver)
    summary = builder.build(2.0, [{"topic": "/a", "reason": "x", "count": 1}])
    assert summary["frames"] == 3
    assert summary["cameras"]["/a"] == {"frames": 2, "detections": {"car": 2, "pedestrian": 1}}
    assert summary["identity"] == [{"t": 1.0, "state": "uncertain", "driver": None},
                                   {"t": 3.0, "state": "identified", "driver": "drv-1"}]
    assert summary["latency_ms"] == {"p50": 20.0, "p95": 29.0, "p99": 29.8}
    assert summary["throughput_fps"] == 1.5
    write_summary(tmp_path / "s.json", summary)
    assert json.loads((tmp_path / "s.json").read_text()) == summary
    console = Console(record=True, width=160)
    render_table(summary, console)
    text = console.export_text()
    assert "car 2" in text and "skipped" in text and "drv-1" in text


def test_summary_is_written_as_fleet_writes_its_own(tmp_path):
    """summary.json and fleet_summary.json go through one writer (fileio.write_summary_json):
    strict JSON, and a link planted at the temp name is removed, never written through (the
    replay's own writer followed it)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".s.json.tmp").symlink_to(victim)
    write_summary(tmp_path / "s.json", {"frames": 1, "throughput_fps": float("nan")})
    assert json.loads((tmp_path / "s.json").read_text()) == {"frames": 1, "throughput_fps": None}
    assert victim.read_text() == "precious" and not (tmp_path / ".s.json.tmp").exists()


def test_a_summary_is_flushed_to_disk_before_and_after_its_rename(tmp_path, monkeypatch):
    """write_summary_json renamed its temp file unflushed and never flushed the folder: a power
    cut after a replay or a fleet bag could leave summary.json empty or missing, and fleet's
    resume takes a bag whose summary.json exists as done. The file is fsynced before its rename
    and the folder after, as atomic_write does."""
    import os

    from sense_perception import fileio

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    fileio.write_summary_json(tmp_path / "summary.json", {"frames": 1})
    assert synced == [str(tmp_path / ".summary.json.tmp"), str(tmp_path)], synced
    assert json.loads((tmp_path / "summary.json").read_text()) == {"frames": 1}


def test_video_holds_frames_over_gaps(tmp_path):
    video = CameraVideo(tmp_path / "v.mp4", fps=10.0)
    for t, level in [(0.0, 0), (0.1, 80), (0.5, 160)]:
        video.write(np.full((48, 64, 3), level, np.uint8), t)
    video.write(np.full((96, 128, 3), 240, np.uint8), 0.6)  # other size: resized
    video.close()
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    levels = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        levels.append(int(round(frame.mean() / 80)))
    assert levels == [0, 1, 1, 1, 1, 2, 3]  # 0.1 s grid: slots 0, 1, (2-4 held), 5, 6
    assert video_name("/camera/front/image_raw") == "camera_front_image_raw.mp4"


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_sample_bag", ROOT / "tools" / "make_sample_bag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_bag_is_reproducible(tmp_path):
    tool = _load_tool()
    a, b = tmp_path / "a" / "sample_bag", tmp_path / "b" / "sample_bag"
    assert tool.main(["--shared", str(SHARED), "--out", str(a)]) == 0
    assert tool.main(["--shared", str(SHARED), "--out", str(b)]) == 0
    assert tool.digest(a) == tool.digest(b)
    # the shipped bag has the same messages at the same times with the same headers
    assert input_stamps(a) == input_stamps(SAMPLE_BAG)
    size = sum(p.stat().st_size for p in SAMPLE_BAG.iterdir())
    assert size < 3_000_000


def test_sample_bag_tool_never_deletes_a_folder_it_did_not_write(tmp_path, capsys):
    """`tools/make_sample_bag.py --out DIR` replaced DIR whole with shutil.rmtree: a user's folder
    (`--out ~/Documents`, `--out .`) lost every file, and a real recording was deleted. A folder
    holding anything but the tool's own bag is now refused (exit 2, naming what it holds, before
    the bag is built) and keeps every byte; the tool's own bag is still rebuilt in place."""
    tool = _load_tool()
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("three years of work")
    recording = tmp_path / "drive"  # a user's rosbag2: metadata.yaml and an mcap, no ATTRIBUTION
    shutil.copytree(SAMPLE_BAG, recording)
    (recording / "ATTRIBUTION").unlink()
    before = {p: p.read_bytes() for p in [*documents.iterdir(), *recording.iterdir()]}
    for out in (documents, recording, documents / "thesis.txt"):
        assert tool.main(["--shared", str(SHARED), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out {out} ") and err.endswith("\n"), err
    assert "thesis.txt" in tool.refusal(documents) and "give a new folder" in tool.refusal(documents)
    assert {p: p.read_bytes() for p in [*documents.iterdir(), *recording.iterdir()]} == before
    bag = tmp_path / "bag"
    assert tool.main(["--shared", str(SHARED), "--out", str(bag)]) == 0
    (bag / "sample.yaml").write_text("# kept\n")  # a hand-written file the tool keeps
    first = tool.digest(bag)
    assert tool.main(["--shared", str(SHARED), "--out", str(bag)]) == 0  # its own bag: rebuilt
    assert tool.digest(bag) == first and (bag / "sample.yaml").read_text() == "# kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "documents", "drive"]  # no temp


def test_sample_bag_contents_and_attribution():
    from sense_perception.core.imaging.image_decode import decode_any
    from sense_perception.replay.reader import open_bag

    with open_bag(SAMPLE_BAG) as bag:
        assert {t: bag.topics[t].count for t in bag.image_topics()} == SAMPLE_COUNTS
        assert bag.topics[FRONT].msgtype == "sensor_msgs/msg/CompressedImage"
        assert bag.topics[WINDSHIELD].msgtype == "sensor_msgs/msg/Image"
        shapes = {m.topic: decode_any(bag.deserialize(m)).shape for m in bag.messages(SAMPLE_COUNTS)}
    assert shapes == {FRONT: (540, 960, 3), WINDSHIELD: (480, 640, 3), CABIN: (480, 640, 3)}
    text = (SAMPLE_BAG / "ATTRIBUTION").read_text()
    for needle in ("PandaSet", "CC BY 4.0", "comma.ai", "MIT License", "Pete Souza", "public domain"):
        assert needle in text


def test_sample_bag_front_camera_is_calibrated_from_pandaset():
    """The front camera carries its real calibration as a vehicle bag does: a CameraInfo with each
    image (PandaSet's K halved for 960x540) and base_link -> front_camera on /tf_static
    (transient-local), one static mount from the sequence; the other cameras have none."""
    from rosbags.interfaces import QosDurability

    from sense_perception.core.geometry.calibration import from_camera_info
    from sense_perception.core.geometry.tf_static import mount_from_tf
    from sense_perception.replay.reader import open_bag

    truth = json.loads((SHARED / "street_labelled" / "pandaset_seq002_front" /
                        "ground_truth_3d.json").read_text())["cameras"]
    with open_bag(SAMPLE_BAG) as bag:
        assert {t for t, m in bag.topics.items() if m.msgtype == "sensor_msgs/msg/CameraInfo"} == {
            "/camera/front/camera_info"}
        tf_meta = bag.topics["/tf_static"]
        assert tf_meta.msgtype == "tf2_msgs/msg/TFMessage" and tf_meta.count == 1
        assert tf_meta.qos[0].durability == QosDurability.TRANSIENT_LOCAL
        messages = [(m.topic, m.timestamp, bag.deserialize(m)) for m in bag.messages(
            ["/tf_static", "/camera/front/camera_info", FRONT])]
    first = min(ts for topic, ts, _ in messages if topic != "/tf_static")
    tf = [msg for topic, ts, msg in messages if topic == "/tf_static" and ts < first]
    assert len(tf) == 1  # recorded before any image
    infos = {(m.header.stamp.sec, m.header.stamp.nanosec): (ts, m) for topic, ts, m in messages
             if topic == "/camera/front/camera_info"}
    images = {(m.header.stamp.sec, m.header.stamp.nanosec): ts for topic, ts, m in messages
              if topic == FRONT}
    assert infos.keys() == images.keys() and len(images) == 4  # one per image, its stamp
    K = np.asarray(truth["front_camera/00"]["calibration"]["K"])  # for 1920x1080
    mount = mount_from_tf(tf, "front_camera")
    for stamp, (ts, info) in infos.items():
        assert ts < images[stamp] and info.header.frame_id == "front_camera"
        assert (info.width, info.height, info.distortion_model) == (960, 540, "plumb_bob")
        assert not np.any(info.d) and np.array_equal(info.k.reshape(3, 3), np.diag([.5, .5, 1]) @ K)
        assert np.array_equal(info.p.reshape(3, 4)[:, :3], info.k.reshape(3, 3))
        calibration = from_camera_info(info, mount, "sample bag")  # checks K and the mount
    # One static mount: the sequence's median; the four frames' own mounts lie within 0.5 degrees
    # and 3 cm of it (base_link is rebuilt per frame on the road plane under the car).
    own = np.array([truth[f"front_camera/{i:02d}"]["calibration"]["T_base_link_camera"]
                    for i in (0, 10, 40, 70)])
    every = np.array([c["calibration"]["T_base_link_camera"] for c in truth.values()])
    assert np.allclose(calibration.T_base_link_camera[:3, 3], np.median(every[:, :3, 3], axis=0))
    axis = calibration.T_base_link_camera[:3, 2]  # the optical axis in base_link
    angles = np.degrees(np.arccos(np.clip(own[:, :3, 2] @ axis, -1, 1)))
    assert angles.max() < 0.5 and np.abs(own[:, 2, 3] - calibration.camera_height).max() < 0.03
    assert "ground_truth_3d.json" in (SAMPLE_BAG / "ATTRIBUTION").read_text()


def test_replay_never_imports_rclpy():
    # test/ros/test_replay_rclpy.py runs the same check where rclpy is importable
    assert_replay_never_imports_rclpy()
