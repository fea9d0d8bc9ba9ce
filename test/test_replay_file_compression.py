"""File-compressed bags (rosbag2 ``compression_mode: file``: ``*.mcap.zstd``): rosbags unpacks each
storage file whole into a temporary folder before reading it, and did so without a size limit: a
zstd file of a few kilobytes that expands to terabytes filled the disk. The unpacked size is now
bounded by that disk's free space less a reserve (:func:`~sense_perception.replay.bounded.unpack_budget`):
a frame that declares more is refused before anything is written, one that does not declare its
size is stopped at the budget, and the temporary copy is removed in every case, Ctrl-C included.

The bags are written by rosbags (file compression, the sample bag's messages); the bombs replace
the storage file of such a bag. Each replay is the real CLI, with TMPDIR pointed at a folder of the
test so leftovers can be seen.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from replay_helpers import ROOT, SAMPLE_BAG
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from support import PICODET_ONLY

from sense_perception.cli.main import main
from sense_perception import owned_folders
from sense_perception.replay import bounded

PIB = 1 << 50


def _file_compressed_bag(path: Path) -> Path:
    """The sample bag rewritten by rosbags as a file-compressed (zstd) MCAP bag."""
    store = get_typestore(Stores.ROS2_JAZZY)
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.FILE, CompressionFormat.ZSTD)
    with Reader(SAMPLE_BAG) as reader, writer:
        conns: dict[str, object] = {}
        for conn, timestamp, raw in reader.messages():
            if conn.topic not in conns:
                conns[conn.topic] = writer.add_connection(conn.topic, conn.msgtype, typestore=store)
            writer.write(conns[conn.topic], timestamp, raw)
    return path


def _declared_bomb(declared: int, blocks: int = 64) -> bytes:
    """A zstd frame whose header declares ``declared`` bytes, then ``blocks`` RLE blocks of
    128 KiB of zeros (4 bytes each): what a hostile file needs to look like a huge recording."""
    frame = struct.pack("<IB", 0xFD2FB528, 0xE0) + struct.pack("<Q", declared)  # single segment
    for i in range(blocks):
        header = (128 << 10) << 3 | 1 << 1 | (i == blocks - 1)  # size, RLE, last block
        frame += header.to_bytes(3, "little") + b"\0"
    return frame


def _stream_bomb(mib: int) -> bytes:
    """``mib`` MiB of zeros as a streamed zstd frame, which does not declare its size."""
    from backports import zstd

    compressor = zstd.ZstdCompressor()
    block = bytes(1 << 20)
    return b"".join([*(compressor.compress(block) for _ in range(mib)), compressor.flush()])


def _bomb_bag(path: Path, data: bytes) -> Path:
    bag = _file_compressed_bag(path)
    (storage,) = bag.glob("*.mcap.zstd")
    storage.write_bytes(data)
    return bag


def _leftovers(tmp: Path) -> list[Path]:
    """What an unpacked copy leaves in the temporary folder: rosbags' folder (tmpXXXX) and the
    storage file in it (onnxruntime's own ``.ses`` file there is not ours)."""
    return [p for p in tmp.rglob("*") if p.is_dir() or "mcap" in p.name]


def _replay(bag: Path, out: Path, tmp: Path, **popen: object) -> subprocess.Popen[str]:
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "sense_perception.cli.main", "replay", str(bag),
                             "--out", str(out), "--config", str(PICODET_ONLY)], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)},
                            **popen)  # type: ignore[call-overload]


def _sizes_when_refused(monkeypatch, tmp: Path) -> list[int]:
    """The sizes of the unpacked copy under ``tmp`` at the moment the unpacking is refused."""
    seen: list[int] = []
    real_refused = bounded._unpack_refused

    def refused(*args: object) -> bounded.DecompressionLimitError:
        seen.extend(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        return real_refused(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bounded, "_unpack_refused", refused)
    return seen

def test_a_file_compressed_bag_replays_and_its_unpacked_copy_is_removed(tmp_path) -> None:
    bag = _file_compressed_bag(tmp_path / "bag")
    proc = _replay(bag, tmp_path / "out", tmp_path / "tmp")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 5  # front 4 + windshield 1 (the cabin is not run)
    assert _leftovers(tmp_path / "tmp") == []


def test_a_zstd_file_declaring_more_than_the_disk_holds_is_refused_before_unpacking(tmp_path):
    """A frame declaring 1 PiB: exit 2 at once, naming the file, the budget and the fix."""
    bag = _bomb_bag(tmp_path / "bag", _declared_bomb(PIB))
    start = time.monotonic()
    proc = _replay(bag, tmp_path / "out", tmp_path / "tmp")
    _, err = proc.communicate(timeout=120)
    error = " ".join(err.split())
    assert proc.returncode == 2, err[-3000:]
    assert (f"error: bag {bag}: the file-compressed storage file bag.mcap.zstd declares {PIB} "
            "bytes unpacked, more than the") in error
    assert f"it may be unpacked to in {tmp_path / 'tmp'}" in error
    assert "decompression bomb" in error and "set TMPDIR to a folder on a disk" in error
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert _leftovers(tmp_path / "tmp") == []
    assert time.monotonic() - start < 60


def test_a_zstd_file_that_hides_its_size_stops_at_the_budget(tmp_path, monkeypatch, capsys):
    """A streamed frame (no declared size) of 200 MiB of zeros, on a disk with 64 MiB to spare:
    unpacking stops there (never 200 MiB on disk), exit 2, and the temporary copy is gone."""
    bag = _bomb_bag(tmp_path / "bag", _stream_bomb(200))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    budgets: list[int] = []

    def small_disk(folder: Path) -> int:
        assert folder == tmp  # the folder rosbags unpacks into
        budgets.append(64 << 20)
        return 64 << 20

    monkeypatch.setattr(bounded, "unpack_budget", small_disk)
    seen = _sizes_when_refused(monkeypatch, tmp)
    code = main(["replay", str(bag), "--out", str(tmp_path / "out")])
    error = " ".join(capsys.readouterr().err.split())
    assert code == 2, error
    assert (f"error: bag {bag}: the file-compressed storage file bag.mcap.zstd unpacks to more "
            f"than {64 << 20} bytes") in error and "decompression bomb" in error
    assert budgets and seen and max(seen) <= 64 << 20
    assert _leftovers(tmp) == [] and not (tmp_path / "out").exists()


def test_unpacking_stops_when_the_disk_fills_meanwhile(tmp_path, monkeypatch, capsys):
    """Room for 1 GiB at the start, none once 64 MiB are unpacked (fleet workers unpacking
    beside this one took it): the copy stops there, not at the budget read at the start."""
    bag = _bomb_bag(tmp_path / "bag", _stream_bomb(200))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    free = iter([1 << 30])
    monkeypatch.setattr(bounded, "unpack_budget", lambda folder: next(free, 0))
    seen = _sizes_when_refused(monkeypatch, tmp)
    code = main(["replay", str(bag), "--out", str(tmp_path / "out")])
    error = " ".join(capsys.readouterr().err.split())
    assert code == 2, error
    assert "bag.mcap.zstd unpacks to more than" in error and "decompression bomb" in error
    step = bounded.UNPACK_RECHECK_BYTES
    assert seen and step <= max(seen) <= step + (1 << 20)  # one read past the recheck at most
    assert _leftovers(tmp) == [] and not (tmp_path / "out").exists()


def test_ctrl_c_while_a_bag_is_unpacked_removes_the_temporary_copy(tmp_path) -> None:
    """A genuine 3 GiB storage file (zeros): Ctrl-C once its copy grows: exit 130, no copy left."""
    bag = _bomb_bag(tmp_path / "bag", _stream_bomb(3 << 10))
    tmp = tmp_path / "tmp"
    proc = _replay(bag, tmp_path / "out", tmp)
    deadline = time.monotonic() + 120
    try:
        while not (copies := [f for f in tmp.rglob("*.mcap") if f.stat().st_size > 0]):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.02)
        # named so that a copy a kill -9 leaves can be told apart
        assert copies[0].parent.name.startswith(bounded.UNPACK_PREFIX)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert _leftovers(tmp) == []


def test_a_killed_replays_unpacked_copy_goes_when_the_next_bag_is_opened(tmp_path) -> None:
    """``kill -9`` runs no cleanup: the unpacked copy (here growing towards 3 GiB) stays in
    ``$TMPDIR`` until the next replay opens a bag, which removes the copies of dead replays,
    marked with their pid, and nothing else."""
    bag = _bomb_bag(tmp_path / "bag", _stream_bomb(3 << 10))
    tmp = tmp_path / "tmp"
    killed = _replay(bag, tmp_path / "out", tmp)
    deadline = time.monotonic() + 120
    try:
        while not [f for f in tmp.rglob("*.mcap") if f.stat().st_size > 0]:
            assert killed.poll() is None and time.monotonic() < deadline, killed.stderr
            time.sleep(0.02)
    finally:
        killed.kill()  # SIGKILL
        killed.communicate()
    (left,) = [p for p in tmp.iterdir() if p.name.startswith(bounded.UNPACK_PREFIX)]
    assert left.name.startswith(f"{bounded.UNPACK_PREFIX}{killed.pid}-")
    # left alone: a live process's copy (this test's pid, its mark true) and a look-alike
    live = tmp / f"{bounded.UNPACK_PREFIX}{os.getpid()}-live"
    live.mkdir()
    (live / bounded.UNPACK_MARK).write_text(owned_folders.mark_text("unpacked bag", os.getpid()))
    unmarked = tmp / f"{bounded.UNPACK_PREFIX}{killed.pid}-unmarked"
    unmarked.mkdir()
    # a dead pid of another pid space (a container sharing TMPDIR): its process is unknowable
    elsewhere = tmp / f"{bounded.UNPACK_PREFIX}{killed.pid}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / bounded.UNPACK_MARK).write_text(
        f"sense_perception unpacked bag, pid {killed.pid}, in other-boot pid:[1]\n")
    assert (left / bounded.UNPACK_MARK).read_text() == owned_folders.mark_text("unpacked bag",
                                                                                killed.pid)
    second = _replay(SAMPLE_BAG, tmp_path / "out2", tmp)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    assert not left.exists() and live.is_dir() and unmarked.is_dir() and elsewhere.is_dir()


def test_fleet_fails_the_bomb_alone_and_replays_the_other_bags(tmp_path) -> None:
    """In `fleet`, the refused bag is a failed entry whose reason names the bomb; the other bag
    is replayed, and the workers' temporary folder holds nothing afterwards."""
    if os.environ.get("CI"):
        import ray  # noqa: F401 - CI installs the fleet extra: a missing Ray must fail, not skip
    else:
        pytest.importorskip("ray", reason="Ray not installed: pip install '.[fleet]'")
    bags = tmp_path / "bags"
    _bomb_bag(bags / "bomb", _declared_bomb(PIB))
    _file_compressed_bag(bags / "good")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "fleet", str(bags),
                           "--out", str(tmp_path / "out"), "--workers", "1", "--config",
                           str(PICODET_ONLY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          # Ray's own folder stays /tmp/ray: its socket paths must stay short
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp),
                               "RAY_TMPDIR": "/tmp"})
    assert proc.returncode == 1, proc.stderr[-3000:]
    entries = {e["name"]: e for e in json.loads(
        (tmp_path / "out" / "fleet_summary.json").read_text())["per_bag"]}
    assert entries["good"]["status"] == "done" and entries["good"]["frames"] == 5
    assert entries["bomb"]["status"] == "failed"
    assert f"declares {PIB} bytes unpacked" in entries["bomb"]["reason"]
    assert "decompression bomb" in entries["bomb"]["reason"]
    assert _leftovers(tmp) == []


_TERMINATED_ENROLMENT = """
import os, signal, sys, tempfile
from sense_perception.cli.main import main
from sense_perception.face.pipeline import FaceEngine
from sense_perception.replay.bounded import UNPACK_PREFIX
def terminated(self, *args, **kwargs):  # SIGTERM (a service stop, `timeout`) mid-enrolment
    os.kill(os.getpid(), int(os.environ["STOP_SIGNAL"]))  # or SIGHUP: the terminal closed
    raise AssertionError("the signal did not stop the enrolment")
FaceEngine.driver_embedding = terminated
rmtree = tempfile.TemporaryDirectory._rmtree.__func__
def rmtree_stopped_again(cls, name, *args, **kwargs):  # SECOND_SIGNAL: again, as it is removed
    if UNPACK_PREFIX in name and os.environ.get("SECOND_SIGNAL"):
        os.kill(os.getpid(), int(os.environ["SECOND_SIGNAL"]))
    return rmtree(cls, name, *args, **kwargs)
tempfile.TemporaryDirectory._rmtree = classmethod(rmtree_stopped_again)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum, code, second", [
    (signal.SIGTERM, 143, None), (signal.SIGHUP, 129, None),
    # R99: pressed again (or a SIGTERM after the hangup) while the copy is removed
    (signal.SIGINT, 130, signal.SIGINT), (signal.SIGHUP, 129, signal.SIGTERM)])
def test_sigterm_during_an_enrolment_from_a_file_compressed_bag_removes_its_unpacked_copy(
        tmp_path: Path, signum: int, code: int, second: int | None) -> None:
    """`driver enroll --bag` reads a file-compressed bag through an unpacked copy in TMPDIR: the
    cabin camera's frames, the driver's face. SIGTERM's default ended the process at once and
    left the copy there (until some later replay opened a bag). SIGTERM unwinds as Ctrl-C now:
    the copy is removed, nothing is enrolled, exit status 143. SIGHUP (the terminal closed, an
    SSH session dropped) did the same until R89; it unwinds too now (exit status 129).

    R99: a second stop as the copy was removed (Ctrl-C pressed twice; the SIGTERM of a logout
    after the hangup) was raised there, in the removal: the copy of the driver's frames stayed in
    TMPDIR, and the exit status was the second's. Only the first stop counts now."""
    bag = _file_compressed_bag(tmp_path / "cabin_bag")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    script = tmp_path / "terminated.py"
    script.write_text(_TERMINATED_ENROLMENT)
    gallery = tmp_path / "gallery" / "gallery.json"
    proc = subprocess.run([sys.executable, str(script), "driver", "enroll", "--consent", "--name",
                           "Kim", "--bag", str(bag), "--topic", "/camera/cabin/image_raw/compressed",
                           "--gallery", str(gallery)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp),
                               "STOP_SIGNAL": str(int(signum)),
                               "SECOND_SIGNAL": "" if second is None else str(int(second))})
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert _leftovers(tmp) == [] and not gallery.exists()
