"""Command-line parsing shared by the sub-commands (no ROS needed)."""
from __future__ import annotations

import pytest

from sense_perception.cli.main import build_parser, ros_args_last
from sense_perception.config import bundled_config


@pytest.mark.parametrize("argv", [
    ["run", "--config", "carla", "--nodes", "object_detector", "--ros-args", "-p", "use_sim_time:=true"],
    ["run", "--config", "carla", "--nodes", "object_detector", "--", "--ros-args", "-p", "use_sim_time:=true"],
])
def test_run_passes_everything_after_ros_args_to_ros(argv):
    args = build_parser().parse_args(ros_args_last(argv))
    assert args.config == bundled_config("carla") and args.nodes == ["object_detector"]
    assert [a for a in args.ros_args if a != "--"] == ["--ros-args", "-p", "use_sim_time:=true"]


def test_config_by_name_or_path_and_a_clear_error(tmp_path, capsys):
    parser = build_parser()
    assert parser.parse_args(["replay", "b", "--out", "o", "--config", "awsim"]).config == bundled_config("awsim")
    path = tmp_path / "mine.yaml"
    assert parser.parse_args(["replay", "b", "--out", "o", "--config", str(path)]).config == path
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--config", "carlaa"])
    assert "neither a file nor a bundled config (perception, carla, awsim, autoware, quality)" in capsys.readouterr().err


def test_run_without_ros_is_an_error_naming_the_fix(capsys):
    # In a Python without ROS 2 message packages, `run` ended in a ModuleNotFoundError traceback
    # (sensor_msgs, imported by the node modules outside the check) and exit 1; it is the error the
    # command prints for a missing rclpy, exit 2, as for `replay --publish`.
    import importlib.util

    from sense_perception.cli.main import main

    if all(importlib.util.find_spec(m) for m in ("rclpy", "sensor_msgs", "vision_msgs")):
        pytest.skip("ROS 2 is installed here: `run` would start the nodes")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "error: `run` needs ROS 2" in err and "make ros-env" in err, err


@pytest.mark.parametrize("command", ["object_detector", "driver_monitor"])
def test_node_entry_points_without_ros_are_an_error_naming_the_fix(command, capsys):
    # The console scripts named the node modules, which import rclpy at their top: on an install
    # without ROS 2 `object_detector` ended in a ModuleNotFoundError traceback before any of our code.
    import importlib.util

    from sense_perception.ros import entry_points

    if all(importlib.util.find_spec(m) for m in ("rclpy", "sensor_msgs", "vision_msgs")):
        pytest.skip("ROS 2 is installed here: the entry point would start the node")
    assert getattr(entry_points, command)([command]) == 2
    err = capsys.readouterr().err
    assert f"error: `{command}` needs ROS 2" in err and f".venv-ros/bin/{command}" in err, err


def test_only_a_missing_ros_module_reads_as_needs_ros(monkeypatch):
    # `run` and the entry points said "needs ROS 2" for any ImportError of the node modules, a
    # broken dependency of ours (numpy, onnxruntime) included: that error now goes through.
    import importlib

    from sense_perception.ros.entry_points import is_missing_ros, object_detector

    # std_srvs (driver_monitor's ~/reload_gallery) is a ROS 2 interface package too: it read as
    # a broken dependency of ours, a traceback, on a ROS 2 install without it
    for name in ("rclpy", "rclpy.lifecycle", "sensor_msgs.msg", "vision_msgs", "rcl_interfaces.msg",
                 "std_srvs.srv"):
        assert is_missing_ros(ModuleNotFoundError(f"No module named '{name}'", name=name)), name
    for name in ("numpy", "onnxruntime", "sense_perception.core"):
        assert not is_missing_ros(ModuleNotFoundError(f"No module named '{name}'", name=name)), name
    assert is_missing_ros(ImportError("librcl.so: cannot open shared object file"))
    assert not is_missing_ros(ImportError("cannot import name 'x' from 'numpy'"))

    def broken(name, *args):
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="onnxruntime"):
        object_detector([])
