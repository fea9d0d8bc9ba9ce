"""`sense-perception run`: both ROS 2 nodes in one process (needs rclpy; imported only when run)."""
from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

from . import CONFIG_HELP, config_file

NODES = ("object_detector", "driver_monitor")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the `run` sub-command."""
    p = subparsers.add_parser(
        "run", help="run the ROS 2 nodes (object_detector, driver_monitor) in one process",
        description="Run the perception nodes in one process with a multi-threaded executor. "
                    "Parameters come from --config (the ROS 2 parameter YAML of both nodes); anything "
                    "after --ros-args goes to ROS (remaps, -p overrides, --log-level). Needs rclpy. "
                    "It runs until Ctrl-C, SIGTERM or SIGHUP (a closed terminal), then exits 0 "
                    "once the nodes are down; a later stop is ignored, one 5 s or more after the "
                    "first ends it at once (exit 128 + the first signal). A node that cannot "
                    "start is an error (exit 2).")
    p.add_argument("--config", metavar="FILE", type=config_file,
                   help="ROS 2 parameter YAML (sections object_detector and driver_monitor, or /**), "
                        f"{CONFIG_HELP}")
    p.add_argument("--nodes", nargs="+", choices=NODES, default=list(NODES), metavar="NODE",
                   help=f"which nodes to run (default: all: {' '.join(NODES)})")
    p.add_argument("--namespace", default="", metavar="NS", help="ROS namespace of the nodes (default: none)")
    p.add_argument("ros_args", nargs=argparse.REMAINDER,
                   help="--ros-args ... passed to ROS, e.g. --ros-args -r /camera/image_raw:=/front/image")
    p.set_defaults(func=cmd_run)
    return p


def cmd_run(args: argparse.Namespace) -> int:
    """Start the selected nodes and spin until Ctrl-C."""
    from ..ros.entry_points import is_missing_ros, ros_missing_message

    try:  # the node modules import rclpy and the message packages (sensor_msgs first)
        from ..ros.driver_monitor_node import DriverMonitorNode
        from ..ros.object_detector_node import ObjectDetectorNode
        from ..ros.run import run_nodes, to_parameters
    except ImportError as exc:
        if not is_missing_ros(exc):  # a broken dependency of ours is not "needs ROS 2"
            raise
        print(ros_missing_message("run", exc, "sense-perception run"), file=sys.stderr)
        return 2

    if "object_detector" in args.nodes:
        check_cabin_not_exterior(args.config)
    factories, kwargs = node_plan(args.config, args.nodes, args.namespace,
                                  {"object_detector": ObjectDetectorNode,
                                   "driver_monitor": DriverMonitorNode}, to_parameters)
    ros_args = list(args.ros_args)
    if ros_args and ros_args[0] == "--":
        ros_args = ros_args[1:]
    return run_nodes(factories, ["sense-perception", *ros_args], multi_threaded=True, node_kwargs=kwargs)


def node_plan(config: Any, nodes: list[str], namespace: str, classes: dict[str, Any],
              to_parameters: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """The node factories of ``run`` and their keyword arguments, driver_monitor first (its
    ``camera_topic`` as started is object_detector's cabin camera). With both nodes the
    config's hand-over of the other node's cameras is left out: ``cabin_first`` hands them as
    the nodes take them, at each configure; kept, the file's object_detector cameras stayed in
    driver_monitor's ``exterior_camera_topics`` after ``camera_topics`` was set to others (R95)."""
    from ..config import load_params

    both = set(NODES) <= set(nodes)
    if both:
        classes = cabin_first(classes, to_parameters)
    factories, kwargs = [], []
    for name in sorted(nodes, key=lambda n: n != "driver_monitor"):
        params = load_params(config, name, hand_over=not both)
        factories.append(classes[name])
        kwargs.append({"namespace": namespace,
                       # the config under the command line: -p NAME:=VALUE wins, as in ROS
                       "config_defaults": to_parameters(params, str(config or "defaults"))})
    return factories, kwargs


def cabin_first(classes: dict[str, Any], to_parameters: Any) -> dict[str, Any]:
    """Node factories for running both nodes: object_detector's ``cabin_camera_topic`` defaults
    to the ``camera_topic`` driver_monitor actually took, command line included
    (``-p driver_monitor:camera_topic:=...``), not only the config file's; so its configure
    refuses that camera among ``camera_topics`` (SECURITY.md P12). A ``cabin_camera_topic``
    given on the command line still wins. driver_monitor must be created first."""
    made: dict[str, Any] = {}
    monitor_class, detector_class = classes["driver_monitor"], classes["object_detector"]

    def driver_monitor(**kwargs: Any) -> Any:
        made["driver_monitor"] = node = monitor_class(**kwargs)
        node.cameras_handed_resolved = True  # its camera_topic below, as it resolves it (R87)
        return node

    def object_detector(**kwargs: Any) -> Any:
        monitor = made.get("driver_monitor")
        handed = [cabin_topic(monitor)] if monitor is not None else []
        if monitor is not None:
            kept = [p for p in kwargs.get("config_defaults", ()) if p.name != "cabin_camera_topic"]
            kwargs["config_defaults"] = [*kept, *to_parameters(
                {"cabin_camera_topic": handed[0]}, "driver_monitor's camera_topic")]
        node = detector_class(**kwargs)
        if monitor is not None:  # and driver_monitor never identifies on one of its cameras
            exterior: dict[str, list[str]] = {}  # the user's own, and the value handed last
            hand_exterior_cameras(node, monitor, exterior)
            node.cameras_handed_resolved = True  # as it resolves them (R87)
            # and again at each configure: a camera set at run time (`ros2 param set` between
            # cleanup and configure) is the other node's too (R92)
            monitor.take_peer_cameras = partial(hand_exterior_cameras, node, monitor, exterior)
            node.take_peer_cameras = partial(hand_cabin_camera, node, monitor, handed)
        return node

    for factory, cls in ((driver_monitor, monitor_class), (object_detector, detector_class)):
        factory.__module__ = cls.__module__  # run's error messages name the node by its module
    return {"driver_monitor": driver_monitor, "object_detector": object_detector}


def cabin_topic(monitor: Any) -> str:
    """driver_monitor's ``camera_topic`` as it subscribes to it: its remap rules applied (R40)."""
    topic = str(monitor.get_parameter("camera_topic").value)
    try:
        return str(monitor.resolve_topic_name(topic))
    except Exception:  # noqa: BLE001  an invalid name: driver_monitor's configure names it
        return topic


def hand_cabin_camera(detector: Any, monitor: Any, handed: list[Any]) -> None:
    """Give object_detector (about to configure) driver_monitor's ``camera_topic`` as it is now
    as its ``cabin_camera_topic``, so its configure refuses that camera among ``camera_topics``
    (P12) after driver_monitor was moved to another camera at run time (R92). ``handed`` holds
    the value handed last; a ``cabin_camera_topic`` given otherwise (the command line, a
    ``ros2 param set``) is the user's and wins, as when the nodes were built."""
    from rclpy.parameter import Parameter

    if detector.get_parameter("cabin_camera_topic").value != handed[0]:
        return
    topic = cabin_topic(monitor)
    if topic != handed[0] and detector.set_parameters(
            [Parameter("cabin_camera_topic", value=topic)])[0].successful:
        handed[0] = topic


def hand_exterior_cameras(detector: Any, monitor: Any,
                          handed: dict[str, list[str]] | None = None) -> None:
    """Give driver_monitor (created, or about to configure: R92) object_detector's
    ``camera_topics`` as it took them, command line included, and as its remap rules resolve
    them, as its ``exterior_camera_topics`` (R40): `-p object_detector:camera_topics:=[C]` naming the camera
    driver_monitor watches made object_detector refuse it and driver_monitor run face
    identification on a camera that command line calls exterior.

    ``handed`` (``run``'s, kept from one hand-over to the next) holds the user's own
    ``exterior_camera_topics`` (``own``: the value before the first hand-over, or one set since
    with ``ros2 param set``) and the value handed last (``set``): each hand-over replaces the
    last, so a camera object_detector no longer takes leaves the list (R95: it stayed until a
    restart, and driver_monitor set to it was refused as exterior)."""
    from rclpy.parameter import Parameter

    cameras = detector.get_parameter("camera_topics").value
    if not isinstance(cameras, (list, tuple)) or not all(isinstance(t, str) for t in cameras):
        return  # object_detector's configure names the wrong value
    from ..core.output.topics import private_as_relative

    names = []
    for topic in dict.fromkeys(str(t) for t in cameras if t):
        try:
            # as object_detector resolves it, only: as given too, a relative name (`image_raw`)
            # was another camera in driver_monitor's namespace (`-r driver_monitor:__ns:=`),
            # refused to it though no node calls it exterior (R95)
            names.append(detector.resolve_topic_name(topic))
        except Exception:  # noqa: BLE001  an invalid name: object_detector's configure names it
            # as given, but a private `~/x` is object_detector's: under driver_monitor's name
            # it was driver_monitor's own (R81)
            names.append(private_as_relative(topic, detector.get_name()))
    names = list(dict.fromkeys(names))
    given = monitor.get_parameter("exterior_camera_topics").value
    if not isinstance(given, (list, tuple)):
        given = []  # driver_monitor's configure names the wrong value
    given = list(map(str, given))
    if handed is not None:
        if "set" in handed and given == handed["set"]:
            given = handed["own"]  # unchanged since the last hand-over: only that is replaced
        else:
            handed["own"] = given
    names = list(dict.fromkeys([*given, *names]))
    current = list(map(str, monitor.get_parameter("exterior_camera_topics").value or []))
    if names != current and monitor.set_parameters(
            [Parameter("exterior_camera_topics", Parameter.Type.STRING_ARRAY, names)])[0].successful:
        current = names
    if handed is not None:
        handed["set"] = current


def check_cabin_not_exterior(config: Any) -> None:
    """Refuse a config whose object_detector.camera_topics lists the cabin camera
    (driver_monitor.camera_topic), as the replay does: it shows the driver, so it is never run
    through the object detector (whose debug image and annotations would publish the driver's
    face) nor treated as an exterior camera.

    Raises:
        PrivacyError: naming the topic and the fix.
    """
    from ..config import load_params
    from ..face.privacy import check_cabin_not_exterior as refuse
    from ..ros.settings import DriverMonitorNodeSettings, ObjectDetectorSettings

    from ..core.output.topics import private_as_relative

    # each node's private `~/x` is its own (R81): `~/image_raw` of both nodes is two cameras
    cabin = private_as_relative(str(load_params(config, "driver_monitor").get(
        "camera_topic", DriverMonitorNodeSettings.__dataclass_fields__["camera_topic"].default)),
        "driver_monitor")
    exterior = load_params(config, "object_detector").get(
        "camera_topics", ObjectDetectorSettings().camera_topics)
    if isinstance(exterior, (list, tuple)):
        exterior = [private_as_relative(str(t), "object_detector") for t in exterior]
        refuse(
            cabin, exterior, f"driver_monitor.camera_topic in {config or 'the default parameters'}",
            "object_detector.camera_topics",
            "remove it from camera_topics, or set camera_topic to the real cabin camera")
