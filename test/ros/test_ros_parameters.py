"""Every core parameter is declared on the nodes with its description and range, whatever the
parameter file gives: listed, described and settable through the nodes' parameter services (what
`ros2 param list/describe/set` call), and a name the node does not read is refused at configure."""
from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.ros


def _call(node: Any, client_node: Any, executor: Any, srv_type: Any, name: str, request: Any) -> Any:
    client = client_node.create_client(srv_type, f"/{node.get_name()}/{name}")
    assert client.wait_for_service(timeout_sec=10.0), name
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=10.0)
    assert future.done(), f"{name} did not answer"
    return future.result()


@pytest.mark.parametrize("node_name", ["object_detector", "driver_monitor"])
def test_empty_parameter_file_lists_and_describes_every_core_parameter(params_context, node_name):
    import rclpy
    from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
    from rcl_interfaces.srv import DescribeParameters, ListParameters, SetParameters
    from rclpy.executors import SingleThreadedExecutor

    from sense_perception.config import node_schema
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context(f"{node_name}:\n  ros__parameters: {{}}\n")
    cls = ObjectDetectorNode if node_name == "object_detector" else DriverMonitorNode
    node = cls(node_name, context=ctx)
    client_node = rclpy.create_node(f"{node_name}_param_client", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(client_node)
    try:
        schema = node_schema(node_name)
        listed = _call(node, client_node, executor, ListParameters, "list_parameters",
                       ListParameters.Request()).result.names
        assert set(schema) <= set(listed), sorted(set(schema) - set(listed))
        described = _call(node, client_node, executor, DescribeParameters, "describe_parameters",
                          DescribeParameters.Request(names=list(schema))).descriptors
        assert [d.name for d in described] == list(schema)
        for d in described:
            item = schema[d.name]
            assert d.description, d.name
            if item.numeric:
                assert d.additional_constraints, d.name
            if item.numeric and isinstance(item.range, tuple):
                ranges = d.integer_range if item.hint is int else d.floating_point_range
                assert len(ranges) == 1, d.name
                low, high = item.range
                assert low is None or ranges[0].from_value == low, d.name
                assert high is None or ranges[0].to_value == high, d.name
        # `ros2 param set` of parameters the file left out: in range accepted, out of range refused.
        name = "detector.score_threshold" if node_name == "object_detector" else "face.score_threshold"
        request = SetParameters.Request(parameters=[
            ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.55)),
            ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=1.5))])
        results = _call(node, client_node, executor, SetParameters, "set_parameters", request).results
        assert results[0].successful, results[0].reason
        assert not results[1].successful and "out of range" in results[1].reason.lower()
        assert node.get_parameter(name).value == 0.55
        listed_set = _call(node, client_node, executor, SetParameters, "set_parameters", SetParameters.Request(
            parameters=[ParameterMsg(name="input.max_width", value=ParameterValue(
                type=ParameterType.PARAMETER_INTEGER, integer_value=1280))])).results
        assert listed_set[0].successful and node.get_parameter("input.max_width").value == 1280
    finally:
        executor.shutdown()
        client_node.destroy_node()
        node.destroy_node()


def test_a_misspelt_section_in_the_parameter_file_is_refused_at_configure(params_context):
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("object_detector:\n  ros__parameters:\n    detectr:\n      score_threshold: 0.99\n")
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        assert not node.has_parameter("detectr.score_threshold")  # not declared: no auto-declaration
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "detectr.score_threshold (did you mean detector.score_threshold?)" in node.config_error
        assert node.lifecycle_state == "unconfigured" and node.detector is None
    finally:
        node.destroy_node()


def test_an_override_outside_its_range_is_reported_at_configure(params_context):
    """ROS refuses to declare it; the node keeps running, unconfigured, naming the parameter."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("object_detector:\n  ros__parameters:\n    detector:\n      nms_iou: 1.7\n")
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        assert node.get_parameter("detector.nms_iou").value == 0.5  # the default while refused
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "detector.nms_iou" in node.config_error and "1.7" in node.config_error, node.config_error
    finally:
        node.destroy_node()


def test_an_override_outside_its_range_set_right_at_run_time_lets_configure_succeed(params_context):
    """The documented recovery: fix the parameter with `ros2 param set`, then configure again.
    The refused override was reported at every configure for as long as the node ran."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("object_detector:\n  ros__parameters:\n    detector:\n      nms_iou: 1.7\n"
                         "    runtime:\n      intra_op_threads: 1\n")
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        # what `ros2 param set /object_detector detector.nms_iou 0.6` calls: the node's service
        request = SetParameters.Request(parameters=[Parameter("detector.nms_iou", value=0.6).to_parameter_msg()])
        response = node._parameter_service._set_parameters_callback(request, SetParameters.Response())
        assert response.results[0].successful, response.results[0].reason
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.config_error
        assert node.config_error == "" and node.get_parameter("detector.nms_iou").value == 0.6
    finally:
        node.destroy_node()


@pytest.mark.parametrize("name, value, words", [
    ("detector.score_threshold", "abc", "must be float, got 'abc'"),
    ("detector.score_threshold", True, "must be float, got True"),
    ("input.max_width", 640.5, "must be int, got 640.5"),
    ("camera_topics", "/camera/front/image_raw", "must be list"),
    ("detector.pixel_scale", float("nan"), "must be a finite number, got nan"),
    ("detector.mean", [float("nan"), 0.0, 0.0], "must hold finite numbers"),
    ("tiling.mode", "bogus", "must be one of 'off', 'horizon_bands', got 'bogus'"),
])
def test_a_bad_value_set_at_run_time_is_refused_and_the_node_keeps_its_value(
        params_context, name, value, words):
    """`ros2 param set` of a string for a number, a bool for a float, NaN: ROS took them (the
    parameters are dynamically typed), the old value was lost, and the next configure failed, so a
    lifecycle manager's cleanup and configure left the node without perception. Now the request
    is refused with the reason, the value stays, and the node goes on and configures again."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("object_detector:\n  ros__parameters:\n    runtime:\n"
                         "      providers: [CPUExecutionProvider]\n      intra_op_threads: 1\n")
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.config_error
        before = node.get_parameter(name).value
        # what `ros2 param set /object_detector NAME VALUE` calls: the node's service
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        result = node._parameter_service._set_parameters_callback(request, SetParameters.Response()).results[0]
        assert not result.successful
        assert f"parameter '{name}'" in result.reason and words in result.reason, result.reason
        assert f"the value stays {before!r}" in result.reason, result.reason
        assert node.get_parameter(name).value == before
        assert node.lifecycle_state == "inactive"
        # A good value of the same parameter is taken once the node is cleaned up (parameters
        # are read at configure: while configured any set is refused), an int for a float too.
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        good = {"detector.score_threshold": 1, "input.max_width": 4096,
                "camera_topics": ["/camera/front/image_raw"], "detector.pixel_scale": 0.5,
                "detector.mean": [0.0, 0.0, 0.0], "tiling.mode": "off"}[name]
        request = SetParameters.Request(parameters=[Parameter(name, value=good).to_parameter_msg()])
        result = node._parameter_service._set_parameters_callback(request, SetParameters.Response()).results[0]
        assert result.successful, result.reason
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.config_error
    finally:
        node.destroy_node()


def test_a_bad_value_set_on_driver_monitor_is_refused(params_context):
    """The same check on the cabin node (not configured: its gallery and face models are not
    needed for a parameter to be refused)."""
    from rclpy.parameter import Parameter

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    ctx = params_context("driver_monitor:\n  ros__parameters: {}\n")
    node = DriverMonitorNode("driver_monitor", context=ctx)
    try:
        result = node.set_parameters([Parameter("attention.neutral_yaw_deg", value="left")])[0]
        assert not result.successful and "must be float, got 'left'" in result.reason, result.reason
        result = node.set_parameters([Parameter("attention.level_times_s",
                                                value=[3.0, float("inf"), 11.0])])[0]
        assert not result.successful and "must hold finite numbers" in result.reason, result.reason
        assert node.get_parameter("attention.neutral_yaw_deg").value == 0.0
        assert node.set_parameters([Parameter("attention.neutral_yaw_deg", value=5.0)])[0].successful
        # a string none of its choices: taken, then refused only at the next configure before
        result = node.set_parameters([Parameter("face.driver_side", value="middle")])[0]
        assert not result.successful and "must be one of 'left', 'right'" in result.reason, result.reason
        assert node.set_parameters([Parameter("face.driver_side", value="right")])[0].successful
    finally:
        node.destroy_node()


def test_the_command_line_wins_over_run_s_config_and_the_config_s_sim_time_applies(context):
    """`run --config FILE -- --ros-args -p NAME:=VALUE`: the config's values were handed to the
    nodes as parameter_overrides, which rclpy puts above the command line, so a -p of a name the
    file sets was silently unused. The config now fills only what the command line leaves."""
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    config = [Parameter("no_input_warn_s", value=5.0), Parameter("batch_wait_ms", value=9.0),
              Parameter("use_sim_time", value=True)]
    node = ObjectDetectorNode("cli_over_config", context=context, config_defaults=config,
                              cli_args=["--ros-args", "-p", "no_input_warn_s:=7.5"])
    try:
        assert node.get_parameter("no_input_warn_s").value == 7.5  # the command line
        assert node.get_parameter("batch_wait_ms").value == 9.0  # the config
        assert node.get_parameter("use_sim_time").value is True  # declared by rclpy before
        node2 = ObjectDetectorNode("cli_over_config_sim", context=context, config_defaults=config,
                                   cli_args=["--ros-args", "-p", "use_sim_time:=false"])
        assert node2.get_parameter("use_sim_time").value is False
        node2.destroy_node()
    finally:
        node.destroy_node()


def test_parameters_read_when_the_node_starts_are_applied_at_configure_or_refused(context):
    """`ros2 param set` of `diagnostics_period_s` while unconfigured (the steps the refusal of a
    set while configured names: cleanup, set, configure) was accepted and never used: the timer
    kept the period the node was built with. `autostart` set after the start was accepted and
    changed nothing. The period now applies at configure; autostart is refused, naming the fix."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("read_at_start", context=context, parameter_overrides=[
        Parameter("camera_topics", value=["/sp_read_at_start/cam/image_raw"]),
        Parameter("autostart", value=False), Parameter("runtime.intra_op_threads", value=1)])
    try:
        assert node._diag_timer.timer_period_ns == 1_000_000_000
        assert node.set_parameters([Parameter("diagnostics_period_s", value=0.25)])[0].successful
        result = node.set_parameters([Parameter("autostart", value=True)])[0]
        assert not result.successful, "autostart set after the start was accepted and unused"
        assert "read only when the node starts" in result.reason, result.reason
        assert "ros2 lifecycle set /read_at_start configure" in result.reason, result.reason
        assert node.get_parameter("autostart").value is False
        assert node.set_parameters([Parameter("autostart", value=False)])[0].successful  # unchanged
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.config_error
        assert node._diag_timer.timer_period_ns == 250_000_000, "the period set was never used"
    finally:
        node.destroy_node()


def test_a_parameter_cannot_be_deleted_nor_set_on_a_node_shut_down(context):
    """`ros2 param delete` (a set to PARAMETER_NOT_SET) of a node parameter while unconfigured:
    rclpy undeclared it, every later `ros2 param set` of it was refused as undeclared for as long
    as the node ran, and a deleted `camera_topics` quietly gave the default camera at the next
    configure. Now the delete is refused, naming `ros2 param set` and the default. A set after
    the node was shut down was taken, and no configure could ever read it: refused too."""
    from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    node = ObjectDetectorNode("param_delete", context=context, parameter_overrides=[
        Parameter("camera_topics", value=["/sp_param_delete/cam/image_raw"]),
        Parameter("autostart", value=False)])

    def set_one(name: str, value: ParameterValue) -> Any:  # as `ros2 param set/delete` call it
        request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=value)])
        return node._parameter_service._set_parameters_callback(
            request, SetParameters.Response()).results[0]

    try:
        for name in ("detector.score_threshold", "camera_topics"):
            result = set_one(name, ParameterValue(type=ParameterType.PARAMETER_NOT_SET))
            assert not result.successful, f"{name} was deleted"
            assert f"parameter '{name}' cannot be deleted" in result.reason, result.reason
            assert "ros2 param set /param_delete" in result.reason, result.reason
            assert node.has_parameter(name)
        assert node.get_parameter("camera_topics").value == ["/sp_param_delete/cam/image_raw"]
        result = set_one("detector.score_threshold", ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=0.5))
        assert result.successful, result.reason
        # shut down (finalized), no configure can read a parameter again: a set was taken
        node.trigger_shutdown()
        result = set_one("detector.score_threshold", ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=0.6))
        assert not result.successful and "shut down (finalized)" in result.reason, result.reason
        assert node.get_parameter("detector.score_threshold").value == 0.5
    finally:
        node.destroy_node()


def test_reload_gallery_on_a_node_shut_down_names_the_restart(context):
    """`~/reload_gallery` on a finalized driver_monitor answered 'configure it first', which a
    node shut down can never be."""
    from rclpy.parameter import Parameter
    from std_srvs.srv import Trigger

    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    node = DriverMonitorNode("reload_finalized", context=context, parameter_overrides=[
        Parameter("camera_topic", value="/sp_reload_finalized/cabin/image_raw"),
        Parameter("autostart", value=False)])
    try:
        response = node._on_reload_gallery(Trigger.Request(), Trigger.Response())
        assert not response.success and response.message == "node is unconfigured; configure it first"
        node.trigger_shutdown()
        response = node._on_reload_gallery(Trigger.Request(), Trigger.Response())
        assert not response.success and response.message == "node is finalized (shut down); restart it"
    finally:
        node.destroy_node()


def test_the_command_line_winning_over_run_s_config_is_said(context, capfd):
    """`run --config FILE -- --ros-args -p NAME:=VALUE`: the command line wins (P12), but nothing
    said so: a log line names each parameter the two set differently, with both values."""
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    config = [Parameter("no_input_warn_s", value=5.0), Parameter("batch_wait_ms", value=9.0),
              Parameter("camera_topics", value=["/sp_cli_said/a/image_raw"])]
    node = ObjectDetectorNode("cli_said", context=context, config_defaults=config, cli_args=[
        "--ros-args", "-p", "no_input_warn_s:=7.5", "-p", "batch_wait_ms:=9.0",
        "-p", "camera_topics:=[/sp_cli_said/b/image_raw]"])
    try:
        err = capfd.readouterr().err
        line = next((x for x in err.splitlines() if "the command line wins" in x), "")
        assert "no_input_warn_s = 7.5 (the config file: 5.0)" in line, err
        assert "camera_topics = ['/sp_cli_said/b/image_raw'] (the config file: " \
               "['/sp_cli_said/a/image_raw'])" in line, err
        assert "batch_wait_ms" not in line  # the same value: nothing to say
    finally:
        node.destroy_node()


def test_an_empty_list_in_the_parameter_file_is_taken_as_the_empty_list(params_context):
    """rcl reads `[]` as a parameter of type NOT_SET: the node kept the default, so
    `pedestrian_band: []` (the whole frame, config/perception.yaml) gave the horizon band, and
    `class_groups: []` the default groups. The launch files hand empty lists over this way (R51)."""
    from sense_perception.ros.node_common import node_params
    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("/**:\n  ros__parameters:\n    detector.pedestrian_band: []\n"
                         "    tracking:\n      class_groups: []\n    frame_rate_typo: []\n")
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        params = node_params(node)
        assert params["detector.pedestrian_band"] == [] and params["tracking.class_groups"] == []
        assert params["detector.score_threshold"] == pytest.approx(0.267)  # others: defaults
        assert "detector.mean" not in params  # not given: the core's default, as before
        assert not node.has_parameter("frame_rate_typo")  # unknown names are still refused
    finally:
        node.destroy_node()


def test_an_empty_list_given_to_a_parameter_that_is_no_list_is_refused_at_configure(params_context):
    """rcl reads `[]` as "not set" whatever the parameter: `detector.score_threshold: []` or
    `tracking.enabled: []` left the default in force (0.267, tracking on) and the node configured
    without a word; R51 made `[]` the empty list for list parameters only (R53)."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    ctx = params_context("/**:\n  ros__parameters:\n    detector.score_threshold: []\n"
                         "    tracking:\n      enabled: []\n")
    node = ObjectDetectorNode("object_detector", context=ctx)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "'detector.score_threshold'" in node.config_error and "got []" in node.config_error
        assert node.lifecycle_state == "unconfigured" and node.detector is None
        node.set_parameters([Parameter("detector.score_threshold", value=0.3),
                             Parameter("tracking.enabled", value=False)])
        assert not node._refused_overrides  # set anew: nothing refused is left to report
    finally:
        node.destroy_node()
