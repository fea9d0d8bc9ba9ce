"""A hostile round on the Autoware drop-in and the output table (R25 in SECURITY.md).

Real parts: the sample bag's frames in Autoware's camera layout (test_autoware_replay's writer),
replayed through ``sense-perception replay``; the launch logic through ``node_parameters``.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from autoware_layout import ROIS as ROIS_TYPE
from autoware_layout import published_typestore, roi_rows
from replay_helpers import read_output, sample_front_frames
from rosbags.rosbag2 import StoragePlugin, Writer
from test_autoware_replay import CAM0, CAM1, write_autoware_bag

from sense_perception.cli.main import main
from sense_perception.core.autoware.camera_info import MAX_TOLD
from sense_perception.errors import ConfigError, PrivacyError
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore
from sense_perception.ros import autoware_launch

CAM0_INFO = "/sensing/camera/camera0/camera_info"
ROIS = "/perception/object_recognition/detection/rois"
UNKNOWN = 0
LIMIT = 150  # boxes a frame: reached by the sample's frames with every candidate kept


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict[str, list[tuple[int, int, str]]]]:
    """The bag and each camera's image headers (sec, nanosec, frame_id)."""
    path = tmp_path_factory.mktemp("autoware_hostile") / "drive"
    return path, write_autoware_bag(path)


@pytest.fixture(scope="module")
def autoware_bag(written) -> Path:
    return written[0]


def _overlay(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text("# base: autoware\nobject_detector:\n  ros__parameters:\n" + body)
    return path


@pytest.mark.parametrize("setting, value, fragment", [
    # ROIs onto camera1's own image input: a DetectedObjectsWithFeature publisher on an Image topic
    ("rois_topic", "/sensing/camera/camera{index}/image_rect_color",
     "already the image input of camera '/sensing/camera/camera1/image_rect_color'"),
    ("rois_topic", "/sensing/camera/camera{index}/detections", "already the detections output"),
    ("rois_topic", "/sensing/camera/camera{index}/camera_info", "already the CameraInfo input"),
    # (the ROIs and the objects on one topic: test_autoware_hostile_live; either named as the
    # other's Autoware topics is refused by name, R65: test_autoware_launch)
    ("objects_topic", "/sensing/camera/camera{index}/annotations", "already the annotations output"),
])
def test_an_autoware_topic_taken_by_an_input_or_another_output_is_refused(
        autoware_bag, tmp_path, capsys, setting, value, fragment):
    config = _overlay(tmp_path, f"    autoware:\n      {setting}: {value}\n")
    out = tmp_path / "out"
    assert main(["replay", str(autoware_bag), "--out", str(out), "--config", str(config)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "autoware." in err and fragment in err and "a topic of its own" in err
    assert not (out / "bag").exists()  # refused before anything was written


def _write_camera_info_flood(path: Path, infos: int) -> None:
    """camera0 of Autoware's layout (the sample's JPEG frames) whose CameraInfo changes with every
    message: a new frame_id, a long distortion_model, K scaled and the size changing, ``infos``
    of them spread between the frames."""
    store = make_typestore()
    convert = MessageConverter(store)
    frames = sample_front_frames(store)
    info_type, image_type = "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/CompressedImage"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image = writer.add_connection(CAM0, image_type, typestore=store)
        info = writer.add_connection(CAM0_INFO, info_type, typestore=store)
        per_frame = infos // len(frames)
        for f, (ts, msg) in enumerate(frames):
            for k in range(per_frame):
                i = f * per_frame + k
                header = {"stamp": {"sec": ts // 10**9, "nanosec": ts % 10**9},
                          "frame_id": f"optical_{i}"}
                message = {"header": header, "height": 100 + i, "width": 200 + i,
                           "distortion_model": f"model_{i}_" + "x" * 5000, "d": [0.0] * (i % 12),
                           "k": [300.0 + i, 0, 100, 0, 300.0 + i, 50, 0, 0, 1]}
                writer.write(info, ts - 1000 + k, store.serialize_cdr(convert(info_type, message),
                                                                      info_type))
            writer.write(image, ts, store.serialize_cdr(convert(image_type, {
                "header": {"stamp": {"sec": ts // 10**9, "nanosec": ts % 10**9},
                           "frame_id": "camera0/camera_optical_link"},
                "format": "jpeg", "data": np.frombuffer(bytes(msg.data), np.uint8)}), image_type))


def test_a_camera_info_changing_with_every_message_gives_a_bounded_number_of_short_notes(
        tmp_path, capsys):
    bag = tmp_path / "flood"
    _write_camera_info_flood(bag, 400)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main(["replay", str(bag), "--out", str(out), "--config", "autoware"]) == 0
    elapsed = time.perf_counter() - t0
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "CameraInfo" in line]
    notes = [line for line in lines if line.startswith("note:")] or lines
    # each of the 400 messages had new problems (its frame_id, model, D length): at most
    # MAX_TOLD are told one by one, then one line says the rest are not
    assert MAX_TOLD < len(notes) <= MAX_TOLD + 2, notes[-3:]
    assert any("not told one by one" in line for line in notes)
    assert all(len(line) < 1000 for line in lines)  # the 5000-character model is cut short
    assert elapsed < 60
    # /diagnostics still shows the camera's current problems, cut short too
    statuses = [s for m in read_output(out / "bag") if m.channel.topic == "/diagnostics"
                for s in m.ros_msg.status if s.name.endswith("object_detector")]
    value = {kv.key: kv.value for kv in statuses[-1].values}[f"camera_info[{CAM0}]"]
    assert "model_399_" in value and len(value) < 2000


@pytest.mark.parametrize("args, error, fragment", [
    # image_number beside camera_topics was dropped without a word (cameras 0..1 expected, 5 run)
    ({"image_number": "2", "camera_topics": "/sensing/camera/camera5/image_rect_color"},
     ConfigError, "which is not one of image_number:=2's cameras camera0..camera1"),
    ({"image_transport": "compressed", "camera_topics": "/sensing/camera/camera5/image_rect_color"},
     ConfigError, "which image_transport:=compressed contradicts"),
    # an empty item was dropped (a camera missing between two commas), ',' gave an empty list
    ({"camera_topics": "/sensing/camera/camera0/image_rect_color,,/sensing/camera/camera2/image_rect_color"},
     ConfigError, "holds an empty item"),
    ({"camera_topics": ","}, ConfigError, "holds an empty item"),
    ({"camera_topics": "/sensing/camera/camera0/image_rect_color,/sensing/camera/camera0/image_rect_color"},
     ConfigError, "names /sensing/camera/camera0/image_rect_color twice"),
    ({"camera_topics": "/sensing/camera/camera0/image rect"}, ConfigError, "is not a ROS topic name"),
    ({"camera_topics": "/sensing//camera0/image"}, ConfigError, "is not a ROS topic name"),
    ({"camera_topics": "/sensing/camera/camera0/image_rect_color,/camera/cabin/image_raw"},
     PrivacyError, "is the cabin camera"),
    # two cameras of one index (rois1 twice): refused at launch, not at the node's configure
    ({"camera_topics": "/a/camera1/image,/b/camera1/image"}, ConfigError, "both publish their ROIs"),
    ({"image_number": "٣"}, ConfigError, "must be a whole number from 1 to 8"),
    ({"image_number": "1_0"}, ConfigError, "must be a whole number from 1 to 8"),
])
def test_hostile_launch_arguments_are_refused_never_dropped(args, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        autoware_launch.node_parameters(args)


def test_the_launch_defaults_still_give_camera0_raw():
    params = autoware_launch.node_parameters({})
    assert params["camera_topics"] == ["/sensing/camera/camera0/image_rect_color"]
    params = autoware_launch.node_parameters({"image_number": " 2 ", "image_transport": "compressed"})
    assert params["camera_topics"] == [f"/sensing/camera/camera{i}/image_rect_color/compressed"
                                       for i in range(2)]


# Every score kept and no box suppressed: the detectors' raw candidates, hundreds per frame.
_FLOOD = """    publish_annotations: true
    detector:
      score_threshold: 0.0
      pedestrian_threshold: 0.0
      nms_iou: 1.0
      max_detections: {limit}
      class_thresholds: {{pedestrian: 0.0, car: 0.0, truck: 0.0}}
      duplicates: {{nested_containment: 0.0}}
      ignore_regions:
        # camera1's left half (the sample frames are 960x540)
        polygons: ["/sensing/camera/camera1/image_rect_color: 0,0 480,0 480,540 0,540"]
        min_overlap: 0.5
    autoware:
      other_labels: unknown
"""


def test_max_detections_caps_every_output_of_a_frame(written, tmp_path):
    """With every candidate kept (threshold 0, no NMS) a frame had ~750 boxes; the cap applies to
    the detector's merge of its two models, hence to every row of the output table alike. Every
    row carries the input image's header; camera1's ignore region keeps its boxes out of the ROIs
    as out of the detections; labels without an Autoware class are UNKNOWN (other_labels)."""
    autoware_bag, headers = written
    config = _overlay(tmp_path, _FLOOD.format(limit=LIMIT))
    out = tmp_path / "out"
    assert main(["replay", str(autoware_bag), "--out", str(out), "--config", str(config)]) == 0
    messages = read_output(out / "bag")
    counts: dict[str, list[int]] = {}
    for m in messages:
        msg = m.ros_msg
        # one entry per box: Detection2DArray, DetectedObjectsWithFeature, an annotation's texts
        n = next((len(getattr(msg, f)) for f in ("detections", "feature_objects", "objects",
                                                  "texts") if hasattr(msg, f)), None)
        if n is not None and m.channel.topic != "/diagnostics":
            counts.setdefault(m.channel.topic.rsplit("/", 1)[-1].rstrip("0123456789"), []).append(n)
    assert {"detections", "rois", "annotations"} <= set(counts), counts
    assert max(counts["detections"]) == LIMIT  # the cap was reached, and holds
    assert all(n <= LIMIT for ns in counts.values() for n in ns), counts
    inputs = {(sec, nsec) for hs in headers.values() for sec, nsec, _ in hs}
    frames = {frame for hs in headers.values() for _, _, frame in hs}
    rows = 0
    for m in messages:
        if m.channel.topic == "/diagnostics":
            continue
        if hasattr(m.ros_msg, "texts"):  # ImageAnnotations: no header, a stamp on each item
            stamps = {(a.timestamp.sec, a.timestamp.nanosec)
                      for a in [*m.ros_msg.points, *m.ros_msg.texts]}
            assert len(stamps) == 1 and stamps <= inputs, m.channel.topic
            rows += 1
        elif hasattr(m.ros_msg, "header"):
            head = m.ros_msg.header
            assert (head.stamp.sec, head.stamp.nanosec) in inputs, m.channel.topic
            assert head.frame_id in frames | {"base_link"}, (m.channel.topic, head.frame_id)
            rows += 1
    assert rows >= 4 * 2 * 3  # detections, rois, annotations of every frame of both cameras
    published = published_typestore()
    labels = set()
    for m in messages:
        if not m.channel.topic.startswith(ROIS):
            continue
        for label, _, _, x, y, w, h, _ in roi_rows(published.deserialize_cdr(bytes(m.message.data),
                                                                           ROIS_TYPE)):
            labels.add(label)
            if m.channel.topic == f"{ROIS}1":  # the ignore region's rule, on the ROIs too
                assert max(0, min(x + w, 480) - x) * h < 0.5 * w * h, (x, y, w, h)
    other = {d.results[0].hypothesis.class_id for m in messages
             if m.channel.topic.endswith("/detections") for d in m.ros_msg.detections}
    assert {"traffic_light", "car", "pedestrian"} <= other
    assert UNKNOWN in labels  # traffic lights and stop signs, as other_labels: unknown asks


def test_max_detections_zero_no_limit_is_refused_with_the_bound(autoware_bag, tmp_path, capsys):
    """0 meant no limit: every candidate went on to the duplicate step, which compares every
    pair ((N, N) arrays: a tiled custom model's tens of thousands of boxes are gigabytes)."""
    for limit in (0, 100000):
        config = _overlay(tmp_path, _FLOOD.format(limit=limit))
        out = tmp_path / f"out{limit}"
        assert main(["replay", str(autoware_bag), "--out", str(out), "--config", str(config)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "detector.max_detections" in err and "1000" in err and str(limit) in err, err
        assert not out.exists() or not (out / "summary.json").exists()


def test_one_fixed_camera_info_topic_for_several_cameras_is_refused(autoware_bag, tmp_path, capsys):
    """autoware.camera_info_topic names one topic: the node checked every camera against that one
    CameraInfo, the replay only the last camera (the first stayed 'no CameraInfo received')."""
    config = _overlay(tmp_path, "    autoware:\n      camera_info_topic: "
                                "/sensing/camera/camera1/camera_info\n")
    out = tmp_path / "out"
    assert main(["replay", str(autoware_bag), "--out", str(out), "--config", str(config)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "autoware.camera_info_topic" in err and "2 cameras" in err and "auto" in err, err
    assert not (out / "bag").exists()


def test_ignore_regions_of_a_camera_whose_size_changes_every_frame_stay_bounded():
    """The region's mask and summed-area table (9 bytes a pixel: ~19 MB at 1080p) were kept for
    every frame size ever seen: a camera changing its size with every frame grew them without
    bound. Now the last few sizes are kept; the region still applies at every size."""
    import tracemalloc

    from sense_perception.core.detection.ignore_regions import (MAX_SIZES, IgnoreRegions,
                                                                IgnoreRegionSettings)
    from sense_perception.core.types import Detections

    topic = "/sensing/camera/camera0/image_rect_color"
    regions = IgnoreRegions(IgnoreRegionSettings(polygons=[f"{topic}: 0,0 100,0 100,100 0,100"]))
    boxes = np.array([[10, 10, 60, 60], [200, 100, 260, 160]], np.float32)
    dets = Detections(boxes, np.array([0.9, 0.8], np.float32), np.zeros(2, np.int32))
    tracemalloc.start()
    try:
        for k in range(120):
            width, height = 320 + k, 240 + k
            kept = regions.apply(topic, dets, width, height)
            assert kept.boxes.tolist() == [[200, 100, 260, 160]]  # the region applies at each size
            assert len(regions.outlines(topic, width, height)) == 1
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(regions._masks) <= MAX_SIZES and len(regions._outlines) <= MAX_SIZES
    assert current < 20e6, current  # 120 sizes kept were ~100 MB


def test_the_replay_reads_the_camera_info_the_config_names(autoware_bag, tmp_path, capsys):
    """R67: the replay read each camera's <ns>/camera_info whatever object_detector.camera_info_topics
    named (the node reads the entry: for its 3-D positions, and for the Autoware check, whose auto
    follows it), so a bag replayed with the vehicle's config checked and placed another
    calibration than the node. It reads the named one now: camera0 given camera1's CameraInfo is
    checked against it (its frame_id is camera1's), and a camera the per-camera entries do not
    name is refused before any model loads, as is a check topic contradicting the entry."""
    info1 = "/sensing/camera/camera1/camera_info"
    config = _overlay(tmp_path, f"    camera_info_topics: [{info1}]\n")
    out = tmp_path / "out"
    assert main(["replay", str(autoware_bag), "--out", str(out), "--config", str(config),
                 "--topics", CAM0]) == 0
    statuses = [s for m in read_output(out / "bag") if m.channel.topic == "/diagnostics"
                for s in m.ros_msg.status if s.name.endswith("object_detector")]
    values = {kv.key: kv.value for kv in statuses[-1].values}
    assert "camera1/camera_optical_link" in values[f"camera_info[{CAM0}]"], values
    capsys.readouterr()
    per_camera = _overlay(tmp_path, "    camera_topics: [/sensing/camera/camera0/image_rect_color, "
                                    "/sensing/camera/camera5/image_rect_color]\n"
                                    f"    camera_info_topics: [auto, {info1}]\n")
    assert main(["replay", str(autoware_bag), "--out", str(tmp_path / "out2"), "--config",
                 str(per_camera)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"the replayed camera {CAM1} is none of them, so nothing names its CameraInfo" in err, err
    contradicting = _overlay(tmp_path, f"    camera_info_topics: [{info1}]\n    autoware:\n"
                                       f"      camera_info_topic: {CAM0_INFO}\n")
    assert main(["replay", str(autoware_bag), "--out", str(tmp_path / "out3"), "--config",
                 str(contradicting), "--topics", CAM0]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"but object_detector.camera_info_topics of {contradicting} names '{info1}'" in err, err


def test_the_replay_takes_a_cameras_other_image_for_its_camera_info_entry(tmp_path):
    """R71: with per-camera camera_info_topics, a replayed camera was matched to the config's
    camera_topics by image_transport sub-topic only, so a bag recording the rectified image of a
    camera the config names raw (the same camera since R70), or the camera a relative name in the
    config resolves to, was refused as a camera nothing names the CameraInfo of."""
    from sense_perception.replay.pipelines import camera_info_entries

    info1 = "/sensing/camera/camera1/camera_info"
    config = _overlay(tmp_path, "    camera_topics: [/sensing/camera/camera0/image_raw, "
                                "sensing/camera/camera1/image_raw]\n"
                                f"    camera_info_topics: [auto, {info1}]\n")
    assert [e for _, e in camera_info_entries(config, [CAM0, CAM1])] == ["auto", info1]
    assert [e for _, e in camera_info_entries(config, [f"{CAM1}/compressed"])] == [info1]
    with pytest.raises(ConfigError, match="nothing names its CameraInfo"):
        camera_info_entries(config, ["/sensing/camera/camera2/image_rect_color"])
