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
