"""Decompression bombs in bags: a compressed MCAP chunk or sqlite3 message that expands to
gigabytes (a few kilobytes of zstd hold 2 GiB of zeros), or declares a size it does not have.

rosbags and the ``mcap`` library decompressed a whole chunk in one call: a 66 kB file took 2 GiB
of memory (lz4: 3.4 GiB) and then hours, parsing 2 GiB of zeros as MCAP records. Each case runs the
real `sense-perception replay` in a child process under an address-space limit (so a regression
fails the test instead of taking down the machine) and measures its peak memory.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mcap.data_stream import RecordBuilder
from mcap.records import Channel, Chunk, DataEnd, Footer, Header, Schema
from mcap.writer import MCAP0_MAGIC
from replay_helpers import FRONT, ROOT, SAMPLE_BAG, WINDSHIELD
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sense_perception.replay.bounded import MAX_DECOMPRESSED_BYTES

GiB = 1 << 30
BOMB_MIB = 2048 + 16  # just over 2 GiB of zeros
LIMIT = f"over the limit of {MAX_DECOMPRESSED_BYTES} bytes (256 MiB) that the replay decompresses"

# Runs the replay under an address-space limit and reports its exit status, peak memory and output.
_CHILD = """
import json, resource, subprocess, sys
limit = int(sys.argv[1])
done = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=300,
                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
print(json.dumps({"code": done.returncode, "stderr": done.stderr, "stdout": done.stdout,
                  "max_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def _replay(bag: Path, out: Path, *extra: str, address_space: int) -> dict:
    command = [sys.executable, "-m", "sense_perception.cli.main", "replay", str(bag), "--out",
               str(out), *extra]
    done = subprocess.run([sys.executable, "-c", _CHILD, str(address_space), *command],
                          capture_output=True, text=True, timeout=400,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _zeros(compression: str, mib: int) -> bytes:
    """``mib`` MiB of zeros, compressed chunk by chunk (never held uncompressed)."""
    block = bytes(1 << 20)
    if compression == "zstd":
        from backports import zstd

        zc = zstd.ZstdCompressor()
        return b"".join([*(zc.compress(block) for _ in range(mib)), zc.flush()])
    import lz4.frame

    lc = lz4.frame.LZ4FrameCompressor()
    return b"".join([lc.begin(), *(lc.compress(block) for _ in range(mib)), lc.flush()])


def _mcap_bomb(path: Path, compression: str, real_mib: int, declared: int) -> Path:
    """An MCAP (no summary, as a recorder that died leaves it) with one image channel and one
    chunk of ``real_mib`` MiB of zeros that declares ``declared`` bytes uncompressed."""
    out = RecordBuilder()
    Header(profile="ros2", library="test bomb").write(out)
    Schema(id=1, name="sensor_msgs/msg/CompressedImage", encoding="ros2msg",
           data=b"std_msgs/Header header\nstring format\nuint8[] data\n").write(out)
    Channel(id=1, schema_id=1, topic=FRONT, message_encoding="cdr", metadata={}).write(out)
    Chunk(compression=compression, data=_zeros(compression, real_mib), message_start_time=0,
          message_end_time=0, uncompressed_crc=0, uncompressed_size=declared).write(out)
    DataEnd(data_section_crc=0).write(out)
    Footer(summary_start=0, summary_offset_start=0, summary_crc=0).write(out)
    path.write_bytes(MCAP0_MAGIC + out.end() + MCAP0_MAGIC)
    return path


@pytest.mark.parametrize("compression, real_mib, declared, problem", [
    ("zstd", BOMB_MIB, BOMB_MIB << 20, f"declares {BOMB_MIB << 20} bytes uncompressed, {LIMIT}"),
    ("lz4", BOMB_MIB, BOMB_MIB << 20, f"declares {BOMB_MIB << 20} bytes uncompressed, {LIMIT}"),
    ("zstd", 1, 1 << 40, f"declares {1 << 40} bytes uncompressed, {LIMIT}"),
    ("zstd", BOMB_MIB, 1 << 20, "expands past the 1048576 bytes it declares"),
], ids=["zstd-2GiB", "lz4-2GiB", "claims-1TiB", "claims-1MiB-holds-2GiB"])
def test_an_mcap_chunk_bomb_is_refused_naming_the_file_and_the_limit(
        tmp_path, compression, real_mib, declared, problem) -> None:
    bag = _mcap_bomb(tmp_path / "drive.mcap", compression, real_mib, declared)
    assert bag.stat().st_size < 10 << 20  # a small file ...
    got = _replay(bag, tmp_path / "out", address_space=GiB)
    text = " ".join(got["stderr"].split())
    assert got["code"] == 2 and "Traceback" not in text, text  # ... refused at once,
    assert f"error: bag file {bag}: " in text and problem in text, text  # naming file and limit,
    assert "decompression bomb" in text
    assert got["max_rss"] < 512 << 20, got["max_rss"]  # never expanded in memory
    assert not (tmp_path / "out" / "summary.json").exists()


def _message_compressed_copy(bag: Path) -> Path:
    """The sample bag as rosbag2 sqlite3 with zstd message compression (``--compression-mode
    message``)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with Reader(SAMPLE_BAG) as reader, writer:
        conns = {c.topic: writer.add_connection(c.topic, c.msgtype, typestore=store)
                 for c in reader.connections}
        for c, timestamp, raw in reader.messages():
            writer.write(conns[c.topic], timestamp, bytes(raw))
    return bag


def test_a_zstd_message_bomb_in_a_message_compressed_sqlite3_bag_is_skipped_and_named(tmp_path):
    """A rosbag2 sqlite3 bag with zstd message compression whose camera frame holds 2 GiB of
    zeros: the frame is refused at the limit, named under 'skipped' (exit 1), memory stays
    bounded."""
    bag = _message_compressed_copy(tmp_path / "bag")
    (db,) = bag.glob("*.db3")
    with sqlite3.connect(db) as con:  # the windshield frame becomes the bomb
        ((frame,),) = con.execute("SELECT m.id FROM messages m JOIN topics t ON m.topic_id = t.id "
                                  "WHERE t.name = ?", (WINDSHIELD,)).fetchall()
        con.execute("UPDATE messages SET data = ? WHERE id = ?", (_zeros("zstd", BOMB_MIB), frame))
    con.close()
    got = _replay(bag, tmp_path / "out", "--topics", WINDSHIELD, address_space=3 * GiB)
    assert got["code"] == 1 and "Traceback" not in got["stderr"], got["stderr"]
    skipped = json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"]
    (entry,) = [s for s in skipped if s["topic"] == WINDSHIELD]
    assert entry["count"] == 1 and "DecompressionLimitError" in entry["reason"]
    assert f"expands to more than {MAX_DECOMPRESSED_BYTES} bytes, {LIMIT}" in entry["reason"]
    assert got["max_rss"] < GiB, got["max_rss"]  # models loaded, plus at most the limit


def test_frames_within_the_limit_still_decompress(tmp_path) -> None:
    """The same message-compressed bag without the bomb replays every frame (exit 0)."""
    bag = _message_compressed_copy(tmp_path / "bag")
    from sense_perception.cli.main import main

    assert main(["replay", str(bag), "--out", str(tmp_path / "out"), "--topics", FRONT,
                 WINDSHIELD]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cameras"][FRONT]["frames"] == 4 and summary["skipped"] == []
