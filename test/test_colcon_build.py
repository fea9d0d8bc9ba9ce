"""The same tree builds as a ROS 2 ament_python package with colcon (what a ROS workspace runs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_colcon_build_installs_executables_launch_and_config(tmp_path: Path) -> None:
    colcon = Path(sys.executable).with_name("colcon")
    assert colcon.is_file(), "colcon comes with the 'test' extra (colcon-common-extensions)"
    env = {**os.environ, "COLCON_HOME": str(tmp_path / "colcon_home")}
    proc = subprocess.run(
        [str(colcon), "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(ROOT),
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
         "--packages-select", "sense_perception"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prefix = tmp_path / "install" / "sense_perception"
    # `ros2 run sense_perception <exe>` looks in lib/<package>; `ros2 launch` in share/<package>.
    for exe in ("object_detector", "driver_monitor", "sense-perception"):
        assert (prefix / "lib" / "sense_perception" / exe).is_file(), exe
    share = prefix / "share" / "sense_perception"
    assert (share / "package.xml").is_file()
    assert {p.name for p in (share / "launch").iterdir()} >= {
        "perception.launch.py", "object_detector.launch.py", "driver_monitor.launch.py"}
    assert {p.name for p in (share / "config").iterdir()} >= {"perception.yaml", "carla.yaml", "awsim.yaml"}
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "sense_perception").is_file()
    installed = list((prefix / "lib").glob("python3*/site-packages/sense_perception/models/*.onnx"))
    assert {p.name for p in installed} == {"picodet_s_416_coco.onnx", "yolox_nano.onnx",
                                           "person_detection_0203.onnx",
                                           "face_landmark.onnx", "iris_landmark.onnx"}
    # the canonical face of the head pose ships too, byte for byte (its sha256 is checked at load)
    [obj] = (prefix / "lib").glob("python3*/site-packages/sense_perception/models/*.obj")
    assert obj.read_bytes() == (ROOT / "sense_perception" / "models" / obj.name).read_bytes()
    msgs = list((prefix / "lib").glob("python3*/site-packages/sense_perception/interfaces/*/msg/*.msg"))
    assert {p.parent.parent.name for p in msgs} == {"vision_msgs", "foxglove_msgs", "tf2_msgs",
                                                     "autoware_perception_msgs", "tier4_perception_msgs"}
    # the ROS test environment's message packages (tools/ros_env/*/package.xml) lie inside this
    # package, where colcon does not look: a workspace build never picks them up
    listed = subprocess.run([str(colcon), "list", "--names-only", "--base-paths", str(ROOT)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.stdout.split() == ["sense_perception"], listed.stdout + listed.stderr
