"""Bags and messages as real camera drivers and recorders write them (SECURITY.md R31): a bag split
into several files (rosbag2 ``--max-bag-size``) whose files are not listed in receive-time order,
depth cameras (REP 118 ``16UC1`` / ``32FC1``, raw or through compressed_image_transport's png) on
an image topic, and encodings written the way REP 104 does not spell them. Real bags written with
rosbags, tiny frames, the real replay."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from replay_helpers import read_output, sample_front_frames
from sense_perception.cli.main import main
from sense_perception.core.imaging.image_decode import decode_image
from sense_perception.errors import ImageDecodeError
from sense_perception.replay.reader import open_bag
from support import RawImage

STORE = get_typestore(Stores.ROS2_JAZZY)
TIME, HEADER = STORE.types["builtin_interfaces/msg/Time"], STORE.types["std_msgs/msg/Header"]
IMAGE = STORE.types["sensor_msgs/msg/Image"]
COMPRESSED = STORE.types["sensor_msgs/msg/CompressedImage"]
CLOCK = STORE.types["rosgraph_msgs/msg/Clock"]
T0 = 1_700_000_000_000_000_000


def _stamp(ns: int) -> object:
    return TIME(sec=ns // 10**9, nanosec=ns % 10**9)


def _image(ns: int, pixels: np.ndarray, encoding: str) -> object:
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(pixels.shape[0], -1)
    return IMAGE(header=HEADER(stamp=_stamp(ns), frame_id="cam"), height=pixels.shape[0],
                 width=pixels.shape[1], encoding=encoding, is_bigendian=0, step=rows.shape[1],
                 data=rows.reshape(-1).copy())


def _split_bag(root: Path, storage: StoragePlugin, metadata: bool) -> list[int]:
    """A two-file rosbag2 recording of a camera and /clock, as ``--max-bag-size`` splits one, whose
    metadata.yaml (and file names) list the later half first. Returns every receive time."""
    halves = [[T0 + k * 50_000_000 for k in range(3)], [T0 + k * 50_000_000 for k in range(3, 6)]]
    root.mkdir()
    docs = []
    for index, half in zip((1, 0), halves, strict=True):  # the earlier half is file 1
        part = root.parent / f"{root.name}_part{index}"
        with Writer(part, version=9, storage_plugin=storage) as writer:
            cam = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
            clock = writer.add_connection("/clock", "rosgraph_msgs/msg/Clock", typestore=STORE)
            for ns in half:
                msg = _image(ns, np.full((32, 32, 3), 40, np.uint8), "bgr8")
                writer.write(cam, ns, STORE.serialize_cdr(msg, msg.__msgtype__))
                writer.write(clock, ns, STORE.serialize_cdr(CLOCK(clock=_stamp(ns)), CLOCK.__msgtype__))
        (stored,) = [p for p in part.iterdir() if p.suffix in (".mcap", ".db3")]
        name = f"drive_{index}{stored.suffix}"
        shutil.move(stored, root / name)
        doc = yaml.safe_load((part / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        doc["files"][0]["path"] = name
        docs.append((index, doc))
        shutil.rmtree(part)
    docs.sort(key=lambda item: item[0])  # drive_0 (the later half) listed first
    whole = docs[0][1]
    whole["relative_file_paths"] = [d["files"][0]["path"] for _, d in docs]
    whole["files"] = [d["files"][0] for _, d in docs]
    whole["message_count"] = sum(d["message_count"] for _, d in docs)
    for topic in whole["topics_with_message_count"]:
        topic["message_count"] *= 2
    whole["starting_time"]["nanoseconds_since_epoch"] = T0
    whole["duration"]["nanoseconds"] = halves[1][-1] - T0
    if metadata:
        (root / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": whole}))
    return [ns for half in halves for ns in half]


@pytest.mark.parametrize("storage,metadata", [(StoragePlugin.MCAP, True), (StoragePlugin.MCAP, False),
                                              (StoragePlugin.SQLITE3, True)],
                         ids=["mcap", "mcap-without-metadata", "sqlite3"])
def test_a_split_bag_is_read_in_receive_time_order_whatever_the_order_of_its_files(
        tmp_path, storage, metadata):
    # rosbags reads a split bag file after file in metadata.yaml's order (the file names' without
    # it): a later file listed first replayed the camera's end before its start, and the tracker
    # took the step back as a restart (every track id lost). rosbag2 plays it in receive time.
    times = _split_bag(tmp_path / "drive", storage, metadata)
    with open_bag(tmp_path / "drive") as bag:
        got = [(m.topic, m.timestamp) for m in bag.messages(["/cam/image_raw", "/clock"])]
        assert not bag.skipped.entries()
    assert [ns for _, ns in got] == sorted(ns for _, ns in got)
    assert sorted(got) == sorted((t, ns) for ns in times for t in ("/cam/image_raw", "/clock"))


@pytest.fixture(scope="module")
def street() -> np.ndarray:
    _, msg = sample_front_frames(STORE)[0]
    frame = cv2.imdecode(np.asarray(msg.data), cv2.IMREAD_COLOR)
    return cv2.resize(frame, (96, 64), interpolation=cv2.INTER_AREA)


def test_a_depth_camera_on_an_image_topic_is_a_named_skip_not_detections(tmp_path, street):
    # a depth camera's 16UC1 (mm) was decoded as a grey picture (>> 8) and detected: cars and
    # pedestrians "found" in distances; its png through compressed_image_transport too
    gray = cv2.cvtColor(street, cv2.COLOR_BGR2GRAY)
    depth_mm = gray.astype(np.uint16) * 40
    png16 = cv2.imencode(".png", depth_mm)[1].reshape(-1)
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        colour = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        depth = writer.add_connection("/cam/depth/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        packed = writer.add_connection("/cam/depth/image_raw/compressed",
                                       "sensor_msgs/msg/CompressedImage", typestore=STORE)
        for k in range(2):
            ns = T0 + k * 100_000_000
            for conn, msg in ((colour, _image(ns, street, "bgr8")),
                              (depth, _image(ns, depth_mm, "16UC1")),
                              (depth, _image(ns + 1, depth_mm.astype(np.float32) / 1000, "32FC1")),
                              (packed, COMPRESSED(header=HEADER(stamp=_stamp(ns), frame_id="cam"),
                                                  format="16UC1; png compressed ", data=png16))):
                writer.write(conn, ns, STORE.serialize_cdr(msg, msg.__msgtype__))
    out = tmp_path / "out"
    assert main(["replay", str(bag), "--out", str(out)]) == 1  # something was skipped
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"]["/cam/image_raw"]["frames"] == 2
    assert not summary["cameras"].get("/cam/depth/image_raw", {}).get("detections")
    assert not summary["cameras"].get("/cam/depth/image_raw/compressed", {}).get("detections")
    skipped: dict[str, int] = {}
    for entry in summary["skipped"]:
        assert entry["reason"].startswith("undecodable image: ")
        skipped[entry["topic"]] = skipped.get(entry["topic"], 0) + entry["count"]
    assert skipped == {"/cam/depth/image_raw": 4, "/cam/depth/image_raw/compressed": 2}
    reasons = " ".join(s["reason"] for s in summary["skipped"])
    for named in ("'16UC1' is a depth image", "'32FC1' is a depth image",
                  "'16UC1; png compressed ' is a depth image"):
        assert named in reasons


@pytest.mark.parametrize("written,meant", [("BGR8", "bgr8"), (" rgb8", "rgb8"), ("Bayer_RGGB8 ", "bayer_rggb8")])
def test_an_encoding_spelled_otherwise_is_refused_naming_the_one_meant(written, meant):
    # REP 104 names are case-sensitive (cv_bridge refuses "BGR8" too): refused, never guessed,
    # but the error says which name the driver meant
    data = bytes(32 * 32 * 3)
    with pytest.raises(ImageDecodeError, match=f"names are case-sensitive, without spaces: '{meant}'"):
        decode_image(RawImage(32, 32, written, 0, 96, data))


def _track_ids(out: Path) -> list[set[str]]:
    """The track ids of each frame's detections in the output bag, in time order."""
    return [{d.id for d in m.ros_msg.detections if d.id}
            for m in read_output(out / "bag") if m.channel.topic == "/cam/detections"]


def test_a_camera_stamping_its_frames_0_is_timed_by_the_receive_time(tmp_path, street, capsys):
    # Many drivers leave header.stamp at 0. Timed by it no time passed: a car gone for longer
    # than tracking.max_age (1 s) kept its track for ever and came back under its old id, and
    # no velocity ever formed. (The same bag with its stamps set gives new ids after the gap.)
    bag = tmp_path / "bag"
    scene, empty = cv2.resize(street, (320, 214)), np.full((214, 320, 3), 90, np.uint8)
    frames = ([(T0 + k * 100_000_000, scene) for k in range(4)]  # the cars, then 1.6 s without
              + [(T0 + 400_000_000 + k * 400_000_000, empty) for k in range(4)]
              + [(T0 + 2_000_000_000 + k * 100_000_000, scene) for k in range(3)])
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for ns, pixels in frames:
            msg = _image(ns, pixels, "bgr8")
            msg.header.stamp = TIME(sec=0, nanosec=0)
            writer.write(conn, ns, STORE.serialize_cdr(msg, msg.__msgtype__))
    out = tmp_path / "out"
    assert main(["replay", str(bag), "--out", str(out)]) in (0, 1)
    ids = _track_ids(out)
    before, after = set().union(*ids[:4]), set().union(*ids[8:])
    assert before and after  # tracked before and after the cars were gone
    assert not before & after  # every track was deleted after max_age: new ids
    assert "note: /cam/image_raw: its header stamps are 0" in capsys.readouterr().err
    stamps = {(m.ros_msg.header.stamp.sec, m.ros_msg.header.stamp.nanosec)
              for m in read_output(out / "bag") if m.channel.topic == "/cam/detections"}
    assert stamps == {(0, 0)}  # the outputs keep the stamps as they came


def test_a_split_bag_file_whose_chunks_were_overwritten_counts_its_lost_messages(tmp_path):
    # rosbags passes over a chunk that is no chunk (zeroed by a failing disk or a bad copy) in
    # silence: the half of the recording in it was lost without a word and the replay exited 0
    times = _split_bag(tmp_path / "drive", StoragePlugin.MCAP, True)
    damaged = tmp_path / "drive" / "drive_1.mcap"  # the earlier half
    data = bytearray(damaged.read_bytes())
    data[60:len(data) // 2] = bytes(len(data) // 2 - 60)
    damaged.write_bytes(bytes(data))
    with open_bag(tmp_path / "drive") as bag:
        got = [m.timestamp for m in bag.messages(["/cam/image_raw", "/clock"])]
        lost = {e["topic"]: e["count"] for e in bag.skipped.entries()}
        reasons = " ".join(e["reason"] for e in bag.skipped.entries())
    assert got == sorted(got) and len(got) + sum(lost.values()) == 2 * len(times)
    assert lost == {"/cam/image_raw": 3, "/clock": 3}
    assert "6 messages announced by the index of drive" in reasons and "3 found" in reasons


@pytest.mark.parametrize("metadata", [True, False], ids=["metadata", "without-metadata"])
def test_a_split_bag_s_files_are_started_one_after_the_other(tmp_path, monkeypatch, metadata):
    # merging every file at once holds a decompressed chunk and a frame of each: hundreds of files
    # (rosbag2 --max-bag-duration over hours) would all be held; a file starts when it is due
    from sense_perception.replay import reader

    times = _split_bag(tmp_path / "drive", StoragePlugin.MCAP, metadata)
    log: list[object] = []
    if metadata:
        real = reader._RosbagsPart._storage_messages

        def logged(self, directory, storage, conns):
            log.append(storage.path.name)
            return real(self, directory, storage, conns)
        monkeypatch.setattr(reader._RosbagsPart, "_storage_messages", logged)
    else:
        real_part = reader.Bag._part_messages

        def logged_part(self, part, *args):
            log.append(part.name)
            return real_part(self, part, *args)
        monkeypatch.setattr(reader.Bag, "_part_messages", logged_part)
    with open_bag(tmp_path / "drive") as bag:
        for message in bag.messages(["/cam/image_raw"]):
            log.append(message.timestamp)
    assert log == ["drive_1.mcap", *times[:3], "drive_0.mcap", *times[3:]]


def test_the_merge_starts_a_stream_only_when_it_is_due():
    from sense_perception.replay.merge import Source, merge_by_time

    started: list[str] = []

    def stream(name: str, items: list[int]):
        def start():
            started.append(name)
            yield from items
        return start

    sources = [Source(10, stream("b", [10, 12, 14])), Source(0, stream("a", [0, 2, 4, 11])),
               Source(None, stream("unknown", [3, 20])), Source(30, stream("d", [30])),
               Source(5, stream("empty", []))]
    out = [(item, len(started)) for item in merge_by_time(sources, lambda item: item)]
    assert [item for item, _ in out] == [0, 2, 3, 4, 10, 11, 12, 14, 20, 30]
    assert [n for _, n in out] == [2, 2, 2, 2, 4, 4, 4, 4, 4, 5]  # b at 10, d at 30 only
