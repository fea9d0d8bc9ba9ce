"""Lifecycle cycles of one node in a fresh process, for test_ros_node_life's leak test.

``python lifecycle_cycles.py KIND CYCLES TMP`` builds driver_monitor or object_detector in a
private rclpy context (the graph environment comes from the caller), runs two warm-up cycles, reads
(descriptors, threads, RSS MiB), runs CYCLES more, reads them again, and prints one JSON line with
both readings, what must be gone after cleanup and the package measured (this checkout's). Every
cycle: configure -> activate -> one real frame through the inference thread -> deactivate ->
cleanup. It asserts nothing itself beyond each
transition succeeding: the test judges the figures.
"""
from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

# This checkout's package first: run as a script, sys.path starts at test/ros, and
# `sense_perception` was whatever the interpreter had installed (another checkout's nodes measured).
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import sense_perception  # noqa: E402
from ros_helpers import DATA, end_context, image_msg, overrides, read_bgr, wait_for  # noqa: E402


def process_counts() -> tuple[int, int, int]:
    """(open file descriptors, threads, RSS in MiB) of this process."""
    rss = next(int(line.split()[1]) // 1024 for line in open("/proc/self/status")
               if line.startswith("VmRSS"))
    return len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task")), rss


def live_sessions() -> int:
    """onnxruntime sessions still alive after a collection."""
    import onnxruntime as ort

    gc.collect()
    return sum(isinstance(o, ort.InferenceSession) for o in gc.get_objects())


def main(kind: str, cycles: int, tmp: Path) -> dict:
    """Run the cycles; the readings and what is left alive afterwards."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn as Ret

    common = {"no_input_warn_s": 60.0, "runtime.providers": ["CPUExecutionProvider"],
              "runtime.intra_op_threads": 1}
    if kind == "driver_monitor":
        from sense_perception.ros.driver_monitor_node import DriverMonitorNode as Node

        folder = tmp / "gallery"
        folder.mkdir(mode=0o700)
        params = {**common, "camera_topic": "/sp_life/cabin/image_raw",
                  "gallery.path": str(folder / "gallery.json")}
        frame = image_msg(read_bgr(DATA / "faces" / "obama_1_official_portrait_2012.jpg"), 1)
    else:
        from sense_perception.ros.object_detector_node import ObjectDetectorNode as Node

        params = {**common, "camera_topics": ["/sp_life/front/image_raw"]}
        frame = image_msg(read_bgr(DATA / "street" / "pandaset_seq002_front_camera_10.jpg"), 1)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node(f"life_{kind}", context=context, parameter_overrides=overrides(**params))

    def cycle() -> None:
        assert node.trigger_configure() == Ret.SUCCESS, node.config_error
        assert node.trigger_activate() == Ret.SUCCESS
        node._slots.put(0, frame)  # the camera callback's path, through the inference thread
        assert wait_for(lambda: node.health.snapshot().processed == 1), "frame not processed"
        assert node.trigger_deactivate() == Ret.SUCCESS
        assert node.trigger_cleanup() == Ret.SUCCESS

    try:
        for _ in range(2):  # warm-up: imports, first allocations, rclpy's own entities
            cycle()
        before = process_counts()
        for _ in range(cycles):
            cycle()
        after = process_counts()
        return {"package": sense_perception.__file__, "before": before, "after": after,
                "live_sessions": live_sessions(),
                "subscriptions": len(list(node.subscriptions)), "timers": len(list(node.timers)),
                "worker_gone": node._worker is None}
    finally:
        node.stop()
        node.destroy_node()
        end_context(context)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
