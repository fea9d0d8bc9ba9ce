"""Node settings, config/perception.yaml and the launch files' parameter logic (ROS-free)."""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from sense_perception.config import bundled_config, load_params, resolve_config, section_from_params
from sense_perception.core.autoware.rois import AutowareConfig, check_camera_info_topic
from sense_perception.core.detection.detector import ClassThresholds, DetectorConfig
from sense_perception.core.detection.duplicates import DuplicateSettings
from sense_perception.core.detection.ignore_regions import IgnoreRegionSettings
from sense_perception.core.detection.low_light import LowLightSettings
from sense_perception.core.health.camera_settings import (CabinCameraHealthSettings,
                                                           CameraHealthSettings, Hysteresis)
from sense_perception.core.imaging.frame_guard import InputLimits
from sense_perception.core.runtime.session import RuntimeConfig
from sense_perception.core.tracking.ground_motion import VelocityConfig
from sense_perception.core.detection.tiling import TilingConfig
from sense_perception.core.tracking.tracker import TrackingConfig
from sense_perception.errors import ConfigError, PrivacyError
from sense_perception.face.attention.state import AttentionConfig
from sense_perception.face.decision import IdentityConfig
from sense_perception.face.gallery import GalleryConfig
from sense_perception.face.settings import DriverMonitorSettings, FaceConfig
from sense_perception.ros import launch_support
from sense_perception.ros.settings import (DriverMonitorNodeSettings, ObjectDetectorSettings,
                                           check_param_names, output_namespace, output_namespaces,
                                           ros_param_value, transport_kind)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "perception.yaml"
# The simulator set-ups: overlays on perception.yaml (# base: perception.yaml), values tuned for the simulator.
SIM_CONFIGS = {"carla": ROOT / "config" / "carla.yaml", "awsim": ROOT / "config" / "awsim.yaml"}
ALL_CONFIGS = {"perception": CONFIG, **SIM_CONFIGS}
# Parameters rclpy declares itself, allowed in a config next to the nodes' own.
ROS_DECLARED = {"use_sim_time"}
# camera_health.* and its per-condition hysteresis groups (an instance: its values are the defaults)
def _health(cls: type[CameraHealthSettings]) -> list:
    return [("camera_health.", cls)] + [
        (f"camera_health.{f.name}.", getattr(cls(), f.name))
        for f in dataclasses.fields(cls) if f.type in ("Hysteresis", Hysteresis)]


HEALTH, CABIN_HEALTH = _health(CameraHealthSettings), _health(CabinCameraHealthSettings)
SECTIONS = {
    "object_detector": [("", ObjectDetectorSettings), ("input.", InputLimits), ("detector.", DetectorConfig),
                        ("detector.class_thresholds.", ClassThresholds),
                        ("detector.duplicates.", DuplicateSettings),
                        ("detector.ignore_regions.", IgnoreRegionSettings),
                        ("detector.low_light.", LowLightSettings),
                        ("tiling.", TilingConfig), ("tracking.", TrackingConfig),
                        ("tracking.velocity.", VelocityConfig), ("runtime.", RuntimeConfig),
                        ("autoware.", AutowareConfig), *HEALTH],
    "driver_monitor": [("", DriverMonitorNodeSettings), ("", DriverMonitorSettings), ("input.", InputLimits),
                       ("face.", FaceConfig),
                       ("identity.", IdentityConfig), ("gallery.", GalleryConfig),
                       ("attention.", AttentionConfig), ("runtime.", RuntimeConfig), *CABIN_HEALTH],
}


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


@pytest.mark.parametrize("name", list(ALL_CONFIGS))
@pytest.mark.parametrize("node", list(SECTIONS))
def test_config_lists_every_parameter(node, name):
    """Every shipped config lists every parameter; perception.yaml with its default value, and the
    simulator overlays through it."""
    path = ALL_CONFIGS[name]
    params = load_params(path, node)
    text = path.read_text() + (CONFIG.read_text() if path != CONFIG else "")
    known = set(ROS_DECLARED)
    for prefix, cls in SECTIONS[node]:
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(_default(f)):
                continue  # a nested section (detector.class_thresholds), listed with its prefix
            key = prefix + f.name
            known.add(key)
            if key not in params:
                # only a parameter whose default (an empty list) a ROS params file cannot hold may be
                # documented as a comment
                assert _default(f) == [] and re.search(rf"#\s*{f.name}:", text), f"{key} not documented"
                continue
            if path != CONFIG:
                continue  # a simulator set-up chooses its own values
            if key == "exterior_camera_topics":  # the loader gives it object_detector's cameras
                assert params[key] == load_params(path, "object_detector")["camera_topics"], key
                continue
            default = _default(f) if isinstance(cls, type) else getattr(cls, f.name)
            value = params[key]
            if isinstance(default, float):
                assert value == pytest.approx(default, rel=1e-6), key
            else:
                assert value == default, key
    assert set(params) <= known, f"unknown keys in {path.name}: {set(params) - known}"
    assert params.get("use_sim_time", False) is (path != CONFIG)  # simulators: time from /clock


@pytest.mark.parametrize("node", list(SECTIONS))
def test_docs_name_every_parameter(node):
    """docs/configuration.md, or the page its section links to (camera health, attention, ground
    positions ...), names every parameter a node declares: `leaf`, `prefix.leaf` or `.leaf`.
    (perception.yaml lists them all, test above; this keeps a new one from going unexplained.)"""
    docs = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
    unnamed = []
    for prefix, cls in SECTIONS[node]:
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(_default(f)):
                continue
            if prefix == "detector.class_thresholds.":  # documented as class_thresholds.<label>
                continue
            if not re.search(rf"[`.]{re.escape(f.name)}\b", docs):
                unnamed.append(prefix + f.name)
    assert not unnamed, f"{node} parameters no docs/*.md page names: {unnamed}"


@pytest.mark.parametrize("node, cls", [("object_detector", ObjectDetectorSettings),
                                       ("driver_monitor", DriverMonitorNodeSettings)])
def test_node_prefixes_are_the_config_sections(node, cls):
    assert {prefix.split(".")[0] for prefix, _ in SECTIONS[node] if prefix} | (
        {"face", "identity", "gallery", "attention", "runtime"} if node == "driver_monitor" else set()) == set(cls.PREFIXES)
    for path in ALL_CONFIGS.values():  # the shipped configs pass the node's own check
        params = {k: v for k, v in load_params(path, node).items() if k not in ROS_DECLARED}
        check_param_names(params, cls, str(path))


def test_replaced_and_misspelt_parameter_names_are_refused():
    with pytest.raises(ConfigError, match=r"'decode_max_pixels' was replaced by input\.max_pixels") as exc:
        check_param_names({"decode_max_pixels": 5}, ObjectDetectorSettings, "my.yaml")
    assert "my.yaml" in str(exc.value)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) inputs\.max_pixels") as exc:
        check_param_names({"inputs.max_pixels": 5, "input.max_pixels": 5}, ObjectDetectorSettings, "my.yaml")
    assert "input.*" in str(exc.value) and "detector.*" in str(exc.value)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) detector\.model"):
        check_param_names({"detector.model": "x"}, DriverMonitorNodeSettings, "my.yaml")  # not its section
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) camera_topic\b"):
        check_param_names({"camera_topic": "/a"}, ObjectDetectorSettings, "my.yaml")


@pytest.mark.parametrize("name", list(ALL_CONFIGS))
def test_config_builds_every_component(name):
    path = ALL_CONFIGS[name]
    od = load_params(path, "object_detector")
    assert InputLimits.from_params(od, str(path)) == InputLimits()
    own = {k: v for k, v in od.items() if "." not in k and k not in ROS_DECLARED}
    section_from_params(ObjectDetectorSettings, own, "", str(path)).validate()
    DetectorConfig.from_params(od, str(path))
    section_from_params(TilingConfig, od, "tiling.", str(path))
    TrackingConfig.from_params(od, str(path))
    RuntimeConfig.from_params(od, str(path))
    dm = load_params(path, "driver_monitor")
    own = {k: v for k, v in dm.items() if k in {f.name for f in dataclasses.fields(DriverMonitorNodeSettings)}}
    section_from_params(DriverMonitorNodeSettings, own, "", str(path)).validate()
    assert DriverMonitorSettings.from_params(dm, str(path)).camera_role == "cabin"


@pytest.mark.parametrize("name, topic, rate", [
    ("carla", "/carla/ego_vehicle/rgb_front/image", 20.0),
    ("awsim", "/sensing/camera/traffic_light/image_raw", 10.0)])
def test_simulator_configs_match_the_simulators(name, topic, rate):
    od = load_params(SIM_CONFIGS[name], "object_detector")
    assert od["camera_topics"] == [topic] and od["camera_transports"] == ["image"]
    assert od["input_reliability"] == "best_effort"  # AWSIM's camera is best effort
    assert od["tracking.frame_rate"] == rate
    assert od["detector.score_threshold"] < load_params(CONFIG, "object_detector")["detector.score_threshold"]
    # no real, consenting driver in a simulator: the driver monitor waits unconfigured
    assert load_params(SIM_CONFIGS[name], "driver_monitor")["autostart"] is False


def test_configs_are_selectable_by_name(tmp_path, monkeypatch):
    for name, path in ALL_CONFIGS.items():
        assert resolve_config(name) == bundled_config(name) == path
        params = launch_support.node_parameters("object_detector", {"config": name})
        assert params["camera_topics"] == load_params(path, "object_detector")["camera_topics"]
        # the set-up's own, unless given; none: not passed (a global SetParameter applies)
        assert params.get("use_sim_time", "not passed") is (True if name in ("carla", "awsim") else "not passed")
    assert launch_support.node_parameters("object_detector", {"config": "carla", "use_sim_time": "false"})[
        "use_sim_time"] is False
    assert resolve_config(str(CONFIG)) == CONFIG  # a path still works
    monkeypatch.chdir(tmp_path)
    (tmp_path / "carla").write_text("object_detector:\n  ros__parameters: {}\n")
    assert resolve_config("carla") == Path("carla")  # an existing file of that name wins
    with pytest.raises(ConfigError, match="neither a file nor a bundled config"):
        resolve_config("carl")
    with pytest.raises(ConfigError, match="no bundled config named 'gazebo'"):
        bundled_config("gazebo")


@pytest.mark.parametrize("settings, fragment", [
    (ObjectDetectorSettings(input_reliability="sometimes"), "input_reliability"),
    (ObjectDetectorSettings(input_depth=0), "input_depth"),
    (ObjectDetectorSettings(camera_topics=[]), "camera_topics"),
    (ObjectDetectorSettings(camera_topics=["/a", "/a"]), "twice"),
    (ObjectDetectorSettings(camera_topics=["/a", "/b", "/c"], camera_transports=["image", "auto"]),
     "camera_transports"),
    (ObjectDetectorSettings(camera_transports=["h264"]), "transport 'h264'"),
    (ObjectDetectorSettings(batch_wait_ms=-1.0), "batch_wait_ms"),
    (ObjectDetectorSettings(batch_wait_ms=1e300), "'batch_wait_ms' must be in [0, 1000] ms"),
    (ObjectDetectorSettings(diagnostics_period_s=0.0), "diagnostics_period_s"),
    (DriverMonitorNodeSettings(camera_topic=""), "camera_topic"),
])
def test_bad_node_settings_name_the_parameter(settings, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        settings.validate()


def test_transport_and_output_namespace_rules():
    assert transport_kind("/cam/image_raw", "auto") == "image"
    assert transport_kind("/cam/image_raw/compressed", "auto") == "compressed"
    assert transport_kind("/cam/image_raw", "compressed") == "compressed"
    assert output_namespace("/cam/front/image_raw") == "/cam/front"
    assert output_namespace("/cam/front/image_raw/compressed") == "/cam/front"
    assert output_namespace("/image") == "/image"
    assert output_namespace("front/image_raw") == "front"  # relative stays relative (node namespace)
    assert output_namespaces(["/c/image_raw", "/c/image_raw/compressed", "/d/image"]) == [
        "/c/image_raw", "/c/image_raw/compressed", "/d"]
    assert ros_param_value([58, 57.1]) == [58.0, 57.1] and ros_param_value([1, 2]) == [1, 2]
    assert ros_param_value([True, 1]) == [True, 1]


def test_launch_parameters_from_config_and_arguments(tmp_path):
    params = launch_support.node_parameters("object_detector", {
        "config": str(CONFIG), "camera_topics": "/front/image_raw, /rear/image_raw/compressed",
        "use_sim_time": "true", "autostart": "false"})
    assert params["camera_topics"] == ["/front/image_raw", "/rear/image_raw/compressed"]
    assert params["use_sim_time"] is True and params["autostart"] is False
    assert params["detector.model"] == "picodet_s_416"  # the rest comes from the config file
    params = launch_support.node_parameters("driver_monitor", {
        "camera_topic": "/cabin/image_raw", "gallery_path": str(tmp_path / "g.json")})
    assert params["camera_topic"] == "/cabin/image_raw" and params["gallery.path"] == str(tmp_path / "g.json")
    assert "use_sim_time" not in params and params["autostart"] is True  # config default
    with pytest.raises(ConfigError, match="use_sim_time"):
        launch_support.node_parameters("driver_monitor", {"use_sim_time": "maybe"})
    assert launch_support.default_config() == CONFIG


@pytest.mark.parametrize("name, nodes", [("perception.launch.py", ["object_detector", "driver_monitor"]),
                                         ("object_detector.launch.py", ["object_detector"]),
                                         ("driver_monitor.launch.py", ["driver_monitor"])])
def test_launch_files_start_the_right_nodes(name, nodes):
    tree = ast.parse((ROOT / "launch" / name).read_text())
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    call = funcs["generate_launch_description"].body[0].value
    assert call.func.id == "launch_description"
    assert ast.literal_eval(call.args[0]) == nodes
    for node in nodes:
        assert set(launch_support.NODE_ARGUMENTS[node]) >= {"config", "namespace", "use_sim_time"}
    assert any(a in launch_support.NODE_ARGUMENTS[nodes[0]] for a in ("camera_topics", "camera_topic"))


@pytest.mark.parametrize("check, fragment", [
    (lambda: ObjectDetectorSettings(camera_info_topics=["/cam/camera info"]).validate(),
     "parameter 'camera_info_topics': '/cam/camera info' is not a ROS topic name"),
    (lambda: DriverMonitorNodeSettings(camera_topic="/cabin cam/image_raw").validate(),
     "parameter 'camera_topic': '/cabin cam/image_raw' is not a ROS topic name"),
    (lambda: DriverMonitorNodeSettings(camera_info_topic="/cabin/camera_info/").validate(),
     "parameter 'camera_info_topic': '/cabin/camera_info/' is not a ROS topic name"),
    (lambda: check_camera_info_topic(["/sensing/camera/camera0/image_rect_color"],
                                     "/sensing/camera/camera0/info 2"),
     "autoware.camera_info_topic: '/sensing/camera/camera0/info 2' is not a ROS topic name"),
    # resolved through the node's remap rules at configure since R40: an RCLError 'failed to
    # resolve name' there, naming neither the topic nor the parameter
    (lambda: ObjectDetectorSettings(cabin_camera_topic="/camera/cabin cam").validate(),
     "parameter 'cabin_camera_topic': '/camera/cabin cam' is not a ROS topic name"),
    (lambda: DriverMonitorNodeSettings(exterior_camera_topics=["/camera/front/image_raw",
                                                               "/camera/rear/"]).validate(),
     "parameter 'exterior_camera_topics' (object_detector's camera_topics): '/camera/rear/' is "
     "not a ROS topic name"),
])
def test_a_topic_ros_would_not_take_is_refused_naming_its_parameter(check, fragment):
    """Only `camera_topics` was checked: the other topic parameters failed a node's configure
    after its models loaded, as an 'unexpected' InvalidTopicNameException naming no parameter,
    and the replay took them. cabin_camera_topic and exterior_camera_topics, which configure
    resolves through the remap rules (R40), failed it as an RCLError naming neither."""
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        check()


@pytest.mark.parametrize("value, fragment", [
    ("/a/image_raw,,/b/image_raw", "holds an empty item"),
    (",", "holds an empty item"),
    (" ", "holds an empty item"),
    ("/a/image_raw,/a/image_raw", "names /a/image_raw twice"),
    ("/a/image raw", "is not a ROS topic name"),
])
def test_the_camera_topics_launch_argument_is_refused_as_autoware_launch_refuses_it(value, fragment):
    """perception.launch.py and object_detector.launch.py dropped an empty item in silence
    (`a,,b`) and gave the node no camera for `,` or a blank; autoware.launch.py refused them."""
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        launch_support.node_parameters("object_detector", {"camera_topics": value})
    assert launch_support.node_parameters("object_detector", {"camera_topics": " /a/image_raw , /b/image_raw"})[
        "camera_topics"] == ["/a/image_raw", "/b/image_raw"]
    # driver_monitor reads the same argument for its exterior cameras (R40): one list, one check
    # (it dropped the empty item in silence, where a launch of driver_monitor alone took it)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        launch_support.node_parameters("driver_monitor", {"camera_topics": value})


def test_the_camera_topics_launch_argument_adds_to_the_config_file_s_exterior_cameras():
    """driver_monitor's exterior_camera_topics from a launch's camera_topics:= replaced the config
    file's object_detector.camera_topics: `perception.launch.py camera_topics:=/cam/rear/image_raw
    camera_topic:=/camera/image_raw` ran face identification on the camera the file calls
    exterior, which `run` (its config's cameras and object_detector's) and the replay (the
    config's) refuse. The launch files keep the file's cameras and add the argument's."""
    params = launch_support.node_parameters("driver_monitor", {
        "camera_topics": "/cam/rear/image_raw,/camera/image_raw"})
    assert params["exterior_camera_topics"] == ["/camera/image_raw", "/cam/rear/image_raw"]
    params = launch_support.node_parameters("driver_monitor", {
        "camera_topics": "/cam/rear/image_raw", "camera_topic": "/camera/image_raw"})
    with pytest.raises(PrivacyError, match="face identification refused on camera_topic"):
        DriverMonitorNodeSettings(camera_topic=params["camera_topic"],
                                  exterior_camera_topics=params["exterior_camera_topics"]).validate()
