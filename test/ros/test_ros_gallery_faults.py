"""Issue 20, item 9, as the driver_monitor node shows it (nodes built in the test process): a gallery
that is a FIFO leaves configure failing at once with the reason; a FIFO swapped in while the node runs
neither blocks the frame thread nor stops identity and attention, and the reason is in /diagnostics;
the reload service never waits for a held gallery lock.

The ROS-free side is tested in test/test_gallery_hostile.py.
"""
from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path

import pytest

from ros_helpers import (DATA, image_msg, level, overrides, published_status, read_bgr, start_node,
                         status_values, wait_active, wait_for, write_params)

pytestmark = pytest.mark.ros

PORTRAIT = DATA / "faces" / "obama_1_official_portrait_2012.jpg"
WHOLE_IMAGE = [0.0, 0.0, 1.0, 1.0]  # a portrait: the face is anywhere, not at a driver's seat position


def _node(context, name: str, gallery: Path, topic: str):
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    return DriverMonitorNode(name, context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": WHOLE_IMAGE,
        "gallery.path": str(gallery), "runtime.providers": ["CPUExecutionProvider"],
        "runtime.intra_op_threads": 1}))


def _active_with_one_frame(node):
    """Configure and activate ``node``, then let its worker thread process one real driver frame
    (stamp 7 s); returns the frame (BGR) for the frames sent later."""
    from rclpy.lifecycle import TransitionCallbackReturn

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    bgr = read_bgr(PORTRAIT)
    node._slots.put(0, image_msg(bgr, 7, 0, "cabin"))
    assert wait_for(lambda: node.health.snapshot().processed == 1)
    return bgr


def test_a_fifo_gallery_fails_configure_at_once_naming_it(context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    folder = tmp_path / "gallery"
    folder.mkdir(mode=0o700)
    gallery = folder / "gallery.json"
    os.mkfifo(gallery, 0o600)
    node = _node(context, "inproc_fifo_configure", gallery, "/sp_fifo/cabin/image_raw")

    def hung(signum, frame):
        raise TimeoutError("configure hung on a FIFO gallery")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)  # a blocking open would otherwise hang the test run forever
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # returned: no hang
        assert node.lifecycle_state == "unconfigured"
        assert f"{gallery} is a FIFO (named pipe)" in node.config_error, node.config_error
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        node.destroy_node()


def test_a_fifo_swapped_in_while_running_is_in_diagnostics_and_frames_go_on(context, tmp_path):
    from std_srvs.srv import Trigger

    folder = tmp_path / "gallery"
    folder.mkdir(mode=0o700)
    gallery = folder / "gallery.json"
    topic = "/sp_fifo_run/cabin/image_raw"
    node = _node(context, "inproc_fifo_running", gallery, topic)
    try:
        bgr = _active_with_one_frame(node)
        assert "gallery_error" not in status_values(published_status(node))

        os.mkfifo(folder / "swap", 0o600)
        os.replace(folder / "swap", gallery)  # the gallery becomes a FIFO while the node runs
        node._slots.put(0, image_msg(bgr, 9, 0, "cabin"))  # 2 s later: the gallery is re-checked
        assert wait_for(lambda: node.health.snapshot().processed == 2), "the frame thread blocked"
        snap = node.health.snapshot()
        assert snap.inference_errors == 0 and snap.dropped_error == 0  # no frame was lost
        status = published_status(node)
        values = status_values(status)
        # named by its setting on the DDS domain, not by its path (R93)
        assert "<gallery.path> is a FIFO" in values["gallery_error"], values
        assert str(folder) not in values["gallery_error"] and str(folder) not in status.message
        # a WARN that says why, though the frames go on
        assert level(status) >= 1 and "gallery re-read failed" in status.message, status.message
        assert values["faces"] == "1" and values["attention_state"] != "waiting for the first frame"

        # the reload service does not wait for a held lock (it would hold up the frames)
        gallery.unlink()
        lock = os.open(folder / "gallery.json.lock", os.O_RDWR)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            response = node._on_reload_gallery(Trigger.Request(), Trigger.Response())
            assert not response.success and "locked by another process" in response.message
        finally:
            os.close(lock)
        response = node._on_reload_gallery(Trigger.Request(), Trigger.Response())
        assert response.success, response.message
        assert "gallery_error" not in status_values(published_status(node))
    finally:
        node.stop()
        node.destroy_node()


def test_a_driver_forgotten_while_the_stamps_stand_still_is_no_longer_identified(context, tmp_path):
    """The gallery was re-checked only after a second of *stream* time: a cabin camera whose header
    stamps stand still (a stuck driver clock, paused sim time) kept a driver identified after
    `driver forget` erased them, for as long as the node ran. The stamps stand at 7 s, not 0: a
    camera that never stamps (0) is timed by the frames' arrival (R39). Camera health is off
    here: it would call such a stream frozen and not judge the driver at all."""
    import time

    import numpy as np
    from rclpy.lifecycle import TransitionCallbackReturn

    from sense_perception.face import ConsentRecord, FaceConfig, FaceEngine, GalleryStore
    from sense_perception.ros.driver_monitor_node import DriverMonitorNode

    folder = tmp_path / "gallery"
    folder.mkdir(mode=0o700)
    gallery = folder / "gallery.json"
    engine = FaceEngine(FaceConfig(driver_region=WHOLE_IMAGE))
    photos = [DATA / "faces" / "obama_1_official_portrait_2012.jpg", DATA / "faces" / "obama_2_congress_2009.jpg"]
    store = GalleryStore(gallery)
    record = store.enroll("Barack Obama", np.stack([engine.driver_embedding(read_bgr(p))[2] for p in photos]),
                          ConsentRecord.now("Barack Obama"))
    topic = "/sp_forget/cabin/image_raw"
    node = DriverMonitorNode("inproc_forget_frozen_stamps", context=context, parameter_overrides=overrides(**{
        "camera_topic": topic, "no_input_warn_s": 60.0, "face.driver_region": WHOLE_IMAGE,
        "gallery.path": str(gallery), "camera_health.enabled": False,
        "runtime.providers": ["CPUExecutionProvider"], "runtime.intra_op_threads": 1}))
    face = read_bgr(DATA / "faces" / "obama_3_blue_room_2010.jpg")  # not an enrolment photo

    def feed(frames: int) -> dict[str, str]:
        for _ in range(frames):
            target = node.health.snapshot().processed + 1
            node._slots.put(0, image_msg(face, 7, 0, "cabin"))  # every stamp is 7 s
            assert wait_for(lambda n=target: node.health.snapshot().processed == n), "frame not processed"
        return status_values(published_status(node))

    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        values = feed(8)
        assert values["driver_state"] == "identified" and values["driver_id"] == record.id, values
        store.forget(record.id)
        time.sleep(1.5)  # longer than the gallery check interval, on the wall clock
        values = feed(2)
        assert values["enrolled_drivers"] == "0", values
        assert values["driver_state"] != "identified" and values["driver_id"] == "", values
        assert record.id not in values["driver_reason"]
    finally:
        node.stop()
        node.destroy_node()


def test_a_gallery_nested_too_deeply_neither_kills_the_node_nor_drops_frames(graph, ros_env, context,
                                                                              tmp_path):
    """A gallery replaced by '[[[[...' (200 kB) made json raise RecursionError, which the gallery
    did not turn into a GalleryError: ~/reload_gallery raised inside the executor and ended the
    node's process (both nodes under `sense-perception run`), and every frame was dropped as an
    inference error while the file stayed. Now it is a gallery error like any other."""
    from std_srvs.srv import Trigger

    folder = tmp_path / "gallery"
    folder.mkdir(mode=0o700)
    gallery = folder / "gallery.json"
    deep = folder / "deep"
    deep.write_bytes(b"[" * 200_000)
    deep.chmod(0o600)

    # a real node process, its service called over the graph
    name = "gallery_deep_dm"
    params = write_params(tmp_path / "params.yaml", {name: {
        "camera_topic": "/sp_deep/cabin/image_raw", "no_input_warn_s": 60.0,
        "gallery": {"path": str(gallery)},
        "runtime": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1}}})
    proc = start_node("driver_monitor_node", params, ros_env, tmp_path / "node.log", "-r", f"__node:={name}")
    try:
        wait_active(graph, proc, f"/{name}")
        os.link(deep, folder / "swap")
        os.replace(folder / "swap", gallery)
        response = graph.call(Trigger, f"/{name}/reload_gallery", Trigger.Request())
        assert not response.success and "nests too deeply" in response.message, response.message
        # any participant may call the service: the gallery by its setting, not its path (R93)
        assert "<gallery.path>" in response.message and str(folder) not in response.message
        graph.diagnostics.pop(f"/{name}", None)
        status = graph.wait_status(f"/{name}", lambda s: True, 10.0)  # still publishing
        assert proc.alive(), proc.output()
        assert status_values(status)["state"] == "active"
    finally:
        proc.stop()

    # frames through the worker thread go on, the reason in /diagnostics
    gallery.unlink()
    node = _node(context, "inproc_deep_gallery", gallery, "/sp_deep_inproc/cabin/image_raw")
    try:
        bgr = _active_with_one_frame(node)
        os.link(deep, folder / "swap")
        os.replace(folder / "swap", gallery)
        for i, stamp in enumerate((9, 11)):
            node._slots.put(0, image_msg(bgr, stamp, 0, "cabin"))
            assert wait_for(lambda n=i + 2: node.health.snapshot().processed
                            + node.health.snapshot().inference_errors >= n)
        snap = node.health.snapshot()
        assert snap.inference_errors == 0 and snap.processed == 3, snap
        values = status_values(published_status(node))
        assert "nests too deeply" in values["gallery_error"], values
        assert values["faces"] == "1"
    finally:
        node.stop()
        node.destroy_node()
