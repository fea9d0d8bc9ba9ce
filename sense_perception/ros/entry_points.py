"""Console entry points of the two nodes, importable without ROS 2.

The node modules import rclpy and the message packages at their top, so an entry point naming
them directly ended, on an install without ROS 2, in an import traceback before any of our code
ran. These entry points import the node module first and turn a missing ROS 2 module into the
error ``sense-perception run`` prints (exit 2). An import error of anything else (a broken
dependency of ours) is not ROS 2's and is raised as it is.
"""
from __future__ import annotations

import sys

# Top-level modules that come from a ROS 2 install (rclpy and its helpers, message packages).
_ROS_MODULES = frozenset({"rclpy", "rpyutils", "rosidl_runtime_py", "rosidl_parser", "rosbag2_py",
                          "tf2_ros", "tf2_py", "launch", "launch_ros", "ament_index_python"})


def is_missing_ros(exc: ImportError) -> bool:
    """Whether ``exc`` says ROS 2 is missing (rclpy, an interface package), not something else.

    An ImportError without a module name (a C extension failing to load) is counted as ROS 2's
    when its text names rclpy or rcl, as rclpy's own loader errors do.
    """
    name = (exc.name or "").split(".")[0]
    if not name:
        text = str(exc)
        return "rclpy" in text or "librcl" in text
    # interface packages: messages (sensor_msgs), services (std_srvs: driver_monitor's
    # ~/reload_gallery), actions, and the *_interfaces ones
    return name in _ROS_MODULES or name.endswith(("_msgs", "_srvs", "_actions", "_interfaces"))


def ros_missing_message(command: str, exc: ImportError, program: str = "") -> str:
    """The error printed when ``command`` cannot start for want of ROS 2, naming the fix
    (``program``: the executable that runs it, when not ``command`` itself)."""
    return (f"error: `{command}` needs ROS 2 (rclpy and vision_msgs): {exc}. Source a ROS 2 "
            "install (with ros-$ROS_DISTRO-vision-msgs) or use the test environment: "
            f"make ros-env && .venv-ros/bin/{program or command} ...")


def _start(command: str, args: list[str] | None) -> int:
    """Import the node module of ``command`` and run its ``main``; exit 2 when ROS 2 is missing."""
    import importlib

    try:
        module = importlib.import_module(f"{__package__}.{command}_node")
    except ImportError as exc:
        if not is_missing_ros(exc):
            raise
        print(ros_missing_message(command, exc), file=sys.stderr)
        return 2
    return int(module.main(args))


def object_detector(args: list[str] | None = None) -> int:
    """``object_detector [--ros-args ...]``: the object_detector lifecycle node."""
    return _start("object_detector", args)


def driver_monitor(args: list[str] | None = None) -> int:
    """``driver_monitor [--ros-args ...]``: the driver_monitor lifecycle node."""
    return _start("driver_monitor", args)
