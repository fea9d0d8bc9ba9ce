"""`sense-perception run` stopped twice while its nodes go down (SECURITY.md R102).

The stop of `run` waits for the frame each node's inference thread has in flight (one
onnxruntime run cannot be interrupted) before it destroys the nodes. A second Ctrl-C in that
wait (an impatient user, a ``timeout`` after its SIGTERM) was raised right there: a traceback,
the nodes never destroyed. The other commands follow ``sense_perception.stops`` (R99, R100): only
the first stop counts, a later one is said on stderr ("still stopping"), one
``stops.FORCE_AFTER_S`` or more after the first ends the process at once with the first stop's
status. `run` follows them now.

The inference in flight is made slow on purpose: a real `run` process (the CLI's own ``main``),
driver_monitor's ``process`` wrapped to sleep before it runs the real pipeline on the real frame,
as a slow accelerator or a loaded machine does.
"""
from __future__ import annotations

import signal
import time

import pytest

pytestmark = pytest.mark.ros

#: `sense-perception run ARGS...` whose driver_monitor takes ``argv[1]`` seconds per frame, saying
#: on stderr when a frame's inference begins (the test's moment to stop it).
SLOW_RUN = """
import sys, time
from sense_perception.ros.driver_monitor_node import DriverMonitorNode
real, seconds = DriverMonitorNode.process, float(sys.argv[1])
def slow(self, frames):
    print("slow inference began", file=sys.stderr, flush=True)
    time.sleep(seconds)
    try:
        return real(self, frames)
    finally:
        print("slow inference ended", file=sys.stderr, flush=True)
DriverMonitorNode.process = slow
from sense_perception.cli.main import main
sys.argv = ["sense-perception", *sys.argv[2:]]
sys.exit(main())
"""


def _start_slow_run(ros_env, graph, tmp_path, name: str, seconds: float):
    """A `run` of driver_monitor alone whose inference takes ``seconds``, a frame in flight."""
    from sensor_msgs.msg import Image

    from ros_helpers import (DATA, NodeProcess, cabin_run_config, image_msg, read_bgr, wait_active,
                             wait_for)

    topic = f"/sp_run_stops_{name}/cabin/image_raw"
    config = cabin_run_config(tmp_path, topic)
    proc = NodeProcess(["-c", SLOW_RUN, str(seconds), "run", "--nodes", "driver_monitor",
                        "--config", str(config)], ros_env, tmp_path / "run.log")
    wait_active(graph, proc, "/driver_monitor")
    pub = graph.publisher(Image, topic)
    frame = read_bgr(DATA / "faces" / "obama_1_official_portrait_2012.jpg")[::2, ::2].copy()
    began = "slow inference began"
    for i in range(60):  # best effort: re-sent until one arrives
        pub.publish(image_msg(frame, 10 + i, 0, "cabin"))
        if wait_for(lambda: began in proc.output() or not proc.alive(), 0.5):
            break
    assert began in proc.output() and proc.alive(), proc.output()
    return proc


@pytest.mark.parametrize("first", ["SIGINT", "SIGTERM"])
def test_a_second_ctrl_c_while_run_stops_its_nodes_is_ignored_not_a_traceback(
        ros_env, graph, tmp_path, first):
    """The first stop lands with a frame in inference (3 s here); Ctrl-C follows twice while
    `run` waits for it. The second raised KeyboardInterrupt out of that wait: the wait ended
    (Python 3.11 marks a thread whose join was interrupted as stopped, so nothing waited for it
    again, nor at exit), the node was destroyed under its frame and `run` exited 0 within a
    second, the frame still in inference; the third met Python's finalization and killed the
    process (exit -2, no "exits 0"); where one lands in Python code outside a handler it is a
    traceback. Now each later stop is said ("still stopping") and ignored: the frame ends, the
    node is destroyed, and `run` exits as after the first stop alone (0), without a traceback."""
    proc = _start_slow_run(ros_env, graph, tmp_path, first.lower(), 3.0)
    try:
        start = time.monotonic()
        proc.proc.send_signal(getattr(signal, first))
        for _ in range(2):
            time.sleep(0.4)  # the stop has begun: `run` waits for the frame in flight
            if proc.alive():
                proc.proc.send_signal(signal.SIGINT)
        code = proc.exit_code(30, "30 s after the stops")
        took = time.monotonic() - start
    finally:
        graph.release()
        proc.stop()
    out = proc.output()
    assert "Traceback" not in out, out
    assert code == 0, (code, out)
    assert "slow inference ended" in out, out  # the frame in flight was waited for
    assert out.count("Ctrl-C again: still stopping") == 2, out
    assert "did not stop" not in out and "[ERROR]" not in out, out
    print(f"{first} then Ctrl-C twice: exit {code} after {took:.2f} s")


def test_a_stop_long_after_the_first_ends_a_run_that_cannot_stop_its_nodes(ros_env, graph,
                                                                          tmp_path):
    """A frame in inference for a minute (a hung accelerator): the stop waits for it up to the
    join's bound. A Ctrl-C 5 s or more after the first stop (``stops.FORCE_AFTER_S``) ends the
    process at once, as every command's does (R100), with the first stop's status (SIGTERM:
    143), saying the stop was cut short; it raised a traceback before."""
    from sense_perception.stops import FORCE_AFTER_S

    proc = _start_slow_run(ros_env, graph, tmp_path, "late", 60.0)
    try:
        proc.proc.send_signal(signal.SIGTERM)
        time.sleep(FORCE_AFTER_S + 0.5)
        assert proc.alive(), proc.output()  # still waiting for the frame (the join's 10 s)
        start = time.monotonic()
        proc.proc.send_signal(signal.SIGINT)
        code = proc.exit_code(4, "after the late Ctrl-C")  # at once: not the join's 10 s
        took = time.monotonic() - start
    finally:
        graph.release()
        proc.stop()
    out = proc.output()
    assert "Traceback" not in out, out
    assert code == 143, (code, out)
    assert "after the first stop: stopping at once, the cleanup cut short" in out, out
    print(f"late Ctrl-C: exit {code} after {took:.2f} s")
