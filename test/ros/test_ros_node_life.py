"""A node's whole life as a hostile operator drives it: a node that cannot start, lifecycle
transitions repeated many times (nothing may grow per cycle) and a stop by signal while frames are
being processed (nothing may hang or stay behind).

Growth is measured on the real process (/proc/self/fd, /proc/self/task) and on the live objects
(onnxruntime sessions, subscriptions, timers), with a stated tolerance rather than exact equality.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("command, fragment", [
    # both nodes: the first one created (object_detector) fails, nothing is left running
    (["-m", "sense_perception.cli.main", "run", "--ros-args", "-p", "use_sim_time:=5"],
     "node object_detector could not start: InvalidParameterTypeException: Trying to set parameter "
     "'use_sim_time' to '5'"),
    (["-m", "sense_perception.cli.main", "run", "--nodes", "driver_monitor", "--namespace", "a b"],
     "node driver_monitor in namespace 'a b' could not start: InvalidNamespaceException"),
    (["-m", "sense_perception.ros.driver_monitor_node", "--ros-args", "-p", "use_sim_time:=7"],
     "node driver_monitor could not start: InvalidParameterTypeException"),
])
def test_a_node_that_cannot_start_is_one_error_line_not_a_traceback(ros_env, command, fragment):
    """A parameter rclpy itself declares given the wrong type (`-p use_sim_time:=5`) or a namespace
    that is no ROS name raised out of the node's constructor: a traceback and exit 1 from `run` and
    the nodes' own commands. Now one `error:` line naming the node, the cause and the fix, exit 2."""
    done = subprocess.run([sys.executable, *command], env=ros_env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert fragment in done.stderr, done.stderr
    assert "fix the parameter" in done.stderr
