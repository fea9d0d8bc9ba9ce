"""Autoware's ROI messages (no ROS): the project's .msg layout against the published one, the label
mapping, the ROI builder, the per-camera topics and the CameraInfo checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
from autoware_layout import PUBLISHED, ROIS, published_typestore, roi_rows
from rosbags.typesys import get_types_from_msg

from sense_perception.config import section_from_params
from sense_perception.core.autoware.camera_info import CameraInfoWatch, camera_info_problems
from sense_perception.core.autoware.rois import (AUTOWARE_ROIS_TOPIC, DETECTED_OBJECTS_WITH_FEATURE,
                                                 AutowareConfig, camera_index,
                                                 detected_objects_with_feature, label_lookup,
                                                 namespace_rois_topic, pixel_rois, rois_topics)
from sense_perception.core.detection.labels import AD_LABELS
from sense_perception.core.types import Detections, Header
from sense_perception.errors import ConfigError
from sense_perception.interfaces import PACKAGES, definitions
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore

HEADER = Header(1557539956, 460000000, "camera3/camera_optical_link")


def test_project_definitions_parse_to_exactly_the_published_layout():
    ours = {**definitions("tier4_perception_msgs"), **definitions("autoware_perception_msgs")}
    assert set(ours) == set(PUBLISHED)
    for name, text in PUBLISHED.items():
        assert get_types_from_msg(ours[name], name)[name] == get_types_from_msg(text, name)[name], name
    # Same layout all the way down: the RIHS01 type hash covers every nested field name and type.
    project, published = make_typestore(), published_typestore()
    for name in PUBLISHED:
        assert project.hash_rihs01(name) == published.hash_rihs01(name), name
    # tier4 uses autoware's DetectedObject: built after it.
    assert PACKAGES.index("autoware_perception_msgs") < PACKAGES.index("tier4_perception_msgs")


def _dets(boxes, scores, labels) -> Detections:
    n = len(scores)
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      np.asarray(labels, np.int32), np.full(n, -1, np.int64))


def test_labels_map_to_autoware_classes_and_others_are_dropped_or_unknown():
    names = list(AD_LABELS) + ["dog"]
    dropped = dict(zip(names, label_lookup(names).tolist(), strict=True))
    assert dropped == {"pedestrian": 7, "bicycle": 6, "car": 1, "motorcycle": 5, "bus": 3, "truck": 2,
                       "traffic_light": -1, "stop_sign": -1, "dog": -1}
    unknown = dict(zip(names, label_lookup(names, "unknown").tolist(), strict=True))
    assert unknown == {**dropped, "traffic_light": 0, "stop_sign": 0, "dog": 0}
    with pytest.raises(ValueError, match="other_labels"):
        label_lookup(names, "keep")


def test_builder_fills_the_message_as_autowares_detector_does():
    names = list(AD_LABELS)
    dets = _dets([[10.4, 20.6, 110.5, 220.2],      # car, inside
                  [-30.0, 400.0, 25.0, 500.0],     # pedestrian, cut by the left edge
                  [900.0, 500.0, 1000.0, 700.0],   # truck, beyond the right and bottom edges
                  [5.0, 5.0, 40.0, 40.0],          # traffic light: no Autoware class
                  [1000.0, 10.0, 1100.0, 50.0]],   # bus entirely right of the image
                 [0.91, 0.42, 0.63, 0.88, 0.7],
                 [names.index(n) for n in ("car", "pedestrian", "truck", "traffic_light", "bus")])
    msg = detected_objects_with_feature(HEADER, dets, names, image_size=(960, 540))
    assert msg["header"] == {"stamp": {"sec": 1557539956, "nanosec": 460000000},
                             "frame_id": "camera3/camera_optical_link"}
    got = [(o["object"]["classification"], o["object"]["existence_probability"], o["feature"]["roi"])
           for o in msg["feature_objects"]]
    roi = lambda x, y, w, h: {"x_offset": x, "y_offset": y, "width": w, "height": h,  # noqa: E731
                              "do_rectify": False}
    assert got == [
        ([{"label": 1, "probability": 1.0}], pytest.approx(0.91), roi(10, 21, 100, 199)),
        ([{"label": 7, "probability": 1.0}], pytest.approx(0.42), roi(0, 400, 25, 100)),
        ([{"label": 2, "probability": 1.0}], pytest.approx(0.63), roi(900, 500, 60, 40)),
    ]
    # Nothing of kinematics or shape: a 2-D detector has neither (the converters fill defaults).
    assert all(set(o["object"]) == {"existence_probability", "classification"} for o in msg["feature_objects"])
    unknown = detected_objects_with_feature(HEADER, dets, names, (960, 540), other_labels="unknown")
    assert [o["object"]["classification"][0]["label"] for o in unknown["feature_objects"]] == [1, 7, 2, 0]
    empty = detected_objects_with_feature(HEADER, _dets([], [], []), names, (960, 540))
    assert empty == {"header": msg["header"], "feature_objects": []}


def test_pixel_rois_without_an_image_size_clip_only_at_zero():
    assert pixel_rois(np.array([[-5.0, 2.4, 3000.6, 2000.0]]), None).tolist() == [[0, 2, 3001, 1998]]


def test_what_the_project_writes_decodes_with_the_published_layout():
    names = list(AD_LABELS)
    dets = _dets([[10.0, 20.0, 110.0, 220.0], [300.0, 100.0, 340.0, 190.0]], [0.91, 0.33],
                 [names.index("bus"), names.index("bicycle")])
    message = detected_objects_with_feature(HEADER, dets, names, (960, 540))
    store = make_typestore()
    raw = store.serialize_cdr(MessageConverter(store)(DETECTED_OBJECTS_WITH_FEATURE, message),
                              DETECTED_OBJECTS_WITH_FEATURE)
    decoded = published_typestore().deserialize_cdr(raw, ROIS)
    assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec, decoded.header.frame_id) == (
        1557539956, 460000000, "camera3/camera_optical_link")
    rows = roi_rows(decoded)
    assert [r[:2] + r[3:] for r in rows] == [(3, 1.0, 10, 20, 100, 200, False),
                                             (6, 1.0, 300, 100, 40, 90, False)]
    assert [r[2] for r in rows] == pytest.approx([0.91, 0.33])
    kin, shape = decoded.feature_objects[0].object.kinematics, decoded.feature_objects[0].object.shape
    assert not kin.has_twist and kin.orientation_availability == 0 and shape.type == 0
    assert len(shape.footprint.points) == 0 and decoded.feature_objects[0].feature.cluster.width == 0


@pytest.mark.parametrize("topic, index", [
    ("/sensing/camera/camera3/image_rect_color", 3),
    ("/sensing/camera/camera3/image_rect_color/compressed", 3),
    ("/sensing/camera/camera12/image_raw", 12),
    ("/camera/front/image_raw", None),
])
def test_camera_index_is_the_digits_ending_its_namespace(topic, index):
    assert camera_index(topic) == index


def test_rois_topics_follow_each_cameras_own_index():
    cams = ["/sensing/camera/camera3/image_rect_color", "/sensing/camera/camera0/image_rect_color/compressed"]
    assert rois_topics(cams, AUTOWARE_ROIS_TOPIC) == ["/perception/object_recognition/detection/rois3",
                                                       "/perception/object_recognition/detection/rois0"]
    assert rois_topics(cams, "") == ["", ""]
    assert rois_topics(cams[:1], "/my/rois") == ["/my/rois"]
    with pytest.raises(ConfigError, match="'/camera/front/image_raw' has none"):
        rois_topics(["/camera/front/image_raw"], AUTOWARE_ROIS_TOPIC)
    with pytest.raises(ConfigError, match="both publish their ROIs on '/my/rois'"):
        rois_topics(cams, "/my/rois")
    with pytest.raises(ConfigError, match="both publish"):  # raw and compressed of one camera
        rois_topics([cams[0], cams[0] + "/compressed"], AUTOWARE_ROIS_TOPIC)
    # The table's rows know a camera by its output namespace: the same index from there.
    assert namespace_rois_topic("/sensing/camera/camera3", AUTOWARE_ROIS_TOPIC) == (
        "/perception/object_recognition/detection/rois3")
    assert namespace_rois_topic("/any/where", "/my/rois") == "/my/rois"
    with pytest.raises(ConfigError, match="'/camera/front' ends in no index"):
        namespace_rois_topic("/camera/front", AUTOWARE_ROIS_TOPIC)


def test_autoware_settings_are_read_and_checked_from_parameters():
    cfg = section_from_params(AutowareConfig, {"autoware.rois_topic": AUTOWARE_ROIS_TOPIC,
                                               "autoware.other_labels": "unknown"}, "autoware.", "x.yaml")
    assert cfg.enabled and cfg.other_labels == "unknown" and cfg.camera_info_topic == "auto"
    assert not AutowareConfig().enabled
    with pytest.raises(ConfigError, match="other_labels is 'keep'; valid: drop, unknown"):
        section_from_params(AutowareConfig, {"autoware.other_labels": "keep"}, "autoware.", "x.yaml")
    with pytest.raises(ConfigError, match="did you mean autoware.rois_topic"):
        section_from_params(AutowareConfig, {"autoware.roi_topic": "/x"}, "autoware.", "x.yaml")
    with pytest.raises(ConfigError, match="only the placeholder"):
        section_from_params(AutowareConfig, {"autoware.rois_topic": "/rois{i}"}, "autoware.", "x.yaml")


def _info(**over):
    info = {"header": {"frame_id": "camera0/camera_optical_link"}, "distortion_model": "plumb_bob",
            "d": [-0.1, 0.01, 0.0, 0.0, 0.0], "k": [1000.0, 0, 480, 0, 1000.0, 270, 0, 0, 1]}
    info.update(over)
    return info


def test_camera_info_problems_name_what_autoware_would_ignore():
    frame = "camera0/camera_optical_link"
    assert camera_info_problems(_info(), frame) == []
    assert camera_info_problems(_info(distortion_model="rational_polynomial", d=[0.0] * 8), frame) == []
    [model] = camera_info_problems(_info(distortion_model="equidistant", d=[0.0] * 4 + [0.0]), frame)
    assert "distortion_model is 'equidistant'" in model
    [d] = camera_info_problems(_info(d=[0.0] * 4), frame)
    assert "D has 4 coefficients" in d
    [k] = camera_info_problems(_info(k=[0.0] * 9), frame)
    assert "K is all zero" in k
    [empty] = camera_info_problems(_info(header={"frame_id": ""}), frame)
    assert "frame_id is empty" in empty
    [other] = camera_info_problems(_info(), "camera0/camera_link")
    assert "differs from the images' 'camera0/camera_link'" in other
    assert camera_info_problems(_info(), None) == []  # no image yet: frames not compared
    # An uncalibrated driver's default message has all six problems (rosbags message, not a dict).
    blank = make_typestore().types["sensor_msgs/msg/CameraInfo"]
    store = make_typestore()
    msg = MessageConverter(store)("sensor_msgs/msg/CameraInfo", {})
    assert isinstance(msg, blank) and len(camera_info_problems(msg, frame)) == 6


def test_a_size_of_zero_or_other_than_the_images_is_named():
    """Autoware's fusion keeps the points that project inside the CameraInfo's width and height:
    a driver leaving them 0 made the camera contribute nothing, and a CameraInfo of another size
    than the images (a resized image topic with the sensor's CameraInfo) placed every point in
    other pixels than the ROIs'; the check named neither. Binning and roi (REP 104) count."""
    frame = "camera0/camera_optical_link"
    sized = _info(width=960, height=540)
    assert camera_info_problems(sized, frame, (960, 540)) == []
    assert camera_info_problems(sized, frame) == []  # no image yet: sizes not compared
    [zero] = camera_info_problems(_info(width=0, height=540), frame, (960, 540))
    assert zero.startswith("the size is 0x540") and "none" in zero
    [other] = camera_info_problems(sized, frame, (480, 270))
    assert "960x540 (with its binning and roi) differs from the images' 480x270" in other
    binned = _info(width=1920, height=1080, binning_x=2, binning_y=2)
    assert camera_info_problems(binned, frame, (960, 540)) == []
    cropped = _info(width=1920, height=1080, roi={"x_offset": 0, "y_offset": 100, "width": 1920,
                                                  "height": 800})
    assert camera_info_problems(cropped, frame, (1920, 800)) == []
    # The watch compares each camera's images, told once per size change.
    cam = "/sensing/camera/camera0/image_rect_color"
    watch = CameraInfoWatch([cam])
    assert watch.camera_info(cam, sized) == []
    assert watch.image_frame(cam, frame, (960, 540)) == []
    [told] = watch.image_frame(cam, frame, (640, 360))
    assert "differs from the images' 640x360" in told and watch.warnings()
    assert watch.image_frame(cam, frame, (640, 360)) == []
    assert watch.image_frame(cam, frame, (960, 540)) == [] and not watch.warnings()


def test_a_zero_or_non_finite_p_is_named_as_the_fusion_projects_through_it():
    """Autoware's fusion projects every point through P (image_geometry's project3dToPixel, raw
    and rectified images alike): a calibrated K and D beside a P left zero put every point on
    pixel (0, 0), the camera silently contributing nothing, and the check said nothing."""
    frame = "camera0/camera_optical_link"
    good = [1000.0, 0, 480, 0, 0, 1000.0, 270, 0, 0, 0, 1, 0]
    assert camera_info_problems(_info(p=good), frame) == []
    [zero] = camera_info_problems(_info(p=[0.0] * 12), frame)
    assert zero.startswith("P is all zero") and "pixel (0, 0)" in zero
    [nan] = camera_info_problems(_info(p=[math.nan] + good[1:]), frame)
    assert nan.startswith("P has a non-finite number")
    # A real message (rosbags) with K and D set and P left at its default zeros.
    store = make_typestore()
    msg = MessageConverter(store)("sensor_msgs/msg/CameraInfo", {
        **_info(), "header": {"frame_id": frame}, "width": 960, "height": 540})
    assert [p[:15] for p in camera_info_problems(msg, frame)] == ["P is all zero: "]


def test_camera_info_watch_reports_each_problem_once():
    cams = ["/sensing/camera/camera0/image_rect_color", "/sensing/camera/camera1/image_rect_color"]
    watch = CameraInfoWatch(cams)
    assert watch.status() == {cams[0]: "no CameraInfo received", cams[1]: "no CameraInfo received"}
    assert watch.camera_info(cams[0], _info()) == []
    [new] = watch.image_frame(cams[0], "camera0/camera_link")
    assert "differs" in new and watch.image_frame(cams[0], "camera0/camera_link") == []
    assert watch.camera_info(cams[0], _info()) == []  # the same problem again: not reported again
    assert watch.status()[cams[0]] == new and watch.warnings() == [f"{cams[0]} CameraInfo: {new}"]
    assert watch.camera_info(cams[1], _info(d=[])) != []
    watch.image_frame(cams[0], "camera0/camera_optical_link")
    assert watch.status()[cams[0]] == "ok" and len(watch.warnings()) == 1


def test_camera_info_watch_stays_bounded_when_the_frame_id_changes_every_frame():
    from sense_perception.core.autoware.camera_info import MAX_REPORTED, MAX_TOLD

    cam = "/sensing/camera/camera0/image_rect_color"
    watch = CameraInfoWatch([cam])
    watch.camera_info(cam, _info())
    told = []
    for k in range(1000):  # a driver bug: a new frame_id on every image
        new = watch.image_frame(cam, f"camera0/frame_{k}")
        assert all(f"frame_{k}'" in p for p in new[:1])
        told += new
    # the first MAX_TOLD are told one by one, then once that the rest are not (not one log line
    # or replay note per frame for ever)
    assert len(told) == MAX_TOLD + 1 and "not told one by one" in told[-1]
    assert len(watch._reported[cam]) == MAX_REPORTED  # not one entry per frame for ever
    assert len(watch.warnings()) == 1 and "frame_999" in watch.warnings()[0]
