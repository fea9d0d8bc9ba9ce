"""What a fleet run refuses or makes safe before Ray starts, with real bags and the real command:
--out overlapping the inputs, unsafe or colliding output names, a second run into one --out,
options that are not finite numbers, an unwritable --out, and bags behind links.

None of these cases starts Ray (each is refused or decided before it), so they need no Ray.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from replay_helpers import SAMPLE_BAG

from sense_perception.cli.main import main
from sense_perception.errors import BagError, FleetError
from sense_perception.fleet.discover import RESERVED_NAMES, find_bags, safe_name
from sense_perception.fleet.guard import (check_bags_apart, check_out_apart,
                                          check_out_not_in_an_output, make_out)
from sense_perception.fleet.outputs import mark
from sense_perception.fleet.lock import LOCK_FILE, OutLock
from sense_perception.fleet.report import write_fleet_summary

MCAP = SAMPLE_BAG / "sample_bag.mcap"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fleet(capsys, *args: str) -> tuple[int, str]:
    code = main(["fleet", *args])
    return code, capsys.readouterr().err


# -- --out apart from the inputs ----------------------------------------------------------------

@pytest.fixture
def drives(tmp_path):
    root = tmp_path / "drives"
    shutil.copytree(SAMPLE_BAG, root / "run1")
    return root


def test_out_that_is_holds_or_lies_inside_an_input_is_refused(drives, tmp_path, capsys):
    before = _snapshot(drives)
    cases = [
        ([str(drives)], str(drives), "is the input"),
        ([str(drives / "run1")], str(drives), "contains the input"),
        ([str(drives)], str(drives / "fleet_out"), "lies inside the input"),
        ([str(drives / "run1")], str(drives / "run1" / "out"), "lies inside the input"),
        ([str(drives / "run1" / "sample_bag.mcap")], str(drives / "run1"), "contains the input"),
    ]
    link = tmp_path / "link_to_drives"
    link.symlink_to(drives)
    cases.append(([str(drives)], str(link), "is the input"))  # a link is resolved first
    cases.append(([str(link / "run1")], str(drives / ".." / "drives"), "contains the input"))
    for inputs, out, message in cases:
        code, err = _fleet(capsys, *inputs, "--out", out)
        assert code == 2, (inputs, out, err)
        assert message in err and "choose an --out outside the input" in err, err
        assert "Traceback" not in err
    assert _snapshot(drives) == before  # nothing written, nothing deleted
    assert not (drives / "fleet_out").exists() and not (drives / "run1" / "out").exists()


def test_out_reached_through_a_link_inside_the_inputs_is_refused(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(SAMPLE_BAG, elsewhere / "run9")
    (inputs / "more").symlink_to(elsewhere)  # the bag is found through the link
    jobs = find_bags([inputs])
    assert [j.name for j in jobs] == ["run9"]
    check_out_apart(elsewhere / "out_dir", [inputs])  # as given, the paths do not overlap
    with pytest.raises(FleetError, match="run9 is the input .*more/run9"):
        check_bags_apart(elsewhere / "run9", [j.path for j in jobs])
    with pytest.raises(FleetError, match="lies inside the input"):
        check_bags_apart(elsewhere / "run9" / "out", [j.path for j in jobs])
    check_bags_apart(tmp_path / "out", [j.path for j in jobs])


def test_out_inside_the_output_of_another_run_is_refused(drives, tmp_path, capsys):
    """`fleet day2 --out out/run1`, where out/run1 is a bag's output of an earlier fleet run, wrote
    a whole fleet run into that folder; the next `fleet day1 --out out --force` (or a retry of
    run1, even while the second run was going) replaced out/run1 whole and deleted it all. An
    --out that is or lies inside a fleet output folder, a fleet work folder or a replay's output
    is refused before anything is written, as written and through a link."""
    out = tmp_path / "out"
    bag_out = out / "run1"
    bag_out.mkdir(parents=True)
    mark(bag_out)  # what a fleet worker leaves in every bag's output folder
    (bag_out / "summary.json").write_text("{}")
    work = out / ".run2.partial"
    work.mkdir()
    mark(work)
    assert main(["replay", str(MCAP), "--out", str(tmp_path / "replayed")]) == 0
    capsys.readouterr()
    link = tmp_path / "link"
    link.symlink_to(bag_out)
    before = _snapshot(tmp_path / "out"), _snapshot(tmp_path / "replayed")
    cases = [(bag_out, f"--out {bag_out} is one bag's output folder of an earlier fleet run"),
             (bag_out / "day2", f"lies inside {bag_out}, one bag's output folder"),
             (link / "day2", f"lies inside {bag_out}, one bag's output folder"),
             (work / "replay" / "x", f"lies inside {work}, one bag's output folder"),
             (tmp_path / "replayed" / "bag", "lies inside " + str(tmp_path / "replayed")
              + ", the output folder of a replay (it holds .sense-perception-replay)")]
    for target, message in cases:
        code, err = _fleet(capsys, str(drives), "--out", str(target))
        assert code == 2 and message in err and "choose an --out outside it" in err, err
        assert "Traceback" not in err
    assert (_snapshot(tmp_path / "out"), _snapshot(tmp_path / "replayed")) == before
    assert not (bag_out / "day2").exists() and not (work / "replay").exists()
    check_out_not_in_an_output(out)  # the fleet's own --out is fine
    check_out_not_in_an_output(tmp_path / "elsewhere" / "new")


# -- output names --------------------------------------------------------------------------------

def test_output_names_are_safe_and_unique(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("fleet_summary.json.mcap", "...mcap", "..mcap", ".hidden.mcap",
                 "FLEET_SUMMARY.JSON.mcap", "a\nb.mcap", "plain.mcap", "\u202egpj.mcap"):
        shutil.copy(MCAP, root / name)
    shutil.copytree(SAMPLE_BAG, root / "Run")
    shutil.copytree(SAMPLE_BAG, root / "sub" / "run")  # differs only in case from Run
    shutil.copytree(SAMPLE_BAG, root / "sub" / ".fleet.lock_bag")  # hidden: not searched
    jobs = find_bags([root])
    names = [j.name for j in jobs]
    assert len(jobs) == 10 and len({n.casefold() for n in names}) == 10, names
    for name in names:
        assert name not in ("", ".", "..") and not name.startswith("."), name
        assert "/" not in name and "\n" not in name and name.casefold() not in RESERVED_NAMES
    by_file = {j.path.name: j.name for j in jobs}
    assert by_file["plain.mcap"] == "plain"  # ordinary names stay as they were
    assert by_file["fleet_summary.json.mcap"].startswith("fleet_summary.json-")
    assert by_file["...mcap"].startswith("bag") and by_file["..mcap"].startswith("bag")
    assert by_file["a\nb.mcap"] == "a_b" and by_file[".hidden.mcap"] == "hidden"
    assert by_file["\u202egpj.mcap"] == "_gpj"  # a bidi override would show it as "jpg"
    assert find_bags([root]) == jobs  # stable: resume finds the same names again
    assert safe_name("x" * 300).encode().__len__() <= 200


# -- one run per --out ----------------------------------------------------------------------------

_HOLD = ("import sys, time\n"
         "from pathlib import Path\n"
         "from sense_perception.fleet.lock import OutLock\n"
         "OutLock(Path(sys.argv[1])).acquire()\n"
         "print('locked', flush=True)\n"
         "time.sleep(120)\n")


def _holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_into_one_out_is_refused_naming_the_first(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = _holder(out)
    try:
        code, err = _fleet(capsys, str(SAMPLE_BAG), "--out", str(out))
        assert code == 2
        assert "another fleet run is writing into --out" in err
        assert f"pid {holder.pid} on host" in err and "started 20" in err
    finally:
        holder.kill()
        holder.wait()
    # killed without releasing: the file stays, the kernel lock is gone; the next run takes over
    info = json.loads((out / LOCK_FILE).read_text())
    assert info["pid"] == holder.pid
    with OutLock(out) as lock:
        assert lock.note and f"pid {holder.pid}" in lock.note and "ended without" in lock.note
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (out / LOCK_FILE).exists()  # released: removed
    with OutLock(out) as lock:
        assert lock.note is None


def test_lock_file_that_is_a_link_is_not_followed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / LOCK_FILE).symlink_to(victim)
    with pytest.raises(FleetError, match="not writable"):
        OutLock(out).acquire()
    assert victim.read_text() == "precious"


# -- options and --out checked before any work -------------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("--gpus-per-worker", "nan", "--gpus-per-worker must be"),
    ("--gpus-per-worker", "inf", "--gpus-per-worker must be"),
    ("--time-limit", "nan", "--time-limit must be a number of seconds >= 0"),
    ("--time-limit", "inf", "--time-limit must be a number of seconds >= 0"),
    ("--time-limit", "-5", "--time-limit must be a number of seconds >= 0"),
    ("--cpus-per-worker", "0", "--cpus-per-worker must be >= 1"),
    ("--workers", "0", "--workers must be >= 1"),
])
def test_numeric_options_are_checked_first(tmp_path, capsys, option, value, message):
    out = tmp_path / "out"
    code, err = _fleet(capsys, str(SAMPLE_BAG), "--out", str(out), option, value)
    assert code == 2 and message in err and value in err, err
    assert not out.exists()  # refused before anything was made


def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for out, message in ((tmp_path / "file" / "sub", "is not writable: Not a directory"),
                         (tmp_path / "file", "is a file"),
                         # /sys refuses new files even to root (permission bits do not)
                         (Path("/sys"), "is not writable")):
        code, err = _fleet(capsys, str(SAMPLE_BAG), "--out", str(out))
        assert code == 2 and message in err and "Traceback" not in err, (out, err)
    with pytest.raises(FleetError, match="is not writable"):
        make_out(tmp_path / "file" / "x")


_FLEET_ON_A_FULL_DISK = """
import contextlib, io, json, os, sys
from pathlib import Path
from sense_perception.cli.main import main
disk, bag = Path(sys.argv[1]), sys.argv[2]
(disk / "out").mkdir()
with open(disk / "fill", "wb") as f:
    f.write(bytes(os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize))
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["fleet", bag, "--out", str(disk / "out")])
print(json.dumps({"code": code, "err": err.getvalue(), "left": os.listdir(disk / "out")}))
"""


def test_a_full_disk_at_the_lock_is_a_clear_error(tmp_path):
    """On a full disk (a real tmpfs) `fleet --out` passed the writable check (an empty file
    fits) and then died in a traceback (exit 1) writing its lock file, leaving it behind. It is
    an error naming the lock file, the reason and the fix (exit 2), before Ray starts, and no
    lock file is left."""
    from support import run_on_tmpfs

    got = run_on_tmpfs(tmp_path, _FLEET_ON_A_FULL_DISK, [SAMPLE_BAG])
    assert got["code"] == 2 and "Traceback" not in got["err"], got
    assert "cannot write the lock file" in got["err"] and "No space left on device" in got["err"]
    assert "free space on the disk of --out" in got["err"] and got["left"] == []


def test_summary_is_strict_json_and_never_written_through_a_link(tmp_path):
    path = tmp_path / "fleet_summary.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".fleet_summary.json.tmp").symlink_to(victim)  # planted where the temp file goes
    write_fleet_summary(path, {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    assert victim.read_text() == "precious" and not path.is_symlink()


def test_summary_path_taken_by_a_folder_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "fleet_summary.json").mkdir(parents=True)
    code, err = _fleet(capsys, str(SAMPLE_BAG), "--out", str(out))
    assert code == 2 and "fleet_summary.json exists and is not a file" in err
    assert not (out / LOCK_FILE).exists()


def test_a_file_of_the_users_named_fleet_summary_json_is_never_replaced(tmp_path, capsys):
    """R80: a run wrote its summary over whatever `fleet_summary.json` its --out held (a user's
    note, another tool's JSON, a text file), exit 0. Only an earlier run's summary is replaced:
    anything else is refused before any work (exit 2, no lock taken), naming how it begins and
    the fix, every byte kept. (The bag's output name is a user's folder here, so no Ray starts.)"""
    out = tmp_path / "out"
    (out / "sample_bag").mkdir(parents=True)
    (out / "sample_bag" / "notes.txt").write_text("mine\n")
    summary = out / "fleet_summary.json"
    for mine, begins in (('{"my": "fleet notes"}\n', "holds JSON that is not fleet's own result"),
                         ("bag, car, date\n", "holds a file that is not a JSON result")):
        summary.write_text(mine)
        code, err = _fleet(capsys, str(SAMPLE_BAG), "--out", str(out))
        assert code == 2 and "Traceback" not in err, err
        assert f"{summary} {begins}" in err and "move that file away, or choose another --out" in err
        assert summary.read_text() == mine and not (out / LOCK_FILE).exists()
    summary.unlink()
    code, _ = _fleet(capsys, str(SAMPLE_BAG), "--out", str(out))  # its own summary, then again
    first = json.loads(summary.read_text())
    assert code == 2 and first["per_bag"][0]["status"] == "failed"
    code, _ = _fleet(capsys, str(SAMPLE_BAG), "--out", str(out))
    assert code == 2 and json.loads(summary.read_text())["wall_s"] is not None


def test_an_unreadable_fleet_summary_json_is_named_as_unreadable(tmp_path, monkeypatch):
    """R86: a `fleet_summary.json` this user cannot open (another user's, mode 0000) was refused as
    "is a device, not a regular file": a wrong cause. It is named as unreadable now (with the
    system's reason), still refused, every byte kept. (Opening is made to fail: root reads any
    file whatever its mode.)"""
    out = tmp_path / "out"
    out.mkdir()
    summary = out / "fleet_summary.json"
    summary.write_text('{"theirs": 1}\n')
    opened = os.open

    def refuse(path, *args, **kwargs):
        if str(path) == str(summary):
            raise PermissionError(13, "Permission denied", str(path))
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(FleetError) as caught:
        make_out(out)
    message = str(caught.value)
    assert "device" not in message and "not a regular file" not in message, message
    assert f"{summary} cannot be read to tell whether it is fleet's own result (Permission " \
           "denied)" in message and "choose another --out" in message, message
    monkeypatch.undo()
    assert summary.read_text() == '{"theirs": 1}\n'


# -- bags behind links ---------------------------------------------------------------------------

def test_linked_bag_folders_are_followed_once_and_loops_end(tmp_path):
    store = tmp_path / "store"
    shutil.copytree(SAMPLE_BAG, store / "recording_7")
    root = tmp_path / "in"
    (root / "day1").mkdir(parents=True)
    (root / "day1" / "run7").symlink_to(store / "recording_7")  # a bag kept on another disk
    (root / "day1" / "again").symlink_to(store / "recording_7")  # the same bag a second time
    (root / "day1" / "loop").symlink_to(root)  # a link back up: must not walk forever
    (root / "day1" / "gone").symlink_to(tmp_path / "nothing")  # broken
    shutil.copy(MCAP, root / "day1" / "file.mcap")
    os.mkfifo(root / "day1" / "pipe.mcap")  # would block a worker until its time limit
    notes: list[str] = []
    started = time.monotonic()
    jobs = find_bags([root], notes=notes)
    assert time.monotonic() - started < 30
    real = {j.path.resolve(): j.name for j in jobs}
    assert set(real) == {(store / "recording_7").resolve(), (root / "day1" / "file.mcap").resolve()}
    assert real[(store / "recording_7").resolve()] in ("run7", "again")
    assert any("gone" in n and "does not exist" in n for n in notes), notes
    assert any("loop" in n and "searched once" in n for n in notes), notes
    assert any("pipe.mcap is not a regular file" in n for n in notes), notes
    with pytest.raises(BagError, match="not a regular file"):
        find_bags([root / "day1" / "pipe.mcap"])



# -- the reaper of a local Ray instance -----------------------------------------------------------

_PARENT = """
import subprocess, sys, time
from sense_perception.fleet import reaper
before = subprocess.Popen(["sleep", "300"])  # the caller's own: never killed
proc = reaper.start()
# an orphan-to-be, as Ray's agents become when the raylet dies: a child of a child
mid = subprocess.Popen(["bash", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE,
                       text=True)
orphan = int(mid.stdout.readline())
time.sleep(2.5)  # the reaper notes them (once a second)
print(before.pid, orphan, flush=True)
if sys.argv[1] == "stop":
    reaper.stop(proc)
    print("stopped", flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b") ")[1][:1] != b"Z"
    except OSError:
        return False


@pytest.mark.parametrize("end", ["kill", "stop"])
def test_reaper_ends_what_a_killed_run_left_and_only_that(end):
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, end], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    before, orphan = map(int, parent.stdout.readline().split())
    try:
        if end == "stop":
            assert parent.stdout.readline().strip() == "stopped"
        parent.kill()  # kill -9: no clean-up of its own
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(orphan) and time.monotonic() < deadline and end == "kill":
            time.sleep(0.2)
        # killed after kill -9; after a normal stop the reaper had left, killing nothing
        assert _alive(orphan) == (end == "stop")
        assert _alive(before)
    finally:
        for pid in (before, orphan):
            if _alive(pid):
                os.kill(pid, 9)


def test_files_of_out_nested_too_deeply_are_refused_or_ignored_not_a_traceback(tmp_path, capsys):
    """JSON nested a few thousand levels deep (``[[[[...``: Python's parser gives up with a
    RecursionError) under the names fleet reads in its ``--out`` ended the run in a traceback,
    exit 1: as ``fleet_summary.json`` (where other JSON that is no fleet summary is refused,
    naming it), as the lock file (4 kB read for the holder's name: the run never started) and as
    a finished bag's ``summary.json`` (read when the bag is skipped as done). The summary is
    refused as other JSON is, the other two are read as unreadable (R89)."""
    from sense_perception.fleet.lock import _read
    from sense_perception.fleet.outputs import read_summary

    deep = "[" * 2040 + "]" * 2040  # fits the 4096 bytes the lock's holder is read from
    out = tmp_path / "out"
    out.mkdir()
    (out / "fleet_summary.json").write_text(deep)
    assert main(["fleet", str(SAMPLE_BAG), "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "fleet_summary.json holds JSON that is not fleet's own result" in err, err
    assert (out / "fleet_summary.json").read_text() == deep
    lock = out / LOCK_FILE
    lock.write_text(deep)
    fd = os.open(lock, os.O_RDONLY)
    try:
        assert _read(fd) == {}
    finally:
        os.close(fd)
    with OutLock(out) as taken:  # a lock file holding anything is taken over, not a traceback
        assert taken.path == lock
    done = tmp_path / "done"
    done.mkdir()
    (done / "summary.json").write_text(deep)
    assert read_summary(done) is None
