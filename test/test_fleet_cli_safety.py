"""`sense-perception fleet` as users run it (its own local Ray), on copies of the sample bag, in the
careless and hostile cases of issue 20: a user's folder where an output goes, bag names that
collide with fleet's own files or escape --out, more workers or CPUs than the machine has, a
second run into the same --out, SIGTERM / SIGINT, and kill -9.

The runs these cases finish or kill at once use PicoDet alone (``--config``,
support.PICODET_ONLY): they test paths, names, locks, Ray's processes and folders and file modes,
the same whatever the detector, and each worker saves the specialist's OpenVINO compile. The
signal cases keep the default detector: their stop must land while a bag is still replayed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from replay_helpers import SAMPLE_BAG
from support import PICODET_ONLY, session_processes

from sense_perception.fleet.cluster import local_cpus
from sense_perception.fleet.lock import LOCK_FILE
from sense_perception.fleet.outputs import MARKER

pytestmark = pytest.mark.slow

CMD = [sys.executable, "-m", "sense_perception.cli.main", "fleet"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
# What Ray's native signal handler prints when a process dies of SIGTERM under it.
NATIVE_DUMP = "*** SIGTERM received"


@pytest.fixture(scope="module", autouse=True)
def _ray():
    if os.environ.get("CI"):
        import ray  # noqa: F401 - CI installs the fleet extra: a missing Ray must fail, not skip
    else:
        pytest.importorskip("ray", reason="Ray not installed: pip install '.[fleet]'")


def _bags(root: Path, n: int) -> Path:
    for i in range(n):
        shutil.copytree(SAMPLE_BAG, root / f"run{i + 1}")
    return root


def _fleet(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def _summary(out: Path) -> dict:
    text = (out / "fleet_summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    return json.loads(text)


def _start(*args: str, env: dict[str, str] = ENV) -> subprocess.Popen:
    return subprocess.Popen([*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def _wait_for_work(out: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Until a worker has begun a bag (its hidden work folder appears in --out)."""
    deadline = time.monotonic() + timeout
    while not any(p.name.endswith(".partial") for p in out.glob(".*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no bag started"
        time.sleep(0.2)


@dataclass
class FinishedRun:
    """A local fleet run of two bags that ended normally, under a private ``RAY_TMPDIR``."""

    proc: subprocess.CompletedProcess
    inputs: Path
    out: Path
    config: str
    env: dict[str, str]  # ENV with RAY_TMPDIR
    ray_root: Path  # Ray's folder inside RAY_TMPDIR
    other: Path  # another session's folder, planted there before the run: must stay


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FinishedRun]:
    """One plain local run (2 bags, 1 worker, PicoDet alone), shared by the cases that check what
    such a run leaves: its Ray session folder removed (test_a_local_run_removes_...) and its
    output, where replay must not write (test_replay_never_writes_...); neither changes it."""
    tmp = tmp_path_factory.mktemp("finished_run")
    # Short: Ray's socket paths in it must fit the 107 bytes of a Unix socket address.
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    try:
        env = {**ENV, "RAY_TMPDIR": str(ray_tmp)}
        root = ray_tmp / "ray"
        other = root / "session_2026-01-01_00-00-00_000000_1"
        (other / "logs").mkdir(parents=True)
        (other / "logs" / "raylet.out").write_text("another session's log\n")
        inputs, config = _bags(tmp / "in", 2), str(PICODET_ONLY)
        proc = subprocess.run([*CMD, str(inputs), "--out", str(tmp / "out"), "--workers", "1",
                               "--config", config], capture_output=True, text=True, timeout=300,
                              env=env)
        yield FinishedRun(proc, inputs, tmp / "out", config, env, root, other)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_user_folders_are_kept_and_names_are_safe(tmp_path):
    inputs = _bags(tmp_path / "in", 1)
    shutil.copy(SAMPLE_BAG / "sample_bag.mcap", inputs / "fleet_summary.json.mcap")
    shutil.copy(SAMPLE_BAG / "sample_bag.mcap", inputs / "...mcap")
    shutil.copytree(SAMPLE_BAG, tmp_path / "store" / "recording_9")
    (inputs / "linked").symlink_to(tmp_path / "store" / "recording_9")  # followed, not ignored
    out = tmp_path / "out"
    (out / "run1").mkdir(parents=True)
    (out / "run1" / "my_notes.txt").write_text("precious")  # a user's folder, not fleet's
    config = str(PICODET_ONLY)
    proc = _fleet(str(inputs), "--out", str(out), "--workers", "6", "--config", config)
    assert proc.returncode == 1, proc.stderr[-3000:]  # one bag not replayed
    assert "Traceback" not in proc.stderr
    summary = _summary(out)
    bags = {Path(r["bag"]).name: r for r in summary["per_bag"]}
    assert set(bags) == {"run1", "fleet_summary.json.mcap", "...mcap", "linked"}
    refused = bags["run1"]
    assert refused["status"] == "failed" and refused["attempts"] == 0
    assert f"{out.resolve() / 'run1'} exists but was not written by" in refused["reason"]
    assert (out / "run1" / "my_notes.txt").read_text() == "precious"
    assert sorted(p.name for p in (out / "run1").iterdir()) == ["my_notes.txt"]
    done = [r for r in bags.values() if r is not refused]
    assert all(r["status"] == "done" for r in done), done
    names = {r["name"] for r in done}
    assert bags["linked"]["name"] == "linked"
    assert all(not n.startswith(".") and n.casefold() != "fleet_summary.json" for n in names)
    for name in names:
        assert (out / name / MARKER).is_file() and (out / name / "summary.json").is_file()
    assert {p.name for p in out.iterdir()} == names | {"run1", "fleet_summary.json"}
    # 6 workers asked for on this machine: only as many as its CPUs start, with a note
    cpus = local_cpus()
    assert summary["ray"]["resources"]["CPU"] == cpus
    assert 1 <= len(summary["workers"]) <= min(3, cpus)
    if cpus < 3:
        assert any("6 workers asked for" in n for n in summary["notes"]), summary["notes"]
    # --force replaces fleet's own outputs, never the user's folder
    stamps = {n: (out / n / "summary.json").stat().st_mtime_ns for n in names}
    proc = _fleet(str(inputs), "--out", str(out), "--force", "--workers", "1", "--config", config)
    assert proc.returncode == 1, proc.stderr[-3000:]
    forced = {Path(r["bag"]).name: r for r in _summary(out)["per_bag"]}
    assert forced["run1"]["status"] == "failed" and "not written by" in forced["run1"]["reason"]
    assert all(forced[k]["status"] == "done" for k in forced if k != "run1")
    assert all((out / n / "summary.json").stat().st_mtime_ns != t for n, t in stamps.items())
    assert sorted(p.name for p in (out / "run1").iterdir()) == ["my_notes.txt"]


def test_more_cpus_per_worker_than_the_machine_is_refused_at_once(tmp_path):
    started = time.monotonic()
    proc = _fleet(str(SAMPLE_BAG), "--out", str(tmp_path / "out"), "--cpus-per-worker", "1000",
                  timeout=120)
    assert proc.returncode == 2
    assert f"this machine has {local_cpus()} CPUs" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60  # refused, not hung loading 1000 threads
    assert not (tmp_path / "out" / "fleet_summary.json").exists()


# SIGHUP: the terminal closed (a dropped SSH session); its default ended the run at once, no
# summary written (R89)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_stops_cleanly_with_a_summary(tmp_path, sig):
    inputs = _bags(tmp_path / "in", 3)
    out = tmp_path / "out"
    proc = _start(str(inputs), "--out", str(out), "--workers", "1")
    try:
        _wait_for_work(out, proc)
        # a second run into the same --out meanwhile is refused, naming the first
        second = _fleet(str(inputs), "--out", str(out), timeout=120)
        assert second.returncode == 2
        assert f"another fleet run is writing into --out {out}" in second.stderr
        assert f"pid {proc.pid} on host" in second.stderr
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + sig, stderr[-3000:]
    assert "Traceback" not in stderr and NATIVE_DUMP not in stderr, stderr[-3000:]
    assert f"{sig.name}: stopping the workers" in stderr
    summary = _summary(out)
    assert summary["interrupted"] == sig.name
    counts = summary["bags"]
    assert counts["found"] == 3 and counts["interrupted"] >= 1
    assert counts["interrupted"] + counts["done"] == 3
    unfinished = [r for r in summary["per_bag"] if r["status"] == "interrupted"]
    assert all(f"stopped by {sig.name}" in r["reason"] for r in unfinished)
    assert "interrupted" in stdout
    # nothing half-written or locked is left, and no process of the run outlives it
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    deadline = time.monotonic() + 20
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_processes(proc.pid) == []


def test_a_hung_up_terminal_stops_the_run_with_its_summary(tmp_path):
    """The run's terminal hangs up for real (a dropped SSH session: its pty's other end closed),
    then the shell passes the SIGHUP on to its job (Ray's processes included): SIGHUP's default
    ended the run at once; caught, the note written to the dead terminal failed (EIO) inside
    Ray's native wait (a SystemError: no summary, the work folder left, exit 1), and the second
    SIGHUP would have exited without cleaning up. The run stops as on SIGTERM now (R89)."""
    import fcntl
    import select
    import termios

    inputs = _bags(tmp_path / "in", 3)
    out = tmp_path / "out"
    master, terminal = os.openpty()

    def controlling_terminal() -> None:  # a session of its own, the pty its terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([*CMD, str(inputs), "--out", str(out), "--workers", "1"],
                            stdin=terminal, stdout=terminal, stderr=terminal, env=ENV,
                            preexec_fn=controlling_terminal)
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 240
        while not any(p.name.endswith(".partial") for p in out.glob(".*")):
            if select.select([master], [], [], 0.2)[0]:
                shown += os.read(master, 65536)  # a full pty would hold the run up
            assert proc.poll() is None, shown[-3000:]
            assert time.monotonic() < deadline, "no bag started"
        os.close(master)  # the kernel's SIGHUP, and EIO for every write from now on
        master = -1
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGHUP)  # the shell's, to its whole job
        proc.wait(timeout=120)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 129
    summary = _summary(out)
    assert summary["interrupted"] == "SIGHUP"
    assert summary["bags"]["interrupted"] + summary["bags"]["done"] == 3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    deadline = time.monotonic() + 20
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_processes(proc.pid) == []


def test_kill_9_leaves_no_ray_processes_and_the_next_run_takes_over(tmp_path):
    inputs = _bags(tmp_path / "in", 2)
    out = tmp_path / "out"
    config = str(PICODET_ONLY)
    proc = _start(str(inputs), "--out", str(out), "--workers", "1", "--config", config)
    try:
        _wait_for_work(out, proc)
        assert len(session_processes(proc.pid)) > 3  # Ray's GCS, raylet, agents, the worker
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 15
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert session_processes(proc.pid) == [], "Ray processes outlived the fleet run"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == proc.pid  # left by the killed run
    again = _fleet(str(inputs), "--out", str(out), "--workers", "1", "--config", config)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = _summary(out)
    assert summary["bags"]["done"] + summary["bags"]["skipped"] == 2
    assert any(f"pid {proc.pid}" in n and "ended without releasing it" in n
               for n in summary["notes"]), summary["notes"]
    assert sorted(p.name for p in out.iterdir()) == ["fleet_summary.json", "run1", "run2"]


def test_the_cabin_video_is_private_whatever_the_umask(tmp_path):
    """`--video-cabin` films the driver's face, but the MP4 was created under the umask (0644,
    0666 under umask 0): any local account could watch it, while the 112x112 face crops of an
    enrolment are kept 0600. Fleet (and replay, the same engine) now create the cabin video 0600;
    the exterior videos keep the umask's mode (results meant to be shared). R88: less write
    permission for others (0666 under umask 0), and the cabin video's folder is 0700 (it was 0777:
    another user could swap the video before OpenCV opened it by name), the run's folders never
    writable by others."""
    from replay_helpers import CABIN

    inputs = _bags(tmp_path / "in", 1)
    out = tmp_path / "out"
    config = str(PICODET_ONLY)
    proc = subprocess.run([*CMD, str(inputs), "--out", str(out), "--workers", "1", "--cabin",
                           CABIN, "--video", "--video-cabin", "--config", config],
                          capture_output=True, text=True,
                          timeout=300, env=ENV, preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stderr[-3000:]
    replayed = tmp_path / "replayed"
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay",
                           str(SAMPLE_BAG), "--out", str(replayed), "--cabin", CABIN,
                           "--video-cabin", "--config", config], capture_output=True, text=True,
                          timeout=300, env=ENV,
                          preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stderr[-3000:]
    cabin = "camera_cabin_image_raw_compressed.mp4"
    for video in (out / "run1" / "video", replayed / "video"):
        modes = {p.name: p.stat().st_mode & 0o777 for p in video.iterdir()}
        assert modes.pop(cabin) == 0o600, (video, modes)
        assert (out / "run1" / "video" / cabin).stat().st_size > 1000  # a real video, filled
    exterior = {p.name: p.stat().st_mode & 0o777 for p in (out / "run1" / "video").iterdir()}
    exterior.pop(cabin)
    assert exterior and set(exterior.values()) == {0o644}, exterior
    for video in (out / "run1" / "video", replayed / "video"):
        assert video.stat().st_mode & 0o777 == 0o700, video
    for folder in (out, out / "run1", replayed):
        assert folder.stat().st_mode & 0o022 == 0, folder
    everything = [p for p in (out / "run1").rglob("*")] + [p for p in replayed.rglob("*")]
    assert not [p for p in everything if p.stat().st_mode & 0o002], everything  # marks included


def test_replay_never_writes_into_a_fleet_runs_output(tmp_path, finished_run):
    """`replay BAG --force --out out/run1/bag`, a bag folder of a fleet run's output, was accepted:
    replay wrote its bag/, summary.json and marker into fleet's recording of results, and
    `--force --out out/run1` (which holds replay's marker too, from the worker) cleared fleet's
    bag/ and summary; the next fleet run then skipped run1 as done. replay now refuses (exit 2)
    an --out that is or lies inside a fleet output, or inside another replay's output, through
    the check fleet uses; its own earlier --out is still replaced by --force."""
    def snapshot(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    def replay(out: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay",
                               str(SAMPLE_BAG), "--out", str(out), "--config",
                               finished_run.config, *args], capture_output=True, text=True,
                              timeout=300, env=ENV)

    out = finished_run.out
    assert finished_run.proc.returncode == 0, finished_run.proc.stderr[-3000:]
    run1 = out / "run1"
    before = snapshot(out)
    inside = f"lies inside {run1}, one bag's output folder of an earlier fleet run (it holds {MARKER})"
    for target, force, message in (
            (run1 / "bag", ["--force"], inside),
            (run1, ["--force"], f"--out {run1} is one bag's output folder of an earlier fleet run"),
            (run1 / "mine", [], inside)):
        proc = replay(target, *force)
        assert proc.returncode == 2, proc.stderr[-3000:]
        err = " ".join(proc.stderr.split())
        assert message in err and "choose an --out outside it" in err and "Traceback" not in err, err
    assert snapshot(out) == before and not (run1 / "mine").exists()
    replayed = tmp_path / "replayed"
    assert replay(replayed).returncode == 0
    assert replay(replayed, "--force").returncode == 0  # its own output: replaced
    proc = replay(replayed / "bag", "--force")
    assert proc.returncode == 2 and f"lies inside {replayed}, the output folder of a replay" in \
        " ".join(proc.stderr.split()), proc.stderr[-3000:]
    assert (replayed / "bag" / "metadata.yaml").is_file() and (replayed / "summary.json").is_file()


def test_a_local_run_removes_its_own_ray_session_folder(tmp_path, finished_run):
    """Every local fleet run left its Ray session folder (logs, sockets: bag paths readable by
    other local users) in /tmp/ray; hundreds piled up. A run that started its own Ray removes its
    session folder (and Ray's session_latest link to it) when it ends, normally or on Ctrl-C;
    another session's folder is left alone. Ray's temporary folder is a private one here
    (RAY_TMPDIR), so runs of other tests or users cannot be mistaken for this one's."""
    proc, root, other = finished_run.proc, finished_run.ray_root, finished_run.other
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _summary(finished_run.out)["ray"]["used"] is True  # Ray did start for it
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("session")) == \
        [other.name]
    assert (other / "logs" / "raylet.out").read_text() == "another session's log\n"
    # Ctrl-C while a worker replays: the session folder goes too.
    out = tmp_path / "stopped"
    proc2 = _start(str(finished_run.inputs), "--out", str(out), "--workers", "1",
                   "--config", finished_run.config, env=finished_run.env)
    try:
        _wait_for_work(out, proc2)
        started = [p.name for p in root.iterdir() if p.name.startswith("session_2")]
        assert len(started) == 2, started  # this run's own, beside the other one
        proc2.send_signal(signal.SIGINT)
        _, stderr = proc2.communicate(timeout=120)
    finally:
        if proc2.poll() is None:
            os.killpg(proc2.pid, signal.SIGKILL)
            proc2.wait()
    assert proc2.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("session")) == \
        [other.name]


def test_a_run_whose_worker_cannot_start_ends_with_one_error(tmp_path):
    """A worker that cannot load its models (here a custom detector without its labels file)
    made every bag fail alike: one identical `failed:` line and table row per bag, no worker ever
    replaced (it would fail the same way). The run now ends with one error naming the cause
    (exit 2: nothing could be replayed), writes no per-bag failures and leaves --out empty."""
    (tmp_path / "custom.onnx").write_bytes(b"not an onnx model\n")
    config = tmp_path / "custom.yaml"
    config.write_text(f"detector:\n  model_path: {tmp_path / 'custom.onnx'}\n"
                      "  model_family: yolox\n")
    out = tmp_path / "out"
    proc = _fleet(str(_bags(tmp_path / "in", 3)), "--out", str(out), "--workers", "1",
                  "--config", str(config))
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: no fleet worker could start (1 tried), so none of the 3 bags was replayed: a " \
           "worker could not start: ConfigError: detector.model_path is set but " \
           "detector.labels_path is empty" in err and "run the same command again" in err, err
    assert err.count("detector.labels_path is empty") == 1, err  # once, not once per bag
    assert "failed:" not in err and "Traceback" not in err, err
    assert sorted(p.name for p in out.iterdir()) == []  # no bag folder, no lock, no summary


#: `fleet` on a bag whose output folder is a user's (refused: no Ray is started), a signal sent to
#: itself as the bags are checked and a second while fleet_summary.json is written.
_SIGNAL_TWICE = """
import os, signal, sys
from sense_perception.fleet import runner
from sense_perception.cli.main import main

sig = getattr(signal, sys.argv[1])
refused, write = runner._refused, runner.write_fleet_summary

def refused_then_stop(*args):
    os.kill(os.getpid(), sig)  # the first stop: noted, the run winds up
    return refused(*args)

def write_then_stop(path, summary):
    os.kill(os.getpid(), sig)  # pressed again: the summary is being written
    return write(path, summary)

runner._refused, runner.write_fleet_summary = refused_then_stop, write_then_stop
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_second_signal_while_the_summary_is_written_waits_for_it(tmp_path, signame):
    """R99: a second Ctrl-C or SIGTERM exits fleet at once (the wait for the workers and Ray
    protects no data), also while fleet_summary.json was written: the run ended between its temp
    file and the rename, no summary, the temp file left in --out. And a stop the dispatcher never
    saw (no Ray needed here) was lost (exit 2, the summary not marked). The summary's write is
    held now: written, marked interrupted by the first stop, exit 128 + it."""
    inputs = _bags(tmp_path / "in", 1)
    out = tmp_path / "out"
    (out / "run1").mkdir(parents=True)  # a user's folder: the bag is refused, no Ray needed
    done = subprocess.run([sys.executable, "-c", _SIGNAL_TWICE, signame, "fleet", str(inputs),
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env=ENV)
    assert done.returncode == 128 + getattr(signal, signame), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    summary = _summary(out)
    assert summary["interrupted"] == signame
    assert summary["per_bag"][0]["status"] == "failed"  # the user's folder, as without a stop
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], list(out.iterdir())
    assert (out / "run1").is_dir()


#: `fleet` on a refused bag (no Ray started), signals sent to itself at named points: argv[1] is
#: ``POINT=SIGNAL,...`` with POINT one of ``refused`` (as the bags are checked), ``write`` (as
#: fleet_summary.json is written) and ``table`` (as the results table is printed, after the run).
_SIGNALS_AT = """
import os, signal, sys
from sense_perception.fleet import report, runner
from sense_perception.cli.main import main

at = dict(pair.split("=") for pair in sys.argv[1].split(","))

def then(point, call):
    def sent_first(*args, **kwargs):
        if point in at:
            os.kill(os.getpid(), getattr(signal, at[point]))
        return call(*args, **kwargs)
    return sent_first

runner._refused = then("refused", runner._refused)
runner.write_fleet_summary = then("write", runner.write_fleet_summary)
report.render_fleet_table = then("table", report.render_fleet_table)
sys.exit(main(sys.argv[2:]))
"""


def _fleet_signalled(tmp_path: Path, at: str) -> tuple[subprocess.CompletedProcess, Path]:
    inputs = _bags(tmp_path / "in", 1)
    out = tmp_path / "out"
    (out / "run1").mkdir(parents=True)  # a user's folder: the bag is refused, no Ray needed
    done = subprocess.run([sys.executable, "-c", _SIGNALS_AT, at, "fleet", str(inputs), "--out",
                           str(out)], capture_output=True, text=True, timeout=300, env=ENV)
    return done, out


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_first_signal_while_the_summary_is_written_marks_it(tmp_path, signame):
    """R101: a first stop arriving while fleet_summary.json was written (after the last check of
    the guard) was lost: exit 2 as without it, the summary not marked interrupted. Now the summary
    is written again, marked, with a note, and the exit status is 128 + the signal."""
    done, out = _fleet_signalled(tmp_path, f"write={signame}")
    assert done.returncode == 128 + getattr(signal, signame), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    summary = _summary(out)
    assert summary["interrupted"] == signame
    assert f"stopped by {signame} as the summary was written: every bag had already ended" \
        in summary["notes"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], list(out.iterdir())


@pytest.mark.parametrize("first, then, code", [("SIGTERM", "SIGINT", 143),
                                               ("SIGINT", "SIGTERM", 130),
                                               ("-", "SIGTERM", 143)])
def test_a_signal_while_the_table_is_printed_meets_the_commands_stop_handling(tmp_path, first,
                                                                              then, code):
    """R101: once the run had ended, fleet's handlers were put back and the results table was
    printed under Python's defaults: a second stop there replaced the first's exit status (a
    Ctrl-C after a SIGTERM exited 130; a SIGTERM after a Ctrl-C ended the process by the signal),
    and a first one ended it by the signal, unhandled. The command's stop block covers the table
    now: a second stop is ignored (R99), a first is obeyed with its exit status, no traceback."""
    at = f"table={then}" if first == "-" else f"refused={first},table={then}"
    done, out = _fleet_signalled(tmp_path, at)
    assert done.returncode == code, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr
    assert _summary(out)["interrupted"] == (None if first == "-" else first)
