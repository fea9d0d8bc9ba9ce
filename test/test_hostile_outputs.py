"""Where the development tools and the less used commands write: a careless or hostile output path
never destroys a user's file, and what they print cannot be forged by a file name.

Each case runs the real tool or command in a child process on real data, as a user would.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LABELLED = SHARED / "street_labelled" / "pandaset_seq002_front"


def tool(name: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``tools/NAME ARGS`` from ``cwd`` with the project's Python (no PYTHONPATH: a tool run
    as a script must find the package by itself)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_stand_in_never_replaces_the_labelled_sets_own_ground_truth(tmp_path: Path) -> None:
    """`tools/make_far_proxy.py gt.json DIR` with DIR the labelled set's own folder replaced its
    ground_truth.json by the stand-in's (the labels lost, exit 0), and any folder's files of the
    same names were overwritten. The labelled set's folder (or one holding it or inside it) and a
    folder of the user's are refused (exit 2, the reason named) and keep every byte; a new folder
    is written, marked, and can be written again."""
    labelled = tmp_path / "labelled"
    shutil.copytree(LABELLED, labelled)
    for path in [labelled, *labelled.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ground_truth.json").write_text('{"my": "labels"}\n')
    before, mine_before = digests(labelled), digests(mine)
    gt = str(labelled / "ground_truth.json")
    for out, problem in ((labelled, "is the labelled set's folder"),
                         (labelled / "far", "lies inside the labelled set's folder"),
                         (tmp_path, "contains the labelled set's folder"),
                         (mine, "holds files this tool did not write")):
        result = tool("make_far_proxy.py", gt, str(out), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: {out} {problem}"), result.stderr
        assert "Traceback" not in result.stderr
    assert digests(labelled) == before and digests(mine) == mine_before
    far = tmp_path / "far"
    for _ in range(2):  # its own folder again: replaced
        result = tool("make_far_proxy.py", gt, str(far), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    names = {p.name for p in far.iterdir()}
    assert ".sense-perception-stand-in" in names and "ground_truth.json" in names
    cameras = json.loads((labelled / "ground_truth.json").read_text())["cameras"]
    assert len([n for n in names if n.endswith(".jpg")]) == len(cameras)
    assert not [n for n in names if n.endswith(".tmp")]
