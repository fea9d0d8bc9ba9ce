"""Shared helpers of the replay tests: the sample bag, bag surgery and output reading."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE_BAG = ROOT / "sense_perception" / "data" / "sample_bag"
FRONT = "/camera/front/image_raw/compressed"
WINDSHIELD = "/camera/windshield/image_raw"
CABIN = "/camera/cabin/image_raw/compressed"
SAMPLE_COUNTS = {FRONT: 4, WINDSHIELD: 1, CABIN: 8}
# The sample bag's calibration of the front camera; --copy-input copies it with the images.
SAMPLE_CALIBRATION = frozenset({"/camera/front/camera_info", "/tf_static"})
# Every input topic --copy-input puts in the output bag (left out where outputs are compared).
SAMPLE_INPUTS = frozenset(SAMPLE_COUNTS) | SAMPLE_CALIBRATION
# Two photos of the sample bag's driver that are NOT in the bag (shared/data/faces).
ENROL_PHOTOS = ("obama_2_congress_2009.jpg", "obama_3_blue_room_2010.jpg")

Edit = Callable[[str, str, int, bytes], "Iterable[tuple[str, str, int, bytes]]"]


def copy_bag(src: Path, dst: Path, storage: StoragePlugin = StoragePlugin.MCAP,
             edit: Edit | None = None, extra: Iterable[tuple[str, str, str, int, bytes]] = ()) -> Path:
    """Rewrite bag ``src`` as ``dst`` message by message (raw bytes), optionally edited.

    Args:
        edit: maps (topic, msgtype, timestamp, raw) to the messages to write instead.
        extra: (topic, msgtype, msgdef, timestamp, raw) written on connections with that definition
            (msgdef "" = a type the bag gives no definition of).
    """
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=storage) as writer:
        conns: dict[str, Any] = {}

        def conn(topic: str, msgtype: str, msgdef: str | None = None) -> Any:
            if topic not in conns:
                if msgdef is None:
                    conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
                else:
                    conns[topic] = writer.add_connection(topic, msgtype, msgdef=msgdef,
                                                         rihs01="RIHS01_" + "0" * 64)
            return conns[topic]

        for c, timestamp, raw in reader.messages():
            items = edit(c.topic, c.msgtype, timestamp, bytes(raw)) if edit else [
                (c.topic, c.msgtype, timestamp, bytes(raw))]
            for topic, msgtype, ts, data in items:
                writer.write(conn(topic, msgtype), ts, data)
        for topic, msgtype, msgdef, ts, data in extra:
            writer.write(conn(topic, msgtype, msgdef), ts, data)
    return dst


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class Decoded(NamedTuple):
    channel: Any
    message: Any  # mcap record: .data raw CDR, .log_time ns
    ros_msg: Any
    schema: Any = None  # mcap schema record: .name (e.g. foxglove_msgs/msg/ImageAnnotations), .data

    @property
    def log_time_ns(self) -> int:
        return int(self.message.log_time)


def read_output(bag_dir: Path) -> list[Decoded]:
    """Every message of an output bag, decoded by mcap-ros2-support (independent of rosbags)."""
    (mcap,) = sorted(Path(bag_dir).glob("*.mcap"))
    with mcap.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [Decoded(channel, message, ros_msg, schema)
                for schema, channel, message, ros_msg in reader.iter_decoded_messages(log_time_order=True)]


def input_stamps(bag: Path = SAMPLE_BAG) -> dict[tuple[str, int], tuple[int, int, str]]:
    """{(topic, bag time): (sec, nanosec, frame_id)} of the sample bag's messages (a
    tf2_msgs/TFMessage: its first transform's header)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    out = {}
    with Reader(bag) as reader:
        for c, ts, raw in reader.messages():
            msg = store.deserialize_cdr(raw, c.msgtype)
            header = msg.transforms[0].header if c.msgtype == "tf2_msgs/msg/TFMessage" else msg.header
            out[(c.topic, ts)] = (header.stamp.sec, header.stamp.nanosec, header.frame_id)
    return out


def enrol_sample_driver(folder: Path) -> tuple[Path, str]:
    """A gallery in ``folder`` holding the sample bag's driver, enrolled from :data:`ENROL_PHOTOS`.

    Returns:
        The gallery file and the enrolled driver's id.
    """
    import cv2
    import numpy as np

    from sense_perception.face.gallery import ConsentRecord, GalleryStore
    from sense_perception.face.pipeline import FaceEngine
    from sense_perception.face.settings import FaceConfig

    engine = FaceEngine(FaceConfig(driver_region=[0.0, 0.0, 1.0, 1.0]))
    embs = []
    for name in ENROL_PHOTOS:
        _, index, emb, _ = engine.driver_embedding(cv2.imread(str(SHARED / "faces" / name)))
        assert index >= 0, name
        embs.append(emb)
    gallery = Path(folder) / "gallery.json"
    record = GalleryStore(gallery).enroll("Barack Obama", np.stack(embs),
                                          ConsentRecord.now("Barack Obama"))
    return gallery, record.id


def assert_replay_never_imports_rclpy() -> None:
    """Import every replay module and run a real replay (exterior and cabin) in a fresh interpreter,
    then fail if rclpy was imported. It can fail only where rclpy is importable, so the ROS tests
    (.venv-ros) run it too."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        code = ("import sys, sense_perception.replay as r, sense_perception.cli.replay\n"
                "from sense_perception.cli.main import main\n"
                "for name in r.__all__: getattr(r, name)\n"
                f"assert main(['replay', {str(SAMPLE_BAG)!r}, '--out', {tmp + '/out'!r}, "
                f"'--topics', {WINDSHIELD!r}, '--cabin', {CABIN!r}]) == 0\n"
                "assert 'rclpy' not in sys.modules, 'rclpy imported'\n")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=300, cwd=tmp)


def sample_front_frames(store: Any) -> list[tuple[int, Any]]:
    """The sample bag's front-camera messages (bag time in ns, deserialised with ``store``)."""
    with Reader(SAMPLE_BAG) as reader:
        return [(ts, store.deserialize_cdr(raw, conn.msgtype))
                for conn, ts, raw in reader.messages() if conn.topic == FRONT]
