"""Fleet replay parts that need no Ray: finding bags, naming outputs, publishing, exit status,
placing workers, and that nothing outside sense_perception/fleet ever imports Ray."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from replay_helpers import SAMPLE_BAG

from sense_perception.cli.main import main
from sense_perception.errors import BagError
from sense_perception.fleet.cluster import workers_that_fit
from sense_perception.fleet.discover import find_bags
from sense_perception.fleet.outputs import (MARKER, NotFleetOutput, is_complete, mark,
                                            prepare_temp, publish)
from sense_perception.fleet.report import exit_code
from sense_perception.fleet.worker import node_params

MCAP = SAMPLE_BAG / "sample_bag.mcap"


def _tree(root: Path) -> Path:
    """in/ with two bags named alike, a split recording without metadata, loose files, noise."""
    shutil.copytree(SAMPLE_BAG, root / "day1" / "run")
    shutil.copytree(SAMPLE_BAG, root / "day2" / "run")
    crashed = root / "crashed"
    crashed.mkdir()
    for i in range(2):  # the recorder's own naming: <dir>_<n>.mcap
        shutil.copy(MCAP, crashed / f"crashed_{i}.mcap")
    loose = root / "loose"
    loose.mkdir()
    shutil.copy(MCAP, loose / "a.mcap")
    shutil.copy(MCAP, loose / "b.mcap")
    (loose / "notes.txt").write_text("not a bag")
    shutil.copytree(SAMPLE_BAG, root / ".cache" / "hidden")  # hidden: never searched
    return root


def test_find_bags_tells_recordings_apart(tmp_path):
    root = _tree(tmp_path / "in")
    out = root / "out"  # an output folder inside the inputs is not searched
    shutil.copytree(SAMPLE_BAG, out / "run")
    jobs = find_bags([root], exclude=[out])
    paths = {j.path.relative_to(root.resolve()).as_posix(): j.name for j in jobs}
    assert set(paths) == {"day1/run", "day2/run", "crashed", "loose/a.mcap", "loose/b.mcap"}
    assert paths["crashed"] == "crashed" and paths["loose/a.mcap"] == "a"
    # same name, two recordings: both kept, told apart by a hash of the path, stable across runs
    assert paths["day1/run"] != paths["day2/run"]
    assert all(paths[p].startswith("run-") for p in ("day1/run", "day2/run"))
    assert find_bags([root], exclude=[out]) == jobs
    # a bag reached through two inputs is replayed once; a bag given directly is itself
    (once,) = find_bags([root / "day1" / "run", root / "day1"])
    assert once.path == (root / "day1" / "run").resolve() and once.name == "run"
    (single,) = find_bags([root / "loose" / "a.mcap"])
    assert single.name == "a" and single.path == (root / "loose" / "a.mcap").resolve()


def test_find_bags_refuses_what_is_not_there(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        find_bags([tmp_path / "nope"])
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(BagError, match="neither a directory nor a .mcap/.db3"):
        find_bags([tmp_path / "x.txt"])
    assert find_bags([tmp_path]) == []


def test_publish_replaces_only_when_complete(tmp_path):
    out = tmp_path / "out"
    final = out / "bag1"
    final.mkdir(parents=True)
    (final / "summary.json").write_text('{"old": true}')
    mark(final)  # an earlier fleet output
    temp = prepare_temp(out, "bag1")
    temp.mkdir()
    (temp / "summary.json").write_text('{"new": true}')
    (temp / "REPLAY_INCOMPLETE.txt").write_text("running")
    assert not is_complete(temp)
    (temp / "REPLAY_INCOMPLETE.txt").unlink()
    assert not is_complete(temp)  # complete, but not yet published: no marker
    publish(temp, final)
    assert is_complete(final) and (final / MARKER).is_file()
    assert (final / "summary.json").read_text() == '{"new": true}'
    assert sorted(p.name for p in out.iterdir()) == ["bag1"]  # nothing hidden left behind


def test_publish_never_replaces_a_folder_fleet_did_not_write(tmp_path):
    out = tmp_path / "out"
    mine = out / "bag1"
    mine.mkdir(parents=True)
    (mine / "my_notes.txt").write_text("precious")
    (mine / "summary.json").write_text("{}")
    assert not is_complete(mine)  # not "already done" either
    temp = prepare_temp(out, "bag1")
    temp.mkdir()
    (temp / "summary.json").write_text('{"new": true}')
    with pytest.raises(NotFleetOutput, match=r"bag1 exists but was not written by"):
        publish(temp, mine)
    assert (mine / "my_notes.txt").read_text() == "precious"
    # a hidden work folder of that name that fleet did not make is not wiped either
    (out / ".bag2.partial").mkdir()
    (out / ".bag2.partial" / "keep.txt").write_text("mine")
    with pytest.raises(NotFleetOutput, match=r"\.bag2\.partial exists"):
        prepare_temp(out, "bag2")
    assert (out / ".bag2.partial" / "keep.txt").read_text() == "mine"
    # nor a link where an output would go
    (out / "bag3").symlink_to(mine)
    with pytest.raises(NotFleetOutput):
        publish(temp, out / "bag3")
    assert (out / "bag3").resolve() == mine.resolve()


@pytest.mark.parametrize("counts, code", [
    ({"found": 3, "done": 3, "partial": 0, "failed": 0, "skipped": 0}, 0),
    ({"found": 3, "done": 0, "partial": 0, "failed": 0, "skipped": 3}, 0),
    ({"found": 3, "done": 2, "partial": 1, "failed": 0, "skipped": 0}, 1),
    ({"found": 3, "done": 1, "partial": 0, "failed": 2, "skipped": 0}, 1),
    ({"found": 2, "done": 0, "partial": 0, "failed": 2, "skipped": 0}, 2),
])
def test_exit_status(counts, code):
    assert exit_code({"bags": counts}) == code


def test_workers_fit_per_node():
    # the shape ray.nodes() returns; a worker lives on one node, GPUs are not pooled across nodes
    nodes = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}},
             {"Alive": True, "Resources": {"CPU": 4.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    assert workers_that_fit(nodes, cpus=1, gpus=0) == 20
    assert workers_that_fit(nodes, cpus=4, gpus=0) == 5
    assert workers_that_fit(nodes, cpus=1, gpus=0.5) == 4
    assert workers_that_fit(nodes, cpus=1, gpus=1) == 2
    assert workers_that_fit(nodes, cpus=1, gpus=0.1) == 16  # CPUs bind first (20 GPU tenths)
    assert workers_that_fit(nodes, cpus=1, gpus=3) == 0


def test_worker_threads_follow_its_cpus_unless_configured(tmp_path):
    assert node_params(None, "object_detector", 3)["runtime.intra_op_threads"] == 3
    config = tmp_path / "p.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    runtime:\n      intra_op_threads: 2\n")
    assert node_params(config, "object_detector", 3)["runtime.intra_op_threads"] == 2


def test_fleet_without_ray_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    assert main(["fleet", str(SAMPLE_BAG), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs Ray" in err and "pip install 'sense_perception[fleet]'" in err


def test_fleet_refuses_bad_options(tmp_path, capsys):
    assert main(["fleet", str(SAMPLE_BAG), "--out", str(tmp_path), "--gpus-per-worker", "1.5"]) == 2
    assert "whole number" in capsys.readouterr().err
    assert main(["fleet", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["fleet", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no rosbag2 recording" in capsys.readouterr().err


def test_core_and_replay_never_import_ray():
    code = ("import sys\n"
            "from sense_perception.cli.main import build_parser\n"
            "build_parser()  # registers every sub-command, fleet included\n"
            "import sense_perception.replay.engine, sense_perception.cli.replay\n"
            "import sense_perception.core.detection.detector, sense_perception.face.pipeline\n"
            "import sense_perception.fleet.runner, sense_perception.fleet.worker\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_bag_without_the_cabin_topic_replays_its_exterior_cameras(tmp_path):
    from sense_perception.core.detection.detector import ObjectDetector
    from sense_perception.replay.engine import ReplayOptions, Replayer

    detector = ObjectDetector.from_params({}, "test")
    missing = "/camera/driver/image_raw/compressed"  # another car's cabin camera
    with pytest.raises(BagError, match=missing):  # plain replay: a wrong topic is an error
        Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "a", cabin=missing), detector=detector).run()
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "b", cabin=missing,
                                    cabin_if_present=True), detector=detector).run()
    assert result.complete and result.summary["identity"] == []
    # the exterior cameras; the configured cabin camera is never replayed as one
    assert set(result.summary["cameras"]) == {"/camera/front/image_raw/compressed",
                                              "/camera/windshield/image_raw"}
    assert any(missing in note and "exterior cameras only" in note for note in result.notes)


class _Killed(Exception):
    """Stands for a kill -9 of the worker: nothing after it runs."""


def _replayed(out: Path, name: str, label: str) -> Path:
    """A complete replay of the sample bag in fleet's work folder for ``name`` (not yet
    published), its summary tagged with ``label`` to tell outputs apart."""
    import json

    from sense_perception.replay.engine import ReplayOptions, Replayer

    temp = prepare_temp(out, name)
    Replayer(ReplayOptions(SAMPLE_BAG, temp, topics=["/camera/front/image_raw/compressed"])).run()
    summary = json.loads((temp / "summary.json").read_text())
    (temp / "summary.json").write_text(json.dumps({**summary, "label": label}))
    return temp


@pytest.mark.parametrize("lost", ["nothing", "the new output"])
def test_a_publish_cut_between_its_renames_loses_no_complete_output(tmp_path, monkeypatch, lost):
    """A kill between publish's two renames left no DIR/run1/, the earlier complete output in
    .run1.replaced and the new one in .run1.partial/replay. The next run replayed the bag and,
    when that failed (the bag unreadable by then: a flaky mount), deleted both as work folders of
    a failed bag. Now it first puts the new output in place (or, lost, the earlier one back),
    reports that in the summary's notes, and finds the bag done: no Ray is needed."""
    import json

    from sense_perception.fleet import outputs

    out = tmp_path / "out"
    out.mkdir()
    publish(_replayed(out, "run1", "old"), out / "run1")
    new = _replayed(out, "run1", "new")
    real_replace, calls = outputs.os.replace, []

    def killed_on_the_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", killed_on_the_second)
    with pytest.raises(_Killed):
        publish(new, out / "run1")
    monkeypatch.undo()
    assert not (out / "run1").exists() and is_complete(out / ".run1.replaced") and is_complete(new)
    if lost == "the new output":
        shutil.rmtree(out / ".run1.partial")
    inputs = tmp_path / "in"
    shutil.copytree(SAMPLE_BAG, inputs / "run1")
    (inputs / "run1" / "sample_bag.mcap").write_bytes(b"")  # unreadable now
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "fleet",
                           str(inputs), "--out", str(out), "--workers", "1"],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ,
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert is_complete(out / "run1")
    want = "new" if lost == "nothing" else "old"
    assert json.loads((out / "run1" / "summary.json").read_text())["label"] == want
    assert sorted(p.name for p in out.iterdir()) == ["fleet_summary.json", "run1"]
    summary = json.loads((out / "fleet_summary.json").read_text())
    assert summary["per_bag"][0]["status"] == "skipped" and not summary["ray"]["used"]
    what = "the new output" if want == "new" else "the earlier output"
    assert any(n.startswith(f"run1: put {what}") for n in summary["notes"]), summary["notes"]


def test_a_failed_bags_work_folder_that_cannot_be_removed_still_ends_in_the_summary(tmp_path,
                                                                                   monkeypatch):
    """R48: a failed bag's work folder that could not be removed at the end (--out turned
    read-only for it, a file in it another user owns) raised the OSError out of the run: a
    traceback, no fleet_summary.json although the other bags had finished. Now it is a note
    naming the folder and the fix, and the summary is written with every bag's entry."""
    import errno

    from sense_perception.fleet import cluster, runner
    from sense_perception.fleet.dispatch import DispatchResult
    from sense_perception.fleet.report import bag_entry

    class Session:
        ray, address, resources = None, "local", {"CPU": 1.0}

        def close(self) -> None:
            pass

    class Dispatcher:  # the bag failed on its worker and left its work folder
        def __init__(self, ray, jobs, *args, **kwargs):
            self.jobs = jobs

        def run(self) -> DispatchResult:
            (job,) = self.jobs
            (out / f".{job.name}.partial").mkdir()
            return DispatchResult([bag_entry(job, {"status": "failed", "reason": "test"}, 1, 0,
                                             None)], [], 0.0, None, [])

    def discard(folder: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    out = tmp_path / "out"
    monkeypatch.setattr(cluster, "connect", lambda address, cpus: Session())
    monkeypatch.setattr(cluster, "check_workers", lambda ray, workers, cpus, gpus, asked: (1, []))
    monkeypatch.setattr(runner, "Dispatcher", Dispatcher)
    monkeypatch.setattr(runner, "discard_ours", discard)
    result = runner.run_fleet(runner.FleetRequest(inputs=[SAMPLE_BAG], out=out, workers=1))
    assert result.summary_path.is_file()
    [entry] = result.summary["per_bag"]
    assert entry["status"] == "failed"
    assert result.exit_code != 0
    note = next(n for n in result.notes if ".partial" in n)
    assert "could not be removed" in note and "Permission denied" in note, note


def test_a_published_bag_is_renamed_on_disk_before_the_old_output_goes(tmp_path, monkeypatch):
    """publish renamed a bag's finished outputs into place without flushing DIR, then deleted
    the earlier outputs, and fleet_summary.json (flushed, R63) listed the bag as done: after a
    power cut the rename could be lost while the summary said done. DIR is now fsynced after
    the rename, before the earlier outputs are deleted, and the folder (its fleet marker)
    before it (R66)."""
    import os

    from sense_perception.fleet import outputs

    out = tmp_path / "out"
    out.mkdir()
    events: list[str] = []
    real_fsync, real_discard = os.fsync, outputs.discard_ours

    def fsync(fd: int) -> None:
        events.append("fsync " + os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def discard(folder):
        if folder.exists():
            events.append(f"discard {folder.name}")
        real_discard(folder)

    for label in ("old", "new"):
        temp = prepare_temp(out, "run1")
        temp.mkdir()
        (temp / "summary.json").write_text(label)
        if label == "new":  # the second publish replaces the first
            monkeypatch.setattr(os, "fsync", fsync)
            monkeypatch.setattr(outputs, "discard_ours", discard)
        publish(temp, out / "run1")
    assert (out / "run1" / "summary.json").read_text() == "new"
    # the marker before the rename (a folder in place without it is refused as not fleet's)
    assert events[:3] == [f"fsync {out}/.run1.partial/replay", f"fsync {out}",
                          "discard .run1.replaced"], events


def test_interrupt_guard_takes_sighup_only_where_its_default_is(monkeypatch):
    """A closed terminal's SIGHUP ended a fleet run at once, no summary written; it is noted as
    SIGINT and SIGTERM are now (R89), but a run under ``nohup`` (SIGHUP ignored) outlives its
    terminal as asked."""
    import os
    import signal
    import time

    from sense_perception.fleet.signals import InterruptGuard, Interrupted

    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # the guard's note
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with InterruptGuard() as guard:
            # handled: the default left in place would end this process
            assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)  # the handler runs between bytecodes
            with pytest.raises(Interrupted) as caught:
                guard.check()
        assert caught.value.name == "SIGHUP" and caught.value.exit_code == 129
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # hung up: ignored from then on
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with InterruptGuard():
            pass
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # none came: put back
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
        with InterruptGuard() as guard:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            guard.install()  # again, as once Ray is up
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            guard.check()  # nothing caught
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_interrupt_guard_survives_a_hung_up_terminal(monkeypatch):
    """After a closed terminal's SIGHUP a write to stderr fails (EIO): the guard's note raised in
    the signal handler, inside Ray's native wait, as a SystemError that ended the run without its
    summary, its work folders left; and the hangup comes twice (the kernel's, then the shell's),
    the second taken as a user insisting: ``os._exit`` without cleaning up. The note is dropped
    and the second SIGHUP ignored now; the first one's stop stands (R89)."""
    import errno
    import os
    import signal
    import time

    from sense_perception.fleet.signals import InterruptGuard, Interrupted

    class HungUpTerminal:
        def write(self, text: str) -> int:
            raise OSError(errno.EIO, "Input/output error")

    def exit_now(code: int) -> None:
        raise AssertionError(f"os._exit({code}): the run would end without its summary")

    monkeypatch.setattr(sys, "stderr", HungUpTerminal())
    monkeypatch.setattr(os, "_exit", exit_now)
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with InterruptGuard() as guard:
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.2)  # the handler runs between bytecodes
            with pytest.raises(Interrupted) as caught:
                guard.check()
        assert caught.value.name == "SIGHUP"
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # one more may come late
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.2)
    finally:
        signal.signal(signal.SIGHUP, previous)
