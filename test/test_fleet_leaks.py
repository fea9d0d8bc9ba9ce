"""A fleet run never leaves its local Ray behind: not when a step after ``ray.init`` fails while
connecting (the Ray started stayed up, with its GCS and raylet, the reaper and the session folder),
and not after a ``kill -9`` (its session folder stayed in ``/tmp/ray``).

Each case starts a real local Ray instance in a child process, with Ray's temporary folder a
private one of the test (RAY_TMPDIR) so that other runs' folders cannot be mistaken for its own.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
from replay_helpers import ROOT, SAMPLE_BAG
from support import session_processes


@pytest.fixture(scope="module", autouse=True)
def _ray():
    if os.environ.get("CI"):
        import ray  # noqa: F401 - CI installs the fleet extra: a missing Ray must fail, not skip
    else:
        pytest.importorskip("ray", reason="Ray not installed: pip install '.[fleet]'")


@pytest.fixture()
def ray_tmp():
    # Short: Ray's socket paths in it must fit the 107 bytes of a Unix socket address.
    folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# connect() with the step after ray.init (reading the cluster's resources) failing, then what is
# left: Ray initialised?, the processes below this one, the session folders.
_CONNECT_FAILS = """
import json, os, time
from sense_perception.errors import FleetError
from sense_perception.fleet import cluster, reaper
import ray

def unreachable(ray):
    assert ray.is_initialized()  # the failure comes after ray.init succeeded
    raise ConnectionError("the GCS went away")

cluster._resources = unreachable
try:
    cluster.connect(None, 1)
    error = None
except FleetError as exc:
    error = str(exc)
deadline = time.monotonic() + 15
def alive():
    found = []
    for pid in reaper._descendants(os.getpid()):
        try:
            stat = open(f"/proc/{pid}/stat", "rb").read()
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:][:1] != b"Z":
            found.append(cmd)
    return found
while alive() and time.monotonic() < deadline:
    time.sleep(0.5)
root = os.path.join(os.environ["RAY_TMPDIR"], "ray")
print(json.dumps({"error": error, "initialized": ray.is_initialized(), "processes": alive(),
                  "sessions": sorted(n for n in os.listdir(root) if n.startswith("session"))
                  if os.path.isdir(root) else []}))
"""


def test_a_connect_failing_after_ray_init_shuts_down_what_it_started(ray_tmp) -> None:
    proc = subprocess.run([sys.executable, "-c", _CONNECT_FAILS], cwd=ROOT, capture_output=True,
                          text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    left = json.loads(proc.stdout.splitlines()[-1])
    assert left["error"] is not None and left["error"].startswith(
        "cannot start a local Ray instance: ConnectionError: the GCS went away;"), left
    assert left["initialized"] is False
    assert left["processes"] == []  # no GCS, raylet, agent nor reaper outlives the failure
    assert left["sessions"] == []  # the session folder (logs naming the bags) is removed


def test_kill_9_of_a_fleet_run_removes_its_ray_session_folder_too(tmp_path, ray_tmp) -> None:
    """The reaper already ended the processes; the session folder (logs naming the bag paths,
    sockets) stayed in /tmp/ray after each kill -9. Another session's folder is left alone."""
    inputs = tmp_path / "in"
    for i in range(2):
        shutil.copytree(SAMPLE_BAG, inputs / f"run{i + 1}")
    root = ray_tmp / "ray"
    other = root / "session_2026-01-01_00-00-00_000000_1"  # another run's: must stay
    (other / "logs").mkdir(parents=True)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "sense_perception.cli.main", "fleet",
                             str(inputs), "--out", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "RAY_TMPDIR": str(ray_tmp)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not any(p.name.endswith(".partial") for p in out.glob(".*")):  # a bag has begun
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no bag started"
            time.sleep(0.2)
        ours = [p for p in root.iterdir() if p.name.startswith("session_2") and p != other]
        assert len(ours) == 1, ours  # this run's own session folder
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 20
        while (session_processes(proc.pid) or ours[0].exists()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert session_processes(proc.pid) == [], "Ray processes outlived the fleet run"
        assert not ours[0].exists(), "the killed run's Ray session folder was left"
        assert sorted(p.name for p in root.iterdir() if p.name.startswith("session")) == \
            [other.name]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_kill_9_while_a_worker_unpacks_a_file_compressed_bag_leaves_no_copy(tmp_path,
                                                                           ray_tmp) -> None:
    """A worker unpacks a file-compressed bag (here 3 GiB) into its Ray session folder, not
    /tmp: after a kill -9 of the run the reaper removes the folder, the copy with it."""
    from test_replay_file_compression import _bomb_bag, _leftovers, _stream_bomb

    bag = _bomb_bag(tmp_path / "in" / "big", _stream_bomb(3 << 10))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "sense_perception.cli.main", "fleet",
                             str(bag.parent), "--out", str(tmp_path / "out"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp),
                                 "RAY_TMPDIR": str(ray_tmp)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        copies: list[Path] = []
        while not copies:  # the worker's unpacked copy, growing
            copies = [p for p in (ray_tmp / "ray").glob("session_2*/fleet_tmp/*/*.mcap")
                      if p.stat().st_size > 0]
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the bag was never unpacked"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 20
        while (session_processes(proc.pid) or copies[0].exists()) and \
                time.monotonic() < deadline:
            time.sleep(0.5)
        assert not copies[0].exists(), "the killed worker's unpacked copy was left"
        assert _leftovers(tmp) == []  # nothing of it in the system's temporary folder either
        assert not list((ray_tmp / "ray").glob("session_2*"))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_worker_keeps_its_temporary_files_only_where_nobody_else_can_reach_them(
        tmp_path, monkeypatch) -> None:
    """Ray makes its session folders 0777 without the sticky bit: another local user could put a
    ``fleet_tmp`` of their own there (here a link to their folder) before the worker, which then
    unpacked a file-compressed cabin bag (the driver's face) into it. A worker uses ``fleet_tmp``
    only in a session folder that is its user's alone, and only a ``fleet_tmp`` that is too."""
    import stat
    import types

    import ray

    from sense_perception.fleet import actor

    session = tmp_path / "session_2026-01-01_00-00-00_1_1"
    session.mkdir()
    theirs = tmp_path / "someone_elses"
    theirs.mkdir()
    node = types.SimpleNamespace(get_session_dir_path=lambda: str(session))
    monkeypatch.setattr(ray._private.worker, "_global_node", node)
    monkeypatch.setattr(actor.tempfile, "tempdir", None)

    session.chmod(0o777)  # as Ray makes it
    (session / "fleet_tmp").symlink_to(theirs)
    actor._temp_in_session()
    assert actor.tempfile.tempdir is None  # the system's temporary folder, not theirs
    (session / "fleet_tmp").unlink()
    (session / "fleet_tmp").mkdir(mode=0o777)  # or a folder others may enter
    (session / "fleet_tmp").chmod(0o777)
    session.chmod(0o700)
    actor._temp_in_session()
    assert actor.tempfile.tempdir is None
    (session / "fleet_tmp").rmdir()
    actor._temp_in_session()  # a private session folder: its own fleet_tmp, 0700
    assert actor.tempfile.tempdir == str(session / "fleet_tmp")
    assert stat.S_IMODE((session / "fleet_tmp").stat().st_mode) == 0o700


_CONNECT = """
import json, os, stat
import ray
from sense_perception.fleet import cluster, reaper
from sense_perception.fleet.key_env import key_kept_from_ray
with key_kept_from_ray(None, None):  # as the runner starts a local Ray: no --cabin here
    run = cluster.connect(None, 1)
mode = stat.S_IMODE(os.stat(run.session_dir).st_mode)
answer = ray.get(ray.remote(lambda: 42).remote())  # a worker authenticates with the run's token
keyed = []  # Ray's processes (and the reaper) whose environment holds the gallery key
for pid in reaper._descendants(os.getpid()):
    try:
        if b"SENSE_PERCEPTION_GALLERY_KEY=" in open(f"/proc/{pid}/environ", "rb").read():
            keyed.append(open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")[0].decode())
    except OSError:
        pass
import psutil
listening = []  # (program, address) of every socket a process of the instance listens on
for pid in reaper._descendants(os.getpid()):
    try:
        proc = psutil.Process(pid)
        listening += [(proc.name(), c.laddr.ip) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        pass
run.close()
home = os.path.expanduser("~")
print(json.dumps({"mode": mode, "answer": answer, "auth_mode": os.environ.get("RAY_AUTH_MODE"),
                  "token": bool(os.environ.get("RAY_AUTH_TOKEN")), "keyed": keyed,
                  "listening": listening,
                  "key_back": os.environ.get("SENSE_PERCEPTION_GALLERY_KEY") == "ab" * 32,
                  "written": {str(p): stat.S_IMODE(os.lstat(os.path.join(d, p)).st_mode)
                              for d, dirs, files in os.walk(home) for p in dirs + files}}))
"""


@pytest.fixture(scope="module")
def local_run() -> Iterator[dict]:
    """One local fleet instance started by ``connect`` as ``fleet`` starts it, under umask 022,
    with a home folder of its own, none of Ray's token variables set and a gallery key in the
    environment that no worker reads (no ``--cabin``): what it left."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    home = Path(tempfile.mkdtemp(prefix="home"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    try:
        proc = subprocess.run([sys.executable, "-c", _CONNECT], cwd=ROOT, capture_output=True,
                              text=True, timeout=180, preexec_fn=lambda: os.umask(0o022),
                              env={**env, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp),
                                   "HOME": str(home), "SENSE_PERCEPTION_GALLERY_KEY": "ab" * 32})
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield json.loads(proc.stdout.splitlines()[-1])
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def test_a_local_run_makes_its_ray_session_folder_private(local_run) -> None:
    """Ray makes the session folder 0777: other local users could read the workers' logs (bag
    paths) and put their own files and links in it while the run lasts."""
    assert local_run["mode"] == 0o700


def test_a_local_run_leaves_no_ray_token_others_can_read(local_run) -> None:
    """Ray 2.59+ turns token authentication on for a new local instance and wrote the token it
    generated to ~/.ray/auth_token under the umask (0644 in a 0755 ~/.ray), kept after the run
    and taken again by every later local instance of the user: whoever read it could join a later
    run's instance (GCS and raylet listen on every interface) and run code as the user, beside the
    gallery and the cabin frames. The run's token is its own now, in its processes' environment
    only: nothing is written to the home folder, and the workers still authenticate."""
    assert local_run["written"] == {}, local_run["written"]  # was {'.ray': 0o755, 'auth_token': 0o644}
    assert local_run["answer"] == 42
    assert local_run["auth_mode"] == "token" and local_run["token"]


def test_a_local_run_s_ray_listens_on_the_loopback_only(local_run) -> None:
    """R88: the local instance's GCS, raylet and idle workers listened on every interface (`::`),
    its runtime-env agent on the machine's address, reachable from every host that reaches this
    machine, the run's token all that kept them out. Ray's switch for a machine without a cluster
    makes it take 127.0.0.1 for the node: every socket its processes listen on is the loopback."""
    programs = {name for name, _ in local_run["listening"]}
    assert {"gcs_server", "raylet"} <= programs, local_run["listening"]
    assert {ip for _, ip in local_run["listening"]} <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, \
        local_run["listening"]


def test_the_loopback_switch_is_put_back_after_a_local_start(monkeypatch) -> None:
    """A later `--address` run of the same process must reach its cluster with the machine's
    address: the switch and Ray's constant are as before once a local instance has started."""
    from ray._private import ray_constants

    from sense_perception.fleet import cluster

    monkeypatch.delenv(cluster.LOCAL_ONLY_ENV, raising=False)
    before = ray_constants.ENABLE_RAY_CLUSTER
    with cluster.loopback_only():
        assert os.environ[cluster.LOCAL_ONLY_ENV] == "0" and not ray_constants.ENABLE_RAY_CLUSTER
    assert cluster.LOCAL_ONLY_ENV not in os.environ and ray_constants.ENABLE_RAY_CLUSTER == before


def test_a_ray_token_choice_of_the_user_is_kept(monkeypatch) -> None:
    """RAY_AUTH_MODE=disabled, a RAY_AUTH_TOKEN or a RAY_AUTH_TOKEN_PATH of the user's are theirs."""
    from sense_perception.fleet import cluster

    for given in ({"RAY_AUTH_MODE": "disabled"}, {"RAY_AUTH_TOKEN": "f" * 64},
                  {"RAY_AUTH_TOKEN_PATH": "/etc/ray/token"}):
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
            monkeypatch.delenv(name, raising=False)
        for name, value in given.items():
            monkeypatch.setenv(name, value)
        assert not cluster.private_auth_token()
        assert {k: v for k, v in os.environ.items() if k.startswith("RAY_AUTH")} == given
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # token mode asked for, no token given
    assert cluster.private_auth_token()
    assert len(os.environ["RAY_AUTH_TOKEN"]) == 64 and os.environ["RAY_AUTH_MODE"] == "token"


def test_a_ray_token_file_others_can_read_is_reported(tmp_path, monkeypatch) -> None:
    """A 0644 ~/.ray/auth_token that a run before R83 left is taken by the user's own `ray start`
    clusters: named with the fix, never changed (it is Ray's file, maybe the user's token)."""
    from sense_perception.fleet import cluster

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert cluster.readable_token_file() is None  # none there
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("f" * 64)
    token.chmod(0o600)
    assert cluster.readable_token_file() is None
    token.chmod(0o644)
    warning = cluster.readable_token_file()
    assert warning and str(token) in warning and "0644" in warning and f"chmod 600 {token}" in warning
    assert stat.S_IMODE(token.stat().st_mode) == 0o644 and token.read_text() == "f" * 64


def test_a_gallery_key_no_worker_reads_stays_out_of_ray_s_processes(local_run) -> None:
    """A gallery key exported in the environment (a shell profile, a service's Environment=)
    reached every process of the local Ray instance, GCS, raylet, its agents and the idle workers,
    which stay dumpable (R74): a crash of one handed to a crash reporter wrote it there. Without
    --cabin (or with gallery.key_file) no worker reads it: Ray starts without it, and this process
    gets it back afterwards."""
    assert local_run["keyed"] == [], local_run["keyed"]
    assert local_run["key_back"]


def test_a_gallery_key_the_workers_read_from_the_environment_is_warned_about(
        tmp_path, monkeypatch, caplog) -> None:
    from sense_perception.fleet.key_env import key_kept_from_ray, key_variable

    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY_KEY", "ab" * 32)
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text("driver_monitor:\n  ros__parameters:\n    gallery:\n"
                     f"      key_file: {tmp_path / 'key'}\n")
    assert key_variable(None, None) == ("SENSE_PERCEPTION_GALLERY_KEY", False)
    assert key_variable(keyed, "/cabin/image_raw") == ("SENSE_PERCEPTION_GALLERY_KEY", False)
    with key_kept_from_ray(keyed, "/cabin/image_raw"):  # the workers read the key file
        assert "SENSE_PERCEPTION_GALLERY_KEY" not in os.environ
    assert os.environ["SENSE_PERCEPTION_GALLERY_KEY"] == "ab" * 32
    assert not caplog.records
    with key_kept_from_ray(None, "/cabin/image_raw"):  # they read the environment: kept, said
        assert os.environ["SENSE_PERCEPTION_GALLERY_KEY"] == "ab" * 32
    (record,) = caplog.records
    assert "SENSE_PERCEPTION_GALLERY_KEY" in record.getMessage()
    assert "gallery.key_file" in record.getMessage() and "ab" * 4 not in record.getMessage()


def test_the_reaper_holds_no_gallery_key_nor_ray_token(monkeypatch) -> None:
    """R88: the reaper a local run starts beside Ray took the run's whole environment, a gallery
    key exported for a `--cabin` run whose workers read it there (`key_kept_from_ray` keeps it
    then) and the instance's token among them, in a dumpable process that needs neither. It is
    started with what Python needs to run it only, and still does its work."""
    from sense_perception.fleet import reaper

    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY_KEY", "ab" * 32)
    monkeypatch.setenv("MY_GALLERY_KEY", "cd" * 32)  # a gallery.key_env of the user's
    monkeypatch.setenv("RAY_AUTH_TOKEN", "ef" * 32)
    proc = reaper.start()
    assert proc is not None
    try:
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert proc.poll() is None  # it started, and watches
    finally:
        reaper.stop(proc)
    assert environ and b"PATH=" in environ
    for secret in (b"ab" * 32, b"cd" * 32, b"ef" * 32):
        assert secret not in environ
