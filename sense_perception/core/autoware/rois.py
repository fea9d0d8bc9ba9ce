"""A camera frame's detections as Autoware's 2-D ROIs: ``tier4_perception_msgs/DetectedObjectsWithFeature``.

Autoware's camera-LiDAR fusion nodes (roi_detected_object_fusion, roi_cluster_fusion,
roi_pointcloud_fusion) and its camera-only image_object_locator read one such message per camera
image on ``/perception/object_recognition/detection/rois{i}``. The message built here is filled
the way Autoware's own camera detector (autoware_tensorrt_yolox) fills it:

* ``header``: the image's header, exactly (Autoware looks the frame_id up in TF at the stamp);
* per detection, ``feature.roi``: the box in the pixels of the image the node received, rounded
  to whole pixels and clipped to the image, ``do_rectify`` false;
* ``object.existence_probability``: the detector's score (uncalibrated: each model's own scale);
* ``object.classification``: one ``{label, probability 1.0}``. The label is the detector's single
  decision, as with Autoware's detector, whose downstream nodes are tuned for 1.0; the confidence
  is in existence_probability, which is where Autoware gates per label;
* ``object.kinematics`` and ``object.shape``: for a detection placed on the road (the camera is
  calibrated: :mod:`..geometry.ground`), the same as in ``autoware.objects_topic``'s
  DetectedObjects (:func:`.objects.object_states`): the position in base_link with its covariance,
  orientation UNAVAILABLE, no twist unless ``autoware.twist`` asks for it, CYLINDER for
  pedestrians and BOUNDING_BOX for vehicles with the label's prior size. Unplaced detections (no
  calibration, labels without a size prior) keep the defaults, as Autoware's own detector leaves
  them. The pose is in base_link while the header names the camera frame (the ROIs' frame, which
  Autoware's fusion looks up for the pixels): Autoware's fusion nodes read only the ROI and the
  classification of these objects.

Message-shaped dicts as in :mod:`sense_perception.core.output.messages`: the nodes and the replay
turn them into messages with their generic converters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ...config import check_settings, setting
from ...errors import ConfigError
from ..geometry.ground import GroundPositions
from ..tracking.ground_motion import GroundVelocities
from ..output.messages import header_msg
from ..output.topics import camera_info_topic, camera_namespace, check_topic_names
from ..types import Detections, Header

DETECTED_OBJECTS_WITH_FEATURE = "tier4_perception_msgs/msg/DetectedObjectsWithFeature"

#: autoware_perception_msgs/ObjectClassification label constants.
UNKNOWN, CAR, TRUCK, BUS, TRAILER, MOTORCYCLE, BICYCLE, PEDESTRIAN = range(8)
ANIMAL, HAZARD, OVER_DRIVABLE, UNDER_DRIVABLE = range(8, 12)

#: The project's labels (:data:`~sense_perception.core.detection.labels.AD_LABELS`, and ``animal``
#: with ``detector.animals``) that have an Autoware class. traffic_light and stop_sign (and any
#: ``keep_other_classes`` label) have none.
AUTOWARE_LABELS: dict[str, int] = {
    "pedestrian": PEDESTRIAN, "car": CAR, "truck": TRUCK, "bus": BUS, "bicycle": BICYCLE,
    "motorcycle": MOTORCYCLE, "animal": ANIMAL,
}

#: What happens to a detection whose label has no Autoware class (``autoware.other_labels``).
OTHER_LABELS = ("drop", "unknown")
#: What the Autoware outputs' twist carries (``autoware.twist``): none (``has_twist`` false), or
#: the tracked velocity relative to base_link, over the ground only where base_link stands still.
TWIST_CHOICES = ("none", "base_link")

#: The placeholder of ``autoware.rois_topic`` that takes each camera's own index.
INDEX_PLACEHOLDER = "{index}"
#: Autoware's ROI topic of camera ``i``.
AUTOWARE_ROIS_TOPIC = "/perception/object_recognition/detection/rois" + INDEX_PLACEHOLDER
#: config/autoware.yaml's DetectedObjects topic of camera ``i``: one per camera, which no Autoware
#: node subscribes to by default (remap it to the object merger's or tracker's input).
AUTOWARE_OBJECTS_TOPIC = ("/perception/object_recognition/detection/camera" + INDEX_PLACEHOLDER
                          + "/objects")

# Trailing digits of the camera's namespace: /sensing/camera/camera3/image_rect_color -> 3.
_INDEX = re.compile(r"(\d+)$")


@dataclass
class AutowareConfig:
    """The ``autoware.*`` parameters of object_detector: Autoware's per-camera ROI output.

    Attributes:
        rois_topic: topic of each camera's tier4_perception_msgs/DetectedObjectsWithFeature; ""
            = off (the default). ``{index}`` is replaced by the camera's own index, the digits
            that end its namespace (``/sensing/camera/camera3/image_rect_color`` -> 3), so
            camera3's ROIs go to rois3 whichever cameras are present. Autoware's:
            ``/perception/object_recognition/detection/rois{index}``.
        other_labels: detections whose label has no Autoware class (traffic_light, stop_sign):
            ``drop`` (the default) or ``unknown`` (sent as UNKNOWN 0). Dropped by default because
            Autoware's roi_pointcloud_fusion turns UNKNOWN ROIs into obstacle clusters: a traffic
            light or a sign would become an obstacle.
        camera_info_topic: the CameraInfo checked for what Autoware's fusion would silently
            ignore (warned once, shown in /diagnostics): ``auto`` = each camera's CameraInfo,
            its ``camera_info_topics`` entry where that names a topic (autoware.launch.py's
            ``camera_info<i>``), else ``<ns>/camera_info`` (Autoware's
            ``/sensing/camera/camera{i}/camera_info``; the replay's always), "" = no check.
        objects_topic: topic of each camera's autoware_perception_msgs/DetectedObjects (its
            placed road users in base_link, :mod:`.objects`); "" = off (the default); ``{index}``
            as in ``rois_topic``. Needs the camera's calibration (no calibration: no message).
        twist: what the objects' twist (in the DetectedObjects and the ROIs) carries: ``none``
            (the default: ``has_twist`` false) or ``base_link`` (the track's velocity relative
            to base_link while steady). Autoware's multi_object_tracker reads a twist as the
            velocity over the ground (its trackers start and update their speed from it, as
            from a radar's ego-compensated one), while the velocity here is relative to the ego
            car (no odometry is read): on a moving car a parked car had a twist of minus the
            ego speed. ``base_link`` is right only where base_link stands still over the ground
            (a fixed camera, a parked test vehicle) (R67).
    """

    rois_topic: str = setting("", "topic of each camera's tier4_perception_msgs/DetectedObjectsWithFeature "
                                  "(Autoware's ROIs); '' = off; {index} = the digits ending the "
                                  "camera's namespace (camera3 -> 3)",
                              "'' or a topic, optionally with {index}")
    other_labels: str = setting("drop", "labels with no Autoware class (traffic_light, stop_sign): drop, "
                                        "or unknown (sent as UNKNOWN 0, which roi_pointcloud_fusion turns "
                                        "into obstacle clusters)", OTHER_LABELS)
    camera_info_topic: str = setting("auto", "CameraInfo checked for what Autoware's fusion ignores (while "
                                             "rois_topic is set): auto = each camera's CameraInfo (its "
                                             "camera_info_topics entry, or <ns>/camera_info), '' = "
                                             "no check",
                                     "auto, '' or a topic (one camera only)")
    objects_topic: str = setting("", "topic of each camera's autoware_perception_msgs/DetectedObjects "
                                     "(placed road users in base_link; the twist: autoware.twist); "
                                     "'' = off; {index} as in rois_topic",
                                 "'' or a topic, optionally with {index}")
    twist: str = setting("none", "the objects' twist: none (has_twist false; the tracked velocity is "
                                 "relative to the moving ego car, Autoware's tracker reads a twist "
                                 "as the velocity over the ground), or base_link (the velocity "
                                 "relative to base_link while steady: only where base_link stands "
                                 "still, a fixed camera or a parked vehicle)", TWIST_CHOICES)

    def __post_init__(self) -> None:
        try:  # a ValueError, as every check here: the loader names the file
            check_rois_topic_name(self.rois_topic, f"autoware.rois_topic {self.rois_topic!r}",
                                  f"set autoware.rois_topic to {AUTOWARE_ROIS_TOPIC} (each "
                                  "camera's rois<i>)")
            check_objects_topic_name(self.objects_topic)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.other_labels not in OTHER_LABELS:
            raise ValueError(f"autoware.other_labels is {self.other_labels!r}; valid: "
                             f"{', '.join(OTHER_LABELS)}")
        if self.twist not in TWIST_CHOICES:
            raise ValueError(f"autoware.twist is {self.twist!r}; valid: {', '.join(TWIST_CHOICES)}")
        for name in ("rois_topic", "objects_topic"):
            rest = getattr(self, name).replace(INDEX_PLACEHOLDER, "")
            if "{" in rest or "}" in rest:
                raise ValueError(f"autoware.{name} {getattr(self, name)!r} may hold only the "
                                 f"placeholder {INDEX_PLACEHOLDER}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @property
    def enabled(self) -> bool:
        """The ROI output is on."""
        return bool(self.rois_topic)


def check_rois_topic_name(topic: str, given: str, fix: str) -> None:
    """Refuse a ROI topic whose last name is ``objects``: Autoware's name for its DetectedObjects
    topics (``/perception/object_recognition/detection/objects``, and config/autoware.yaml's
    ``camera{index}/objects``), never a ROI topic (``rois<i>``). ROIs there mix two message types:
    Autoware's object topic receives DetectedObjectsWithFeature where its consumers read
    DetectedObjects. The launch's ``output/objects`` was refused for this (R57); a config's
    ``autoware.rois_topic`` of the same name was taken (R65).

    Args:
        topic: the ROI topic (template) given; "" (off) passes.
        given: how the user gave it, for the message (``autoware.rois_topic '...'``).
        fix: what to give instead.

    Raises:
        ConfigError: the topic's last name is ``objects``.
    """
    if topic.strip().rstrip("/").rpartition("/")[2] != "objects":
        return
    raise ConfigError(
        f"{given} names a topic '.../objects', Autoware's name for its DetectedObjects topics "
        "(/perception/object_recognition/detection/objects), not a ROI topic (rois<i>): ROIs "
        f"there would mix two message types; fix: {fix}")


#: The last name of Autoware's ROI topics: rois, rois<i>, and the template's rois{index}.
_ROIS_NAME = re.compile(r"rois(\d*|" + re.escape(INDEX_PLACEHOLDER) + ")")


def check_objects_topic_name(topic: str) -> None:
    """Refuse ``autoware.objects_topic`` named as Autoware's ROI topics (``rois<i>``,
    ``rois{index}``): Autoware's fusion, bytetrack and image_object_locator read them as
    DetectedObjectsWithFeature, so DetectedObjects there were two message types on one topic and
    they received nothing. Taken without a word where ``autoware.rois_topic`` was elsewhere or
    off (R65; the same topic as the ROIs' was refused already).

    Raises:
        ConfigError: the topic's last name is ``rois``, ``rois<i>`` or ``rois{index}``.
    """
    if not _ROIS_NAME.fullmatch(topic.strip().rstrip("/").rpartition("/")[2]):
        return
    raise ConfigError(
        f"autoware.objects_topic {topic!r} names a topic 'rois<i>', Autoware's name for its ROI "
        "topics (/perception/object_recognition/detection/rois<i>, read as "
        "tier4_perception_msgs/DetectedObjectsWithFeature by its fusion), not a DetectedObjects "
        f"topic: DetectedObjects there would mix two message types; fix: set "
        f"autoware.objects_topic to {AUTOWARE_OBJECTS_TOPIC} (or the input of your object merger)")


def namespace_index(ns: str) -> int | None:
    """The digits that end the last name of a camera namespace (``/sensing/camera/camera3`` -> 3),
    or None."""
    parts = [p for p in ns.split("/") if p]
    match = _INDEX.search(parts[-1]) if parts else None
    return int(match.group(1)) if match else None


def camera_index(camera_topic: str) -> int | None:
    """The camera's own index: the digits that end its namespace, or None.

    ``/sensing/camera/camera3/image_rect_color`` and ``.../image_rect_color/compressed`` give 3.
    """
    return namespace_index(camera_namespace(camera_topic))


def namespace_rois_topic(ns: str, template: str, name: str = "autoware.rois_topic") -> str:
    """The topic of the camera whose output namespace is ``ns``, from the template of setting
    ``name`` (``autoware.rois_topic`` or ``autoware.objects_topic``; checked by :func:`rois_topics`).

    Raises:
        ConfigError: ``template`` holds ``{index}`` and ``ns`` ends in no digits.
    """
    if INDEX_PLACEHOLDER not in template:
        return template
    index = namespace_index(ns)
    if index is None:
        raise ConfigError(f"{name} {template!r}: the camera namespace '{ns}' ends in no "
                          "index (Autoware's cameras are /sensing/camera/camera<i>/image_rect_color)")
    return template.replace(INDEX_PLACEHOLDER, str(index))


def rois_topics(camera_topics: Sequence[str], template: str,
                name: str = "autoware.rois_topic",
                taken: Mapping[str, str] | None = None) -> list[str]:
    """The topic of each camera from the template of setting ``name`` (``autoware.rois_topic`` or
    ``autoware.objects_topic``); all "" when ``template`` is "", the output off.

    Args:
        taken: topics already used by something else (an input, another output) -> what uses
            it (:func:`~sense_perception.core.output.frame_outputs.taken_topics`): a camera's
            topic among them is refused (two message types on one topic: a ROS graph refuses or
            mixes them, a bag cannot hold them).

    Raises:
        ConfigError: ``template`` holds ``{index}`` and a camera's namespace ends in no digits,
            two cameras would publish to the same topic, or a topic is in ``taken``.
    """
    if not template:
        return ["" for _ in camera_topics]
    topics = []
    for camera in camera_topics:
        if INDEX_PLACEHOLDER in template:
            index = camera_index(camera)
            if index is None:
                raise ConfigError(
                    f"{name} {template!r} takes each camera's index from its topic, but "
                    f"'{camera}' has none (Autoware's cameras are /sensing/camera/camera<i>/"
                    f"image_rect_color); rename the camera topic or give {name} without "
                    f"{INDEX_PLACEHOLDER} for a single camera")
            topics.append(template.replace(INDEX_PLACEHOLDER, str(index)))
        else:
            topics.append(template)
    seen: dict[str, str] = {}
    what = "ROIs" if name.endswith("rois_topic") else "objects"
    for camera, topic in zip(camera_topics, topics, strict=True):
        if topic in seen:
            raise ConfigError(f"cameras '{seen[topic]}' and '{camera}' would both publish their {what} on "
                              f"'{topic}'; give {name} with {INDEX_PLACEHOLDER} (e.g. "
                              f"{AUTOWARE_ROIS_TOPIC if what == 'ROIs' else AUTOWARE_OBJECTS_TOPIC}) "
                              "and cameras whose namespaces end in distinct indices")
        seen[topic] = camera
        if taken and (user := taken.get(topic.rstrip("/"))) is not None:
            raise ConfigError(f"{name} {template!r} gives camera '{camera}' the topic '{topic}', "
                              f"which is already {user}; give {name} a topic of its own (e.g. "
                              f"{AUTOWARE_ROIS_TOPIC if what == 'ROIs' else AUTOWARE_OBJECTS_TOPIC})")
    return topics


def checked_camera_info_topics(info_topics: Sequence[tuple[str, str]],
                               setting: str) -> list[str]:
    """Per camera: the CameraInfo checked for Autoware's fusion (``autoware.camera_info_topic`` =
    ``setting``): ``auto`` = the camera's CameraInfo (``info_topics``, what its 3-D positions
    read: ``camera_info_topics``, autoware.launch.py's ``camera_info<i>``), or
    ``<ns>/camera_info`` where that names none; "" = none; else ``setting`` (one camera). ``auto``
    read ``<ns>/camera_info`` whatever ``camera_info_topics`` said, in the node and the replay
    alike (R65, R67).

    Args:
        info_topics: per camera, (its topic, its CameraInfo topic; "" = none).
        setting: ``autoware.camera_info_topic``.
    """
    if setting != "auto":
        return [setting for _ in info_topics]
    return [info or camera_info_topic(camera, "auto") for camera, info in info_topics]


def check_camera_info_topic(camera_topics: Sequence[str], setting: str,
                            info_topics: Sequence[tuple[str, str]] = ()) -> None:
    """Refuse one named ``autoware.camera_info_topic`` for several cameras: each camera has a
    CameraInfo of its own (``auto`` takes ``<ns>/camera_info`` of each); and one that names
    another topic than the CameraInfo a camera's 3-D positions read (``camera_info_topics``,
    autoware.launch.py's ``camera_info<i>``): the check watched one calibration while the
    positions, and Autoware's fusion, read another (R67). An entry of ``auto`` is the camera's
    ``<ns>/camera_info``, compared as such: a named check beside it was taken and one of the two
    CameraInfo topics silently went unused (R75). An entry of "" (no positions) leaves the named
    check alone, the one CameraInfo read.

    Args:
        camera_topics: the cameras.
        setting: ``autoware.camera_info_topic``.
        info_topics: per camera, (what names it, the CameraInfo topic its positions read as
            named: a topic, ``auto`` or ""); empty: not compared.

    Raises:
        ConfigError: ``setting`` is a topic (not ``auto`` or "") and there is more than one
            camera, or the CameraInfo the camera's positions read differs from it.
    """
    if setting in ("auto", ""):
        return
    check_topic_names([setting], "autoware.camera_info_topic")
    if len(camera_topics) > 1:
        raise ConfigError(f"autoware.camera_info_topic '{setting}' names one CameraInfo topic for "
                          f"{len(camera_topics)} cameras, but each camera has its own: give auto "
                          "(each camera's <ns>/camera_info) or '' (no check)")
    for camera, (what, info) in zip(camera_topics, info_topics, strict=False):  # () = none
        used = camera_info_topic(camera, info)  # "auto": <ns>/camera_info; "": no positions
        if used not in ("", setting):
            named = (f"{what} is auto, so its 3-D positions read '{used}'" if info == "auto"
                     else f"{what} names '{info}', which its 3-D positions read")
            raise ConfigError(
                f"autoware.camera_info_topic '{setting}' is the CameraInfo the Autoware check "
                f"reads for camera '{camera}', but {named}: the check would watch another "
                f"calibration than the one used; fix: set autoware.camera_info_topic: auto (it "
                f"follows {what}), or name one topic in both")


def label_lookup(label_names: Sequence[str], other_labels: str = "drop") -> np.ndarray:
    """Autoware class of each detector label index: (len(label_names),) int16, -1 = left out.

    Raises:
        ValueError: ``other_labels`` is not in :data:`OTHER_LABELS`.
    """
    if other_labels not in OTHER_LABELS:
        raise ValueError(f"other_labels must be one of {OTHER_LABELS}, got {other_labels!r}")
    other = -1 if other_labels == "drop" else UNKNOWN
    return np.array([AUTOWARE_LABELS.get(name, other) for name in label_names], np.int16)


def pixel_rois(boxes: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
    """(N, 4) int64 ``x_offset, y_offset, width, height`` of x1, y1, x2, y2 boxes: corners rounded
    to whole pixels and clipped to the ``(width, height)`` image (only to >= 0 when it is None)."""
    corners = np.rint(np.asarray(boxes, np.float64).reshape(-1, 4))
    high = (np.inf, np.inf) if image_size is None else (float(image_size[0]), float(image_size[1]))
    corners = np.clip(corners, 0.0, np.array([*high, *high]))
    out = np.empty((len(corners), 4), np.int64)
    out[:, :2] = corners[:, :2]
    out[:, 2:] = corners[:, 2:] - corners[:, :2]
    return out


def detected_objects_with_feature(header: Header, detections: Detections, label_names: Sequence[str],
                                  image_size: tuple[int, int] | None,
                                  other_labels: str = "drop",
                                  positions: GroundPositions | None = None,
                                  motion: GroundVelocities | None = None) -> dict[str, Any]:
    """tier4_perception_msgs/DetectedObjectsWithFeature of one camera frame (see the module doc).

    Args:
        header: the image's header, copied exactly.
        detections: boxes in the received image's pixels.
        label_names: names indexed by ``detections.labels``.
        image_size: (width, height) of the received image, to clip to.
        other_labels: ``drop`` or ``unknown`` for labels with no Autoware class.
        positions: the detections' ground positions (None: no calibration); placed detections
            carry kinematics and shape.
        motion: their ground velocities (None: no twist).

    Detections left out: labels with no Autoware class when ``other_labels`` is ``drop``, and boxes
    with no whole pixel inside the image (zero width or height after clipping).
    """
    head = header_msg(header)
    if len(detections) == 0:
        return {"header": head, "feature_objects": []}
    classes = label_lookup(label_names, other_labels)[detections.labels]
    rois = pixel_rois(detections.boxes, image_size)
    keep = np.flatnonzero((classes >= 0) & (rois[:, 2] > 0) & (rois[:, 3] > 0))
    rows = rois[keep].tolist()
    labels = classes[keep].tolist()
    scores = detections.scores[keep].astype(np.float64).tolist()
    objects: list[dict[str, Any]] = [
        {"existence_probability": score, "classification": [{"label": label, "probability": 1.0}]}
        for label, score in zip(labels, scores, strict=True)]
    if positions is not None:
        from .objects import object_states  # (objects.py builds on this module)

        placed = np.flatnonzero(positions.valid[keep])
        for k, (kinematics, shape) in zip(placed.tolist(), object_states(
                detections, label_names, positions, motion, keep[placed], classes[keep[placed]]),
                strict=True):
            objects[k]["kinematics"] = kinematics
            objects[k]["shape"] = shape
    return {
        "header": head,
        "feature_objects": [
            {
                "object": obj,
                "feature": {"roi": {"x_offset": x, "y_offset": y, "width": w, "height": h,
                                    "do_rectify": False}},
            }
            for (x, y, w, h), obj in zip(rows, objects, strict=True)
        ],
    }


__all__ = ["AUTOWARE_LABELS", "AUTOWARE_OBJECTS_TOPIC", "AUTOWARE_ROIS_TOPIC", "AutowareConfig", "DETECTED_OBJECTS_WITH_FEATURE",
           "OTHER_LABELS", "TWIST_CHOICES", "camera_index", "check_camera_info_topic", "checked_camera_info_topics", "check_objects_topic_name", "check_rois_topic_name", "detected_objects_with_feature", "label_lookup",
           "namespace_index", "namespace_rois_topic", "pixel_rois", "rois_topics"]
