"""R32: a node under ``use_sim_time`` whose ``/clock`` stands still (a paused simulation, a
simulator loading a map or not started yet) still publishes its ``/diagnostics``: the watchdog that
says "no input" runs on the steady clock, the statuses are stamped in simulation time."""
from __future__ import annotations

import pytest

from ros_helpers import level, overrides, spin_until

pytestmark = pytest.mark.ros


def test_a_paused_simulation_clock_does_not_silence_the_no_input_watchdog(context):
    """The diagnostics timer was created on the node's clock: with use_sim_time and /clock stopped
    at 100 s it never fired, so a camera that stopped with the simulation was never reported."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    from sense_perception.ros.object_detector_node import ObjectDetectorNode

    topic = "/sp_inproc/paused/image_raw"
    name = "/inproc_paused_sim"
    node = ObjectDetectorNode(name[1:], context=context, parameter_overrides=overrides(**{
        "use_sim_time": True, "camera_topics": [topic], "no_input_warn_s": 1.0,
        "diagnostics_period_s": 0.5, "publish_debug_image": False,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    probe = rclpy.create_node("inproc_paused_sim_probe", context=context)
    statuses: list = []
    stamps: list = []

    def on_diagnostics(msg) -> None:
        mine = [s for s in msg.status if s.name == name]
        statuses.extend(mine)
        stamps.extend(msg.header.stamp.sec for _ in mine)

    probe.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    clock = probe.create_publisher(Clock, "/clock", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(probe)

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        paused = Clock()
        paused.clock.sec = 100  # the simulation ran to 100 s, then paused: /clock stands still
        assert spin_until(executor, lambda: clock.publish(paused) or
                          node.get_clock().now().nanoseconds == 100 * 10**9, 5.0), \
            "the node never took the simulation time"
        statuses.clear()
        stamps.clear()
        warned = spin_until(executor, lambda: [s for s in statuses if level(s) == 1], 5.0)
        assert warned, f"no /diagnostics WARN within 5 s while /clock stood still: {statuses}"
        assert f"no input for 1 s on {topic}" in warned[0].message
        assert stamps[-1] == 100, stamps  # stamped in simulation time, as before
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.stop()
        node.destroy_node()
        probe.destroy_node()


def test_publish_paces_a_bag_whose_time_goes_back(ros_env):
    """replay --publish paced every message from the first one's bag time: after a step back (a
    bag of two loops) everything went out at once, with /clock, until the bag time passed where it
    had been: the second loop ignored --rate."""
    import time

    from rosbags.typesys import Stores, get_typestore

    from sense_perception.replay.publish import LivePublisher
    from sense_perception.replay.reader import BagMessage

    store = get_typestore(Stores.ROS2_JAZZY)
    String = store.types["std_msgs/msg/String"]
    raw = store.serialize_cdr(String(data="x"), "std_msgs/msg/String")
    publisher = LivePublisher(rate=1.0, node_name="sim_loop_publisher")
    try:
        start = time.monotonic()
        for _loop in range(2):  # 0.3 s of bag time, played twice
            for i in range(4):
                publisher.play(BagMessage("/sim_loop/chatter", "std_msgs/msg/String",
                                          10**9 + i * 100_000_000, raw))
        elapsed = time.monotonic() - start
    finally:
        publisher.close()
    assert publisher.published == 8
    assert elapsed >= 0.55, f"the second loop was not paced: {elapsed:.2f} s for 2 x 0.3 s"


def test_publish_never_waits_for_years_on_a_bag_time_jump(ros_env, monkeypatch, caplog):
    """R48: replay --publish waited out every gap of bag time: a message received at 0 (a tool
    that leaves a log time unset) before the recording's 1.5e18 ns, or one stamped years ahead,
    made it wait ~47 years, publishing /clock and nothing else. A gap longer than MAX_GAP_S of
    bag time restarts the pacing at that message (as a step back does), said in a warning; the
    messages around it keep their pace."""
    import threading
    import time

    from rosbags.typesys import Stores, get_typestore

    from sense_perception.replay import publish
    from sense_perception.replay.publish import LivePublisher
    from sense_perception.replay.reader import BagMessage

    monkeypatch.setattr(publish, "MAX_GAP_S", 0.5, raising=False)
    store = get_typestore(Stores.ROS2_JAZZY)
    raw = store.serialize_cdr(store.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String")
    real = 1_557_539_956_460_000_000
    stamps = [0, real, real + 100_000_000, real + 200_000_000, 2**63 - 1]
    publisher = LivePublisher(rate=1.0, node_name="sim_jump_publisher")
    elapsed: list[float] = []

    def play() -> None:
        start = time.monotonic()
        for stamp in stamps:
            publisher.play(BagMessage("/sim_jump/chatter", "std_msgs/msg/String", stamp, raw))
        elapsed.append(time.monotonic() - start)

    player = threading.Thread(target=play, daemon=True)
    with caplog.at_level("WARNING", logger="sense_perception.replay.publish"):
        player.start()
        player.join(10)
    assert not player.is_alive(), "replay --publish is waiting for the bag time to pass a gap of years"
    publisher.close()
    assert publisher.published == len(stamps)
    assert elapsed[0] >= 0.18  # the 0.2 s between the recording's messages are still paced
    jumps = [r.getMessage() for r in caplog.records if "jumps" in r.getMessage()]
    assert len(jumps) == 2 and "/sim_jump/chatter" in jumps[0], jumps


def test_publish_plays_a_recorded_clock_as_the_only_clock(context):
    """R48: a simulator's recording holds /clock (docs/simulation.md records it), in simulation
    time; replay --publish played it beside its own /clock (the bag's receive time, the
    recording's wall clock), so a node under use_sim_time saw its time jump between 12 s and
    1.7e9 s. The recorded /clock is now the only one; a bag /clock of another type (RCLError: one
    participant, two types on a topic) is a named skip."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rosbags.typesys import Stores, get_typestore
    from rosgraph_msgs.msg import Clock

    from ros_helpers import spin_until
    from sense_perception.replay.publish import LivePublisher
    from sense_perception.replay.reader import BagMessage
    from sense_perception.replay.skips import SkipLog

    store = get_typestore(Stores.ROS2_JAZZY)
    T = store.types
    listener = rclpy.create_node("sim_clock_listener", context=context)
    seen: list[float] = []
    listener.create_subscription(Clock, "/clock", lambda m: seen.append(
        m.clock.sec + m.clock.nanosec * 1e-9), 100)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    wall = 1_700_000_000 * 10**9  # the recording's receive times: its wall clock
    publisher = LivePublisher(rate=1.0, node_name="sim_clock_publisher")
    try:
        publisher.advertise([("/clock", "rosgraph_msgs/msg/Clock", [])])
        spin_until(executor, lambda: publisher.node.count_subscribers("/clock") > 0, 10)
        for i in range(20):  # 100 Hz of simulation time from 12 s, recorded at wall time
            sim = 12 * 10**9 + i * 10_000_000
            raw = store.serialize_cdr(T["rosgraph_msgs/msg/Clock"](
                clock=T["builtin_interfaces/msg/Time"](sec=sim // 10**9, nanosec=sim % 10**9)),
                "rosgraph_msgs/msg/Clock")
            publisher.play(BagMessage("/clock", "rosgraph_msgs/msg/Clock", wall + i * 10_000_000, raw))
            executor.spin_once(timeout_sec=0)
        spin_until(executor, lambda: len(seen) >= 20, 5)
    finally:
        publisher.close()
        executor.shutdown(timeout_sec=1.0)
        listener.destroy_node()
    assert len(seen) >= 15, seen
    assert all(12.0 <= t < 13.0 for t in seen), f"clocks interleaved: {seen}"

    skipped = SkipLog()
    other = LivePublisher(rate=1e6, skipped=skipped, node_name="sim_clock_other")
    try:
        raw = store.serialize_cdr(T["std_msgs/msg/String"](data="x"), "std_msgs/msg/String")
        other.advertise([("/clock", "std_msgs/msg/String", [])])
        other.play(BagMessage("/clock", "std_msgs/msg/String", wall, raw))
    finally:
        other.close()
    [entry] = skipped.entries()
    assert entry["topic"] == "/clock" and "this bag's /clock is std_msgs/msg/String" in entry["reason"]
