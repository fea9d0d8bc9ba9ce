"""What the launch files in ``launch/`` share: their arguments and the lifecycle node actions.

:func:`node_parameters` is ROS-free (tested without ROS); :func:`launch_description` imports
``launch`` / ``launch_ros`` and is only called by the launch files.

The config file is read here with :func:`sense_perception.config.load_params`, the loader every
command uses (the node's own section merged over ``/**``, an overlay such as ``carla`` merged over
its ``# base:`` file, unknown names refused) and handed to the node as a parameter dict, so a node
started in any namespace gets its section (a params file keyed ``object_detector:`` would only match
the root namespace).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Sequence

from ..config import BUNDLED_CONFIGS, bundled_config, load_params, resolve_config
from ..core.output.topics import check_topic_names, private_as_relative
from ..errors import ConfigError
from .settings import ros_param_value

NODES = ("object_detector", "driver_monitor")

#: name -> (default, description). "" means "keep the config file's value".
ARGUMENTS: dict[str, tuple[str, str]] = {
    "config": ("", "ROS 2 parameter YAML of the nodes, or a bundled one by name: "
                   f"{', '.join(BUNDLED_CONFIGS)} (share/sense_perception/config/<name>.yaml; "
                   "'' = perception)"),
    "namespace": ("", "namespace of the nodes"),
    "use_sim_time": ("", "true/false: take time from /clock (a simulator, a bag played with "
                         "--clock) ('' = the config's use_sim_time: true in carla and awsim; "
                         "without one an including launch file's global use_sim_time, else false)"),
    "autostart": ("", "true/false: configure and activate at start ('' = config's autostart)"),
    "camera_topics": ("", "object_detector camera topics, comma-separated ('' = from config)"),
    "camera_topic": ("", "driver_monitor cabin camera topic ('' = from config)"),
    "gallery_path": ("", "driver_monitor gallery file ('' = from config)"),
    "log_level": ("info", "log level of the nodes: debug, info, warn, error, fatal (or LOGGER:=LEVEL)"),
}
NODE_ARGUMENTS = {
    "object_detector": ("config", "namespace", "use_sim_time", "autostart", "camera_topics", "log_level"),
    "driver_monitor": ("config", "namespace", "use_sim_time", "autostart", "camera_topic",
                       "gallery_path", "log_level"),
}


def default_config() -> Path:
    """config/perception.yaml: in the install share directory or the source tree."""
    return bundled_config("perception")


def _bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"launch argument {name}:={text!r} must be true or false")


def node_parameters(node_name: str, args: dict[str, str]) -> dict[str, Any]:
    """Parameters of ``node_name`` from the config file and the launch arguments (ROS-free).

    Args:
        node_name: ``object_detector`` or ``driver_monitor``.
        args: launch argument values as strings (missing ones take their defaults).
    """
    values = {name: args.get(name, default) for name, (default, _) in ARGUMENTS.items()}
    config = resolve_config(values["config"]) if values["config"] else default_config()
    params = {k: ros_param_value(v) for k, v in load_params(config, node_name).items()}
    if values["use_sim_time"]:
        params["use_sim_time"] = _bool("use_sim_time", values["use_sim_time"])
    # Neither given nor in the config: not passed, so an including launch file's global
    # SetParameter(use_sim_time) applies (false without one). An explicit false here, the node's
    # own parameter file, won over it: a simulation bringup ran these nodes on wall time, unsaid.
    if values["autostart"]:
        params["autostart"] = _bool("autostart", values["autostart"])
    if node_name == "object_detector" and values["camera_topics"]:
        # refused as autoware.launch.py refuses it: `a,,b` dropped an item in silence, and `,`
        # (or a blank) gave the node no camera at all
        params["camera_topics"] = camera_topic_list(values["camera_topics"])
    if node_name == "object_detector" and values["camera_topic"]:
        # never among its cameras; driver_monitor's `~/x` is driver_monitor's, not its own (R81)
        params["cabin_camera_topic"] = private_as_relative(values["camera_topic"], "driver_monitor")
    if node_name == "driver_monitor":
        if values["camera_topics"]:  # the exterior cameras: never face identification there
            # added to the config file's (load_params gives its object_detector.camera_topics),
            # as run adds object_detector's cameras to them: replaced, a camera the file calls
            # exterior could be given as camera_topic and identified on
            given = params.get("exterior_camera_topics") or []
            params["exterior_camera_topics"] = list(dict.fromkeys(
                [*given, *(private_as_relative(t, "object_detector")
                           for t in camera_topic_list(values["camera_topics"]))]))
        if values["camera_topic"]:
            params["camera_topic"] = values["camera_topic"]
        if values["gallery_path"]:
            params["gallery.path"] = values["gallery_path"]
    return params


def camera_topic_list(value: str) -> list[str]:
    """The topics of ``camera_topics:=a,b``: each a ROS topic name, none empty, none twice.

    Raises:
        ConfigError: an empty item, a name ROS would not take or a topic named twice, naming
            the fix.
    """
    topics = [t.strip() for t in value.split(",")]
    if not all(topics):
        raise ConfigError(f"launch argument camera_topics:={value!r} holds an empty item (two "
                          "commas, or one at either end): give the camera topics separated by "
                          "single commas")
    check_topic_names(topics, "launch argument camera_topics")
    twice = sorted({t for t in topics if topics.count(t) > 1})
    if twice:
        raise ConfigError(f"launch argument camera_topics names {', '.join(twice)} twice: give "
                          "each camera once")
    return topics


#: The severities rcl's ``--log-level`` takes (any case).
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal", "unset")


def log_level_arguments(value: str) -> list[str]:
    """The node's ``--ros-args --log-level`` arguments for ``log_level:=VALUE``: a severity
    (:data:`LOG_LEVELS`), or ``LOGGER:=SEVERITY`` for one logger, as rcl takes it.

    Raises:
        ConfigError: anything rcl would refuse (``warning``, ``verbose``, a blank): the node
            process died at its start ("Couldn't parse log level", from rcl, naming no argument).
    """
    text = value.strip()
    level = text.rpartition(":=")[2]
    if level.lower() not in LOG_LEVELS or (":=" in text and not text.partition(":=")[0]):
        raise ConfigError(f"launch argument log_level:={value!r} is no log level: give one of "
                          f"{', '.join(LOG_LEVELS)} (or LOGGER:=LEVEL for one logger)")
    return ["--ros-args", "--log-level", text]


def launch_parameters(params: dict[str, Any]) -> list[Any]:
    """The ``parameters`` of a launch_ros node action: ``params`` as a dict, except its empty
    lists, which go into a parameter file of their own (its path follows the dict).

    launch_ros refuses an empty list in a parameter dict (a TypeError naming no parameter: the
    whole launch failed on ``pedestrian_band: []``, the documented "whole frame"); in a
    parameter file rcl reads ``[]`` as "not set", which the nodes take as the empty list
    (:func:`sense_perception.ros.node_common.declare_settings`). The file is written under
    ``/**`` (any namespace), as launch_ros writes a dict, and removed when the launch process
    ends (a respawned node reads it again until then; every launch left one in the temp folder).
    """
    import atexit
    import tempfile

    import yaml

    empty = sorted(k for k, v in params.items() if isinstance(v, (list, tuple)) and not v)
    given = {k: v for k, v in params.items() if k not in empty}
    if not empty:
        return [given]
    with tempfile.NamedTemporaryFile("w", prefix="sense_perception_empty_lists_", suffix=".yaml",
                                     delete=False) as f:
        yaml.safe_dump({"/**": {"ros__parameters": {k: [] for k in empty}}}, f)
    atexit.register(_remove_quietly, f.name)
    return [given, f.name]


def _remove_quietly(path: str) -> None:
    """Remove ``path`` if it is still there (at the launch process's exit)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def launch_description(nodes: Sequence[str]) -> Any:
    """LaunchDescription declaring the arguments of ``nodes`` and starting them as lifecycle nodes."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    names = [a for a in ARGUMENTS if any(a in NODE_ARGUMENTS[n] for n in nodes)]
    declared = [DeclareLaunchArgument(a, default_value=ARGUMENTS[a][0], description=ARGUMENTS[a][1])
                for a in names]
    return LaunchDescription([*declared, OpaqueFunction(function=_node_actions, args=[list(nodes)])])


def key_in_launch_warning(nodes: Sequence[str], args: dict[str, str]) -> str | None:
    """A warning when the gallery key's environment variable is set in ``ros2 launch``'s process.

    That process is ROS's, not this package's: it keeps its environment and stays dumpable (the
    nodes it starts make themselves non-dumpable, R74), so a crash of it handed to a crash
    reporter (apport, systemd-coredump) writes the key there, and it hands the variable to every
    node, object_detector too. Nothing here can take it out of that process (R88); the fix is
    ``gallery.key_file``. None when the variable is not set.
    """
    from ..fleet.key_env import key_variable

    config = args.get("config") or ARGUMENTS["config"][0]
    path = resolve_config(config) if config else default_config()
    name, read = key_variable(path, "driver_monitor" if "driver_monitor" in nodes else None)
    if not name or not os.environ.get(name):
        return None
    held = (f"the gallery key in the environment variable {name} is in the environment of "
            "`ros2 launch` itself, which stays dumpable (a crash of it handed to a crash reporter "
            "writes the key there), and of every node it starts")
    if read:
        return (f"{held}; fix: give the key as gallery.key_file in the config's driver_monitor "
                f"section (a file only you can read) and unset {name} before ros2 launch")
    return (f"{held}, and no node reads it (gallery.key_file is set, or no driver_monitor is "
            f"launched); fix: unset {name} before ros2 launch")


def _node_actions(context: Any, nodes: list[str]) -> list[Any]:
    from launch_ros.actions import LifecycleNode

    args = {name: context.launch_configurations.get(name, default)
            for name, (default, _) in ARGUMENTS.items()}
    warning = key_in_launch_warning(nodes, args)
    if warning:
        from launch.logging import get_logger

        get_logger("sense_perception.launch").warning(warning)
    return [
        LifecycleNode(
            package="sense_perception", executable=name, name=name, namespace=args["namespace"],
            parameters=launch_parameters(node_parameters(name, args)), output="screen",
            emulate_tty=True,
            arguments=log_level_arguments(args["log_level"]))
        for name in nodes
    ]
