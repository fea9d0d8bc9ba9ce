"""One output of one frame that cannot be written costs that output only (SECURITY.md R55): the
frame's other outputs and the later frames are kept, the problem is named in summary.json's
``skipped`` (exit status 1), nothing already written is lost. A video frame's I/O error, a video
that cannot be finished and a bag message that cannot be converted each ended the whole replay
(exit 2, REPLAY_INCOMPLETE.txt, no summary.json, the later frames never replayed)."""
from __future__ import annotations

import errno
from pathlib import Path

import cv2
import pytest

from sense_perception.replay.engine import INCOMPLETE_FILE, Replayer, ReplayOptions
from sense_perception.replay.video import CameraVideo
from sense_perception.replay.to_rosbags import MessageConverter
from sense_perception.replay.writer import OutputWriteError

from replay_helpers import FRONT, SAMPLE_BAG, SAMPLE_COUNTS, WINDSHIELD, read_output

FRONT_VIDEO = "video/camera_front_image_raw_compressed.mp4"
WINDSHIELD_VIDEO = "video/camera_windshield_image_raw.mp4"


@pytest.fixture(scope="module")
def detector():
    from sense_perception.core.detection.detector import ObjectDetector

    return ObjectDetector.from_params({"runtime.intra_op_threads": 1}, "test")


def _frames_in(video: Path) -> int:
    capture = cv2.VideoCapture(str(video))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


def _replay(out: Path, detector) -> Replayer:
    return Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[FRONT, WINDSHIELD], video=True),
                    detector=detector)


def _topics(out: Path) -> list[str]:
    return [m.channel.topic for m in read_output(out / "bag")]


def test_a_video_frame_that_cannot_be_written_costs_that_frame_of_the_video_only(
        tmp_path, detector, monkeypatch):
    real = CameraVideo.write
    calls = {"front": 0}

    def write(self, bgr, t):
        if self.path.name.startswith("camera_front"):
            calls["front"] += 1
            if calls["front"] == 2:
                raise OSError(errno.EIO, "Input/output error")
        return real(self, bgr, t)

    monkeypatch.setattr(CameraVideo, "write", write)
    out = tmp_path / "out"
    result = _replay(out, detector).run()
    [skip] = result.summary["skipped"]
    assert skip == {"topic": FRONT_VIDEO, "count": 1,
                    "reason": f"not written to {FRONT_VIDEO}: OSError: [Errno 5] Input/output error"}
    assert not result.complete  # exit status 1: finished, something left out (named)
    assert (out / "summary.json").exists() and not (out / INCOMPLETE_FILE).exists()
    # the frame's bag messages and the later frames are all there
    assert _topics(out).count("/camera/front/detections") == SAMPLE_COUNTS[FRONT]
    assert result.summary["cameras"][FRONT]["frames"] == SAMPLE_COUNTS[FRONT]
    assert calls["front"] == SAMPLE_COUNTS[FRONT]
    assert _frames_in(out / FRONT_VIDEO) >= SAMPLE_COUNTS[FRONT] - 1
    assert _frames_in(out / WINDSHIELD_VIDEO) == SAMPLE_COUNTS[WINDSHIELD]


def test_a_video_that_cannot_be_finished_leaves_the_others_and_the_summary(
        tmp_path, detector, monkeypatch):
    real = CameraVideo._check_written

    def check(self):
        if self.path.name.startswith("camera_front"):
            raise OutputWriteError(self.path, OSError(
                errno.EIO, "the video holds 1 of the 4 frames written (OpenCV could not write the "
                "rest)"))
        return real(self)

    monkeypatch.setattr(CameraVideo, "_check_written", check)
    out = tmp_path / "out"
    result = _replay(out, detector).run()
    [skip] = result.summary["skipped"]
    assert skip["topic"] == FRONT and skip["count"] == 1
    assert skip["reason"].startswith(f"video {FRONT_VIDEO} could not be finished: cannot write ")
    assert "holds 1 of the 4 frames" in skip["reason"]
    assert not result.complete and not (out / INCOMPLETE_FILE).exists()
    # the windshield video after it was finished too (it was never released: no index)
    assert _frames_in(out / WINDSHIELD_VIDEO) == SAMPLE_COUNTS[WINDSHIELD]
    assert _topics(out).count("/camera/front/detections") == SAMPLE_COUNTS[FRONT]


def test_a_bag_message_that_cannot_be_converted_costs_that_message_only(
        tmp_path, detector, monkeypatch):
    real = MessageConverter.__call__
    calls = {"n": 0}

    def convert(self, msgtype, message):
        if msgtype == "vision_msgs/msg/Detection2DArray":
            calls["n"] += 1
            if calls["n"] == 2:
                raise ValueError("value out of range for uint32")
        return real(self, msgtype, message)

    monkeypatch.setattr(MessageConverter, "__call__", convert)
    out = tmp_path / "out"
    result = Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[FRONT]), detector=detector).run()
    [skip] = result.summary["skipped"]
    assert skip == {"topic": "/camera/front/detections", "count": 1,
                    "reason": "not written to /camera/front/detections (the output bag): "
                              "ValueError: value out of range for uint32"}
    assert not result.complete and not (out / INCOMPLETE_FILE).exists()
    topics = _topics(out)
    assert topics.count("/camera/front/detections") == SAMPLE_COUNTS[FRONT] - 1
    # that frame's other messages and the later frames are written
    assert topics.count("/camera/front/camera_health") == SAMPLE_COUNTS[FRONT]
    assert topics.count("/camera/front/detections_3d") == SAMPLE_COUNTS[FRONT]


def test_two_cameras_whose_video_names_coincide_get_a_video_each(tmp_path):
    # `/` and `_` both become `_` in a video's name: the two cameras' frames went into one file
    # (one writer over the other's), and the replay listed that file twice.
    import numpy as np

    from sense_perception.replay.video import VideoSet

    videos = VideoSet(tmp_path / "video", {})
    left, other = "/camera/front_left/image_raw", "/camera/front/left/image_raw"
    for i in range(4):
        videos.write(left, np.full((48, 64, 3), 40, np.uint8), i / 10)
        videos.write(other, np.full((48, 64, 3), 200, np.uint8), i / 10)
    paths = videos.close()
    assert [p.name for p in paths] == ["camera_front_left_image_raw.mp4",
                                       "camera_front_left_image_raw_2.mp4"]
    for path, level in zip(paths, (40, 200), strict=True):
        capture = cv2.VideoCapture(str(path))
        means = []
        while (read := capture.read())[0]:
            means.append(float(read[1].mean()))
        capture.release()
        assert len(means) == 4 and all(abs(m - level) < 10 for m in means), (path.name, means)


def test_a_stop_while_the_outputs_are_finished_that_then_fail_is_still_a_stop(
        tmp_path, detector, monkeypatch):
    # A stop arriving while summary.json is written waits for it (R33); a write that then failed
    # (a full disk) raised its error and the stop was lost: exit 2, not 143. Now the stop,
    # naming the failure (the CLI prints it as `error: ...; stopped (SIGTERM) after it`).
    import signal

    import sense_perception.replay.engine as engine
    from sense_perception.errors import BagError
    from sense_perception.stops import Stops, StoppedAfterFailure, exit_code

    stops = Stops()

    def write_summary(path, summary, **options):
        stops.stop(signal.SIGTERM, None)  # as the signal handler does: kept for the block's end
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine, "write_summary", write_summary)
    out = tmp_path / "out"
    with pytest.raises(StoppedAfterFailure) as stopped:
        Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[FRONT]), detector=detector,
                 stops=stops).run()
    assert exit_code(stopped.value) == 143
    failure = stopped.value.failure
    assert isinstance(failure, BagError) and "summary.json" in str(failure)
    assert "the output disk is full" in str(failure)
    assert (out / INCOMPLETE_FILE).exists()  # the partial outputs stay marked


def test_the_bag_and_videos_are_on_disk_before_the_summary_declares_them(
        tmp_path, detector, monkeypatch):
    """The output bag (MCAP, metadata.yaml) and the videos were closed unflushed (rosbags and
    OpenCV never fsync), while summary.json after them was flushed (R63): a power cut soon after
    a replay could leave a summary (and a fleet bag resume takes as done) declaring a bag or a
    video that is cut short or missing. Each is now fsynced once at close, then its folder and
    --out, all before the summary's temp file (R66)."""
    import os

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "out"
    _replay(out, detector).run()
    summary_at = synced.index(str(out / ".summary.json.tmp"))
    before = synced[:summary_at]
    [mcap] = (out / "bag").glob("*.mcap")
    for path in (mcap, out / "bag" / "metadata.yaml", out / FRONT_VIDEO, out / WINDSHIELD_VIDEO,
                 out / "bag", out / "video", out):
        assert str(path) in before, (path, synced)
    assert len(synced) < 20  # once per file at close, not per frame


def _failing_close(bag) -> None:
    """rosbags' close fails as on a full disk (before metadata.yaml is renamed into place)."""
    def close() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    bag._writer.close = close


def test_a_bag_that_fails_before_it_is_closed_removes_its_metadata_temp_and_nothing_else(
        tmp_path):
    """R90: an output bag that failed before it was closed left the empty metadata.yaml.tmp the
    writer made (R88) in bag/, beside the incomplete marker. It is removed now on that failure
    path, and only if it is still the very file the bag made: another file put under its name
    is left as it is."""
    from rosbags.typesys import Stores, get_typestore

    from sense_perception.replay.writer import OutputBag

    store = get_typestore(Stores.ROS2_JAZZY)
    bag = OutputBag(tmp_path / "ours", store, name="x")
    assert (tmp_path / "ours" / "metadata.yaml.tmp").is_file()
    _failing_close(bag)
    with pytest.raises(OutputWriteError, match="the output disk is full"):
        bag.close()
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["x.mcap"]

    bag = OutputBag(tmp_path / "theirs", store, name="x")
    temp = tmp_path / "theirs" / "metadata.yaml.tmp"
    temp.unlink()
    temp.write_text("not the bag's\n")  # another file (inode) under the name
    _failing_close(bag)
    with pytest.raises(OutputWriteError):
        bag.close()
    assert temp.read_text() == "not the bag's\n"
