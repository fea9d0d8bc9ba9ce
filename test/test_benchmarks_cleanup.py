"""A benchmark run stopped by SIGTERM or Ctrl-C removes its temporary folders.

The replay benchmark enrols a driver into a gallery under ``$TMPDIR/sp-bench-replay-*``: face
templates that must not outlive the run (a SIGTERM ended the process with no cleanup, leaving
them under /tmp). The real ``benchmarks/run.py --only replay`` runs in a child process with its own
TMPDIR and is signalled once the gallery is written. ``kill -9`` runs no cleanup: the next start
removes the folders of dead runs (marked with their pid), and only those.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"
GALLERIES = "sp-bench-replay-*/gallery/gallery.json"


def _start(temp: Path, out: Path) -> subprocess.Popen:
    """The real replay benchmark in a child process whose temporary folder is ``temp``."""
    return subprocess.Popen([sys.executable, str(RUN), "--quick", "--only", "replay", "--out",
                             str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TMPDIR": str(temp),
                                            "PYTHONPATH": str(ROOT)})


def _wait_for(proc: subprocess.Popen, done: Callable[[], list[Path]], what: str) -> list[Path]:
    """Poll ``done`` until it gives paths (or the child ends, or 240 s pass)."""
    deadline, found = time.monotonic() + 240, done()
    while not found and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        found = done()
    assert found, f"{what} (exit {proc.poll()})"
    return found


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_benchmark_removes_its_folder_of_face_templates(tmp_path, signum, code) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "results.json"
    proc = _start(temp, out)
    try:
        galleries = _wait_for(proc, lambda: list(temp.glob(GALLERIES)), "no gallery appeared")
        folder = galleries[0].parents[1]
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # private while it exists
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err[-2000:]
    assert "no results written, temporary folders removed" in err and "Traceback" not in err
    assert not folder.exists() and not list(temp.glob("sp-bench-*")) and not out.exists()


def test_a_killed_benchmarks_folder_of_face_templates_goes_at_the_next_start(tmp_path) -> None:
    """``kill -9`` runs no cleanup: the gallery stays under /tmp until the next benchmark run
    starts, which removes the folders of dead runs, marked with their pid, and nothing else."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "results.json"
    killed = _start(temp, out)
    try:
        gallery = _wait_for(killed, lambda: list(temp.glob(GALLERIES)), "no gallery appeared")[0]
    finally:
        killed.kill()  # SIGKILL
        killed.communicate()
    folder = gallery.parents[1]
    assert folder.name.startswith(f"sp-bench-replay-{killed.pid}-") and gallery.is_file()
    # Left alone: a live run's folder (this test's pid, its mark true) and an unmarked look-alike.
    live = temp / f"sp-bench-replay-{os.getpid()}-live"
    live.mkdir()
    (live / ".sp-bench-run").write_text(f"sense_perception benchmark run, pid {os.getpid()}\n")
    unmarked = temp / f"sp-bench-replay-{killed.pid}-unmarked"
    unmarked.mkdir()
    second = _start(temp, out)
    try:
        _wait_for(second, lambda: [] if folder.exists() else [folder], "the folder stayed")
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 143, err[-2000:]
    assert f"[bench] removed {folder}: a temporary folder left by a killed run" in err
    # A set: the two names hold pids, whose digits need not sort in the order the folders were made.
    assert set(temp.glob("sp-bench-*")) == {live, unmarked} and not out.exists()


#: A child that runs benchmarks/run.py's main with the measuring replaced by a ready document
#: (the tail is what is tested) and a SIGTERM sent to itself once the results' temp file is
#: written, before its rename: a stop arriving while the results file is written.
_STOPPED_WHILE_WRITING = """
import os, signal, sys
sys.argv[0] = {run!r}
sys.path.insert(0, {root!r})
import benchmarks.run as bench
from sense_perception import fileio

bench.run = lambda args: {{"schema": 1}}
bench.print_table = lambda doc: print("table")
write_temp = fileio._write_temp_beside

def write_then_stop(*args, **kwargs):
    tmp = write_temp(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return tmp

fileio._write_temp_beside = write_then_stop
sys.exit(bench.main(["--quick", "--only", "default", "--out", {out!r}]))
"""


def test_a_stop_while_the_results_are_written_leaves_them_whole_and_no_temp_file(tmp_path) -> None:
    """R101: a SIGTERM while results.json was written met Python's default (the stop block had
    ended with the measuring): the process ended at once, its temp file left beside the results
    and no results file. Now the write is held: it lands whole, the stop is obeyed after it
    (exit 143, no traceback) and no temp file is left."""
    out = tmp_path / "results.json"
    script = _STOPPED_WHILE_WRITING.format(run=str(RUN), root=str(ROOT), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 143, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert "stopped (SIGTERM) after the results were written" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert json.loads(out.read_text()) == {"schema": 1}
