"""Damaged bags replay what is readable, say what was skipped and why, and exit 1."""
from __future__ import annotations

import json

import pytest
from replay_helpers import (FRONT, SAMPLE_BAG, SAMPLE_COUNTS, WINDSHIELD, copy_bag, copy_dir,
                            read_output)
from rosbags.typesys import Stores, get_typestore

from sense_perception.cli.main import main
from sense_perception.errors import BagError
from sense_perception.replay.engine import ReplayOptions, Replayer
from sense_perception.replay.reader import open_bag

CAMERAS = [FRONT, WINDSHIELD]


@pytest.fixture(scope="module")
def detector():
    from sense_perception.core.detection.detector import ObjectDetector

    return ObjectDetector.from_params({}, "test")


def _replay(bag, out, detector, topics=CAMERAS):
    return Replayer(ReplayOptions(bag, out, topics=topics), detector=detector).run()


def _truncate(bag_dir, fraction):
    (mcap,) = bag_dir.glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * fraction)])
    return len(data)


def test_missing_metadata_reads_storage_directly(tmp_path, detector):
    bag = copy_dir(SAMPLE_BAG, tmp_path / "bag")
    (bag / "metadata.yaml").unlink()
    result = _replay(bag, tmp_path / "out", detector)
    # the MCAP's own index proves nothing was lost: complete, with a note on the fallback
    assert result.complete
    assert result.summary["frames"] == 5
    assert any("metadata.yaml is missing" in n for n in result.notes)
    # a single storage file works the same way
    (mcap,) = bag.glob("*.mcap")
    assert _replay(mcap, tmp_path / "out2", detector).summary["frames"] == 5


def test_truncated_mcap_with_metadata_counts_losses(tmp_path, detector):
    bag = copy_dir(SAMPLE_BAG, tmp_path / "bag")
    _truncate(bag, 0.8)
    result = _replay(bag, tmp_path / "out", detector, topics=None)
    summary = result.summary
    skipped = {s["topic"]: s for s in summary["skipped"]}
    assert summary["frames"] > 0 and skipped
    # No --cabin: every exterior camera, never the configured cabin camera (it shows the driver)
    assert set(summary["cameras"]) == set(CAMERAS)
    for topic in CAMERAS:
        processed = summary["cameras"][topic]["frames"]
        lost = skipped[topic]["count"] if topic in skipped else 0
        # every message is either replayed or reported
        assert processed + lost == SAMPLE_COUNTS[topic], topic
    assert all("damaged after byte" in s["reason"] for s in summary["skipped"])
    # the partial output is a valid bag
    assert sum(m.channel.topic.endswith("/detections") for m in read_output(tmp_path / "out" / "bag")) \
        == summary["frames"]


def test_crashed_recorder_no_metadata_truncated(tmp_path, capsys):
    bag = copy_dir(SAMPLE_BAG, tmp_path / "bag")
    (bag / "metadata.yaml").unlink()
    _truncate(bag, 0.8)
    out = tmp_path / "out"
    assert main(["replay", str(bag), "--out", str(out), "--topics", FRONT, WINDSHIELD]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] >= 1
    (entry,) = summary["skipped"]
    assert entry["topic"] == "*" and "number of lost messages unknown" in entry["reason"]
    assert "skipped" in capsys.readouterr().out


def test_truncated_inside_first_chunk_recovers_complete_records(tmp_path):
    bag = copy_dir(SAMPLE_BAG, tmp_path / "bag")
    (bag / "metadata.yaml").unlink()
    _truncate(bag, 0.5)  # inside rosbags' first 1 MiB chunk
    with open_bag(bag) as reader:
        got = [m.topic for m in reader.messages(reader.image_topics())]
    assert got  # complete records before the cut are recovered from the cut chunk
    assert reader.skipped


def test_unknown_message_type(tmp_path, detector):
    fancy = "acme_msgs/msg/FancyImage"
    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag",
                   extra=[("/camera/rear/fancy", fancy, "", 1557539956500000000 + i, b"\x00\x01\x00\x00")
                          for i in range(3)])
    result = _replay(bag, tmp_path / "out", detector, topics=None)
    (entry,) = result.summary["skipped"]
    assert entry["topic"] == "/camera/rear/fancy" and entry["count"] == 3
    assert fancy in entry["reason"]
    # every known exterior camera replayed (the configured cabin camera only with --cabin)
    assert result.summary["frames"] == 5
    # asked for explicitly: skipped the same way, the others still replay
    result = _replay(bag, tmp_path / "out2", detector, topics=[FRONT, "/camera/rear/fancy"])
    assert [s["topic"] for s in result.summary["skipped"]] == ["/camera/rear/fancy"]
    assert result.summary["frames"] == 4


def test_corrupt_frames(tmp_path, detector):
    store = get_typestore(Stores.ROS2_JAZZY)
    seen = []

    def damage(topic, msgtype, ts, raw):
        if topic != FRONT:
            return [(topic, msgtype, ts, raw)]
        seen.append(ts)
        if len(seen) == 2:  # valid CDR, JPEG cut in half
            msg = store.deserialize_cdr(raw, msgtype)
            msg.data = msg.data[: len(msg.data) // 2].copy()
            return [(topic, msgtype, ts, bytes(store.serialize_cdr(msg, msgtype)))]
        if len(seen) == 3:  # not CDR at all
            return [(topic, msgtype, ts, b"\x00\x01\x00\x00garbage")]
        return [(topic, msgtype, ts, raw)]

    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", edit=damage)
    result = _replay(bag, tmp_path / "out", detector)
    reasons = {s["reason"].split(":")[0]: s for s in result.summary["skipped"]}
    assert set(reasons) == {"undecodable image", "corrupt message"}
    assert all(s["topic"] == FRONT and s["count"] == 1 for s in reasons.values())
    assert "truncated JPEG" in reasons["undecodable image"]["reason"]
    assert result.summary["cameras"][FRONT]["frames"] == 2
    assert result.summary["cameras"][WINDSHIELD]["frames"] == 1
    assert not result.complete


def test_not_a_bag(tmp_path):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap at all")
    with pytest.raises(BagError, match="no readable image topic"):
        Replayer(ReplayOptions(junk, tmp_path / "out")).run()
    with pytest.raises(BagError, match="does not exist"):
        open_bag(tmp_path / "missing")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(BagError, match="no .mcap or .db3"):
        open_bag(empty)


def test_cabin_identity_never_on_exterior_topics(tmp_path, detector):
    # without --cabin no identifier is even built; faces are never looked for outside
    result = _replay(SAMPLE_BAG, tmp_path / "out", detector, topics=None)
    assert result.summary["identity"] == []
    topics = {m.channel.topic for m in read_output(tmp_path / "out" / "bag")}
    assert not any(t.endswith(("/faces", "/driver_identity")) for t in topics)
    # the configured cabin camera is never an exterior camera: no detector runs on it
    assert not any(t.startswith("/camera/cabin/") for t in topics)
    # a camera the config does not name as the cabin camera is just another camera
    config = tmp_path / "params.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_topic: /cabin_camera/image_raw\n")
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out2", config=config),
                      detector=detector).run()
    assert result.summary["identity"] == []
    topics = {m.channel.topic for m in read_output(tmp_path / "out2" / "bag")}
    assert not any(t.endswith(("/faces", "/driver_identity")) for t in topics)
    assert "/camera/cabin/detections" in topics
