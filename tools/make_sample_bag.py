#!/usr/bin/env python3
"""Build the sample rosbag2 (MCAP) shipped in sense_perception/data/sample_bag, reproducibly.

Three cameras, every frame a real, licensed image from ../shared/data (see its MANIFEST.md):

- ``/camera/front/image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG 960x540): PandaSet
  sequence 002 front camera frames 00, 10, 40 and 70, stamped at their place in the 10 Hz
  sequence (0.0, 1.0, 4.0, 7.0 s after the sequence's first camera timestamp).
- ``/camera/windshield/image_raw`` (sensor_msgs/Image, rgb8 640x480): the comma2k19 example frame,
  stamped 4 ms after the first front frame so a replay batches the two cameras.
- ``/camera/cabin/image_raw/compressed`` (CompressedImage, JPEG 640x480): the top of the 2012
  official portrait of Barack Obama, as a driver-facing camera would frame a driver, at 1 Hz for
  8 s; each frame is an 880x660 window shifted by a few pixels (a head moving slightly), so the
  identity vote sees 8 distinct frames of one face.

The streets and the "cabin" come from different recordings; the bag is a demo and test fixture,
not a drive. Timestamps are fixed and encoding is deterministic, so the same inputs and library
versions give the same bytes. Run from the repository root::

    python tools/make_sample_bag.py            # writes sense_perception/data/sample_bag
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "sense_perception" / "data" / "sample_bag"

# First camera timestamp of PandaSet sequence 002 (MANIFEST: 1557539956.45).
BASE_NS = 1_557_539_956_450_000_000
TRANSPORT_DELAY_NS = 20_000_000  # bag receive time = header stamp + a plausible 20 ms
JPEG_QUALITY = 85
# Offsets (x, y) of the 880x660 cabin window inside the portrait's top 910x682 pixels.
CABIN_SHIFTS = ((15, 11), (9, 14), (21, 8), (12, 19), (18, 5), (6, 11), (24, 16), (15, 2))

FRONT_TOPIC = "/camera/front/image_raw/compressed"
WINDSHIELD_TOPIC = "/camera/windshield/image_raw"
CABIN_TOPIC = "/camera/cabin/image_raw/compressed"

PANDASET_FRAMES = (0, 10, 40, 70)
PANDASET_ATTRIBUTION = (
    "PandaSet, (c) Hesai Photonics Technology Co., Ltd. and Scale AI, Inc., licensed CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/), https://pandaset.org - sequence 002, front "
    "camera frames {frames}. Changes: downscaled to 960x540 and re-encoded as JPEG (quality 85).")
COMMA_ATTRIBUTION = (
    "comma2k19 example frame, Copyright (c) 2018 comma.ai, MIT License "
    "(https://github.com/commaai/comma2k19). Changes: downscaled to 640x480, stored as raw rgb8.")
OBAMA_ATTRIBUTION = (
    "Official White House Photo by Pete Souza (public domain, work of the US federal government, "
    "17 U.S.C. 105). Changes: 8 windows of 880x660 pixels cut from the top of the photo, "
    "downscaled to 640x480, re-encoded as JPEG (quality 85). Use does not imply endorsement by "
    "the person shown or the White House.")


def _stamp(ns: int) -> tuple[int, int]:
    return ns // 1_000_000_000, ns % 1_000_000_000


def _jpeg(bgr: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                                         cv2.IMWRITE_JPEG_OPTIMIZE, 0])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buf.reshape(-1)


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}; is ../shared/data present?")
    return image


def frames(shared: Path) -> list[tuple[str, int, str, dict]]:
    """(topic, header stamp ns, msgtype, fields) of every message, in time order."""
    out: list[tuple[str, int, str, dict]] = []
    for idx in PANDASET_FRAMES:
        image = _read(shared / "street" / f"pandaset_seq002_front_camera_{idx:02d}.jpg")
        small = cv2.resize(image, (960, 540), interpolation=cv2.INTER_AREA)
        # compressed_image_transport's format string for a bgr8 source
        out.append((FRONT_TOPIC, BASE_NS + idx * 100_000_000, "sensor_msgs/msg/CompressedImage",
                    {"frame_id": "front_camera", "format": "bgr8; jpeg compressed bgr8",
                     "data": _jpeg(small)}))
    comma = _read(shared / "street" / "comma2k19_highway280_rav4_preview.png")
    rgb = cv2.cvtColor(cv2.resize(comma, (640, 480), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    out.append((WINDSHIELD_TOPIC, BASE_NS + 4_000_000, "sensor_msgs/msg/Image",
                {"frame_id": "windshield_camera", "height": 480, "width": 640, "encoding": "rgb8",
                 "is_bigendian": 0, "step": 640 * 3, "data": np.ascontiguousarray(rgb).reshape(-1)}))
    portrait = _read(shared / "faces" / "obama_1_official_portrait_2012.jpg")
    for k, (x, y) in enumerate(CABIN_SHIFTS):
        window = portrait[y:y + 660, x:x + 880]
        cabin = _jpeg(cv2.resize(window, (640, 480), interpolation=cv2.INTER_AREA))
        out.append((CABIN_TOPIC, BASE_NS + 500_000_000 + k * 1_000_000_000,
                    "sensor_msgs/msg/CompressedImage",
                    {"frame_id": "cabin_camera", "format": "bgr8; jpeg compressed bgr8", "data": cabin}))
    out.sort(key=lambda item: item[1])
    return out


def write_bag(path: Path, shared: Path) -> None:
    """Write the sample bag directory ``path`` (must not exist)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    Time = store.types["builtin_interfaces/msg/Time"]
    Header = store.types["std_msgs/msg/Header"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for topic, stamp_ns, msgtype, fields in frames(shared):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            sec, nanosec = _stamp(stamp_ns)
            header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=fields.pop("frame_id"))
            msg = store.types[msgtype](header=header, **fields)
            writer.write(conns[topic], stamp_ns + TRANSPORT_DELAY_NS, store.serialize_cdr(msg, msgtype))


def attribution() -> str:
    """Text of the ATTRIBUTION file shipped next to the bag."""
    frames_list = "/".join(f"{i:02d}" for i in PANDASET_FRAMES)
    return "\n".join([
        "sample_bag: images and their attributions",
        "",
        "Built by tools/make_sample_bag.py from ../shared/data (see its MANIFEST.md for sources,",
        "checksums and licence evidence). The cameras come from different recordings; the bag is a",
        "demo and test fixture, not one drive.",
        "",
        f"{FRONT_TOPIC}:",
        "  " + PANDASET_ATTRIBUTION.format(frames=frames_list),
        f"{WINDSHIELD_TOPIC}:",
        "  " + COMMA_ATTRIBUTION,
        f"{CABIN_TOPIC}:",
        "  " + OBAMA_ATTRIBUTION,
        "",
    ])


def digest(path: Path) -> str:
    """sha256 over the bag's files (names and bytes), to check reproducibility."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(file.name.encode())
        h.update(file.read_bytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bag directory to (re)write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / args.out.name
        write_bag(bag, args.shared)
        (bag / "ATTRIBUTION").write_text(attribution())
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bag, args.out)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB, sha256 {digest(args.out)[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
