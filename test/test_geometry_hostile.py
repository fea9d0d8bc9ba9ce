"""Hostile camera geometry: CameraInfo and /tf_static values that are finite and well-formed but
absurd (a K not in pixels, a mount in millimetres, a quaternion tf2 ignores, a re-parented camera
frame) are refused by name, and no NaN, inf or absurd position is ever published; the frames' 2-D
detections go on. Real sensor_msgs/CameraInfo and tf2_msgs/TFMessage messages (rosbags), through
the real core and a real replay of the sample bag."""
from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from replay_helpers import FRONT, SAMPLE_BAG, copy_bag, read_output
from rosbags.typesys import Stores, get_typestore

from sense_perception.core.geometry import mount_transform
from sense_perception.core.geometry.calibration import CalibrationError, from_camera_info
from sense_perception.core.geometry.positioner import CameraPositions
from sense_perception.core.geometry.tf_static import StaticTransforms
from sense_perception.replay.engine import ReplayOptions, Replayer

STORE = get_typestore(Stores.ROS2_JAZZY)
CAMERA_INFO, TF_MESSAGE = "sensor_msgs/msg/CameraInfo", "tf2_msgs/msg/TFMessage"
LABELS = ("pedestrian", "car", "truck", "bus", "bicycle", "motorcycle", "traffic_light")
WIDTH, HEIGHT = 960, 540


@pytest.fixture(scope="module")
def detector():
    from sense_perception.core.detection.detector import ObjectDetector

    return ObjectDetector.from_params({}, "test")


@functools.cache
def _sample_raw(topic: str) -> tuple[bytes, str]:
    from rosbags.rosbag2 import Reader

    with Reader(SAMPLE_BAG) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic == topic:
                return bytes(raw), conn.msgtype
    raise AssertionError(f"no {topic} in the sample bag")


def _sample_message(topic: str):
    """A fresh copy of the sample bag's first message on ``topic``, deserialized (rosbags)."""
    return STORE.deserialize_cdr(*_sample_raw(topic))


def _camera_info(**changes):
    """The sample bag's front CameraInfo (PandaSet's), with ``changes``; k/d as lists."""
    info = _sample_message("/camera/front/camera_info")
    for name, value in changes.items():
        setattr(info, name, np.asarray(value, np.float64) if name in ("k", "d", "p") else value)
    return info


def _boxes(n: int, rng: np.random.Generator) -> np.ndarray:
    x1, y1 = rng.uniform(-5, WIDTH, n), rng.uniform(-5, HEIGHT, n)
    x2 = np.minimum(x1 + rng.uniform(0.5, WIDTH / 2, n), WIDTH)
    y2 = np.minimum(y1 + rng.uniform(0.5, HEIGHT / 2, n), HEIGHT)
    return np.stack([x1, y1, x2, y2], 1)


def _assert_finite_where_placed(pos) -> None:
    v = pos.valid
    for name in ("xyz", "range_m", "covariance", "jitter"):
        values = getattr(pos, name)[v]
        assert np.isfinite(values).all(), (name, values)




@pytest.mark.parametrize(("changes", "named"), [
    ({"k": [1e-300, 0, 480, 0, 1e-300, 270, 0, 0, 1]}, "fx=1e-300, fy=1e-300 are not"),
    ({"k": [1e300, 0, 480, 0, 1e300, 270, 0, 0, 1]}, "K is in pixels, for the images' resolution"),
    ({"k": [985.0, 1e300, 480, 0, 985.0, 270, 0, 0, 1]}, "K's skew 1e+300 exceeds fx=985"),
    ({"k": [0.0] * 9}, "an all-zero K is an uncalibrated one"),
    ({"k": [math.nan, 0, 480, 0, 985, 270, 0, 0, 1]}, "K has a non-finite number"),
    ({"k": [985, 0, 480, 0, math.inf, 270, 0, 0, 1]}, "K has a non-finite number"),
    ({"k": [-985.0, 0, 480, 0, 985, 270, 0, 0, 1]}, "focal lengths must be > 0"),
    ({"d": [math.nan, 0, 0, 0, 0]}, "D has a non-finite number"),
    ({"d": [0.0] * 100}, "plumb_bob takes 4 or 5 coefficients in D, got 100"),
    ({"d": []}, "plumb_bob takes 4 or 5 coefficients in D, got 0"),
    ({"distortion_model": "fisheye"}, "'fisheye' is not supported"),
    ({"width": 0}, "width must be a whole number of pixels > 0, got 0"),
    ({"height": 0}, "height must be a whole number of pixels > 0, got 0"),
])
def test_a_hostile_camera_info_is_refused_by_name_and_the_frame_goes_on(changes, named):
    """Each hostile CameraInfo (a real message) gives no positions, the reason naming the field;
    the next good CameraInfo places the camera again. fx=1e-300 or 1e300 and a skew of 1e300
    passed every check and published inf/nan positions before (test below)."""
    positions = CameraPositions(mount=mount_transform(2.1, 0.03))
    boxes = np.array([[400.0, 250.0, 460.0, 330.0]])
    positions.camera_info(FRONT, _camera_info(**changes), "/camera/front/camera_info")
    assert positions.positions(FRONT, "front_camera", WIDTH, HEIGHT, boxes, np.array([1]),
                               LABELS) is None
    reason = positions.reason(FRONT)
    assert named in reason and reason.startswith("no calibration: /camera/front/camera_info"), \
        reason
    assert positions.summary(FRONT)["reason"] == reason
    positions.camera_info(FRONT, _camera_info(), "/camera/front/camera_info")  # fixed mid-stream
    placed = positions.positions(FRONT, "front_camera", WIDTH, HEIGHT, boxes, np.array([1]),
                                 LABELS)
    assert placed is not None and placed.valid.all() and positions.reason(FRONT) == ""


def test_no_camera_info_and_mount_that_passes_the_checks_gives_a_non_finite_position():
    """2,000 CameraInfo messages and mounts drawn from absurd and sane values (focal lengths from
    1e-300 to 1e300 pixels, skews, distortions up to 1e300, heights from 1e-9 m to 1e200 m,
    offsets up to 1e300 m, any pitch, roll and yaw), with random boxes: a calibration the checks
    accept never gives a placed detection a nan or inf position, range or covariance. Before,
    about one in ten of these cases did (e.g. fx=1e-6 with a mount 1e150 m up)."""
    rng = np.random.default_rng(7)
    pick = lambda values: values[rng.integers(len(values))]  # noqa: E731
    accepted = 0
    for _ in range(2000):
        f = pick([1e-300, 1e-6, 1.0, 50.0, 700.0, 5000.0, 1e6, 1e300])
        skew = pick([0.0, 0.0, -5.0, 1e3, 1e300])
        model = pick(["plumb_bob", "rational_polynomial", "none"])
        n = {"plumb_bob": 5, "rational_polynomial": 8, "none": 0}[model]
        d = rng.normal(size=n) * pick([0.0, 0.1, 10.0, 1e10, 1e300])
        k = [f, skew, rng.uniform(0, WIDTH), 0, f * pick([1, 0.5, 2]), rng.uniform(0, HEIGHT),
             0, 0, 1]
        T = mount_transform(pick([1e-9, 1.4, 9.9, 1e3, 1e150, 1e200]), rng.uniform(-0.6, 1.6),
                            pick([0.0, 0.05, -0.08, rng.uniform(-1.5, 1.5)]),
                            rng.uniform(-3.2, 3.2),
                            x=pick([0.0, -99.0, 1e6, 1e300]))
        info = _camera_info(k=k, d=d, distortion_model=model)
        try:
            from_camera_info(info, T, "fuzz")
        except CalibrationError:
            continue
        accepted += 1
        positions = CameraPositions(mount=T)
        positions.camera_info(FRONT, info)
        n_boxes = int(rng.integers(1, 12))
        out = positions.positions(FRONT, "front_camera", WIDTH, HEIGHT, _boxes(n_boxes, rng),
                                  rng.integers(0, len(LABELS), n_boxes), LABELS)
        if out is not None:
            _assert_finite_where_placed(out)
    assert accepted >= 20, accepted  # the sane part of the draw is placed, and checked


def _stamped(parent: str, child: str, T: np.ndarray, quaternion=None):
    from scipy.spatial.transform import Rotation

    msg = _sample_message("/tf_static").transforms[0]
    msg.header.frame_id, msg.child_frame_id = parent, child
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = T[:3, 3].tolist()
    q.x, q.y, q.z, q.w = quaternion or Rotation.from_matrix(T[:3, :3]).as_quat().tolist()
    return msg


def _tf(*transforms):
    return STORE.types[TF_MESSAGE](transforms=list(transforms))


@pytest.mark.parametrize(("height", "x", "named"), [
    (2113.0, 864.0, "puts the camera at (864, 0, 2113) m"),  # a URDF in millimetres
    (1e200, 0.0, "the translation is in metres (not millimetres)"),
    (2.1, 1e6, "100 m from base_link"),
])
def test_an_absurd_mount_from_tf_static_is_refused_by_name(height, x, named):
    positions = CameraPositions()
    T = mount_transform(height, 0.03, x=x)
    positions.tf_static(_tf(_stamped("base_link", "front_camera", T)))
    positions.camera_info(FRONT, _camera_info(), "/camera/front/camera_info")
    boxes = np.array([[400.0, 250.0, 460.0, 330.0]])
    assert positions.positions(FRONT, "front_camera", WIDTH, HEIGHT, boxes, np.array([1]),
                               LABELS) is None
    assert named in positions.reason(FRONT), positions.reason(FRONT)


def test_a_quaternion_tf2_would_ignore_is_refused_and_a_unit_one_is_kept():
    """tf2 ignores a transform whose quaternion's squared length is 0.01 or more from 1
    (TF_DENORMALIZED_QUATERNION), so Autoware has no mount for that camera; it was normalised
    here and the camera placed with a rotation no other node used."""
    T = mount_transform(2.1, 0.03)
    good = _stamped("base_link", "front_camera", T)
    q = good.transform.rotation
    typo = (1.1 * q.x, 1.1 * q.y, 1.1 * q.z, 1.1 * q.w)
    tree = StaticTransforms()
    with pytest.raises(CalibrationError, match=r"base_link -> front_camera: .* has length "
                                               r"1\.1, not 1 \(tf2 ignores it too\)"):
        tree.add(_tf(_stamped("base_link", "front_camera", T, typo)))
    with pytest.raises(CalibrationError, match="no chain of transforms from base_link to "
                                               "front_camera .*refused: base_link -> front_camera"):
        tree.lookup("base_link", "front_camera")
    tree.add(_tf(good))  # within tf2's tolerance: kept, normalised
    np.testing.assert_allclose(tree.lookup("base_link", "front_camera"), T, atol=1e-9)


def test_a_camera_frame_given_a_new_parent_uses_the_new_chain():
    """tf2 keeps one parent per frame: a later transform of the camera under another parent (the
    sensor kit re-published) replaces its earlier mount. The earlier edge was kept beside it, and
    the stale mount was the one found (the shorter path)."""
    old = mount_transform(1.4, 0.0)
    kit = np.eye(4)
    kit[:3, 3] = (0.5, 0.0, 1.0)
    on_kit = mount_transform(1.1, 0.05)  # camera 1.1 m above the kit, so 2.1 m up
    tree = StaticTransforms()
    tree.add(_tf(_stamped("base_link", "front_camera", old)))
    tree.add(_tf(_stamped("base_link", "sensor_kit", kit),
                 _stamped("sensor_kit", "front_camera", on_kit)))
    np.testing.assert_allclose(tree.lookup("base_link", "front_camera"), kit @ on_kit, atol=1e-9)
    assert tree.frames == ["base_link", "front_camera", "sensor_kit"]


def _edited_bag(tmp_path, edit_tf=None, edit_info=None):
    """The sample bag with its /tf_static and front CameraInfo messages edited (real CDR)."""
    counter = {"info": 0}

    def edit(topic, msgtype, ts, raw):
        if topic == "/tf_static" and edit_tf is not None:
            msg = STORE.deserialize_cdr(raw, msgtype)
            edit_tf(msg)
            raw = bytes(STORE.serialize_cdr(msg, msgtype))
        elif topic == "/camera/front/camera_info" and edit_info is not None:
            msg = STORE.deserialize_cdr(raw, msgtype)
            edit_info(counter["info"], msg)
            counter["info"] += 1
            raw = bytes(STORE.serialize_cdr(msg, msgtype))
        return [(topic, msgtype, ts, raw)]

    return copy_bag(SAMPLE_BAG, tmp_path / "bag", edit=edit)


def test_a_replay_of_a_bag_whose_tf_static_is_in_millimetres_publishes_no_absurd_3d(tmp_path,
                                                                                    detector):
    """The sample bag's /tf_static with its translation in millimetres (2113 for 2.113 m): the
    camera was placed 2 km above the road and its cars tens of kilometres away in detections_3d.
    Now no 3-D is published, the summary names the mount and the fix, the 2-D detections go on."""
    def millimetres(msg):
        t = msg.transforms[0].transform.translation
        t.x, t.y, t.z = t.x * 1000, t.y * 1000, t.z * 1000

    bag = _edited_bag(tmp_path, edit_tf=millimetres)
    out = tmp_path / "out"
    Replayer(ReplayOptions(bag, out, topics=[FRONT]), detector=detector).run()
    summary = json.loads((out / "summary.json").read_text())
    front = summary["cameras"][FRONT]["positions"]
    assert front["placed"] == 0 and front["detections"] > 0, front
    assert "not millimetres" in front["reason"] and "2113" in front["reason"], front
    messages = read_output(out / "bag")
    assert not [m for m in messages if m.channel.topic.endswith("detections_3d")]
    detections = [m for m in messages if m.channel.topic == "/camera/front/detections"]
    assert len(detections) == 4 and sum(len(m.ros_msg.detections) for m in detections) > 0


def test_a_replay_whose_camera_info_is_broken_for_a_while_says_so(tmp_path, capsys):
    """The sample bag's first front CameraInfo with a nan in K, the three after it whole: the
    first frame has 2-D detections and no 3-D, the others are placed. The summary said only the
    last frame's state (placed, no reason), so nothing told that a frame had lost its positions
    or why; the reason appeared nowhere in the output. Now summary.json counts the frames without
    positions by reason, the replay prints it and a note, and /diagnostics is WARN while it
    lasts."""
    from sense_perception.cli.main import main

    def nan_in_k(i, msg):
        if i == 0:
            k = msg.k.copy()
            k[0] = math.nan
            msg.k = k

    bag = _edited_bag(tmp_path, edit_info=nan_in_k)
    out = tmp_path / "out"
    assert main(["replay", str(bag), "--out", str(out), "--topics", FRONT]) == 0
    printed = capsys.readouterr()
    reason = ("no calibration: /camera/front/camera_info (CameraInfo and /tf_static): K has a "
              "non-finite number (nan or inf)")
    front = json.loads((out / "summary.json").read_text())["cameras"][FRONT]["positions"]
    assert front["frames"] == 4 and front["frames_without_positions"] == {reason: 1}, front
    assert front["placed"] > 0 and "reason" not in front  # the last frame was placed
    text = " ".join((printed.out + printed.err).split())
    assert f"3-D positions {FRONT}: 1 of 4 frames without ({reason})" in text, text
    assert f"positions[{FRONT}]: {reason}" in text, text  # the note
    messages = read_output(out / "bag")
    stamps = [m.ros_msg.header.stamp.sec for m in messages
              if m.channel.topic == "/camera/front/detections_3d"]
    assert stamps == [1557539957, 1557539960, 1557539963]  # frames 2-4; the first has none
    for m in messages:
        if m.channel.topic == "/camera/front/detections_3d":
            for d in m.ros_msg.detections:
                p = d.bbox.center.position
                assert all(math.isfinite(v) for v in (p.x, p.y, p.z, *d.results[0].pose.covariance))
                assert 0 < math.hypot(p.x, p.y) < 200
    assert len([m for m in messages if m.channel.topic == "/camera/front/detections"]) == 4
    statuses = [s for m in messages if m.channel.topic == "/diagnostics" for s in m.ros_msg.status
                if s.name.endswith("object_detector")]
    warned = [s for s in statuses if s.level == 1 and f"positions[{FRONT}]: {reason}" in s.message]
    assert warned, [(s.level, s.message) for s in statuses]


@pytest.mark.parametrize("frame_id", ["[/front]", "[red]front"])
def test_a_frame_id_that_looks_like_markup_is_printed_as_it_is(tmp_path, capsys, frame_id):
    """The replay printed the 3-D positions' reason (which names the images' frame_id, from the
    bag) and its notes as rich markup: a frame_id '[/front]' ended a finished replay in a
    MarkupError traceback, '[red]front' restyled the line and vanished from it."""
    from sense_perception.cli.main import main

    def edit(topic, msgtype, ts, raw):
        if topic in (FRONT, "/camera/front/camera_info"):
            msg = STORE.deserialize_cdr(raw, msgtype)
            msg.header.frame_id = frame_id
            raw = bytes(STORE.serialize_cdr(msg, msgtype))
        return [(topic, msgtype, ts, raw)]

    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", edit=edit)
    assert main(["replay", str(bag), "--out", str(tmp_path / "out"), "--topics", FRONT]) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    text = " ".join(printed.out.split())
    assert f"3-D positions {FRONT}: none (no calibration: /tf_static has no chain of transforms " \
        f"from base_link to {frame_id} (frames known: base_link, front_camera)" in text, text


def test_a_camera_without_a_mount_is_looked_up_once_per_change_not_per_frame(monkeypatch):
    """A camera whose frame /tf_static does not reach walked the whole tree (inverting every
    transform) on every frame: 12 ms a frame with 1,000 static frames, for each such camera.
    Now a failed lookup is kept until /tf_static or the CameraInfo changes."""
    calls = []
    lookup = StaticTransforms.lookup
    monkeypatch.setattr(StaticTransforms, "lookup",
                        lambda self, *a: calls.append(a) or lookup(self, *a))
    positions = CameraPositions()
    positions.tf_static(_tf(*(_stamped(f"link{i}", f"link{i + 1}", mount_transform(1.0))
                              for i in range(200))))
    positions.camera_info(FRONT, _camera_info(), "/camera/front/camera_info")
    boxes, labels = np.array([[400.0, 250.0, 460.0, 330.0]]), np.array([1])
    for _ in range(50):
        assert positions.positions(FRONT, "front_camera", WIDTH, HEIGHT, boxes, labels,
                                   LABELS) is None
    assert len(calls) == 1
    assert "no chain of transforms from base_link to front_camera" in positions.reason(FRONT)
    assert positions.summary(FRONT)["frames_without_positions"] == {positions.reason(FRONT): 50}
    assert positions.warnings([FRONT]) == []  # a mount not set up is a state, not a fault
    positions.camera_info(FRONT, _camera_info(width=1920), "/camera/front/camera_info")
    positions.positions(FRONT, "front_camera", WIDTH, HEIGHT, boxes, labels, LABELS)
    assert len(calls) == 2  # a new CameraInfo: tried again
    positions.tf_static(_tf(_stamped("base_link", "front_camera", mount_transform(2.1, 0.03))))
    placed = positions.positions(FRONT, "front_camera", 1920, HEIGHT, boxes, labels, LABELS)
    assert len(calls) == 3 and placed is not None and placed.valid.all()  # /tf_static: again


@pytest.mark.parametrize(("changes", "named"), [
    ({"k": [985.0, 0, 485, 0, math.nan, 241, 0, 0, 1]}, "K has a non-finite number"),
    ({"d": [0.0, math.inf, 0, 0, 0]}, "D has a non-finite number"),
])
def test_autowares_camera_info_check_names_a_nan_in_k_or_d(changes, named):
    """Autoware's CameraInfo check (what its fusion would ignore or misplace) said 'ok' for a K
    or D holding a nan or inf: only an all-zero K was named."""
    from sense_perception.core.autoware.camera_info import CameraInfoWatch

    watch = CameraInfoWatch([FRONT])
    problems = watch.camera_info(FRONT, _camera_info(**changes))
    assert [p for p in problems if named in p and "fix the camera driver's calibration" in p], \
        problems
    assert named in watch.status()[FRONT]
    assert watch.camera_info(FRONT, _camera_info()) == [] and watch.status()[FRONT] == "ok"


def _junk_frames(n: int, start: int = 0) -> list:
    """``n`` transforms of distinct new child frames under base_link (real TransformStamped)."""
    out = []
    for i in range(start, start + n):
        msg = _sample_message("/tf_static").transforms[0]
        msg.child_frame_id = f"junk_{i}"
        out.append(msg)
    return out


def test_tf_static_keeps_a_bounded_number_of_frames_and_the_cameras_mount():
    """A publisher sending ever new child frames on /tf_static grew the transform store (and
    every lookup's walk) without bound. Now MAX_FRAMES frames are kept: the camera's mount stays
    and can still be re-published, the transforms of new frames beyond the cap are counted and
    the first few named, in /diagnostics' WARN, one log note, and the replay summary."""
    from sense_perception.core.geometry.tf_static import MAX_FRAMES

    positions = CameraPositions()
    mount = mount_transform(2.1, 0.03)
    positions.tf_static(_tf(_stamped("base_link", "front_camera", mount)))
    positions.camera_info(FRONT, _camera_info(), "/camera/front/camera_info")
    over = 300
    # two messages: the cap holds across publishers, not only within one message
    positions.tf_static(_tf(*_junk_frames(MAX_FRAMES - 11)))  # with front_camera: 10 short
    positions.tf_static(_tf(*_junk_frames(over + 10, start=MAX_FRAMES - 11)))
    tree = positions.tf
    assert len(tree.frames) == MAX_FRAMES + 1  # the children, and their parent base_link
    assert tree.over_cap == over
    np.testing.assert_allclose(tree.lookup("base_link", "front_camera"), mount, atol=1e-9)
    boxes, labels = np.array([[400.0, 250.0, 460.0, 330.0]]), np.array([1])
    placed = positions.positions(FRONT, "front_camera", WIDTH, HEIGHT, boxes, labels, LABELS)
    assert placed is not None and placed.valid.all()
    note = tree.cap_note()
    assert f"{over} transform(s) of new frames not kept, beyond the cap of {MAX_FRAMES}" in note
    assert f"base_link -> junk_{MAX_FRAMES - 1}" in note and "junk_9999" not in note
    assert positions.warnings([FRONT]) == [note]
    assert positions.new_tf_note() == note and positions.new_tf_note() == ""  # logged once
    assert positions.summary(FRONT)["tf_static_not_kept"] == over
    moved = mount_transform(1.9, 0.05)  # a known frame re-published: taken, cap or not
    positions.tf_static(_tf(_stamped("base_link", "front_camera", moved)))
    np.testing.assert_allclose(tree.lookup("base_link", "front_camera"), moved, atol=1e-9)
    assert tree.over_cap == over


def test_thousands_of_refused_tf_static_transforms_are_counted_not_all_kept():
    """Thousands of transforms with a zero quaternion: each was remembered (to name in a lookup
    error) and all named in one error. Now a few are named and the rest counted."""
    bad = _junk_frames(3000)
    for msg in bad:
        msg.transform.rotation.w = 0.0
        msg.transform.rotation.x = msg.transform.rotation.y = msg.transform.rotation.z = 0.0
    tree = StaticTransforms()
    with pytest.raises(CalibrationError, match="base_link -> junk_0: .*; and 2996 more$") as exc:
        tree.add(_tf(*bad))
    assert len(str(exc.value)) < 2000
    assert tree.refused and len(tree._refused) <= 64


def test_a_replay_of_a_tf_static_flood_places_the_camera_and_counts_the_rest(tmp_path, detector):
    """The sample bag's /tf_static with the camera's mount followed by MAX_FRAMES + 50 new frames:
    the camera is placed, the summary counts the 50 transforms not kept, a note names them."""
    from sense_perception.core.geometry.tf_static import MAX_FRAMES

    def flood(msg):
        msg.transforms = [*msg.transforms, *_junk_frames(MAX_FRAMES + 50)]

    out = tmp_path / "out"
    result = Replayer(ReplayOptions(_edited_bag(tmp_path, edit_tf=flood), out, topics=[FRONT]),
                      detector=detector).run()
    front = json.loads((out / "summary.json").read_text())["cameras"][FRONT]["positions"]
    assert front["placed"] > 0 and "reason" not in front, front
    known = len(_sample_message("/tf_static").transforms)
    assert front["tf_static_not_kept"] == known + 50, front
    assert [n for n in result.notes if f"beyond the cap of {MAX_FRAMES} frames" in n], result.notes


def test_a_lookup_walks_the_chain_not_the_whole_tree(monkeypatch):
    """Every lookup inverted the transform of every known frame (4096 at the cap) to search the
    tree breadth-first. Now it walks up from both frames to their common ancestor: one inversion,
    the same transforms in either direction, between siblings, and a loop of parents ends."""
    from sense_perception.core.geometry import tf_static
    from sense_perception.core.geometry.tf_static import MAX_FRAMES

    kit = np.eye(4)
    kit[:3, 3] = (0.5, 0.0, 1.0)
    on_kit = mount_transform(1.1, 0.05)
    lidar = mount_transform(0.4, 0.0)
    tree = StaticTransforms()
    tree.add(_tf(_stamped("base_link", "sensor_kit", kit),
                 _stamped("sensor_kit", "front_camera", on_kit),
                 _stamped("sensor_kit", "lidar", lidar)))
    tree.add(_tf(*_junk_frames(MAX_FRAMES - 3)))
    inversions = []
    inv = np.linalg.inv
    monkeypatch.setattr(tf_static.np.linalg, "inv", lambda m: inversions.append(1) or inv(m))
    np.testing.assert_allclose(tree.lookup("base_link", "front_camera"), kit @ on_kit, atol=1e-9)
    np.testing.assert_allclose(tree.lookup("front_camera", "base_link"), inv(kit @ on_kit),
                               atol=1e-9)
    np.testing.assert_allclose(tree.lookup("lidar", "front_camera"), inv(lidar) @ on_kit,
                               atol=1e-9)
    assert len(inversions) == 3, len(inversions)
    loop = StaticTransforms()
    loop.add(_tf(_stamped("a", "b", kit), _stamped("b", "a", kit)))
    with pytest.raises(CalibrationError, match="no chain of transforms from base_link to a"):
        loop.lookup("base_link", "a")
