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
