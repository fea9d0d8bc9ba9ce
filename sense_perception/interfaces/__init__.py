"""Message definitions the project carries, byte-for-byte compatible with the upstream packages.

* ``vision_msgs/msg/*.msg``: the vision_msgs 4.x types the nodes publish;
* ``foxglove_msgs/msg/*.msg``: the foxglove_msgs 3.x types of ``ImageAnnotations`` (boxes drawn
  over camera images in Foxglove's Image panel);
* ``autoware_perception_msgs/msg/*.msg`` (1.x) and ``tier4_perception_msgs/msg/*.msg`` (0.1.x): the
  subset behind ``tier4_perception_msgs/DetectedObjectsWithFeature``, the per-camera 2-D detections
  Autoware's camera-LiDAR fusion reads (:mod:`sense_perception.core.autoware`).
* ``tf2_msgs/msg/TFMessage``: what ``/tf_static`` carries, read by object_detector for the camera
  mounts (tf2_ros has no wheel; a ROS 2 install has the same type in ros-$ROS_DISTRO-tf2-msgs).

rosbags needs them to write these types into bags without a ROS install; the ROS test environment
(tools/make_ros_env.sh) builds real typesupport from the same files.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: In build order: a package comes after the packages its messages use.
PACKAGES = ("vision_msgs", "foxglove_msgs", "tf2_msgs", "autoware_perception_msgs",
            "tier4_perception_msgs")


def definitions(package: str) -> dict[str, str]:
    """Return ``{"<package>/msg/Name": msg_text}`` for every bundled definition of ``package``.

    Raises:
        ValueError: ``package`` is not one of :data:`PACKAGES`.
    """
    if package not in PACKAGES:
        raise ValueError(f"no bundled message definitions for {package!r}; bundled: {', '.join(PACKAGES)}")
    folder = Path(str(files(__package__) / package / "msg"))
    return {f"{package}/msg/{p.stem}": p.read_text() for p in sorted(folder.glob("*.msg"))}
