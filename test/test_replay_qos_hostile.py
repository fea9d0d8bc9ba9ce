"""A bag whose MCAP channel carries hostile QoS metadata (``offered_qos_profiles``, a YAML string):
nested thousands of levels deep, an alias bomb, megabytes, or not QoS at all. rosbags parsed it
whole with ruamel's pure-Python loader: 5000 levels took 6.5 s per channel and ended in a
RecursionError that made the bag unreadable to rosbags. It is now parsed within bounds; a refused
one is ignored with a note naming the topic and the problem, and every message is still replayed.

Each case is the sample bag with one channel's metadata replaced, written with the ``mcap`` library,
and replayed by the real `sense-perception replay` in a child process: as a rosbag2 directory whose
metadata.yaml gives that topic a real QoS profile (rosbags pairs channels with metadata.yaml's
topics by QoS too), and as a lone .mcap file.
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
import yaml
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer
from replay_helpers import FRONT, ROOT, SAMPLE_BAG, copy_bag
from rosbags.rosbag2 import StoragePlugin
from support import PICODET_ONLY

from sense_perception.replay.qos import (MAX_QOS_BYTES, MAX_QOS_ENTRIES, RefusedQos,
                                         parse_qos_bounded)


def _alias_bomb() -> str:
    """Five levels of thirty aliases inside a profile: 30**5 (24 million) list items in 1 kB,
    shallow enough to pass the depth bound."""
    lines = ['- history: keep_last', '  depth: 1', '  x0: &l0 [' + ", ".join(["1"] * 30) + "]"]
    lines += [f"  x{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 30) + "]" for i in range(1, 5)]
    return "\n".join(lines) + "\n"


HUGE = "- history: keep_last\n" + "".join(f"  k{i}: {i}\n" for i in range(20_000))  # 290 kB
CASES = {
    "nested_5000_deep": ("[" * 5000 + "]" * 5000, "not valid YAML (exceeded maximum nesting depth"),
    "alias_bomb": (_alias_bomb(), f"expands to more than {MAX_QOS_ENTRIES} entries"),
    "huge": (HUGE, f"{len(HUGE)} bytes, more than the {MAX_QOS_BYTES} a QoS string may have"),
    "not_qos": ("just a string", "not a list of QoS profiles"),
}


def _rewrite(src: Path, dst: Path, topic: str, qos: str) -> None:
    """``src`` (MCAP) copied record by record to ``dst``, ``topic``'s channel QoS set to ``qos``."""
    with src.open("rb") as f_in, dst.open("wb") as f_out:
        reader = make_reader(f_in)
        writer = Writer(f_out, compression=CompressionType.NONE)
        writer.start(profile="ros2", library="test")
        schemas: dict[int, int] = {}
        channels: dict[int, int] = {}
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            if schema is not None and schema.id not in schemas:
                schemas[schema.id] = writer.register_schema(schema.name, schema.encoding,
                                                            schema.data)
            if channel.id not in channels:
                metadata = dict(channel.metadata)
                if channel.topic == topic:
                    metadata["offered_qos_profiles"] = qos
                channels[channel.id] = writer.register_channel(
                    channel.topic, channel.message_encoding,
                    schemas[schema.id] if schema is not None else 0, metadata)
            writer.add_message(channels[channel.id], message.log_time, message.data,
                               message.publish_time, message.sequence)
        writer.finish()


def _bag(folder: Path, qos: str) -> Path:
    """The sample bag with FRONT's channel QoS replaced; its metadata.yaml gives FRONT the real
    profile /tf_static has, so rosbags must pair the channel with the topic despite the QoS."""
    folder.mkdir(parents=True)
    _rewrite(SAMPLE_BAG / "sample_bag.mcap", folder / "sample_bag.mcap", FRONT, qos)
    doc = yaml.safe_load((SAMPLE_BAG / "metadata.yaml").read_text())
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"]
              for t in doc["rosbag2_bagfile_information"]["topics_with_message_count"]}
    topics[FRONT]["offered_qos_profiles"] = topics["/tf_static"]["offered_qos_profiles"]
    (folder / "metadata.yaml").write_text(yaml.safe_dump(doc))
    return folder


def _replay(bag: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay", str(bag),
                           "--out", str(out), "--config", str(PICODET_ONLY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc, time.monotonic() - start


# Every case in a directory bag (where rosbags pairs channels with metadata.yaml's topics); the
# lone .mcap file reads the same strings through the same parser: two cases there (CI time).
@pytest.mark.parametrize("case, form", [(case, "directory") for case in sorted(CASES)]
                         + [("alias_bomb", "mcap_file"), ("nested_5000_deep", "mcap_file")])
def test_hostile_channel_qos_is_ignored_with_a_note_and_every_frame_replayed(tmp_path, case,
                                                                             form) -> None:
    qos, problem = CASES[case]
    bag = _bag(tmp_path / "bag", qos)
    if form == "mcap_file":
        bag = bag / "sample_bag.mcap"
        (tmp_path / "bag" / "metadata.yaml").unlink()
    proc, took = _replay(bag, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 5 and summary["skipped"] == []  # front 4 + windshield 1
    notes = " ".join(proc.stderr.split())  # notes go to stderr
    assert (f"topic {FRONT}: its QoS metadata (offered_qos_profiles) is ignored: {problem}"
            in notes), notes
    assert "streaming it record by record" not in notes  # rosbags still opens it
    assert "Traceback" not in proc.stderr and took < 60


def test_real_qos_profiles_still_parse() -> None:
    """The sample bag's real profile (a channel's QoS string) parses as rosbags parses it."""
    with (SAMPLE_BAG / "sample_bag.mcap").open("rb") as f:
        channels = make_reader(f).get_summary().channels.values()
    raw = next(c.metadata["offered_qos_profiles"] for c in channels if c.topic == "/tf_static")
    from rosbags.rosbag2.metadata import parse_qos

    (profile,) = parse_qos_bounded(raw)
    assert [profile] == parse_qos(raw) and profile.depth == 1
    assert parse_qos_bounded("[]") == [] and parse_qos_bounded("") == []


@pytest.mark.parametrize("case", ["nested_5000_deep"])  # the parser's cases: above
def test_hostile_topic_qos_in_a_sqlite3_bag_is_ignored_with_a_note(tmp_path, case) -> None:
    """sqlite3 keeps each topic's QoS string in its ``topics`` table: bounded alike."""
    qos, problem = CASES[case]
    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", storage=StoragePlugin.SQLITE3)
    (db,) = bag.glob("*.db3")
    with sqlite3.connect(db) as connection:
        assert connection.execute("UPDATE topics SET offered_qos_profiles = ? WHERE name = ?",
                                  (qos, FRONT)).rowcount == 1
    connection.close()
    proc, took = _replay(bag, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["frames"] == 5
    notes = " ".join(proc.stderr.split())
    assert (f"topic {FRONT}: its QoS metadata (offered_qos_profiles) is ignored: {problem}"
            in notes), notes
    assert "Traceback" not in proc.stderr and took < 60


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_hostile_qos_is_refused_by_its_bound(case) -> None:
    """rosbags took 6.5 s on the deep case alone (and then the salvage parsed it again). Each is
    refused by the bound it breaks, named in the problem: the parse stops there, not at the end
    (a structural check: no timing in a unit test)."""
    qos, problem = CASES[case]
    refused = parse_qos_bounded(qos)
    assert isinstance(refused, RefusedQos) and len(refused) == 0
    assert refused.problem.startswith(problem)
