"""Fleet replay on a real local Ray instance (2 CPUs) with real bags: the sample bag, copies of it in
other layouts, a damaged one, one without cameras, and one whose storage never answers.

One Ray instance serves the whole module (starting one takes seconds). It declares one GPU as a
logical Ray resource: there is no GPU here, so what is tested of the GPU path is Ray's side of it
(the per-worker request, its placement, the GPU id a worker is given, the refusal of a request
no node can meet), not CUDA.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from replay_helpers import (CABIN, FRONT, SAMPLE_BAG, SAMPLE_COUNTS, copy_bag, copy_dir,
                            enrol_sample_driver, read_output)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sense_perception.errors import FleetError
from sense_perception.fleet.cluster import worker_options
from sense_perception.fleet.dispatch import Listener
from sense_perception.fleet.outputs import MARKER
from sense_perception.fleet.runner import FleetRequest, run_fleet
from sense_perception.replay.engine import REPLAY_MARKER, ReplayOptions, Replayer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_module():
    # Imported here, not at module level: the ROS test run collects this module in .venv-ros,
    # which has no Ray (and deselects these tests).
    if os.environ.get("CI"):
        import ray  # CI installs the fleet extra (make test): a missing Ray must fail, not skip
    else:
        ray = pytest.importorskip("ray", reason="Ray not installed: pip install '.[fleet]'")
    return ray


@pytest.fixture(scope="module")
def ray_local(ray_module):
    ray = ray_module
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
             object_store_memory=100 * 1024 * 1024, log_to_driver=False,
             logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()


def _no_cameras_bag(path: Path) -> Path:
    store = get_typestore(Stores.ROS2_JAZZY)
    string = store.types["std_msgs/msg/String"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/vehicle/status", "std_msgs/msg/String", typestore=store)
        for i in range(3):
            writer.write(conn, 1_700_000_000_000_000_000 + i * 10**8,
                         store.serialize_cdr(string(data=f"ok {i}"), "std_msgs/msg/String"))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """in/: six recordings. day1 and day2 hold bags of one name; loose/ a single-file bag."""
    root = tmp_path_factory.mktemp("fleet") / "in"
    copy_dir(SAMPLE_BAG, root / "day1" / "sample_bag")
    copy_dir(SAMPLE_BAG, root / "day2" / "sample_bag")
    copy_bag(SAMPLE_BAG, root / "sqlite_bag", StoragePlugin.SQLITE3)
    (root / "loose").mkdir()
    shutil.copy(SAMPLE_BAG / "sample_bag.mcap", root / "loose" / "drive.mcap")
    damaged = copy_dir(SAMPLE_BAG, root / "damaged")
    (mcap,) = damaged.glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * 0.8)])  # a copy cut short, as test_replay_bad_bags
    _no_cameras_bag(root / "no_cameras")
    return root


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """Enrolled driver, and onnxruntime threads set explicitly.

    With the thread count fixed on both sides, a fleet worker and a replay in this process run the
    same onnxruntime kernels with the same partitioning on the same bytes and the same CPU, so
    their outputs are compared for exact equality. (Left at 0, a worker would use one thread per
    reserved CPU and a plain replay one per core: the same maths, but split differently, and
    only a tolerance would be justified.)
    """
    tmp = tmp_path_factory.mktemp("config")
    gallery, driver_id = enrol_sample_driver(tmp)
    path = tmp / "params.yaml"
    path.write_text("object_detector:\n  ros__parameters:\n    runtime:\n      intra_op_threads: 1\n"
                    "driver_monitor:\n  ros__parameters:\n    runtime:\n      intra_op_threads: 1\n"
                    f"    gallery:\n      path: {gallery}\n")
    return path, driver_id


@pytest.fixture(scope="module")
def fleet_run(ray_local, inputs, config, tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet_out") / "out"
    result = run_fleet(FleetRequest(inputs=[inputs], out=out, workers=2, config=config[0],
                                    cabin=CABIN, time_limit_s=300))
    return out, result


def _by_bag(summary):
    return {Path(r["bag"]).relative_to(summary["settings"]["inputs"][0]).as_posix(): r
            for r in summary["per_bag"]}


def _perception(bag_dir: Path) -> dict[tuple[str, int], bytes]:
    """Every output message but /diagnostics (it holds the worker's own counters), raw CDR."""
    return {(m.channel.topic, m.log_time_ns): m.message.data for m in read_output(bag_dir)
            if m.channel.topic != "/diagnostics"}


def test_outputs_and_summary(fleet_run, config):
    out, result = fleet_run
    summary = result.summary
    assert json.loads((out / "fleet_summary.json").read_text()) == summary
    bags = _by_bag(summary)
    assert set(bags) == {"day1/sample_bag", "day2/sample_bag", "sqlite_bag", "loose/drive.mcap",
                         "damaged", "no_cameras"}
    assert summary["bags"] == {"found": 6, "done": 4, "partial": 1, "failed": 1, "skipped": 0}
    assert result.exit_code == 1
    for key in ("day1/sample_bag", "day2/sample_bag", "sqlite_bag", "loose/drive.mcap"):
        r = bags[key]
        assert r["status"] == "done" and r["attempts"] == 1, r
        assert r["frames"] == sum(SAMPLE_COUNTS.values())
        assert r["detections"]["face"] == 8 and r["detections"]["car"] >= 15
    assert bags["day1/sample_bag"]["name"] != bags["day2/sample_bag"]["name"]
    assert bags["loose/drive.mcap"]["name"] == "drive"
    damaged = bags["damaged"]
    assert damaged["status"] == "partial" and damaged["skipped_messages"] > 0
    assert 0 < damaged["frames"] < 13
    # nothing unaccounted for: every image is a frame or skipped; so is every lost message the
    # replay reads beside them (the front camera's CameraInfo, /tf_static), each named
    skipped = json.loads((out / damaged["name"] / "summary.json").read_text())["skipped"]
    assert sum(s["count"] for s in skipped) == damaged["skipped_messages"]
    lost_images = sum(s["count"] for s in skipped if s["topic"] in SAMPLE_COUNTS)
    assert damaged["frames"] + lost_images == 13
    assert {s["topic"] for s in skipped} <= set(SAMPLE_COUNTS) | {"/camera/front/camera_info",
                                                                  "/tf_static"}
    failed = bags["no_cameras"]
    assert failed["status"] == "failed" and failed["attempts"] == 1  # an engine error: no retry
    assert "no readable image topic" in failed["reason"] and failed["output"] is None
    # DIR/<name>/ holds exactly what replay writes (its outputs and the replay's own marker), for
    # every replayed bag, and nothing else but the marker that lets fleet (and only fleet)
    # replace it
    replayed = {r["name"] for r in bags.values() if r["status"] in ("done", "partial")}
    assert {p.name for p in out.iterdir()} == replayed | {"fleet_summary.json"}
    for name in replayed:
        assert {p.name for p in (out / name).iterdir()} == {"bag", "summary.json", MARKER,
                                                             REPLAY_MARKER}
        assert json.loads((out / name / "summary.json").read_text())["frames"] == \
            next(r["frames"] for r in bags.values() if r["name"] == name)
    _, driver_id = config
    identity = json.loads((out / bags["sqlite_bag"]["name"] / "summary.json").read_text())["identity"]
    assert identity[-1] == {**identity[-1], "state": "identified", "driver": driver_id}
    # totals and workers
    assert summary["frames"] == sum(r["frames"] for r in bags.values())
    assert summary["detections"]["face"] == 8 * 4 + bags["damaged"]["detections"].get("face", 0)
    workers = summary["workers"]
    assert len(workers) == 2 and all(w["end"] == "finished" and w["threads"] == 1 for w in workers)
    assert sum(w["bags"] for w in workers) == 6 and sum(w["frames"] for w in workers) == summary["frames"]
    assert all(w["frames_per_s"] > 0 and w["pid"] != os.getpid() for w in workers)
    assert summary["frames_per_s"]["while_replaying"] > 0 and summary["bags_per_s"] > 0
    assert summary["ray"]["used"] and summary["ray"]["resources"]["CPU"] == 2


def test_detections_equal_single_replay(fleet_run, config, inputs, tmp_path):
    out, result = fleet_run
    bags = _by_bag(result.summary)
    for key in ("day1/sample_bag", "damaged"):
        single = tmp_path / key.replace("/", "_")
        replayed = Replayer(ReplayOptions(inputs / key, single, cabin=CABIN, config=config[0])).run()
        fleet_dir = out / bags[key]["name"]
        fleet_messages = _perception(fleet_dir / "bag")
        assert fleet_messages == _perception(single / "bag"), key
        assert any(topic.endswith("/detections") for topic, _ in fleet_messages)
        assert any(topic.endswith("/driver_identity") for topic, _ in fleet_messages)
        fleet_summary = json.loads((fleet_dir / "summary.json").read_text())
        for field in ("frames", "cameras", "identity", "skipped"):
            assert fleet_summary[field] == replayed.summary[field], (key, field)


def test_resume_skips_done_bags_and_force_replays(fleet_run, inputs, config, tmp_path):
    out, _ = fleet_run
    again = tmp_path / "out"
    shutil.copytree(out, again)
    stamps = {p: p.stat().st_mtime_ns for p in again.glob("*/summary.json")}
    result = run_fleet(FleetRequest(inputs=[inputs], out=again, workers=2, config=config[0],
                                    cabin=CABIN))
    summary = result.summary
    assert summary["bags"] == {"found": 6, "done": 0, "partial": 0, "failed": 1, "skipped": 5}
    assert {p: p.stat().st_mtime_ns for p in again.glob("*/summary.json")} == stamps  # untouched
    bags = _by_bag(summary)
    assert bags["sqlite_bag"]["frames"] == 13  # skipped bags still report their figures
    assert bags["no_cameras"]["status"] == "failed"  # not done before: tried again
    assert result.exit_code == 1
    forced = run_fleet(FleetRequest(inputs=[inputs / "sqlite_bag"], out=again, workers=1,
                                    config=config[0], cabin=CABIN, force=True))
    assert forced.summary["bags"]["done"] == 1 and forced.exit_code == 0
    changed = [p for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert changed == [again / "sqlite_bag" / "summary.json"]
    assert not [p for p in again.iterdir() if p.name.startswith(".")]


class _KillFirstWorker(Listener):
    """kill -9 the process of the worker that gets the first bag, right after it got it."""

    def __init__(self) -> None:
        self.killed: tuple[str, int] | None = None

    def started(self, name, attempt, worker):
        if self.killed is None:
            os.kill(worker["pid"], signal.SIGKILL)
            self.killed = (name, worker["pid"])


def test_killed_worker_loses_no_bag(ray_local, fleet_run, inputs, config, tmp_path):
    listener = _KillFirstWorker()
    sources = [inputs / "day1" / "sample_bag", inputs / "sqlite_bag", inputs / "loose" / "drive.mcap"]
    out = tmp_path / "out"
    result = run_fleet(FleetRequest(inputs=sources, out=out, workers=2, config=config[0],
                                    cabin=CABIN), listener)
    summary = result.summary
    assert summary["bags"] == {"found": 3, "done": 3, "partial": 0, "failed": 0, "skipped": 0}
    assert result.exit_code == 0
    name, pid = listener.killed
    reports = {r["name"]: r for r in summary["per_bag"]}
    assert reports[name]["attempts"] == 2
    assert any("worker process died" in n for n in reports[name]["notes"])
    assert all(r["attempts"] == 1 for n, r in reports.items() if n != name)
    dead = [w for w in summary["workers"] if w["pid"] == pid]
    assert len(dead) == 1 and dead[0]["end"].startswith(f"lost on {name}")
    assert len(summary["workers"]) == 3  # a new worker replaced the dead one
    # the retried bag's outputs are whole and the same as from the undisturbed run
    assert {p.name for p in out.iterdir()} == set(reports) | {"fleet_summary.json"}
    main_out, main_result = fleet_run
    source = Path(reports[name]["bag"])
    main_name = next(r["name"] for r in main_result.summary["per_bag"] if r["bag"] == str(source))
    assert _perception(out / name / "bag") == _perception(main_out / main_name / "bag")


def test_bag_past_the_time_limit_is_killed_and_retried_once(ray_local, tmp_path):
    # 300 front-camera frames (each sample frame 75 times, 10 ms apart): far more than any CPU
    # worker replays in 3 s. A hung read (a dead network mount) takes the same path: only killing
    # the worker ends it. (A FIFO, the old stand-in for a hung read, is now refused at once.)
    def many(topic, msgtype, timestamp, raw):
        copies = 75 if topic == FRONT else 1
        return [(topic, msgtype, timestamp + k * 10_000_000, raw) for k in range(copies)]

    hung = copy_bag(SAMPLE_BAG, tmp_path / "in" / "long", edit=many)
    out = tmp_path / "out"
    result = run_fleet(FleetRequest(inputs=[hung], out=out, workers=1, time_limit_s=3))
    (report,) = result.summary["per_bag"]
    assert report["status"] == "failed" and report["attempts"] == 2
    assert report["reason"].count("time limit of 3 s") == 2
    assert result.exit_code == 2  # nothing could be replayed
    workers = result.summary["workers"]
    assert len(workers) == 2 and all("time limit" in w["end"] for w in workers)
    assert {p.name for p in out.iterdir()} == {"fleet_summary.json"}


def test_gpu_request_reaches_ray(ray_local, inputs, tmp_path):
    assert worker_options(2, 0.5) == {"num_cpus": 2, "num_gpus": 0.5, "max_restarts": 0,
                                      "max_task_retries": 0}
    assert "num_gpus" not in worker_options(1, 0)
    out = tmp_path / "out"
    result = run_fleet(FleetRequest(inputs=[inputs / "sqlite_bag", inputs / "loose"], out=out,
                                    workers=2, gpus_per_worker=0.5, cabin=CABIN, video=True))
    assert result.summary["bags"]["done"] == 2
    # --video: the exterior cameras' MP4s; the cabin's shows a face and needs --video-cabin
    assert sorted(p.name for p in (out / "drive" / "video").iterdir()) == [
        "camera_front_image_raw_compressed.mp4", "camera_windshield_image_raw.mp4"]
    workers = result.summary["workers"]
    # two half-GPU workers share the one (logical) GPU; Ray tells each which one it got
    assert len(workers) == 2 and all(w["gpu_ids"] == ["0"] for w in workers)
    with pytest.raises(FleetError, match="no node with that many GPUs"):
        run_fleet(FleetRequest(inputs=[inputs / "sqlite_bag"], out=tmp_path / "o2",
                               gpus_per_worker=2))


def test_cli_starts_local_ray_and_refuses_missing_gpus(ray_module, inputs, tmp_path):
    """The command as users run it: its own local Ray, progress, table, summary, exit status."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sense_perception.cli.main", "fleet"]
    proc = subprocess.run([*cmd, str(inputs / "loose"), "--out", str(out), "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sense-perception fleet" in proc.stdout and "1 done" in proc.stdout
    summary = json.loads((out / "fleet_summary.json").read_text())
    assert summary["ray"]["address"] == "local" and summary["bags"]["done"] == 1
    assert (out / "drive" / "bag").is_dir()
    proc = subprocess.run([*cmd, str(inputs / "sqlite_bag"), "--out", str(tmp_path / "o2"),
                           "--gpus-per-worker", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "--gpus-per-worker 1" in proc.stderr and "GPUs: 0" in proc.stderr


@pytest.fixture
def ray_head(ray_module, tmp_path):
    """A one-node cluster as docs/fleet.md starts it (`ray start --head`), with token authentication
    (the default of `ray start` since Ray 2.59, set here explicitly) in a private temp dir, so no
    other Ray on this machine can find it; stopped by signalling its own process group."""
    token = os.urandom(16).hex()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    # Ray's socket paths live under it and must stay under 108 bytes: pytest's tmp_path is too deep
    temp = Path(tempfile.mkdtemp(prefix="sp-ray-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        client_port = s.getsockname()[1]
    log = (tmp_path / "ray_start.log").open("w")
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head",
                             "--block", "--port", "0", "--temp-dir", str(temp), "--num-cpus", "1",
                             "--include-dashboard", "false", "--disable-usage-stats",
                             "--ray-client-server-port", str(client_port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address_file = temp / "ray_current_cluster"
    try:
        deadline = time.monotonic() + 120
        while not (address_file.is_file() and address_file.read_text().strip()):
            assert head.poll() is None, (tmp_path / "ray_start.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "ray start --head did not come up in 120 s"
            time.sleep(0.5)
        yield address_file.read_text().strip(), env
    finally:
        head.terminate()  # `ray start --block` stops the processes it started, then exits
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)
        try:  # anything of that cluster still running is in the process group started above
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_cli_joins_a_cluster_started_with_ray_start(ray_head, inputs, tmp_path):
    address, env = ray_head
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "fleet",
                           str(inputs / "loose"), "--out", str(out), "--address", address],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "fleet_summary.json").read_text())
    assert summary["ray"]["address"] == address and summary["ray"]["resources"]["CPU"] == 1
    assert summary["bags"]["done"] == 1 and len(summary["workers"]) == 1
    # without the cluster's token the join fails with an error that says what to set
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "fleet",
                           str(inputs / "loose"), "--out", str(tmp_path / "o2"), "--address",
                           address], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in env.items() if not k.startswith("RAY_AUTH")})
    assert proc.returncode == 2 and "RAY_AUTH_MODE=token" in proc.stderr
