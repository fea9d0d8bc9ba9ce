"""Replay faults: the output disk filling up mid-replay, and inference raising on one frame.

Disk full is real: the replay runs with ``--out`` on a small tmpfs mounted in a private mount
namespace (``unshare --mount`` as root; as a normal user ``unshare --user --map-root-user --mount``,
else ``sudo -n unshare --mount``), so the kernel itself answers ENOSPC and nothing leaks into the
host's mount table. Where none of these may mount, the test is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from replay_helpers import CABIN, FRONT, SAMPLE_BAG, SAMPLE_COUNTS, WINDSHIELD, read_output
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from sense_perception.core.imaging.image_decode import decode_any
from sense_perception.replay.engine import INCOMPLETE_FILE, ReplayOptions, Replayer

ALL_TOPICS = [FRONT, WINDSHIELD, CABIN]

# Runs inside the mount namespace: replay onto the tmpfs, then report what is there (the tmpfs
# disappears with the namespace).
_INSIDE = textwrap.dedent('''
    import contextlib, io, json, sys
    from pathlib import Path
    from sense_perception.cli.main import main
    bag, out = sys.argv[1], Path(sys.argv[2])
    # The sample's cabin camera adds its bytes as a third exterior camera: a config that puts the
    # cabin camera elsewhere (the configured one is never replayed as an exterior camera).
    config = Path(__file__).with_name("cabin_elsewhere.yaml")
    config.write_text("driver_monitor:\\n  ros__parameters:\\n    camera_topic: /cabin_camera/image_raw\\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["replay", bag, "--out", str(out), "--copy-input", "--config", str(config),
                     "--topics", *sys.argv[3:]])
    files = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    marker = out / "REPLAY_INCOMPLETE.txt"
    print(json.dumps({"code": code, "stderr": err.getvalue(), "files": files,
                      "marker": marker.read_text() if marker.exists() else None}))
''')


def _namespace_prefix(probe_dir: Path) -> list[str]:
    """The unshare command that lets this process mount a tmpfs privately, or skip."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): cannot mount a private tmpfs to fill up")
    if os.geteuid() == 0:
        candidates = [["unshare", "--mount"]]
    else:  # unprivileged user namespaces, else passwordless sudo (CI runners)
        candidates = [["unshare", "--user", "--map-root-user", "--mount"]]
        if shutil.which("sudo"):
            candidates.append(["sudo", "-n", "unshare", "--mount"])
    for prefix in candidates:
        probe = subprocess.run([*prefix, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                                str(probe_dir)], capture_output=True, text=True)
        if probe.returncode == 0:
            return prefix
    pytest.skip(f"mounting a tmpfs is not permitted here ({probe.stderr.strip()}); the disk-full "
                "test needs root or unprivileged user namespaces")


@pytest.mark.parametrize("size", ["256k", "1400k"], ids=["full_at_first_chunk", "full_later"])
def test_disk_full_during_replay_is_a_clear_error_and_marks_the_output(tmp_path: Path, size: str
                                                                       ) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = _namespace_prefix(disk)
    script = tmp_path / "inside.py"
    script.write_text(_INSIDE)
    out = disk / "out"
    command = (f'mount -t tmpfs -o size={size} tmpfs "$1" && shift && exec "$@"')
    proc = subprocess.run(
        [*prefix, "sh", "-c", command, "sh", str(disk), sys.executable, str(script), str(SAMPLE_BAG),
         str(out), *ALL_TOPICS],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    assert report["code"] == 2, report  # fatal, not "finished with skips"
    err = report["stderr"]
    assert "No space left on device (the output disk is full)" in err, err
    assert f"the outputs in {out} are incomplete" in err and INCOMPLETE_FILE in err, err
    assert "fix: free space" in err and "Traceback" not in err, err
    # the partial output is marked, and no summary.json claims a finished replay
    assert INCOMPLETE_FILE in report["files"], report["files"]
    assert report["marker"] is not None and "incomplete" in report["marker"]
    assert "summary.json" not in report["files"] and ".summary.json.tmp" not in report["files"]
    # nor the bag's metadata.yaml being written (R90: left empty, or cut short, in bag/)
    assert "bag/metadata.yaml.tmp" not in report["files"], report["files"]
    assert not (out.exists())  # the tmpfs lived only in the namespace: nothing leaked here


def test_the_same_replay_with_space_completes_and_leaves_no_marker(tmp_path: Path) -> None:
    """Control for the test above: with room on the disk the same command succeeds."""
    script = tmp_path / "inside.py"
    script.write_text(_INSIDE)
    proc = subprocess.run([sys.executable, str(script), str(SAMPLE_BAG), str(tmp_path / "out"),
                           *ALL_TOPICS], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, report
    assert INCOMPLETE_FILE not in report["files"] and "summary.json" in report["files"]
    assert sum(report["files"].values()) > 1400 * 1024  # so both tmpfs sizes above do fill up


# -- an exception inside inference ---------------------------------------------------------------------


def _bag_image(topic: str, index: int = 0) -> np.ndarray:
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(SAMPLE_BAG) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        for i, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
            if i == index:
                return decode_any(store.deserialize_cdr(raw, conn.msgtype))
    raise AssertionError(f"{topic} has no message {index}")


class _FailOn:
    """The real detector or identifier, raising as onnxruntime does on one given frame."""

    def __init__(self, inner, bad: np.ndarray) -> None:
        self._inner = inner
        self._bad = bad
        self.failed = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _check(self, image) -> None:
        # Exterior frames reach detect() as zero-copy ImageViews of the message buffer.
        image = image.to_bgr() if hasattr(image, "to_bgr") else image
        if image.shape == self._bad.shape and np.array_equal(image, self._bad):
            self.failed += 1
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code "
                               "returned while running Conv node")

    def detect(self, images):
        for image in images:
            self._check(image)
        return self._inner.detect(images)

    def process(self, image, t, camera_fault=False):
        self._check(image)
        return self._inner.process(image, t, camera_fault=camera_fault)


@pytest.fixture(scope="module")
def detector():
    from sense_perception.core.detection.detector import ObjectDetector

    return ObjectDetector.from_params({"runtime.intra_op_threads": 1}, "test")


def test_detector_raising_on_one_frame_drops_only_that_frame(tmp_path: Path, detector) -> None:
    # The windshield frame shares its detect() call with the first front frame: the failed batch is
    # retried frame by frame, so the front frame still gets its detections.
    failing = _FailOn(detector, _bag_image(WINDSHIELD))
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[FRONT, WINDSHIELD]),
                      detector=failing).run()
    assert failing.failed == 2  # in the batch, then alone
    summary = result.summary
    [skip] = summary["skipped"]
    assert skip["topic"] == WINDSHIELD and skip["count"] == 1
    assert skip["reason"].startswith("inference failed: RuntimeError: [ONNXRuntimeError]")
    assert summary["cameras"][FRONT]["frames"] == SAMPLE_COUNTS[FRONT]
    assert summary["cameras"][WINDSHIELD]["frames"] == 0
    assert not result.complete  # the CLI exits 1: finished, something skipped
    assert not (tmp_path / "out" / INCOMPLETE_FILE).exists()  # finished: not a partial output
    messages = read_output(tmp_path / "out" / "bag")
    topics = [m.channel.topic for m in messages]
    assert topics.count("/camera/front/detections") == SAMPLE_COUNTS[FRONT]
    assert "/camera/windshield/detections" not in topics
    # R39: the frame was judged: its camera health is written, as the node publishes it
    assert topics.count("/camera/windshield/camera_health") == SAMPLE_COUNTS[WINDSHIELD]
    last = [m.ros_msg for m in messages if m.channel.topic == "/diagnostics"][-1]
    # the object_detector status, with the node's keys: the lost frame by cause and where
    [status] = [s for s in last.status if s.name == "sense_perception replay: object_detector"]
    values = {kv.key: kv.value for kv in status.values}
    assert values["frames_dropped_error"] == values["lost[inference]"] == "1"
    assert values["last_error[inference]"].startswith(f"{WINDSHIELD}: RuntimeError")


def test_identifier_raising_on_one_cabin_frame_drops_only_that_frame(tmp_path: Path,
                                                                     monkeypatch) -> None:
    from sense_perception.face.pipeline import DriverIdentifier

    monkeypatch.setenv("SENSE_PERCEPTION_CACHE", str(tmp_path / "cache"))
    identifier = DriverIdentifier.from_params(
        {"gallery.path": str(tmp_path / "gallery.json"), "runtime.intra_op_threads": 1}, "test")
    failing = _FailOn(identifier, _bag_image(CABIN, 3))
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[], cabin=CABIN),
                      identifier=failing).run()
    assert failing.failed == 1
    [skip] = result.summary["skipped"]
    assert skip["topic"] == CABIN and skip["count"] == 1 and "inference failed" in skip["reason"]
    assert result.summary["cameras"][CABIN]["frames"] == SAMPLE_COUNTS[CABIN] - 1
    topics = [m.channel.topic for m in read_output(tmp_path / "out" / "bag")]
    assert topics.count("/camera/cabin/driver_identity") == SAMPLE_COUNTS[CABIN] - 1
    assert topics.count("/camera/cabin/camera_health") == SAMPLE_COUNTS[CABIN]  # judged: R39


def _third_call_raises(monkeypatch, owner: type, name: str, message: str) -> dict[str, int]:
    """Make the third call of ``owner.name`` raise ValueError(``message``); the calls counted."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def third_raises(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError(message)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, third_raises)
    return calls


def test_a_tracking_step_raising_on_one_frame_drops_only_that_frame(
        tmp_path: Path, detector, monkeypatch) -> None:
    # only inference was guarded: a fault in the steps after detection (tracking, positions) on
    # one frame ended the whole replay
    from sense_perception.core.exterior_steps import ExteriorSteps

    calls = _third_call_raises(monkeypatch, ExteriorSteps, "frame", "a bug in this step")
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[FRONT]),
                      detector=detector).run()
    assert calls["n"] >= SAMPLE_COUNTS[FRONT]  # the replay went on after it
    [skip] = result.summary["skipped"]
    assert skip["topic"] == FRONT and skip["count"] == 1 and "a bug in this step" in skip["reason"]
    assert result.summary["cameras"][FRONT]["frames"] == SAMPLE_COUNTS[FRONT] - 1
    assert not result.complete and not (tmp_path / "out" / INCOMPLETE_FILE).exists()
    topics = [m.channel.topic for m in read_output(tmp_path / "out" / "bag")]
    assert topics.count("/camera/front/detections") == SAMPLE_COUNTS[FRONT] - 1
    # R39: a frame judged before its step failed has its camera health written (the node's too)
    assert topics.count("/camera/front/camera_health") == SAMPLE_COUNTS[FRONT]


def test_a_frame_camera_health_cannot_judge_is_detected_all_the_same(
        tmp_path: Path, detector, monkeypatch, caplog) -> None:
    # A fault of the camera-health check on one frame dropped the frame whole (its detections
    # lost, counted as an inference failure, the replay incomplete): a diagnostic's fault cost
    # the perception. The frame is detected now; its camera_health says STALE naming the error,
    # summary.json counts it (unjudged_frames), and the replay warns once.
    from sense_perception.core.health.camera_health import STALE, CameraHealthBank

    _third_call_raises(monkeypatch, CameraHealthBank, "update", "a bug in the health check")
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=[FRONT]),
                      detector=detector).run()
    assert result.summary["skipped"] == [] and result.complete
    assert result.summary["cameras"][FRONT]["frames"] == SAMPLE_COUNTS[FRONT]
    assert result.summary["camera_health"][FRONT]["unjudged_frames"] == 1
    assert "could not judge a frame of /camera/front/image_raw" in caplog.text
    messages = read_output(tmp_path / "out" / "bag")
    topics = [m.channel.topic for m in messages]
    assert topics.count("/camera/front/detections") == SAMPLE_COUNTS[FRONT]
    health = [m.ros_msg for m in messages if m.channel.topic == "/camera/front/camera_health"]
    assert len(health) == SAMPLE_COUNTS[FRONT]
    [stale] = [h for h in health if h.level == STALE]
    assert "a bug in the health check" in stale.message and stale.hardware_id == FRONT
