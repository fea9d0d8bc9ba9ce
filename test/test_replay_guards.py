"""`replay` never destroys its input, never hangs on a non-file, never films or detects on the
cabin camera unasked, and never burns a driver's name into a video (issue 20, items 3, 6, 7, 9, 15,
and the 1x1 frame)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from replay_helpers import (CABIN, FRONT, ROOT, SAMPLE_BAG, SHARED, WINDSHIELD, copy_bag,
                            copy_dir, enrol_sample_driver, read_output)
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from support import PICODET_ONLY

from sense_perception.cli.main import main
from sense_perception.replay.engine import _identity_caption

STORE = get_typestore(Stores.ROS2_JAZZY)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    """``replay ARGV`` in this process, with PicoDet alone (support.PICODET_ONLY) unless ARGV
    names a --config: these cases test what the replay reads, refuses, writes and keeps, the same
    whatever the detector (each run saves the specialist's OpenVINO compile)."""
    args = [*map(str, argv)]
    if "--config" not in args:
        args += ["--config", str(PICODET_ONLY)]
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# -- item 3: --force never deletes the input --------------------------------------------------------

def test_force_refuses_an_out_that_holds_the_input(tmp_path, capsys) -> None:
    review = tmp_path / "review"
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", review, "--topics", WINDSHIELD, "--copy-input")
    assert code == 0, err
    before = _tree(review / "bag")
    code, _, err = _run(capsys, review / "bag", "--out", review, "--force")
    assert code == 2
    assert f"--out {review} contains the input {review / 'bag'}" in err and "Traceback" not in err
    assert _tree(review / "bag") == before  # the recording is untouched ...
    with Reader(review / "bag") as reader:  # ... and still opens
        assert reader.message_count > 0
    # The same input reached through a symbolic link is refused just as well.
    link = tmp_path / "link"
    link.symlink_to(review / "bag")
    code, _, err = _run(capsys, link, "--out", review, "--force")
    assert code == 2 and "contains the input" in err
    assert _tree(review / "bag") == before


@pytest.mark.parametrize("where", ["same", "inside"])
def test_an_out_that_is_or_lies_inside_the_input_is_refused(tmp_path, capsys, where) -> None:
    bag = copy_dir(SAMPLE_BAG, tmp_path / "bag")
    before = _tree(bag)
    out = bag if where == "same" else bag / "results"
    code, _, err = _run(capsys, bag, "--out", out, "--force")
    assert code == 2
    assert ("is the input" if where == "same" else "lies inside the input") in err
    assert _tree(bag) == before and not (bag / "results").exists()
    # an --out that is a link to the input folder
    link = tmp_path / "out_link"
    link.symlink_to(bag, target_is_directory=True)
    code, _, err = _run(capsys, bag, "--out", link, "--force")
    assert code == 2 and "is the input" in err and _tree(bag) == before


def test_an_unreadable_input_clears_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD)[0] == 0
    before = _tree(out)
    code, _, err = _run(capsys, tmp_path / "missing_bag", "--out", out, "--force")
    assert code == 2 and "does not exist" in err
    assert _tree(out) == before  # the old outputs are still there


# -- item 15: unwritable --out ---------------------------------------------------------------------

def test_unwritable_out_fails_before_any_work(tmp_path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, out, err = _run(capsys, SAMPLE_BAG, "--out", blocker / "out", "--topics", WINDSHIELD)
    assert code == 2 and "Traceback" not in err
    assert f"--out {blocker / 'out'} cannot be created: {blocker} is a file" in err
    assert "choose a directory" in err
    assert blocker.read_text() == "not a folder" and "summary" not in out
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", blocker, "--topics", WINDSHIELD)
    assert code == 2 and "is a file" in err


# -- item 9: a FIFO where a bag file belongs -------------------------------------------------------

@pytest.mark.parametrize("layout", ["file", "in_folder"])
def test_a_fifo_bag_file_is_refused_not_waited_on(tmp_path, layout) -> None:
    if layout == "file":
        bag = tmp_path / "drive.mcap"
        os.mkfifo(bag)
        named = bag
    else:
        bag = copy_dir(SAMPLE_BAG, tmp_path / "bag")
        (named,) = bag.glob("*.mcap")
        named.unlink()
        os.mkfifo(named)
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay", str(bag),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert f"bag file {named} is a FIFO (named pipe), not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


# -- item 7: the cabin camera is never an exterior camera ------------------------------------------

def test_video_without_cabin_films_no_face(tmp_path, capsys) -> None:
    out = tmp_path / "v"
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--video")
    assert code == 0, err
    assert {p.name for p in (out / "video").iterdir()} == {
        "camera_front_image_raw_compressed.mp4", "camera_windshield_image_raw.mp4"}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["cameras"]) == {FRONT, WINDSHIELD}
    topics = {m.channel.topic for m in read_output(out / "bag")}
    assert not any(t.startswith("/camera/cabin/") for t in topics), topics  # no detector on it
    assert f"{CABIN} is the cabin camera" in " ".join(err.split())


def _replayed(bag_path: Path, config: Path | None, topics=None, cabin=None,
              fleet: bool = False) -> list[str]:
    """The camera topics a replay of ``bag_path`` would take (no model loads), the cabin camera
    first."""
    from sense_perception.replay.engine import ReplayOptions, Replayer
    from sense_perception.replay.reader import open_bag

    replayer = Replayer(ReplayOptions(bag=bag_path, out=bag_path.parent / "o", topics=topics,
                                      cabin=cabin, config=config, cabin_if_present=fleet))
    with open_bag(bag_path) as bag:
        chosen, replayed = replayer._choose_cameras(bag)
    return [*([chosen] if chosen else []), *sorted(t for t in replayed if t != chosen)]


def test_the_cabin_camera_in_another_transport_is_never_an_exterior_camera(tmp_path) -> None:
    """A bag recording the cabin camera's compressed sub-topic for a configured raw topic (or the
    raw topic beside the configured compressed one) held no topic named exactly
    driver_monitor.camera_topic: the cabin frames were replayed as an exterior camera, through
    the detector, and `--video` filmed the driver's face into a video under the umask's mode."""
    from sense_perception.errors import PrivacyError

    raw_cabin = CABIN.rsplit("/", 1)[0]  # /camera/cabin/image_raw
    config = tmp_path / "raw_cabin.yaml"
    config.write_text(f"driver_monitor:\n  ros__parameters:\n    camera_topic: {raw_cabin}\n")
    assert _replayed(SAMPLE_BAG, config) == [FRONT, WINDSHIELD]
    with pytest.raises(PrivacyError, match=f"topic {CABIN} is the cabin camera"):
        _replayed(SAMPLE_BAG, config, topics=[FRONT, CABIN])
    # both transports recorded: --cabin takes one, the other is no exterior camera either
    both = copy_bag(SAMPLE_BAG, tmp_path / "both", edit=lambda topic, msgtype, ts, raw: [
        (topic, msgtype, ts, raw), *([(raw_cabin, msgtype, ts, raw)] if topic == CABIN else [])])
    assert _replayed(both, None, cabin=CABIN) == [CABIN, FRONT, WINDSHIELD]
    assert _replayed(both, None) == [FRONT, WINDSHIELD]
    assert _replayed(both, config, cabin=CABIN) == [CABIN, FRONT, WINDSHIELD]
    # a fleet's --cabin (not the configured cabin camera) that a car records in the other
    # transport: that topic is the cabin camera, never an exterior one
    car = "/car/cabin/image_raw"
    moved = copy_bag(SAMPLE_BAG, tmp_path / "car", edit=lambda topic, msgtype, ts, raw: [
        (f"{car}/compressed" if topic == CABIN else topic, msgtype, ts, raw)])
    assert _replayed(moved, None, cabin=car, fleet=True) == [f"{car}/compressed", FRONT, WINDSHIELD]
    assert _replayed(SAMPLE_BAG, None, cabin=car, fleet=True) == [FRONT, WINDSHIELD]


def test_the_cabin_cameras_rectified_image_is_never_an_exterior_camera(tmp_path) -> None:
    """A cabin camera recorded with image_proc's output beside its own (`image_raw` and
    `image_rect_color`, a common recording): only the topic and its transports were the cabin
    camera, so the rectified driver was replayed as an exterior camera (detector, annotations,
    a `--video` of the driver's face under the umask's mode), without and with `--cabin`, and a
    `--topics` naming it was taken (R70)."""
    from sense_perception.errors import PrivacyError

    rect = "/camera/cabin/image_rect_color/compressed"
    both = copy_bag(SAMPLE_BAG, tmp_path / "rect", edit=lambda topic, msgtype, ts, raw: [
        (topic, msgtype, ts, raw), *([(rect, msgtype, ts, raw)] if topic == CABIN else [])])
    assert _replayed(both, None) == [FRONT, WINDSHIELD]
    assert _replayed(both, None, cabin=CABIN) == [CABIN, FRONT, WINDSHIELD]
    assert _replayed(both, None, cabin=rect) == [rect, FRONT, WINDSHIELD]
    with pytest.raises(PrivacyError, match=f"topic {rect} .the same camera as {CABIN}. is the cabin"):
        _replayed(both, None, topics=[FRONT, rect])
    # a fleet bag recording only the rectified image of the --cabin camera: that is the cabin
    moved = copy_bag(SAMPLE_BAG, tmp_path / "moved", edit=lambda topic, msgtype, ts, raw: [
        (rect if topic == CABIN else topic, msgtype, ts, raw)])
    assert _replayed(moved, None, cabin=CABIN, fleet=True) == [rect, FRONT, WINDSHIELD]


def test_a_config_naming_the_cameras_relatively_keeps_them_apart(tmp_path) -> None:
    """A config naming driver_monitor's camera_topic relatively (`camera/cabin/...`: the node
    resolves it in its namespace, `/camera/cabin/...` at the root) was compared with the bag's
    absolute topics as given: no topic matched, so the replay took the driver for an exterior
    camera (detector, annotations, `--video`); a relative object_detector camera let `--cabin`
    run face identification on that exterior camera (R70)."""
    from sense_perception.errors import PrivacyError
    from sense_perception.replay.engine import ReplayOptions, Replayer

    for cabin in (CABIN.lstrip("/"), "~" + CABIN, "cabin/image_raw"):
        config = tmp_path / "relative.yaml"
        config.write_text(f"driver_monitor:\n  ros__parameters:\n    camera_topic: {cabin}\n")
        assert _replayed(SAMPLE_BAG, config) == [FRONT, WINDSHIELD], cabin
        with pytest.raises(PrivacyError, match=f"topic {CABIN} is the cabin camera"):
            _replayed(SAMPLE_BAG, config, topics=[FRONT, CABIN])
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [front/image_raw]\n")
    with pytest.raises(PrivacyError, match="refused on --cabin /car/front/image_rect"):
        Replayer(ReplayOptions(bag=SAMPLE_BAG, out=tmp_path / "o", cabin="/car/front/image_rect",
                               config=config))
    Replayer(ReplayOptions(bag=SAMPLE_BAG, out=tmp_path / "o", cabin=CABIN, config=config))


def test_a_camera_named_with_no_namespace_is_never_guessed(tmp_path) -> None:
    """R74: a config's bare image name (`camera_topic: image_raw`, for a node started in the
    camera's namespace: ROS 2 resolves it to `/<namespace>/image_raw`) was compared as
    `/image_raw`, matched none of the bag's cameras, and the replay took the driver for an
    exterior camera (detector, annotations, `--video`); a bare `object_detector.camera_topics`
    entry let `--cabin` run face identification on an exterior camera it may name. Which
    camera it is cannot be told without the node's namespace: the replay is refused naming the
    cameras and the fix, unless `--cabin` names one of them; identity is refused on any camera
    a bare exterior name may be; a bare name serving two cameras' CameraInfo is refused."""
    from sense_perception.errors import ConfigError, PrivacyError
    from sense_perception.replay.engine import ReplayOptions, Replayer
    from sense_perception.replay.pipelines import camera_info_entries

    config = tmp_path / "bare.yaml"
    for cabin in ("image_raw", "image_raw/compressed", "~/image_raw"):
        config.write_text(f"driver_monitor:\n  ros__parameters:\n    camera_topic: {cabin}\n")
        for topics in (None, [FRONT, WINDSHIELD]):
            with pytest.raises(PrivacyError) as err:
                _replayed(SAMPLE_BAG, config, topics=topics)
            text = str(err.value)
            assert all(t in text for t in (CABIN, FRONT, WINDSHIELD)), text
            assert "may be any of 3 cameras" in text and "fix: set camera_topic" in text, text
        assert _replayed(SAMPLE_BAG, config, cabin=CABIN) == [CABIN, FRONT, WINDSHIELD], cabin
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [image_rect]\n")
    for cabin in ("/car/front/image_rect", CABIN):
        with pytest.raises(PrivacyError, match=f"refused on --cabin {cabin} .a camera that "
                                               "image_rect, a relative name, may be"):
            Replayer(ReplayOptions(bag=SAMPLE_BAG, out=tmp_path / "o", cabin=cabin,
                                   config=config))
    config.write_text("object_detector:\n  ros__parameters:\n    camera_topics: [image_raw, "
                      "/x/image_raw]\n    camera_info_topics: [/a/camera_info, /b/camera_info]\n")
    assert [e for _, e in camera_info_entries(config, [FRONT])] == ["/a/camera_info"]
    with pytest.raises(ConfigError, match="the relative name image_raw may be each of"):
        camera_info_entries(config, [FRONT, WINDSHIELD])


def test_a_cabin_camera_at_the_root_namespace_is_one_camera(tmp_path) -> None:
    """R74: a camera driver started without a namespace (usb_cam's default `/image_raw`) and
    image_proc beside it (`/image_rect_color`) are one camera, but only images of a namespace
    were (R70): a cabin camera recorded so replayed its rectified image as an exterior camera
    (detector, annotations, `--video` of the driver), and object_detector took it among its
    `camera_topics` beside `cabin_camera_topic: /image_raw`."""
    from sense_perception.errors import PrivacyError
    from sense_perception.ros.settings import ObjectDetectorSettings

    raw, rect = "/image_raw/compressed", "/image_rect_color/compressed"
    bag = copy_bag(SAMPLE_BAG, tmp_path / "root", edit=lambda topic, msgtype, ts, data: [
        (raw if topic == CABIN else topic, msgtype, ts, data),
        *([(rect, msgtype, ts, data)] if topic == CABIN else [])])
    config = tmp_path / "root.yaml"
    config.write_text(f"driver_monitor:\n  ros__parameters:\n    camera_topic: {raw}\n")
    assert _replayed(bag, config) == [FRONT, WINDSHIELD]
    assert _replayed(bag, config, cabin=raw) == [raw, FRONT, WINDSHIELD]
    with pytest.raises(PrivacyError, match=f"topic {rect} .the same camera as {raw}. is the cabin"):
        _replayed(bag, config, topics=[FRONT, rect])
    with pytest.raises(PrivacyError, match="/image_rect_color .the same camera as /image_raw."):
        ObjectDetectorSettings(camera_topics=["/image_rect_color"],
                               cabin_camera_topic="/image_raw").validate()
    # another camera's namespace, or a topic that is no image name at the root, is another camera
    ObjectDetectorSettings(camera_topics=["/front/image_rect_color", "/front_camera"],
                           cabin_camera_topic="/image_raw").validate()


def test_a_bag_holding_cabin_frames_is_private_whatever_the_umask(tmp_path) -> None:
    """`--copy-input --cabin` copies the cabin camera's frames (the driver's face) into the output
    bag, which was created 0755 with files under the umask (0666 under umask 0) while the
    cabin video is 0600: any local account could read the face. That bag's folder is now 0700 and
    its files 0600; a copied bag without the cabin camera keeps the umask's modes, less write
    permission for others (R88: 0666 under umask 0)."""
    def replay(out: Path, *args: str) -> Path:
        proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay",
                               str(SAMPLE_BAG), "--out", str(out), "--copy-input", "--config",
                               str(PICODET_ONLY), *args],
                              capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(0),
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return out / "bag"

    def modes(bag: Path) -> dict[str, int]:
        return {p.name: p.stat().st_mode & 0o777 for p in bag.iterdir()}

    cabin = replay(tmp_path / "cabin", "--cabin", CABIN)
    assert cabin.stat().st_mode & 0o777 == 0o700
    assert modes(cabin) == {"sample_bag.mcap": 0o600, "metadata.yaml": 0o600}, modes(cabin)
    with Reader(cabin) as reader:  # the owner still reads it, the face frames are there
        assert reader.topics[CABIN].msgcount == 8
    exterior = replay(tmp_path / "exterior", "--topics", WINDSHIELD)
    assert exterior.stat().st_mode & 0o777 == 0o755  # rosbags makes it 0755
    assert set(modes(exterior).values()) == {0o644}, modes(exterior)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_output_of_a_cabin_replay_is_private_whatever_the_umask(tmp_path, umask) -> None:
    """R80: a `--cabin` replay without `--copy-input` wrote its bag (the driver's face boxes,
    pseudonymous id, head pose, attention, the cabin annotations) and its summary.json (the
    driver's id timeline and attention alerts) under the umask: 0644, and 0666 under umask 000,
    while the cabin video was 0600. The bag's folder is 0700 and every file of a cabin replay
    0600 now (the cabin video already was), whatever the umask; R88: and the cabin video's folder
    0700 (0777 under umask 000, where another user could swap the video before OpenCV opened it
    by name)."""
    from sense_perception.replay.engine import ReplayOptions, Replayer
    from sense_perception.replay.summary import write_summary

    out = tmp_path / "out"
    old = os.umask(umask)
    try:  # the cabin camera alone (8 frames): what matters is what the replay writes
        Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[], cabin=CABIN, video_cabin=True)).run()
        write_summary(tmp_path / "exterior.json", {})  # an exterior replay's: the umask's mode
    finally:
        os.umask(old)
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in out.rglob("*")
             if not p.name.startswith(".")}
    assert modes.pop("bag") == 0o700 and modes.pop("video") == 0o700, modes
    assert modes == {"bag/sample_bag.mcap": 0o600, "bag/metadata.yaml": 0o600,
                     "summary.json": 0o600, "video/camera_cabin_image_raw_compressed.mp4": 0o600}
    with Reader(out / "bag") as reader:  # the owner reads it: the driver's results are there
        assert reader.topics["/camera/cabin/driver_identity"].msgcount == 8
    assert json.loads((out / "summary.json").read_text())["identity"]
    assert (tmp_path / "exterior.json").stat().st_mode & 0o777 == 0o644 & ~umask


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000])
def test_no_output_of_a_replay_is_writable_by_others_whatever_the_umask(tmp_path, umask) -> None:
    """R88: under umask 000 an exterior replay with `--video --copy-input` made its `--out` (and
    the parents it created), `video/` and its marker 0777/0666, the exterior videos and the copied
    bag's files 0666: another user could replace or rewrite a video (a folder they may write lets
    them swap the file OpenCV then opens by name). Every folder and file it makes keeps the umask's
    read bits and is never writable by group or others now."""
    from sense_perception.replay.engine import ReplayOptions, Replayer

    out = tmp_path / "made" / "out"
    old = os.umask(umask)
    try:
        Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[WINDSHIELD, FRONT], copy_input=True,
                               video=True, config=PICODET_ONLY)).run()
    finally:
        os.umask(old)
    made = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777
            for p in [out.parent, *out.parent.rglob("*")]}
    assert {"made/out/video/camera_windshield_image_raw.mp4", "made/out/bag/sample_bag.mcap",
            "made/out/bag/metadata.yaml", "made/out/summary.json"} <= set(made), made
    dirs = {name for name in made if (tmp_path / name).is_dir()}
    assert dirs == {"made", "made/out", "made/out/bag", "made/out/video"}, dirs
    assert {name: mode for name, mode in made.items() if name in dirs} == dict.fromkeys(dirs, 0o755)
    assert {name: mode for name, mode in made.items() if name not in dirs} == {
        name: 0o644 for name in made if name not in dirs}, made
    with Reader(out / "bag") as reader:  # still a whole bag the owner reads
        assert reader.topics[WINDSHIELD].msgcount > 0


class _FakePublisher:
    """LivePublisher's interface, recording what it would put on the graph (no rclpy here)."""

    def __init__(self, rate: float = 1.0, skipped=None, **_: object) -> None:
        self.advertised: list[str] = []
        self.played: list[str] = []
        _FakePublisher.last = self

    def reserve(self, topics: set[str]) -> None:
        pass

    def advertise(self, topics) -> None:
        self.advertised += [t for t, _, _ in topics]

    def play(self, message, qos=()) -> None:
        self.played.append(message.topic)

    def publish(self, topic: str, msgtype: str, raw, qos=()) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("cabin, asked", [(None, False), (CABIN, False), (CABIN, True)])
def test_publish_plays_the_cabin_camera_only_when_asked(tmp_path, monkeypatch, capsys, cabin,
                                                        asked) -> None:
    """R80: `replay --publish` played every topic of the bag into the graph, the cabin camera's
    images (the driver's face) too, with or without `--cabin`, to every participant of the DDS
    domain, while no file holds the face unless asked (`--video-cabin`). They are held back now,
    a note naming `--publish-cabin`, which plays them; the other topics play as before."""
    from sense_perception.replay import publish
    from sense_perception.replay.engine import ReplayOptions, Replayer

    monkeypatch.setattr(publish, "LivePublisher", _FakePublisher)
    topics = [] if cabin else [WINDSHIELD]  # one camera is enough: the playing is looked at
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", topics=topics, cabin=cabin,
                                    publish=True, publish_cabin=asked, config=PICODET_ONLY)).run()
    fake = _FakePublisher.last
    for seen in (fake.advertised, fake.played):
        assert (CABIN in seen) is asked, seen
        assert "/camera/front/image_raw/compressed" in seen and "/tf_static" in seen
    assert fake.played.count(CABIN) == (8 if asked else 0)
    note = [n for n in result.notes if "pass --publish-cabin to publish them" in n]
    assert bool(note) is not asked and result.summary["frames"] == (8 if cabin else 1)
    if not cabin:
        code, _, err = _run(capsys, SAMPLE_BAG, "--out", tmp_path / "o", "--publish-cabin")
        assert code == 2 and "--publish-cabin only applies with --publish" in err
        assert not (tmp_path / "o").exists()


def test_video_cabin_without_cabin_is_refused_not_ignored(tmp_path, capsys) -> None:
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", tmp_path / "o", "--video-cabin")
    assert code == 2 and "--video-cabin films the camera named by --cabin" in err
    assert not (tmp_path / "o").exists()


def test_naming_the_cabin_camera_as_an_exterior_topic_is_refused(tmp_path, capsys) -> None:
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", tmp_path / "o", "--topics", FRONT, CABIN)
    assert code == 2 and f"topic {CABIN} is the cabin camera" in err and f"--cabin {CABIN}" in err
    assert not (tmp_path / "o" / "bag").exists()


@pytest.mark.parametrize("topics, cabin", [([CABIN], CABIN), ([FRONT], FRONT),
                                           ([FRONT, WINDSHIELD], WINDSHIELD)])
def test_the_same_topic_in_topics_and_cabin_is_a_usage_error(tmp_path, capsys, topics, cabin) -> None:
    """`--topics X --cabin X` ran the driver pipeline on X and silently no detector (X was asked
    for as an exterior camera): refused with exit 2 before the bag is read, by the same check and
    message as `run`'s config listing the cabin camera among object_detector.camera_topics; a
    --force rerun so refused keeps the earlier outputs."""
    out = tmp_path / "o"
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--topics", *topics, "--cabin", cabin)
    assert code == 2 and "Traceback" not in err
    text = " ".join(err.split())
    assert (f"topic {cabin} is the cabin camera (--cabin) and is also listed in --topics: it shows "
            "the driver, so it is never run through the object detector") in text
    assert "remove it from --topics" in text and "--topics with no topic after it" in text
    assert not out.exists()
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD)[0] == 0
    before = _tree(out)
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--force", "--topics", *topics,
                        "--cabin", cabin)
    assert code == 2 and "is also listed in --topics" in err and _tree(out) == before


def test_topics_with_no_topic_needs_cabin(tmp_path, capsys) -> None:
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", tmp_path / "o", "--topics")
    assert code == 2 and "--topics with no topic replays no exterior camera" in err
    assert "--cabin TOPIC" in err and not (tmp_path / "o").exists()


def test_run_and_replay_share_one_cabin_check(tmp_path) -> None:
    """`run`'s config check and the replay's option check are one function, one message."""
    from sense_perception.cli.run import check_cabin_not_exterior
    from sense_perception.errors import PrivacyError

    config = tmp_path / "perception.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n"
                      f"    camera_topics: [{FRONT}, {CABIN}]\n")
    with pytest.raises(PrivacyError) as refused:
        check_cabin_not_exterior(config)
    assert str(refused.value).startswith(
        f"topic {CABIN} is the cabin camera (driver_monitor.camera_topic in {config}) and is also "
        "listed in object_detector.camera_topics: it shows the driver, so it is never run through "
        "the object detector as an exterior camera; remove it from camera_topics")


def test_a_cabin_other_than_the_configured_one_is_warned_about(tmp_path, capsys) -> None:
    config = tmp_path / "params.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    gallery:\n"
                      f"      path: {tmp_path / 'gallery.json'}\n")
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", tmp_path / "o", "--cabin", WINDSHIELD,
                        "--config", config)
    assert code == 0, err
    text = " ".join(err.split())
    assert (f"--cabin {WINDSHIELD} is not the configured cabin camera (driver_monitor.camera_topic "
            f"{CABIN} in {config})") in text
    # the configured cabin camera is still kept away from the detector
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert set(summary["cameras"]) == {FRONT, WINDSHIELD}
    topics = {m.channel.topic for m in read_output(tmp_path / "o" / "bag")}
    # --cabin is still obeyed: the driver pipeline on the windshield camera, no detector there
    assert "/camera/windshield/driver_identity" in topics
    assert "/camera/windshield/detections" not in topics
    assert not any(t.startswith("/camera/cabin/") for t in topics)


def test_a_config_naming_other_camera_topics_is_told_not_ignored(tmp_path, capsys) -> None:
    # without --topics every image topic is replayed; a config's camera_topics naming only the
    # front camera was silently not followed (the windshield camera replayed as well)
    from sense_perception.replay.engine import unused_camera_topics

    config = tmp_path / "params.yaml"
    config.write_text(f"object_detector:\n  ros__parameters:\n    camera_topics: [{FRONT}]\n")
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", tmp_path / "o", "--config", config)
    assert code == 0, err
    text = " ".join(err.split())
    assert (f"object_detector.camera_topics of {config} ({FRONT}) is not followed without "
            f"--topics") in text and "pass --topics to choose" in text, text
    assert set(json.loads((tmp_path / "o" / "summary.json").read_text())["cameras"]) == {
        FRONT, WINDSHIELD}
    # the cameras replayed are the config's, or the config names none: nothing to tell
    assert unused_camera_topics(config, [FRONT]) == ""
    assert unused_camera_topics(None, [FRONT, WINDSHIELD]) == ""
    # a camera is one camera in either transport: the bundled autoware set-up names the raw
    # topic, its recordings often hold the compressed one (docs/autoware.md's offline replay)
    from sense_perception.config import bundled_config

    autoware_front = "/sensing/camera/camera0/image_rect_color/compressed"
    assert unused_camera_topics(bundled_config("autoware"), [autoware_front]) == ""
    assert unused_camera_topics(bundled_config("autoware"), [autoware_front, FRONT]) != ""
    many = tmp_path / "many.yaml"
    many.write_text("object_detector:\n  ros__parameters:\n    camera_topics: ["
                    + ", ".join(f"/c{i}/image_raw" for i in range(50)) + "]\n")
    assert "and 45 more" in unused_camera_topics(many, [FRONT])


def test_the_default_config_names_the_sample_bags_cabin_camera() -> None:
    from sense_perception.config import bundled_config, load_params
    from sense_perception.ros.settings import DriverMonitorNodeSettings, transport_kind

    topic = load_params(bundled_config("perception"), "driver_monitor")["camera_topic"]
    assert topic == CABIN == DriverMonitorNodeSettings().camera_topic
    with Reader(SAMPLE_BAG) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
    assert types[topic] == "sensor_msgs/msg/CompressedImage"
    assert transport_kind(topic, "auto") == "compressed"  # the node subscribes to what is there


# -- item 6: no display name in the cabin video ----------------------------------------------------

def test_the_cabin_caption_carries_the_pseudonymous_id_never_the_name(tmp_path) -> None:
    from sense_perception.face.pipeline import DriverIdentifier

    gallery, driver_id = enrol_sample_driver(tmp_path)
    identifier = DriverIdentifier.from_params({"gallery.path": str(gallery)}, "test")
    captions, names = [], set()
    with Reader(SAMPLE_BAG) as reader:
        conns = [c for c in reader.connections if c.topic == CABIN]
        for _, ts, raw in reader.messages(conns):
            msg = STORE.deserialize_cdr(raw, "sensor_msgs/msg/CompressedImage")
            image = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
            result = identifier.process(image, ts * 1e-9)
            names.add(result.display_name)
            captions.append(_identity_caption(result))
    assert "Barack Obama" in names  # the driver was identified, under his display name ...
    assert any(f"({driver_id}, " in c and "identified" in c for c in captions), captions
    assert not any("Obama" in c or "Barack" in c for c in captions), captions  # ... never shown


# -- the 1x1 frame: an invalid frame, not an inference failure -------------------------------------

def test_a_one_pixel_frame_is_an_invalid_frame_not_an_inference_failure(tmp_path, capsys) -> None:
    def edit(topic, msgtype, ts, raw):
        if topic == WINDSHIELD:
            msg = STORE.deserialize_cdr(raw, msgtype)
            msg.height, msg.width, msg.step, msg.data = 1, 1, 3, np.zeros(3, np.uint8)
            raw = bytes(STORE.serialize_cdr(msg, msgtype))
        return [(topic, msgtype, ts, raw)]

    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", edit=edit)
    out = tmp_path / "out"
    code, _, err = _run(capsys, bag, "--out", out, "--topics", FRONT, WINDSHIELD)
    assert code == 1, err
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["skipped"]
    assert entry["topic"] == WINDSHIELD and entry["count"] == 1
    assert entry["reason"].startswith("invalid frame: 1x1 px is too small")
    assert "tiling" not in entry["reason"] and "inference" not in entry["reason"]
    assert summary["cameras"][FRONT]["frames"] == 4  # the other camera went on


_READ_ONLY = '''
import contextlib, io, json, sys, time
from sense_perception.cli.main import main
disk, bag, photo, topic = sys.argv[1:5]
report = {}
for name, argv in (("replay", ["replay", bag, "--out", f"{disk}/out", "--topics", topic]),
                   ("attention", ["driver", "attention", photo, "--json-out", f"{disk}/a.json"])):
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    report[name] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                    "seconds": time.perf_counter() - start}
print(json.dumps(report))
'''


def test_a_read_only_out_is_refused_before_any_work(tmp_path) -> None:
    """A real read-only disk (a tmpfs mounted ro in a private mount namespace) under --out and
    --json-out: refused with the reason, before a model loads or a photo is measured."""
    from support import run_on_tmpfs

    report = run_on_tmpfs(tmp_path, _READ_ONLY, [
        SAMPLE_BAG, SHARED / "faces" / "obama_2_congress_2009.jpg", WINDSHIELD], "ro,size=64k")
    disk = tmp_path / "disk"
    replay, attention = report["replay"], report["attention"]
    assert replay["code"] == 2 and "Traceback" not in replay["stderr"]
    assert f"--out {disk}/out is not writable: Read-only file system" in replay["stderr"]
    assert "summary" not in replay["stdout"]
    assert attention["code"] == 2 and "Traceback" not in attention["stderr"]
    assert f"--json-out {disk}/a.json cannot be written: Read-only file system" in attention["stderr"]
    assert attention["stdout"] == ""  # no photo was measured


def test_force_never_deletes_a_users_own_bag_or_summary(tmp_path, capsys) -> None:
    # The hostile run's case: a folder holding the user's own recording as bag/ and notes as
    # summary.json, given as --out with --force (which the refusal without --force suggests).
    user = tmp_path / "userdir"
    (user / "bag").mkdir(parents=True)
    for item in SAMPLE_BAG.iterdir():
        (user / "bag" / item.name).write_bytes(item.read_bytes())
    (user / "summary.json").write_text("my notes\n")
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", user, "--topics", WINDSHIELD, "--force")
    assert code == 2 and "bag, summary.json that sense-perception replay did not write" in err
    assert "Traceback" not in err and (user / "summary.json").read_text() == "my notes\n"
    assert sorted(p.name for p in (user / "bag").iterdir()) == sorted(p.name for p in SAMPLE_BAG.iterdir())
    # A replay's own --out is marked, and --force replaces it there.
    out = tmp_path / "out"
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD)[0] == 0
    assert (out / ".sense-perception-replay").is_file()
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD, "--force")[0] == 0


def test_a_refused_force_rerun_keeps_the_earlier_replays_outputs(tmp_path, capsys) -> None:
    """--force with a wrong --topics, --cabin or model is refused (exit 2) before anything of the
    earlier, good replay is deleted: its bag and summary stay byte for byte, and no
    REPLAY_INCOMPLETE.txt claims they are partial."""
    out = tmp_path / "out"
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD)[0] == 0
    before = _tree(out)
    assert "summary.json" in before and any(k.startswith("bag/") for k in before)
    bad_model = tmp_path / "bad_model.yaml"
    bad_model.write_text("object_detector:\n  ros__parameters:\n    detector:\n      model: nosuch\n")
    for extra, problem in ((["--topics", "/nope"], "topic /nope is not in bag"),
                           (["--topics", WINDSHIELD, "--cabin", "/nope"], "topic /nope is not in bag"),
                           (["--topics", WINDSHIELD, "--config", bad_model], "unknown model 'nosuch'")):
        code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--force", *extra)
        assert code == 2 and problem in err and "Traceback" not in err, err
        assert _tree(out) == before, extra
    # The same --force with good options does replace them.
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", FRONT, "--force")[0] == 0
    assert json.loads((out / "summary.json").read_text())["cameras"].keys() == {FRONT}


def test_a_second_replay_into_one_out_is_refused_and_the_first_keeps_its_outputs(
        tmp_path, capsys) -> None:
    """Two replays into one --out (the second with --force, or both into an empty folder) cleared
    and wrote each other's outputs: the first to end printed the other's output bag as its own,
    its own deleted, both exit 0. A replay holds its --out (an flock on the folder, let go when
    the process ends, kill -9 included; here taken as a running replay takes it): a second is
    refused (exit 2) before it deletes or writes anything, and runs once the folder is free."""
    import fcntl

    out = tmp_path / "out"
    (out / "bag").mkdir(parents=True)
    (out / ".sense-perception-replay").write_text("written by sense-perception replay\n")
    (out / "bag" / "first.mcap").write_bytes(b"the running replay's bag")
    before = _tree(out)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD, "--force")
        assert code == 2 and f"another replay is writing into --out {out}" in err, err
        assert "Traceback" not in err and _tree(out) == before
    finally:
        os.close(fd)
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD, "--force")[0] == 0
    assert not (out / "bag" / "first.mcap").exists() and (out / "summary.json").is_file()


def test_no_output_of_a_cabin_replay_carries_the_drivers_display_name(tmp_path, capsys) -> None:
    """The identity reason, published as driver_reason in /diagnostics, read "6/6 recent frames
    match 'Barack Obama'": the display name was in every replayed bag (and on the live node's
    /diagnostics). Only the pseudonymous id may leave the gallery (SECURITY.md P10)."""
    gallery, driver_id = enrol_sample_driver(tmp_path)
    config = tmp_path / "params.yaml"
    config.write_text(f"driver_monitor:\n  ros__parameters:\n    gallery:\n      path: {gallery}\n")
    out = tmp_path / "out"
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--topics", "--cabin", CABIN,
                        "--config", config)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert any(e["driver"] == driver_id and e["state"] == "identified"
               for e in summary["identity"]), summary["identity"]  # he was identified ...
    reasons = [kv.value for m in read_output(out / "bag") if m.channel.topic == "/diagnostics"
               for status in m.ros_msg.status for kv in status.values if kv.key == "driver_reason"]
    assert any(f"match '{driver_id}'" in r for r in reasons), reasons  # ... by his id ...
    for path in (p for p in out.rglob("*") if p.is_file()):  # ... and never by name, anywhere
        data = path.read_bytes()
        assert b"Obama" not in data and b"Barack" not in data, path


@pytest.mark.parametrize("planted", ["link", "fifo"])
def test_a_link_or_fifo_planted_as_the_replay_marker_is_replaced_never_written_through(
        tmp_path, planted) -> None:
    """--out/.sense-perception-replay as a link to a file elsewhere: replay --force wrote its marker
    text over that file; as a FIFO it waited for a reader for ever. The marker is written to a temp
    file renamed over the name: the other file keeps its bytes, the replay ends."""
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_bytes(b"precious\n")
    if planted == "link":
        (out / ".sense-perception-replay").symlink_to(victim)
    else:
        os.mkfifo(out / ".sense-perception-replay")
    proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "replay",
                           str(SAMPLE_BAG), "--out", str(out), "--topics", WINDSHIELD, "--force",
                           "--config", str(PICODET_ONLY)], capture_output=True, text=True,
                          timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert victim.read_bytes() == b"precious\n"
    marker = out / ".sense-perception-replay"
    assert marker.is_file() and not marker.is_symlink() and "sense-perception replay" in marker.read_text()
    assert (out / "summary.json").is_file()


# -- camera topics without a message ---------------------------------------------------------------

def _bag_with_empty_topics(src: Path, dst: Path, empty: set[str], storage: str) -> Path:
    """``src`` rewritten as ``dst`` with every topic kept but the ``empty`` ones holding no message
    (a camera that was subscribed to but never published while recording)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=plugin) as writer:
        conns = {c.topic: writer.add_connection(c.topic, c.msgtype, typestore=STORE)
                 for c in reader.connections}
        for c, timestamp, raw in reader.messages():
            if c.topic not in empty:
                writer.write(conns[c.topic], timestamp, bytes(raw))
    return dst


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_bag_whose_cameras_hold_no_message_is_an_input_error(tmp_path, capsys, storage) -> None:
    """A bag whose selected image topics hold 0 messages replayed with exit 0 and an empty output,
    as if it had succeeded. It is an input error (exit 2) naming the empty topics and what the bag
    holds, refused before --out is touched (a --force run keeps the earlier outputs)."""
    bag = _bag_with_empty_topics(SAMPLE_BAG, tmp_path / "bag", {FRONT, WINDSHIELD}, storage)
    out = tmp_path / "out"
    for topics in ([FRONT, WINDSHIELD], []):  # named, and chosen automatically
        code, stdout, err = _run(capsys, bag, "--out", out, *(["--topics", *topics] if topics else []))
        assert code == 2 and "Traceback" not in err, err
        text = " ".join(err.split())
        assert (f"holds no message on the camera topic(s) to replay: {FRONT}, {WINDSHIELD}; "
                "nothing to replay") in text
        assert f"{FRONT} (sensor_msgs/msg/CompressedImage, 0 messages)" in text
        assert f"{WINDSHIELD} (sensor_msgs/msg/Image, 0 messages)" in text
        assert f"{CABIN} (sensor_msgs/msg/CompressedImage, 8 messages)" in text
        assert "/tf_static (tf2_msgs/msg/TFMessage, 1 message)" in text
        assert "summary" not in stdout and (not out.exists() or not any(out.iterdir()))
    assert _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD)[0] == 0
    before = _tree(out)
    code, _, err = _run(capsys, bag, "--out", out, "--force")
    assert code == 2 and "holds no message" in err and _tree(out) == before


def test_a_bag_where_some_cameras_are_empty_replays_the_others_and_names_them(tmp_path, capsys):
    bag = _bag_with_empty_topics(SAMPLE_BAG, tmp_path / "bag", {FRONT}, "mcap")
    out = tmp_path / "out"
    code, _, err = _run(capsys, bag, "--out", out, "--topics", FRONT, WINDSHIELD)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"][WINDSHIELD]["frames"] == 1 and summary["cameras"][FRONT]["frames"] == 0
    warning = (f"{FRONT}: no message in the bag (sensor_msgs/msg/CompressedImage); nothing replayed "
               "for this camera")
    assert summary["warnings"] == [warning]
    assert warning in " ".join(err.split())
    # a bag with frames on every camera has no warnings
    assert _run(capsys, SAMPLE_BAG, "--out", tmp_path / "full", "--topics", FRONT, WINDSHIELD)[0] == 0
    assert "warnings" not in json.loads((tmp_path / "full" / "summary.json").read_text())


def test_the_replay_reads_the_velocity_settings_with_tracking_off_as_the_node_does(tmp_path):
    """R75: object_detector's configure reads tracking.velocity.* whether tracking is on or not
    (a bad value fails it), while the replay read them only with tracking on: the same config was
    refused by the node and replayed without a word. Both refuse it now, naming the setting."""
    from support import FakeDetector

    from sense_perception.errors import ConfigError
    from sense_perception.replay.pipelines import build_core

    config = tmp_path / "c.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    tracking:\n      enabled: false\n"
                      "      velocity:\n        accel_sd: 0.0\n")
    with pytest.raises(ConfigError, match=r"tracking\.velocity\.accel_sd must be > 0, got 0\.0"):
        build_core(config, exterior=True, cabin=False, detector=FakeDetector())
    config.write_text("object_detector:\n  ros__parameters:\n    tracking:\n      enabled: false\n")
    assert build_core(config, exterior=True, cabin=False, detector=FakeDetector()).trackers is None


def test_an_earlier_output_is_marked_incomplete_before_force_deletes_any_of_it(
        tmp_path, capsys, monkeypatch) -> None:
    """`replay --force` deleted the earlier replay's bag/ and video/, then its summary.json, and
    only then wrote REPLAY_INCOMPLETE.txt: a Ctrl-C or SIGTERM (or a kill, a power cut) while a
    big bag/ was deleted left the earlier summary.json, which says the replay finished, beside a
    bag cut short, and no marker. The marker is written (and flushed) first now; and it is
    removed at the end of a good run with the folder flushed after, so a power cut after a run
    declared complete cannot bring it back beside the summary (R73)."""
    from sense_perception import fileio
    from sense_perception.replay import engine

    out = tmp_path / "out"
    (out / "bag").mkdir(parents=True)
    (out / ".sense-perception-replay").write_text("written by sense-perception replay\n")
    (out / "bag" / "earlier.mcap").write_bytes(b"an earlier replay's bag")
    (out / "summary.json").write_text('{"skipped": []}\n')
    marker = out / engine.INCOMPLETE_FILE
    seen: list[tuple[str, bool, bool]] = []  # (what, marker there, earlier summary there)
    real_rmtree, real_fsync_dir = engine.shutil.rmtree, fileio.fsync_dir

    def rmtree(path, *args, **kwargs):  # where a stop or a kill may cut the deletion short
        seen.append(("delete " + Path(path).name, marker.is_file(), (out / "summary.json").exists()))
        real_rmtree(path, *args, **kwargs)

    def fsync_dir(path):
        if Path(path) == out:
            seen.append(("flush", marker.exists(), (out / "summary.json").exists()))
        real_fsync_dir(path)

    monkeypatch.setattr(engine.shutil, "rmtree", rmtree)
    monkeypatch.setattr(engine, "fsync_dir", fsync_dir, raising=False)
    monkeypatch.setattr(fileio, "fsync_dir", fsync_dir)
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD, "--force")
    assert code == 0, err
    deleted = [s for s in seen if s[0].startswith("delete")]
    assert deleted == [("delete bag", True, True)], seen  # marked before anything is deleted
    assert seen[-1] == ("flush", False, True), seen  # the marker's removal is on disk
    assert not marker.exists() and json.loads((out / "summary.json").read_text())["frames"]


def test_force_refuses_a_bag_or_video_that_is_not_a_folder_before_any_model(tmp_path, capsys):
    """A file (or FIFO) named bag or video in a replay's marked --out ended `replay --force` in a
    NotADirectoryError traceback (exit 1) once the models were built, from deleting it as a
    folder; refused now with the other checks of --out, nothing touched (R73)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".sense-perception-replay").write_text("written by sense-perception replay\n")
    (out / "summary.json").write_text('{"skipped": []}\n')
    os.mkfifo(out / "video")
    (out / "bag").write_text("a note of mine\n")
    before = _tree(out)
    code, _, err = _run(capsys, SAMPLE_BAG, "--out", out, "--topics", WINDSHIELD, "--force")
    assert code == 2 and "Traceback" not in err, err
    assert f"--out {out} holds bag, video that are not folders" in err, err
    assert _tree(out) == before and not (out / "REPLAY_INCOMPLETE.txt").exists()
