"""A bag whose metadata.yaml is hostile: a YAML alias bomb, a file of megabytes, YAML nested
thousands of levels deep, or a FIFO. rosbags parses metadata.yaml whole with no bound (37 MB took
more than two minutes and 1.5 GB before the replay gave up on it); the replay now reads it within
the config loader's bounds first and, when it is refused, replays the storage files without it,
printing a note that names the file and the problem (a FIFO is refused before: exit 2).

Each case is the sample bag, rewritten by rosbags, with its metadata.yaml replaced, replayed by the
real `sense-perception replay` in a child process.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from replay_helpers import ROOT, SAMPLE_BAG, WINDSHIELD, copy_bag
from rosbags.rosbag2 import StoragePlugin
from support import PICODET_ONLY

from sense_perception.bounded_yaml import MAX_YAML_BYTES
from sense_perception.replay.reader import MAX_METADATA_ENTRIES, open_bag


def _bomb(real: str) -> str:
    """Ten levels of ten aliases each: 10**10 list items in a few hundred bytes, put where rosbags
    keeps it (custom_data) in an otherwise valid metadata.yaml."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n" + real.replace("custom_data: null", "custom_data: *l9")


def _mapping_bomb(real: str) -> str:
    lines = ["m0: &m0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1}"]
    lines += [f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(10)) + "}"
              for i in range(1, 10)]
    return "\n".join(lines) + "\n" + real.replace("custom_data: null", "custom_data: *m9")


def _huge(real: str) -> str:  # valid YAML, 3 MiB
    return real + "padding:\n" + "".join(f"  k{i}: {i}\n" for i in range(3 * (1 << 20) // 12))


def _deep(real: str) -> str:
    return real.replace("custom_data: null", "custom_data: " + "[" * 5000 + "]" * 5000)


CASES = {
    "alias_bomb": (_bomb, f"expands to more than {MAX_METADATA_ENTRIES} entries"),
    "mapping_bomb": (_mapping_bomb, f"expands to more than {MAX_METADATA_ENTRIES} entries"),
    "huge": (_huge, f"more than the {MAX_YAML_BYTES} a file of this kind may have"),
    "nested_5000_deep": (_deep, "not valid YAML (exceeded maximum nesting depth"),
}


def _bag(tmp_path: Path) -> Path:
    """A real bag written by rosbags (MCAP with its metadata.yaml), the sample bag's messages."""
    return copy_bag(SAMPLE_BAG, tmp_path / "bag")


def _replay(bag: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay", str(bag),
                           "--out", str(out), "--topics", WINDSHIELD, "--config",
                           str(PICODET_ONLY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc, time.monotonic() - start


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_metadata_yaml_is_refused_and_the_storage_replayed(tmp_path, case) -> None:
    bag = _bag(tmp_path)
    meta = bag / "metadata.yaml"
    make, problem = CASES[case]
    meta.write_text(make(meta.read_text()))
    proc, took = _replay(bag, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    output = " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    assert f"note: {meta} refused: " in output and problem in output, output
    assert "reading the storage files directly without it" in output
    assert "Traceback" not in output and "frames 1 " in output
    assert took < 60, f"{took:.0f} s"  # about 5 s; an unbounded parse took minutes


def test_a_healthy_metadata_yaml_still_opens_with_rosbags(tmp_path) -> None:
    with open_bag(_bag(tmp_path)) as bag:
        assert bag.notes == [] and type(bag._parts[0]).__name__ == "_RosbagsPart"


def test_a_metadata_yaml_that_is_a_fifo_is_an_error_naming_it(tmp_path) -> None:
    bag = _bag(tmp_path)
    meta = bag / "metadata.yaml"
    meta.unlink()
    os.mkfifo(meta)
    proc, took = _replay(bag, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert f"bag file {meta} is a FIFO (named pipe), not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists() and took < 60


def test_when_the_storage_needs_the_refused_metadata_the_error_says_why_it_was_refused(tmp_path):
    """A sqlite3 bag without type definitions (as before ROS 2 Iron) cannot be read without its
    metadata.yaml: the error (exit 2) says to restore it and why the one there was refused."""
    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", storage=StoragePlugin.SQLITE3)
    (db,) = bag.glob("*.db3")
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TABLE message_definitions")
    connection.close()
    meta = bag / "metadata.yaml"
    meta.write_text(_bomb(meta.read_text()))
    proc, took = _replay(bag, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    error = " ".join(proc.stderr.split())
    assert f"storage file {db} cannot be read" in error and "restore its metadata.yaml" in error
    assert f"({meta} refused: expands to more than {MAX_METADATA_ENTRIES} entries" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists() and took < 60


def test_fleet_replays_a_bag_with_an_alias_bomb_for_metadata_and_names_it(tmp_path) -> None:
    """`fleet` opens bags through the same reader: the bag is replayed whole, the note is in its
    entry of fleet_summary.json."""
    bag = _bag(tmp_path / "bags")
    meta = bag / "metadata.yaml"
    meta.write_text(_bomb(meta.read_text()))
    out = tmp_path / "out"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "fleet",
                           str(tmp_path / "bags"), "--out", str(out), "--workers", "1",
                           "--config", str(PICODET_ONLY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (entry,) = json.loads((out / "fleet_summary.json").read_text())["per_bag"]
    assert entry["status"] == "done" and entry["frames"] == 5  # front 4 + windshield 1
    assert any(note.startswith(f"{meta} refused: expands to more than {MAX_METADATA_ENTRIES}")
               for note in entry["notes"]), entry["notes"]
    assert time.monotonic() - start < 180


def test_a_metadata_yaml_that_is_a_directory_is_named_so(tmp_path) -> None:
    # It read "bag file .../metadata.yaml is not a regular file, not a regular file".
    from sense_perception.errors import BagError

    bag = _bag(tmp_path)
    meta = bag / "metadata.yaml"
    meta.unlink()
    meta.mkdir()
    with pytest.raises(BagError, match=r"metadata\.yaml is a directory, not a regular file; a "):
        open_bag(bag)
