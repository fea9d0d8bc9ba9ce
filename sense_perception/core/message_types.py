"""The ROS message types the package reads, and the topic names fixed by ROS, spelled once (ROS-free).

The nodes subscribe to them and the replay finds them in a bag by these names. The types of the
outputs are the output table's (:mod:`sense_perception.core.output.frame_outputs`).
"""
from __future__ import annotations

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
#: The camera image types an input may be.
IMAGE_TYPES = frozenset({IMAGE, COMPRESSED_IMAGE})
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
#: The static transforms (a camera's mount on base_link).
TF_STATIC = "/tf_static"

__all__ = ["CAMERA_INFO", "COMPRESSED_IMAGE", "IMAGE", "IMAGE_TYPES", "TF_MESSAGE", "TF_STATIC"]
