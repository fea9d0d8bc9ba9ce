"""A benchmark run stopped by SIGTERM or Ctrl-C removes its temporary folders.

The replay benchmark enrols a driver into a gallery under ``$TMPDIR/sp-bench-replay-*``: face
templates that must not outlive the run (a SIGTERM ended the process with no cleanup, leaving
them under /tmp). The real ``benchmarks/run.py --only replay`` runs in a child process with its own
TMPDIR and is signalled once the gallery is written.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_benchmark_removes_its_folder_of_face_templates(tmp_path, signum, code) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "results.json"
    proc = subprocess.Popen([sys.executable, str(RUN), "--quick", "--only", "replay", "--out",
                             str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TMPDIR": str(temp),
                                            "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 240
        galleries: list[Path] = []
        while not galleries and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            galleries = list(temp.glob("sp-bench-replay-*/gallery/gallery.json"))
        assert galleries, f"no gallery appeared (exit {proc.poll()})"
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
