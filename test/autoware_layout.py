"""An independent reader of Autoware's ROI messages, from the published layout (no project files).

The definitions below are written out from the upstream field lists (tier4/tier4_autoware_msgs
tier4_perception_msgs 0.1.0 msg/object_recognition/, commit c0b70a04; autowarefoundation/autoware_msgs
autoware_perception_msgs 1.12.0, commit 7025d8f; as set out in shared/notes/autoware-interface.md),
not read from sense_perception/interfaces: a slip in the project's .msg files (a field renamed,
retyped or reordered) makes what the project writes fail to decode here, or decode differently.
"""
from __future__ import annotations

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PUBLISHED: dict[str, str] = {
    "tier4_perception_msgs/msg/DetectedObjectsWithFeature":
        "std_msgs/Header header\n"
        "tier4_perception_msgs/DetectedObjectWithFeature[] feature_objects\n",
    "tier4_perception_msgs/msg/DetectedObjectWithFeature":
        "autoware_perception_msgs/DetectedObject object\n"
        "tier4_perception_msgs/Feature feature\n",
    "tier4_perception_msgs/msg/Feature":
        "sensor_msgs/PointCloud2 cluster\n"
        "sensor_msgs/RegionOfInterest roi\n",
    "autoware_perception_msgs/msg/DetectedObjects":
        "std_msgs/Header header\n"
        "autoware_perception_msgs/DetectedObject[] objects\n",
    "autoware_perception_msgs/msg/DetectedObject":
        "float32 existence_probability\n"
        "autoware_perception_msgs/ObjectClassification[] classification\n"
        "autoware_perception_msgs/DetectedObjectKinematics kinematics\n"
        "autoware_perception_msgs/Shape shape\n",
    "autoware_perception_msgs/msg/ObjectClassification":
        "uint8 UNKNOWN=0\nuint8 CAR=1\nuint8 TRUCK=2\nuint8 BUS=3\nuint8 TRAILER=4\n"
        "uint8 MOTORCYCLE=5\nuint8 BICYCLE=6\nuint8 PEDESTRIAN=7\nuint8 ANIMAL=8\nuint8 HAZARD=9\n"
        "uint8 OVER_DRIVABLE=10\nuint8 UNDER_DRIVABLE=11\n"
        "uint8 label\n"
        "float32 probability\n",
    "autoware_perception_msgs/msg/DetectedObjectKinematics":
        "uint8 UNAVAILABLE=0\nuint8 SIGN_UNKNOWN=1\nuint8 AVAILABLE=2\n"
        "geometry_msgs/PoseWithCovariance pose_with_covariance\n"
        "bool has_position_covariance\n"
        "uint8 orientation_availability\n"
        "geometry_msgs/TwistWithCovariance twist_with_covariance\n"
        "bool has_twist\n"
        "bool has_twist_covariance\n",
    "autoware_perception_msgs/msg/Shape":
        "uint8 BOUNDING_BOX=0\nuint8 CYLINDER=1\nuint8 POLYGON=2\n"
        "uint8 type\n"
        "geometry_msgs/Polygon footprint\n"
        "geometry_msgs/Vector3 dimensions\n",
}

ROIS = "tier4_perception_msgs/msg/DetectedObjectsWithFeature"


def published_typestore() -> Typestore:
    """ROS 2 Jazzy's types plus Autoware's ROI types from :data:`PUBLISHED`."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for name, text in PUBLISHED.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def roi_rows(msg) -> list[tuple[int, float, float, int, int, int, int, bool]]:
    """(label, probability, existence_probability, x_offset, y_offset, width, height, do_rectify)
    of each object of a decoded DetectedObjectsWithFeature."""
    rows = []
    for fo in msg.feature_objects:
        (cls,) = fo.object.classification
        roi = fo.feature.roi
        rows.append((int(cls.label), float(cls.probability), float(fo.object.existence_probability),
                     int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height),
                     bool(roi.do_rectify)))
    return rows
