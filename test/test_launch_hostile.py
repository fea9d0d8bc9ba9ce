"""The launch files under hostile arguments and set-ups, with stand-ins for launch and launch_ros
(no wheel here; test/ros/test_ros_launch.py runs the real ones where a ROS 2 install has them)."""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from sense_perception.ros import autoware_launch, launch_support


@pytest.fixture()
def launched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list]:
    """Stand-ins for launch / launch_ros recording the node actions' keyword arguments."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the parameter files written
    made: dict[str, list] = {"nodes": [], "warnings": []}
    fakes = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.logging", "launch_ros", "launch_ros.actions")}
    fakes["launch"].LaunchDescription = list
    fakes["launch.actions"].DeclareLaunchArgument = lambda *a, **k: ("declared", a, k)
    fakes["launch.actions"].OpaqueFunction = lambda function, args=(): (function, list(args))
    fakes["launch.logging"].get_logger = lambda name: types.SimpleNamespace(
        warning=lambda text: made["warnings"].append(text))
    fakes["launch_ros.actions"].LifecycleNode = lambda **k: made["nodes"].append(k) or k
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    return made


def _launch(nodes: list[str], configurations: dict[str, str]) -> None:
    """Run launch_support's OpaqueFunction as ros2 launch would, with these launch arguments."""
    function, args = launch_support.launch_description(nodes)[-1]
    function(types.SimpleNamespace(launch_configurations=configurations), *args)


def _launch_ros_accepts(parameters: dict[str, Any]) -> None:
    """What launch_ros's evaluate_parameter_dict refuses in a parameter dict: an empty list
    (normalised to an empty tuple, then refused as 'not one of float, int, str, bool, bytes')."""
    for name, value in parameters.items():
        if isinstance(value, (list, tuple)):
            assert value, f"launch_ros refuses the empty list of {name} in a parameter dict"


def test_an_empty_list_in_the_config_reaches_the_node_through_a_parameter_file(
        launched, tmp_path: Path):
    """`pedestrian_band: []` (documented: the whole frame) in a config given to the launch files
    was put in the node's parameter dict, which launch_ros refuses (the launch failed)."""
    config = tmp_path / "my_carla.yaml"
    config.write_text("# base: carla\nobject_detector:\n  ros__parameters:\n    detector:\n"
                      "      pedestrian_band: []\n    tracking:\n      class_groups: []\n")
    _launch(["object_detector", "driver_monitor"], {"config": str(config)})
    detector, monitor = launched["nodes"]
    params, *files = detector["parameters"]
    _launch_ros_accepts(params)
    assert params["use_sim_time"] is True and params["tracking.frame_rate"] == 20.0  # carla's
    [path] = files
    assert yaml.safe_load(Path(path).read_text()) == {"/**": {"ros__parameters": {
        "detector.pedestrian_band": [], "tracking.class_groups": []}}}
    assert monitor["parameters"] == [monitor["parameters"][0]]  # nothing empty: no file
    _launch_ros_accepts(monitor["parameters"][0])


def test_autoware_launch_hands_empty_lists_over_a_parameter_file(launched, tmp_path: Path):
    config = tmp_path / "aw.yaml"
    config.write_text("# base: autoware\nobject_detector:\n  ros__parameters:\n    detector:\n"
                      "      duplicates:\n        vehicle_labels: []\n")
    autoware_launch._node_actions(types.SimpleNamespace(launch_configurations={
        "config": str(config)}))
    [node] = launched["nodes"]
    params, path = node["parameters"]
    _launch_ros_accepts(params)
    assert yaml.safe_load(Path(path).read_text())["/**"]["ros__parameters"] == {
        "detector.duplicates.vehicle_labels": []}


@pytest.mark.parametrize("value", ["warning", "verbose", "", " ", ":=debug", "info,debug"])
def test_a_log_level_rcl_would_refuse_is_refused_by_the_launch(launched, value):
    """rcl refuses them: the node process died at its start ("Couldn't parse log level")."""
    from sense_perception.errors import ConfigError

    with pytest.raises(ConfigError, match="log_level.*debug, info, warn, error, fatal"):
        _launch(["object_detector"], {"log_level": value})
    with pytest.raises(ConfigError, match="log_level"):
        autoware_launch._node_actions(types.SimpleNamespace(launch_configurations={
            "log_level": value}))
    assert launched["nodes"] == []


@pytest.mark.parametrize("value, given", [("WARN", "WARN"), (" debug ", "debug"), ("fatal", "fatal"),
                                          ("object_detector:=debug", "object_detector:=debug")])
def test_the_log_levels_rcl_takes_reach_the_node(launched, value, given):
    _launch(["driver_monitor"], {"log_level": value})
    assert launched["nodes"][0]["arguments"] == ["--ros-args", "--log-level", given]


def test_an_overlays_shared_section_replaces_its_bases_node_sections(tmp_path: Path):
    """`/**: use_sim_time: false` over `# base: carla` left both nodes on simulation time: the
    base's object_detector / driver_monitor value won over the overlay's `/**` one, unsaid."""
    from sense_perception.config import load_params

    config = tmp_path / "carla_on_wall_time.yaml"
    config.write_text("# base: carla\n/**:\n  ros__parameters:\n    use_sim_time: false\n"
                      "    no_input_warn_s: 4.0\n    detector.class_thresholds.pedestrian: 0.3\n")
    for node in ("object_detector", "driver_monitor"):
        params = launch_support.node_parameters(node, {"config": str(config)})
        assert params["use_sim_time"] is False and params["no_input_warn_s"] == 4.0, node
    detector = load_params(config, "object_detector")
    assert detector["detector.class_thresholds.pedestrian"] == 0.3
    # the rest of carla is kept, and within one file a node's own section still wins over /**
    assert detector["detector.class_thresholds.truck"] == 0.166 and detector["tracking.frame_rate"] == 20.0
    over = tmp_path / "over.yaml"
    over.write_text("# base: carla_on_wall_time.yaml\n/**:\n  ros__parameters:\n    tracking:\n"
                    "      frame_rate: 30.0\nobject_detector:\n  ros__parameters:\n"
                    "    no_input_warn_s: 6.0\n")
    assert load_params(over, "object_detector")["tracking.frame_rate"] == 30.0
    assert load_params(over, "object_detector")["no_input_warn_s"] == 6.0
    assert load_params(over, "driver_monitor")["no_input_warn_s"] == 4.0
    assert load_params(over, "object_detector")["use_sim_time"] is False


def test_an_overlay_may_spell_its_node_sections_as_ros2_param_dump_does(tmp_path: Path):
    """`ros2 param dump` writes `/object_detector:`; over `# base: carla` (whose sections are
    `object_detector:`) every setting both gave was refused as given twice in the overlay."""
    config = tmp_path / "dumped.yaml"
    config.write_text("# base: carla\n/object_detector:\n  ros__parameters:\n    no_input_warn_s: 5.0\n"
                      "/driver_monitor:\n  ros__parameters:\n    autostart: true\n")
    detector = launch_support.node_parameters("object_detector", {"config": str(config)})
    assert detector["no_input_warn_s"] == 5.0 and detector["use_sim_time"] is True
    assert launch_support.node_parameters("driver_monitor", {"config": str(config)})["autostart"] is True


def test_a_bundled_set_up_is_found_by_its_file_name_as_a_base_line_names_it(tmp_path, monkeypatch):
    """`config:=carla.yaml` (how `# base: carla.yaml` names it) was a missing file."""
    from sense_perception.config import bundled_config, resolve_config

    monkeypatch.chdir(tmp_path)
    assert resolve_config("carla.yaml") == bundled_config("carla")
    assert launch_support.node_parameters("object_detector", {"config": "awsim.yaml"})["use_sim_time"]
    (tmp_path / "carla.yaml").write_text("object_detector:\n  ros__parameters:\n    autostart: false\n")
    assert resolve_config("carla.yaml") == Path("carla.yaml")  # a file of that name wins


def test_a_global_use_sim_time_of_an_including_launch_file_is_not_overridden(launched, tmp_path):
    """A simulation bringup's SetParameter(use_sim_time=True) reaches the node as `-p` before
    the node's own parameter files, which win (rcl: the later value): the launch files passed
    use_sim_time: false whenever neither the argument nor the config set it, and the nodes ran
    on wall time under the simulator's /clock, unsaid."""
    _launch(["object_detector", "driver_monitor"], {"config": "perception"})
    for node in launched["nodes"]:
        assert "use_sim_time" not in node["parameters"][0], node["name"]
    _launch(["object_detector"], {"config": "perception", "use_sim_time": "false"})
    assert launched["nodes"][-1]["parameters"][0]["use_sim_time"] is False  # given: passed
    _launch(["object_detector"], {"config": "awsim"})
    assert launched["nodes"][-1]["parameters"][0]["use_sim_time"] is True  # the set-up's own


def test_the_empty_lists_parameter_file_is_removed_when_the_launch_ends(tmp_path: Path) -> None:
    """Every launch with an empty list left its parameter file in the temp folder for good."""
    import subprocess

    script = ("import tempfile; tempfile.tempdir = %r\n"
              "from sense_perception.ros.launch_support import launch_parameters\n"
              "given, path = launch_parameters({'a': 1, 'detector.pedestrian_band': []})\n"
              "import os; assert os.path.isfile(path); print(path)\n") % str(tmp_path)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    path = Path(out.stdout.strip())
    assert path.parent == tmp_path and not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_gallery_key_in_the_launch_s_environment_is_warned_about(launched, tmp_path, monkeypatch):
    """R88: a gallery key exported as SENSE_PERCEPTION_GALLERY_KEY (or the variable
    gallery.key_env names) is in the environment of `ros2 launch` itself, ROS's process, which
    stays dumpable and cannot be changed from a launch file: said at launch, naming the variable
    and the fix (gallery.key_file), never the key; nothing said without it."""
    monkeypatch.delenv("SENSE_PERCEPTION_GALLERY_KEY", raising=False)
    _launch(["driver_monitor"], {})
    assert launched["warnings"] == []
    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY_KEY", "ab" * 32)
    _launch(["driver_monitor"], {})
    (warning,) = launched["warnings"]
    assert "SENSE_PERCEPTION_GALLERY_KEY" in warning and "`ros2 launch` itself" in warning
    assert "gallery.key_file" in warning and "ab" * 4 not in warning
    config = tmp_path / "keyed.yaml"  # the key comes from a file: the variable is for nothing
    config.write_text("driver_monitor:\n  ros__parameters:\n    gallery:\n"
                      f"      key_file: {tmp_path / 'key'}\n")
    _launch(["driver_monitor"], {"config": str(config)})
    assert "no node reads it" in launched["warnings"][-1]
    _launch(["object_detector"], {})
    assert "no node reads it" in launched["warnings"][-1] and len(launched["warnings"]) == 3
