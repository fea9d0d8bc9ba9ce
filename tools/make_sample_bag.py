#!/usr/bin/env python3
"""Build the sample rosbag2 (MCAP) shipped in sense_perception/data/sample_bag, reproducibly.

Three cameras, every frame a real, licensed image from ../shared/data (see its MANIFEST.md):

- ``/camera/front/image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG 960x540): PandaSet
  sequence 002 front camera frames 00, 10, 40 and 70, stamped at their place in the 10 Hz
  sequence (0.0, 1.0, 4.0, 7.0 s after the sequence's first camera timestamp).
- ``/camera/front/camera_info`` (sensor_msgs/CameraInfo): the front camera's real PandaSet
  intrinsics, scaled to 960x540; one per front image with its header (stamp and frame_id), as a
  camera driver publishes them.
- ``/tf_static`` (tf2_msgs/TFMessage, recorded transient-local): base_link -> ``front_camera``
  (the images' optical frame), one static mount from the PandaSet calibration (see
  :func:`front_mount`). With these two the replay places the front camera's detections in 3-D.
- ``/camera/windshield/image_raw`` (sensor_msgs/Image, rgb8 640x480): the comma2k19 example frame,
  stamped 4 ms after the first front frame so a replay batches the two cameras.
- ``/camera/cabin/image_raw/compressed`` (CompressedImage, JPEG 640x480): the top of the 2012
  official portrait of Barack Obama, as a driver-facing camera would frame a driver, at 1 Hz for
  8 s; each frame is an 880x660 window shifted by a few pixels (a head moving slightly), so the
  identity vote sees 8 distinct frames of one face.

The windshield and cabin cameras get no calibration: their sources publish none.

The streets and the "cabin" come from different recordings; the bag is a demo and test fixture,
not a drive. Timestamps are fixed and encoding is deterministic, so the same inputs and library
versions give the same bytes. Run from the repository root::

    python tools/make_sample_bag.py            # writes sense_perception/data/sample_bag
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "sense_perception" / "data" / "sample_bag"

# First camera timestamp of PandaSet sequence 002 (MANIFEST: 1557539956.45).
BASE_NS = 1_557_539_956_450_000_000
TRANSPORT_DELAY_NS = 20_000_000  # bag receive time = header stamp + a plausible 20 ms
# A CameraInfo (a few hundred bytes) arrives 1 ms before its image, so a replay always has the
# calibration before the frame it is for, whatever order a storage plugin gives equal times.
INFO_DELAY_NS = TRANSPORT_DELAY_NS - 1_000_000
# /tf_static is latched: the recorder receives it as it starts, before the first image.
TF_STATIC_RECEIVED_NS = BASE_NS + 10_000_000
JPEG_QUALITY = 85
# Hand-written files next to the bag, kept when it is rebuilt (the demo's replay config).
KEPT = ("sample.yaml",)
# Offsets (x, y) of the 880x660 cabin window inside the portrait's top 910x682 pixels.
CABIN_SHIFTS = ((15, 11), (9, 14), (21, 8), (12, 19), (18, 5), (6, 11), (24, 16), (15, 2))

FRONT_TOPIC = "/camera/front/image_raw/compressed"
WINDSHIELD_TOPIC = "/camera/windshield/image_raw"
CABIN_TOPIC = "/camera/cabin/image_raw/compressed"
FRONT_INFO_TOPIC = "/camera/front/camera_info"
TF_STATIC_TOPIC = "/tf_static"
FRONT_FRAME, BASE_FRAME = "front_camera", "base_link"
FRONT_SIZE = (960, 540)
# PandaSet's front-camera calibration (K for 1920x1080, zero D, per-frame base_link mount).
PANDASET_CALIBRATION = ("street_labelled", "pandaset_seq002_front", "ground_truth_3d.json")
# What tf2_ros's StaticTransformBroadcaster offers and rosbag2 records: reliable,
# transient-local, keep last 1; the other policies rmw's defaults (infinite durations).
_INFINITE = QosTime(sec=9_223_372_036, nsec=854_775_807)
TF_STATIC_QOS = Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
                    durability=QosDurability.TRANSIENT_LOCAL, deadline=_INFINITE, lifespan=_INFINITE,
                    liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_INFINITE,
                    avoid_ros_namespace_conventions=False)
# base_link's body axes (x forward, y left, z up) from the optical frame's (z forward, x right,
# y down): the columns are the optical axes in body coordinates.
_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

PANDASET_FRAMES = (0, 10, 40, 70)
PANDASET_ATTRIBUTION = (
    "PandaSet, (c) Hesai Photonics Technology Co., Ltd. and Scale AI, Inc., licensed CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/), https://pandaset.org - sequence 002, front "
    "camera frames {frames}. Changes: downscaled to 960x540 and re-encoded as JPEG (quality 85).")
CALIBRATION_ATTRIBUTION = (
    "Calibration from the same PandaSet sequence (same licence, CC BY 4.0): the front camera's "
    "intrinsics (the devkit's intrinsics.json) and its mount on base_link (from PandaSet's camera "
    "poses and lidar road points), as in "
    "../shared/data/street_labelled/pandaset_seq002_front/ground_truth_3d.json. Changes: K "
    "scaled by 0.5 for 960x540; one static mount, the median over the sequence's 80 frames.")
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


def _pandaset_calibrations(shared: Path) -> list[dict]:
    path = shared.joinpath(*PANDASET_CALIBRATION)
    try:
        cameras = json.loads(path.read_text())["cameras"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"cannot read the PandaSet calibration {path} ({exc}); is ../shared/data "
                         "present?") from None
    return [cameras[key]["calibration"] for key in sorted(cameras)]


def front_intrinsics(shared: Path) -> dict:
    """The front camera's CameraInfo fields for the 960x540 images.

    PandaSet's K (1920x1080) is scaled by exactly 0.5: fx, fy, cx and cy all halve. That is exact
    for image coordinates whose origin is the top-left corner of the top-left pixel (pixel ``i``
    spans ``[i, i + 1)``), which the 2:1 area downscale maps to ``u / 2``, and it is what the
    package's geometry assumes (box corners go into cv2.undistortPoints as they are) and what
    image_proc's resize and image_geometry's binning do. (With pixel centres at integers the
    principal point would move a further 0.25 px, 0.015 degrees.) PandaSet's images are
    undistorted: plumb_bob with five zero coefficients, R the identity, P = [K | 0].
    """
    calibrations = _pandaset_calibrations(shared)
    K = np.asarray(calibrations[0]["K"], np.float64)
    width, height = FRONT_SIZE
    if any(not np.array_equal(np.asarray(c["K"]), K) for c in calibrations) or \
            (calibrations[0]["width"], calibrations[0]["height"]) != (2 * width, 2 * height):
        raise SystemExit("the PandaSet front camera's K changes between frames or is not for "
                         f"{2 * width}x{2 * height}; the sample expects one K")
    scale = np.diag([width / calibrations[0]["width"], height / calibrations[0]["height"], 1.0])
    k = scale @ K
    p = np.hstack([k, np.zeros((3, 1))])
    return {"height": height, "width": width, "distortion_model": "plumb_bob",
            "d": np.zeros(5), "k": k.reshape(-1), "r": np.eye(3).reshape(-1), "p": p.reshape(-1),
            "binning_x": 0, "binning_y": 0}


def _angles(T: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in radians of an optical-frame mount: the body rotation
    Rz(yaw) Ry(pitch) Rx(roll), pitch positive looking down (as the package's mount_transform)."""
    return Rotation.from_matrix(T[:3, :3] @ _BODY_FROM_OPTICAL.T).as_euler("ZYX")


def front_mount(shared: Path) -> np.ndarray:
    """``T_base_link_camera`` (4x4, p_base = T @ p_cam) of the front camera's static mount.

    The PandaSet ground truth rebuilds base_link for every frame (the road plane under the car),
    so the camera's pose on it moves by a few tenths of a degree and centimetres as the car pitches
    and the road bends. A vehicle's /tf_static has one mount: the median over the sequence's 80
    frames of each translation component and of yaw, pitch and roll.
    """
    mounts = np.array([c["T_base_link_camera"] for c in _pandaset_calibrations(shared)], np.float64)
    angles = np.median(np.array([_angles(T) for T in mounts]), axis=0)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("ZYX", angles).as_matrix() @ _BODY_FROM_OPTICAL
    T[:3, 3] = np.median(mounts[:, :3, 3], axis=0)
    return T


def frames(shared: Path) -> list[tuple[str, int, int, str, dict]]:
    """(topic, header stamp ns, bag receive time ns, msgtype, fields) of every message, in
    receive-time order. ``fields`` are the message's own, with ``frame_id`` for its header; a
    ``mount`` (4x4) stands for a TFMessage's one transform."""
    out: list[tuple[str, int, int, str, dict]] = [
        (TF_STATIC_TOPIC, BASE_NS, TF_STATIC_RECEIVED_NS, "tf2_msgs/msg/TFMessage",
         {"frame_id": BASE_FRAME, "child_frame_id": FRONT_FRAME, "mount": front_mount(shared)})]
    info = front_intrinsics(shared)
    for idx in PANDASET_FRAMES:
        image = _read(shared / "street" / f"pandaset_seq002_front_camera_{idx:02d}.jpg")
        small = cv2.resize(image, FRONT_SIZE, interpolation=cv2.INTER_AREA)
        stamp = BASE_NS + idx * 100_000_000
        out.append((FRONT_INFO_TOPIC, stamp, stamp + INFO_DELAY_NS, "sensor_msgs/msg/CameraInfo",
                    {"frame_id": FRONT_FRAME, **info}))
        # compressed_image_transport's format string for a bgr8 source
        out.append((FRONT_TOPIC, stamp, stamp + TRANSPORT_DELAY_NS, "sensor_msgs/msg/CompressedImage",
                    {"frame_id": FRONT_FRAME, "format": "bgr8; jpeg compressed bgr8",
                     "data": _jpeg(small)}))
    comma = _read(shared / "street" / "comma2k19_highway280_rav4_preview.png")
    rgb = cv2.cvtColor(cv2.resize(comma, (640, 480), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    stamp = BASE_NS + 4_000_000
    out.append((WINDSHIELD_TOPIC, stamp, stamp + TRANSPORT_DELAY_NS, "sensor_msgs/msg/Image",
                {"frame_id": "windshield_camera", "height": 480, "width": 640, "encoding": "rgb8",
                 "is_bigendian": 0, "step": 640 * 3, "data": np.ascontiguousarray(rgb).reshape(-1)}))
    portrait = _read(shared / "faces" / "obama_1_official_portrait_2012.jpg")
    for k, (x, y) in enumerate(CABIN_SHIFTS):
        window = portrait[y:y + 660, x:x + 880]
        cabin = _jpeg(cv2.resize(window, (640, 480), interpolation=cv2.INTER_AREA))
        stamp = BASE_NS + 500_000_000 + k * 1_000_000_000
        out.append((CABIN_TOPIC, stamp, stamp + TRANSPORT_DELAY_NS, "sensor_msgs/msg/CompressedImage",
                    {"frame_id": "cabin_camera", "format": "bgr8; jpeg compressed bgr8", "data": cabin}))
    out.sort(key=lambda item: item[2])
    return out


def _message(store: Any, msgtype: str, header: Any, fields: dict) -> Any:
    """The rosbags message of one :func:`frames` entry."""
    types = store.types
    if msgtype == "tf2_msgs/msg/TFMessage":
        T = fields["mount"]
        x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
        transform = types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=T[0, 3], y=T[1, 3], z=T[2, 3]),
            rotation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))
        stamped = types["geometry_msgs/msg/TransformStamped"](
            header=header, child_frame_id=fields["child_frame_id"], transform=transform)
        return types[msgtype](transforms=[stamped])
    if msgtype == "sensor_msgs/msg/CameraInfo":
        roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                        do_rectify=False)
        return types[msgtype](header=header, roi=roi, **fields)
    return types[msgtype](header=header, **fields)


def write_bag(path: Path, shared: Path) -> None:
    """Write the sample bag directory ``path`` (must not exist)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    Time = store.types["builtin_interfaces/msg/Time"]
    Header = store.types["std_msgs/msg/Header"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for topic, stamp_ns, received_ns, msgtype, fields in frames(shared):
            if topic not in conns:
                qos = [TF_STATIC_QOS] if topic == TF_STATIC_TOPIC else []
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store,
                                                     offered_qos_profiles=qos)
            sec, nanosec = _stamp(stamp_ns)
            header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=fields.pop("frame_id"))
            msg = _message(store, msgtype, header, fields)
            writer.write(conns[topic], received_ns, store.serialize_cdr(msg, msgtype))


def attribution() -> str:
    """Text of the ATTRIBUTION file shipped next to the bag."""
    frames_list = "/".join(f"{i:02d}" for i in PANDASET_FRAMES)
    return "\n".join([
        "sample_bag: images, calibration and their attributions",
        "",
        "Built by tools/make_sample_bag.py from ../shared/data (see its MANIFEST.md for sources,",
        "checksums and licence evidence). The cameras come from different recordings; the bag is a",
        "demo and test fixture, not one drive.",
        "",
        f"{FRONT_TOPIC}:",
        "  " + PANDASET_ATTRIBUTION.format(frames=frames_list),
        f"{FRONT_INFO_TOPIC}, {TF_STATIC_TOPIC} ({BASE_FRAME} -> {FRONT_FRAME}):",
        "  " + CALIBRATION_ATTRIBUTION,
        f"{WINDSHIELD_TOPIC}:",
        "  " + COMMA_ATTRIBUTION,
        f"{CABIN_TOPIC}:",
        "  " + OBAMA_ATTRIBUTION,
        "",
        f"The windshield and cabin cameras have no calibration (no CameraInfo, no {TF_STATIC_TOPIC}):",
        "their sources publish none.",
        "",
    ])


def digest(path: Path) -> str:
    """sha256 over the bag's files (names and bytes), to check reproducibility."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(file.name.encode())
        h.update(file.read_bytes())
    return h.hexdigest()


def refusal(out: Path) -> str | None:
    """Why ``out`` must not be replaced by a new sample bag, or None when it may.

    The whole folder is replaced, so it must be missing, empty, or a sample bag this tool wrote
    (its metadata.yaml, ATTRIBUTION, ``<name>.mcap`` and the hand-written :data:`KEPT` files and
    nothing else): ``--out ~/Documents`` or ``--out .`` deleted everything there.
    """
    if not os.path.lexists(out):
        return None
    if out.is_symlink() or not out.is_dir():
        return f"--out {out} is {'a link' if out.is_symlink() else 'a file'}; give a folder"
    names = {p.name for p in out.iterdir()}
    ours = {"metadata.yaml", "ATTRIBUTION", f"{out.name}.mcap", *KEPT}
    if names and (names - ours or not {"metadata.yaml", "ATTRIBUTION"} <= names):
        foreign = sorted(names - ours) or sorted(names)
        return (f"--out {out} holds files this tool did not write ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); the folder is replaced whole, so they "
                "would be deleted: give a new folder (or the sample bag's own)")
    return None


def publish(bag: Path, out: Path) -> None:
    """Put the finished ``bag`` in place of ``out``: copied beside it first, then swapped in by
    renames, so a failure or a kill never leaves ``out`` deleted without its new copy."""
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    old = new.with_name(new.name.replace(".new-", ".old-"))
    try:
        shutil.copytree(bag, new, dirs_exist_ok=True)  # the bag folder's mode too
        if out.exists():
            out.rename(old)
        try:
            new.rename(out)
        except BaseException:
            if old.exists():
                old.rename(out)  # the earlier bag back
            raise
    finally:
        shutil.rmtree(new, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="bag directory to (re)write: missing, empty or a sample bag")
    args = parser.parse_args(argv)
    problem = refusal(args.out)  # before the bag is built
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / args.out.name
        write_bag(bag, args.shared)
        (bag / "ATTRIBUTION").write_text(attribution())
        for name in KEPT:
            if (args.out / name).is_file():
                shutil.copy2(args.out / name, bag / name)
        publish(bag, args.out)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB, sha256 {digest(args.out)[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
