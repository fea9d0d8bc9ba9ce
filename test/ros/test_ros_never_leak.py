"""Nothing the running nodes put on the DDS domain names the driver or the user (R93).

`sense-perception run` (driver_monitor and object_detector) runs as a user whose home folder bears
a name (here `qzhomeowner`, as `/home/alice` would), with the default gallery under it and its
`--config` there too, and the enrolled driver has a distinctive display name. The test listens,
from before the process starts, to every topic of the graph as raw bytes (/rosout,
/diagnostics, /parameter_events and every output; the events of the parameters' declaration
go out before any subscription can match, and carry what the parameter services answer, which
the test reads), drives the warning and error paths (the
driver recognised, a gallery re-read that fails, the reload service refused, the gallery replaced,
the driver forgotten while the node runs) and reads every parameter through the parameter
services. Neither the display name nor the home folder's name may appear in any of it; the node's
local log keeps the gallery's full path. Before R93, the configure line
(`face models loaded ...; gallery /home/.../gallery.json: 1 driver(s)`), `gallery_error` in
/diagnostics and the reload service's answer carried the gallery's full path.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

from ros_helpers import (DATA, NodeProcess, cabin_stream, enrol_driver, publish_until, read_bgr,
                         status_values, wait_active, write_params)

pytestmark = pytest.mark.ros

NAME = "Zorbalina Quetzalfeather"  # the driver's display name
HOME_OWNER = "qzhomeowner"  # the name of the user's home folder
CABIN = "/sp_leak/cabin/image_raw/compressed"
FRONT = "/sp_leak/front/image_raw"
WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]  # portraits: the face is anywhere, not at a driver's seat position
NODES = ("/driver_monitor", "/object_detector")


def _message_class(type_name: str) -> Any:
    """The Python class of a ROS type name (``pkg/msg/Name``)."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class RawTap:
    """Every message on every topic of the graph, as the bytes a participant receives."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.messages: dict[str, list[bytes]] = {}

    def listen(self, topic: str, type_name: str) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        if topic in self.messages:
            return
        got = self.messages[topic] = []
        # /rosout keeps what was logged before the tap matched (transient local); best effort and
        # volatile match every other publisher, whatever it offers
        qos = (QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL) if topic == "/rosout"
               else QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.graph._entities.append(self.graph.node.create_subscription(
            _message_class(type_name), topic, got.append, qos, raw=True))

    def listen_to_all(self) -> None:
        """Subscribe to every topic the graph has now (the nodes' outputs appear at configure)."""
        for topic, types in self.graph.node.get_topic_names_and_types():
            self.listen(topic, types[0])

    def holding(self, needle: str) -> dict[str, int]:
        """Topic -> how many of its messages hold ``needle`` (case-insensitive)."""
        low = needle.lower().encode()
        return {t: n for t, msgs in self.messages.items()
                if (n := sum(low in m.lower() for m in msgs))}


def _parameters(graph: Any, node: str) -> str:
    """Everything the parameter services of ``node`` tell any participant, as text."""
    from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters

    names = graph.call(ListParameters, f"{node}/list_parameters", ListParameters.Request()).result.names
    values = graph.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names))
    described = graph.call(DescribeParameters, f"{node}/describe_parameters",
                           DescribeParameters.Request(names=names))
    assert "gallery.path" in names or node != "/driver_monitor", names
    return f"{list(names)} {values.values} {described.descriptors}"


def _replace(path: Path, data: bytes) -> None:
    """Put ``data`` in place of ``path`` at once, as an editor or a restore would (mode 0600)."""
    swap = path.with_name("swap")
    swap.write_bytes(data)
    swap.chmod(0o600)
    os.replace(swap, path)


def test_no_display_name_or_home_path_reaches_the_domain(graph, ros_env, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage
    from std_srvs.srv import Trigger
    from vision_msgs.msg import Classification

    from sense_perception.face import GalleryStore
    from sense_perception.face.model_fold import CACHE_ENV, cache_dir

    home = tmp_path / "home" / HOME_OWNER
    home.mkdir(parents=True, mode=0o700)
    gallery = home / ".local" / "share" / "sense_perception" / "gallery.json"  # the default
    driver = enrol_driver(gallery, NAME, ["obama_1_official_portrait_2012.jpg",
                                          "obama_2_congress_2009.jpg"])
    good = gallery.read_bytes()
    assert NAME.encode() in good  # the name is there to leak
    config = write_params(home / "perception.yaml", {
        "object_detector": {"camera_topics": [FRONT], "no_input_warn_s": 60.0,
                            "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}},
        "driver_monitor": {"camera_topic": CABIN, "no_input_warn_s": 60.0,
                           "face": {"driver_region": WHOLE_IMAGE},
                           "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}},
    })
    env = {k: v for k, v in ros_env.items()
           if k not in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "SENSE_PERCEPTION_GALLERY")}
    # the folded face models of this machine's cache, not a rebuild under the new home
    env.update({"HOME": str(home), CACHE_ENV: str(cache_dir())})

    tap = RawTap(graph)
    for topic, type_name in (("/rosout", "rcl_interfaces/msg/Log"),
                             ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
                             ("/parameter_events", "rcl_interfaces/msg/ParameterEvent")):
        tap.listen(topic, type_name)
    logs = graph.subscribe(Log, "/rosout", QoSProfile(
        depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    statuses = graph.subscribe(DiagnosticArray, "/diagnostics", 100)
    proc = NodeProcess(["-m", "sense_perception.cli.main", "run", "--config", str(config)], env,
                       tmp_path / "run.log")
    try:
        for node in NODES:
            wait_active(graph, proc, node)
        tap.listen_to_all()
        ids = graph.subscribe(Classification, "/sp_leak/cabin/driver_identity")
        pub = graph.publisher(CompressedImage, CABIN, QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        graph.wait_subscribed(pub)
        frames = cabin_stream(read_bgr(DATA / "faces" / "obama_3_blue_room_2010.jpg"), 1000)
        sent = [0]

        def stream(accept, timeout: float = 60.0) -> Any:
            def make(i: int) -> Any:
                sent[0] += 1
                return frames(sent[0])
            return publish_until(graph, pub, make, ids, accept=accept, timeout=timeout)[1]

        def status_until(predicate) -> dict[str, str]:
            """Send frames until driver_monitor's /diagnostics satisfies ``predicate`` (statuses
            received from now on)."""
            found: list[dict[str, str]] = []
            statuses.clear()

            def seen(_msg: Any) -> bool:
                for array_ in statuses:
                    for s in array_.status:
                        if s.name == "/driver_monitor" and predicate(status_values(s), s):
                            found.append(status_values(s) | {"message": s.message})
                return bool(found)
            stream(seen, 60.0)
            return found[-1]

        # 1. the driver is recognised: their pseudonymous id, never their name
        stream(lambda r: r.results[0].class_id == driver)
        # 2. the gallery re-read fails (replaced by a corrupt file): gallery_error, a WARN
        _replace(gallery, b"{ not json")
        values = status_until(lambda v, s: "gallery_error" in v)
        error = values["gallery_error"]
        assert "<gallery.path> is not valid JSON" in error, error  # named by its setting
        assert "enrolled_drivers" in values and values["enrolled_drivers"] == "1"  # kept
        # 3. the reload service, which any participant may call, refuses it
        answer = graph.call(Trigger, "/driver_monitor/reload_gallery", Trigger.Request())
        assert not answer.success and "<gallery.path>" in answer.message, answer.message
        assert HOME_OWNER not in answer.message
        # 4. the gallery replaced by a good one: the error clears, the driver is recognised
        _replace(gallery, good)
        status_until(lambda v, s: "gallery_error" not in v and v.get("driver_id") == driver)
        answer = graph.call(Trigger, "/driver_monitor/reload_gallery", Trigger.Request())
        assert answer.success, answer.message
        # 5. the driver forgotten while the node runs
        GalleryStore(gallery).forget(driver)
        status_until(lambda v, s: v.get("enrolled_drivers") == "0" and v.get("driver_id") == "")
        parameters = " ".join(_parameters(graph, node) for node in NODES)
        graph.spin_for(2.0)  # the last lines and statuses reach the tap
    finally:
        code = proc.stop()
        output = proc.output()
        print(output)
        print(f"exit code {code}")
    lines = [m.msg for m in logs if m.name in ("driver_monitor", "object_detector")]
    # the paths were taken: the configure line, the failed reload, on /rosout
    assert any("face models loaded" in line and "<gallery.path>" in line for line in lines), lines
    assert any(line.startswith("gallery reload failed") for line in lines), lines
    assert tap.messages["/rosout"] and tap.messages["/diagnostics"]
    assert any(tap.messages.get(f"/sp_leak/cabin/{t}") for t in ("faces", "driver_identity"))
    for needle in (*NAME.split(), HOME_OWNER):
        assert tap.holding(needle) == {}, (needle, tap.holding(needle), lines)
        assert needle.lower() not in parameters.lower(), (needle, parameters)
    # the node's local log (its standard error, never on the domain) keeps the full path
    assert f"{gallery} is not valid JSON" in output, output


def test_rosout_lines_are_redacted_and_keep_their_throttle(graph, context, monkeypatch):
    """The node's logger labels the home folder in what /rosout carries; rclpy's per-line filters
    (throttle) still tell its calls apart by the line that called, not by the wrapper."""
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from ros_helpers import ROOT
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    home = str(ROOT.parent)
    monkeypatch.setenv("HOME", home)
    logs = graph.subscribe(Log, "/rosout", QoSProfile(
        depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    node = DriverMonitorNode("leak_source_file", context=context)
    try:
        for _ in range(3):  # one call site, throttled: one line
            node.get_logger().warning(f"r93 line from {home}/x", throttle_duration_sec=60.0)
        node.get_logger().info("r93 second line")
        graph.spin_until(lambda: [m for m in logs if m.name == "leak_source_file"
                                  and m.msg.startswith("r93")], 10.0)
        graph.spin_for(0.5)
        mine = [m for m in logs if m.name == "leak_source_file" and m.msg.startswith("r93")]
        assert [m.msg for m in mine] == ["r93 line from ~/x", "r93 second line"], mine
        assert all(m.function == "test_rosout_lines_are_redacted_and_keep_their_throttle"
                   for m in mine), mine
    finally:
        node.destroy_node()


def _sniff_loopback(seconds: float, pids: dict[str, int]) -> dict[str, list[bytes]]:
    """Who of ``pids`` (label -> process id) announced Fast DDS's physical data (host, OS user,
    process id) on the loopback interface within ``seconds``: label -> the property bytes seen."""
    import socket
    import time

    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
    except (PermissionError, AttributeError, OSError) as exc:
        pytest.skip(f"reading the loopback interface needs CAP_NET_RAW on Linux: {exc}")
    seen: dict[str, list[bytes]] = {label: [] for label in pids}
    with sock:
        sock.bind(("lo", 0))
        sock.settimeout(0.2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = sock.recv(65535)
            except socket.timeout:
                continue
            at = data.find(b"fastdds.physical_data.host")
            if at < 0:
                continue
            announced = data[at:at + 200]
            for label, pid in pids.items():
                if b"\x00" + str(pid).encode() + b"\x00" in announced:
                    seen[label].append(announced)
    return seen


def test_the_nodes_do_not_announce_the_os_user_to_the_domain(ros_env, tmp_path):
    """Fast DDS's discovery carried the OS user name, host name and process id of every node to
    each participant of the domain (``fastdds.physical_data.user``). A node started without a
    Fast DDS profile of the user's own now runs with the package's, which keeps them in the
    process; a plain rclpy participant beside it, in the same environment, still announces them
    (Fast DDS's default, and proof that the capture sees them)."""
    import subprocess
    import sys

    from ros_helpers import ROOT, start_node

    env = {k: v for k, v in ros_env.items()
           if k not in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE",
                        "FASTDDS_BUILTIN_TRANSPORTS")}
    params = write_params(tmp_path / "params.yaml", {"driver_monitor": {
        "camera_topic": "/sp_leak_dds/cabin/image_raw", "gallery": {"path": str(tmp_path / "g.json")},
        "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}}})
    node = start_node("driver_monitor_node", params, env, tmp_path / "node.log")
    plain = subprocess.Popen([sys.executable, "-c", "import rclpy, time; rclpy.init(); "
                              "n = rclpy.create_node('sp_leak_plain'); time.sleep(30)"],
                             env=env, cwd=ROOT)
    try:
        seen = _sniff_loopback(12.0, {"node": node.proc.pid, "plain": plain.pid})
        assert node.alive(), node.output()  # announcing all along (unconfigured, no camera)
    finally:
        plain.kill()
        plain.wait(timeout=10)
        node.stop()
    assert seen["plain"], "the capture saw no physical data of a plain participant"
    assert seen["node"] == [], (seen["node"][:1], node.output())
