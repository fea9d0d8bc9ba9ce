"""``launch/autoware.launch.py``: object_detector as Autoware's camera detector, in place of
autoware_tensorrt_yolox (one node for all cameras instead of one YOLOX per camera).

:func:`node_parameters` is ROS-free (tested without ROS); :func:`launch_description` imports
``launch`` / ``launch_ros`` and is only called by the launch file.

Camera i is Autoware's ``/sensing/camera/camera<i>/image_rect_color`` (``.../compressed`` with
``image_transport:=compressed``); its ROIs go to ``/perception/object_recognition/detection/rois<i>``
(``autoware.rois_topic`` of config/autoware.yaml); a calibrated camera's DetectedObjects to
``/perception/object_recognition/detection/camera<i>/objects`` (``autoware.objects_topic``).
"""
from __future__ import annotations

import re
from typing import Any

from ..core.autoware.rois import rois_topics
from ..errors import ConfigError
from ..face.privacy import check_cabin_not_exterior
from . import launch_support
from .settings import CABIN_CAMERA_TOPIC

#: Autoware's most cameras (rois0..rois7 in its fusion launch files).
MAX_CAMERAS = 8
IMAGE_TRANSPORTS = ("raw", "compressed")
CAMERA_TOPIC = "/sensing/camera/camera{i}/image_rect_color"

#: name -> (default, description). "" means "keep the config file's value".
ARGUMENTS: dict[str, tuple[str, str]] = {
    # "" = not given (1 and raw): given beside camera_topics they are refused, not ignored.
    "image_number": ("", f"number of cameras, 1 to {MAX_CAMERAS}: Autoware's camera0.."
                         "camera<image_number - 1> ('' = 1)"),
    "image_transport": ("", "raw (sensor_msgs/Image on .../image_rect_color) or compressed "
                            "(sensor_msgs/CompressedImage on .../image_rect_color/compressed); "
                            "'' = raw"),
    "camera_topics": ("", "comma-separated camera topics instead of image_number and "
                          "image_transport (each camera's ROIs go to rois<i>, i from its topic)"),
    "config": ("autoware", "ROS 2 parameter YAML of object_detector, or a bundled one by name "
                           "(default autoware: share/sense_perception/config/autoware.yaml)"),
    "namespace": ("", "namespace of the node"),
    "use_sim_time": ("", "true/false ('' = not set here: Autoware's global use_sim_time applies)"),
    "autostart": ("", "true/false: configure and activate at start ('' = config's autostart)"),
    "log_level": ("info", "log level of the node: debug, info, warn, error"),
}


def camera_topics(image_number: str, image_transport: str) -> list[str]:
    """Autoware's camera topics ``camera0 .. camera<image_number - 1>``.

    Raises:
        ConfigError: image_number is not 1 to 8, or image_transport is not raw or compressed.
    """
    # ASCII digits only: int() also takes '٣' or '1_0'.
    count = int(image_number) if re.fullmatch(r"\s*[0-9]{1,3}\s*", image_number) else 0
    if not 1 <= count <= MAX_CAMERAS:
        raise ConfigError(f"launch argument image_number:={image_number!r} must be a whole number "
                          f"from 1 to {MAX_CAMERAS}")
    if image_transport not in IMAGE_TRANSPORTS:
        raise ConfigError(f"launch argument image_transport:={image_transport!r} must be one of "
                          f"{', '.join(IMAGE_TRANSPORTS)}")
    suffix = "/compressed" if image_transport == "compressed" else ""
    return [CAMERA_TOPIC.format(i=i) + suffix for i in range(count)]


def node_parameters(args: dict[str, str]) -> dict[str, Any]:
    """object_detector's parameters for Autoware, from the config and the launch arguments (ROS-free).

    Args:
        args: launch argument values as strings (missing ones take their defaults).
    """
    values = {name: args.get(name, default) for name, (default, _) in ARGUMENTS.items()}
    if values["camera_topics"]:
        given = [f"{name}:={values[name]}" for name in ("image_number", "image_transport")
                 if values[name]]
        if given:
            raise ConfigError(f"launch argument camera_topics names the cameras itself; "
                              f"{' and '.join(given)} would be ignored: give either camera_topics "
                              "or image_number (and image_transport)")
        topics = ",".join(launch_support.camera_topic_list(values["camera_topics"]))
    else:
        topics = ",".join(camera_topics(values["image_number"] or "1",
                                        values["image_transport"] or "raw"))
    params = launch_support.node_parameters("object_detector", {
        "config": values["config"], "use_sim_time": values["use_sim_time"],
        "autostart": values["autostart"], "camera_topics": topics})
    if not values["use_sim_time"] and not _config_sets_sim_time(values["config"]):
        # A parameter given to the node would override Autoware's global SetParameter(use_sim_time).
        params.pop("use_sim_time", None)
    # Refused here, before the node starts (its configure would refuse them too).
    cabin = str(params.get("cabin_camera_topic", CABIN_CAMERA_TOPIC))
    if cabin:
        check_cabin_not_exterior(cabin, params["camera_topics"],
                                 "object_detector's cabin_camera_topic", "launch argument "
                                 "camera_topics", "remove it from camera_topics")
    for name in ("autoware.rois_topic", "autoware.objects_topic"):
        rois_topics(params["camera_topics"], str(params.get(name, "")), name)
    return params


def _config_sets_sim_time(config: str) -> bool:
    from ..config import load_params, resolve_config

    return "use_sim_time" in load_params(resolve_config(config), "object_detector")


def launch_description() -> Any:
    """LaunchDescription declaring :data:`ARGUMENTS` and starting object_detector for Autoware."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_node_actions)])


def _node_actions(context: Any) -> list[Any]:
    from launch_ros.actions import LifecycleNode

    args = {name: context.launch_configurations.get(name, default)
            for name, (default, _) in ARGUMENTS.items()}
    return [LifecycleNode(
        package="sense_perception", executable="object_detector", name="object_detector",
        namespace=args["namespace"], parameters=[node_parameters(args)], output="screen",
        emulate_tty=True, arguments=["--ros-args", "--log-level", args["log_level"]])]
