"""foxglove_msgs/ImageAnnotations: the project's definitions and the core's annotation dicts (no ROS)."""
from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import get_types_from_msg

from sense_perception.core.output.annotate import label_colour
from sense_perception.core.output.annotations import (IMAGE_ANNOTATIONS, LINE_LOOP, image_annotations,
                                                       image_size_of, label_rgba)
from sense_perception.core.types import Detections, Header
from sense_perception.interfaces import definitions
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.typestore import make_typestore

# The upstream layout, field by field (foxglove/schemas, ros_foxglove_msgs/ros2/*.msg, foxglove_msgs 3.x):
# Foxglove recognises the schema by its name, and a live subscriber with the distribution's
# foxglove_msgs needs the same names, types and order.
UPSTREAM = {
    "ImageAnnotations": [("circles", "foxglove_msgs/msg/CircleAnnotation[]"),
                         ("points", "foxglove_msgs/msg/PointsAnnotation[]"),
                         ("texts", "foxglove_msgs/msg/TextAnnotation[]")],
    "PointsAnnotation": [("timestamp", "builtin_interfaces/msg/Time"), ("type", "uint8"),
                         ("points", "foxglove_msgs/msg/Point2[]"), ("outline_color", "foxglove_msgs/msg/Color"),
                         ("outline_colors", "foxglove_msgs/msg/Color[]"),
                         ("fill_color", "foxglove_msgs/msg/Color"), ("thickness", "float64")],
    "TextAnnotation": [("timestamp", "builtin_interfaces/msg/Time"), ("position", "foxglove_msgs/msg/Point2"),
                       ("text", "string"), ("font_size", "float64"), ("text_color", "foxglove_msgs/msg/Color"),
                       ("background_color", "foxglove_msgs/msg/Color")],
    "CircleAnnotation": [("timestamp", "builtin_interfaces/msg/Time"), ("position", "foxglove_msgs/msg/Point2"),
                         ("diameter", "float64"), ("thickness", "float64"),
                         ("fill_color", "foxglove_msgs/msg/Color"), ("outline_color", "foxglove_msgs/msg/Color")],
    "Point2": [("x", "float64"), ("y", "float64")],
    "Color": [("r", "float64"), ("g", "float64"), ("b", "float64"), ("a", "float64")],
}
UPSTREAM_CONSTANTS = {"PointsAnnotation": [("UNKNOWN", "uint8", 0), ("POINTS", "uint8", 1),
                                           ("LINE_LOOP", "uint8", 2), ("LINE_STRIP", "uint8", 3),
                                           ("LINE_LIST", "uint8", 4)]}
NAMES = ["pedestrian", "car", "bus"]


def _describe(desc) -> str:
    kind, rest = desc
    if kind.name == "BASE":
        return rest[0]
    if kind.name == "NAME":
        return rest
    (sub_kind, sub_rest), _ = rest
    return (sub_rest[0] if sub_kind.name == "BASE" else sub_rest) + "[]"


def test_definitions_have_exactly_the_upstream_layout():
    defs = definitions("foxglove_msgs")
    assert set(defs) == {f"foxglove_msgs/msg/{name}" for name in UPSTREAM}
    for name, fields in UPSTREAM.items():
        full = f"foxglove_msgs/msg/{name}"
        consts, parsed = get_types_from_msg(defs[full], full)[full]
        assert [(n, _describe(d)) for n, d in parsed] == fields, name
        assert consts == UPSTREAM_CONSTANTS.get(name, []), name


def _dets() -> Detections:
    return Detections(np.array([[10.5, 200.0, 110.0, 420.25], [0.0, 0.0, 50.0, 8.0]], np.float32),
                      np.array([0.91, 0.42], np.float32), np.array([1, 0], np.int32),
                      np.array([7, -1], np.int64))


def test_one_closed_polyline_and_caption_per_detection():
    header = Header(1557539956, 460000000, "front_camera")
    msg = image_annotations(header, _dets(), NAMES, image_size=(1920, 1080))
    assert msg["circles"] == [] and len(msg["points"]) == len(msg["texts"]) == 2
    stamp = {"sec": 1557539956, "nanosec": 460000000}
    car, person = msg["points"]
    assert car["type"] == person["type"] == LINE_LOOP == 2
    assert [(p["x"], p["y"]) for p in car["points"]] == [(10.5, 200.0), (110.0, 200.0), (110.0, 420.25),
                                                          (10.5, 420.25)]
    assert all(a["timestamp"] == stamp for a in msg["points"] + msg["texts"])
    b, g, r = label_colour("car")
    assert car["outline_color"] == label_rgba("car") == {"r": r / 255, "g": g / 255, "b": b / 255, "a": 1.0}
    assert person["outline_color"] == label_rgba("pedestrian") != car["outline_color"]
    assert car["fill_color"]["a"] == 0.0 and car["thickness"] == 3.0  # 1080 / 400, rounded
    car_text, person_text = msg["texts"]
    assert car_text["text"] == "car 0.91 #7" and person_text["text"] == "pedestrian 0.42"
    assert car_text["background_color"] == car["outline_color"]
    assert car_text["font_size"] == person_text["font_size"] == 22.0  # 1080 / 50, rounded
    # the text's bottom-left origin: just above the box, or inside it when the box is at the top
    assert car_text["position"] == {"x": 10.5, "y": 200.0 - 3.0}
    assert person_text["position"] == {"x": 0.0, "y": 22.0}


def test_empty_frame_and_custom_captions():
    header = Header(3, 4, "cam")
    # Without detections the message still carries the image's stamp (Foxglove's "Sync
    # annotations" matches by it): one PointsAnnotation with no points, drawn as nothing.
    empty = image_annotations(header, Detections(), NAMES)
    assert empty["circles"] == [] and empty["texts"] == []
    [carrier] = empty["points"]
    assert carrier["timestamp"] == {"sec": 3, "nanosec": 4} and carrier["points"] == []
    assert carrier["outline_color"]["a"] == carrier["fill_color"]["a"] == 0.0
    store = make_typestore()  # it is a valid message of the bag's type
    obj = MessageConverter(store)(IMAGE_ANNOTATIONS, empty)
    back = store.deserialize_cdr(store.serialize_cdr(obj, IMAGE_ANNOTATIONS), IMAGE_ANNOTATIONS)
    assert (back.points[0].timestamp.sec, back.points[0].timestamp.nanosec) == (3, 4)
    msg = image_annotations(header, _dets(), NAMES, captions=["driver d-1 0.80", "face 0.42"])
    assert [t["text"] for t in msg["texts"]] == ["driver d-1 0.80", "face 0.42"]
    with pytest.raises(ValueError, match="1 given for 2 detections"):
        image_annotations(header, _dets(), NAMES, captions=["x"])


def test_converts_and_serialises_as_the_bag_type():
    store = make_typestore()
    msg = image_annotations(Header(5, 6, "cam"), _dets(), NAMES, image_size=(640, 360))
    obj = MessageConverter(store)(IMAGE_ANNOTATIONS, msg)
    back = store.deserialize_cdr(store.serialize_cdr(obj, IMAGE_ANNOTATIONS), IMAGE_ANNOTATIONS)
    assert back.points[0].type == back.points[0].LINE_LOOP
    assert [(p.x, p.y) for p in back.points[1].points] == [(0.0, 0.0), (50.0, 0.0), (50.0, 8.0), (0.0, 8.0)]
    assert back.texts[0].text == "car 0.91 #7" and back.texts[0].timestamp.nanosec == 6


def test_image_size_of_frames_and_views():
    from sense_perception.core.imaging.image_decode import ImageView

    assert image_size_of(np.zeros((360, 640, 3), np.uint8)) == (640, 360)
    reduced = ImageView(np.zeros((270, 480, 3), np.uint8), "bgr", (1920, 1080))
    assert image_size_of(reduced) == (1920, 1080)  # boxes are in the message's full-size pixels


def _relative_luminance(bgr: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    b, g, r = bgr
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_driver_box_colour_has_high_contrast():
    """The driver's box was dark grey (64, 64, 64), hard to see in a cabin: now a saturated colour
    with a WCAG contrast ratio of at least 3:1 against both a dark (30) and a mid-grey (128) cabin."""
    driver = label_colour("driver")
    assert max(driver) - min(driver) >= 200  # saturated, not a grey
    for grey in (30, 128):
        lum = sorted([_relative_luminance(driver), _relative_luminance((grey, grey, grey))])
        assert (lum[1] + 0.05) / (lum[0] + 0.05) >= 3.0, grey
    assert driver != label_colour("face")


class _Result:
    """The fields of a DriverResult that the captions read."""

    def __init__(self, state: str, driver_id: str | None, score: float) -> None:
        self.state, self.driver_id, self.score = state, driver_id, score


def test_driver_caption_has_a_score_only_with_an_identity():
    from sense_perception.face.results import face_captions

    faces = Detections(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32),
                       np.array([0.9, 0.8], np.float32), np.array([1, 0], np.int32))
    assert face_captions(faces, _Result("unknown", None, -1.0)) == ["driver unknown", "face 0.80"]
    assert face_captions(faces, _Result("no_face", None, float("nan")))[0] == "driver no_face"
    assert face_captions(faces, _Result("identified", "d-1a2b", 0.83)) == ["driver d-1a2b 0.83",
                                                                           "face 0.80"]
