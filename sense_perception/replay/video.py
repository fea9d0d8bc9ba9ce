"""Annotated MP4 per camera (OpenCV's FFmpeg backend, MPEG-4 Part 2 ``mp4v``).

opencv-python-headless wheels bundle FFmpeg, so no other dependency is needed. Each video plays in
bag time: frames are placed by their header stamps on a constant-rate grid, the previous frame held
over gaps (up to ``max_hold_s``), so a 1 Hz camera and a 30 Hz camera both play at true speed.
"""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import BagError
from ..fileio import fsync_dir, fsync_file, make_dirs, shared_mode
from .writer import OutputWriteError

FOURCC = "mp4v"


def video_name(topic: str) -> str:
    """File name of a topic's video: ``/camera/front/image_raw`` -> ``camera_front_image_raw.mp4``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", topic.strip("/")) + ".mp4"


def draw_caption(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` on a dark band at the top of ``image`` (in place; returns it)."""
    height, width = image.shape[:2]
    scale = max(0.5, min(width, height) / 900)
    (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = th + base + 8
    image[:band] = (image[:band] * 0.35).astype(np.uint8)
    cv2.putText(image, text, (6, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return image


class CameraVideo:
    """One camera's MP4, opened on the first frame (its size fixes the video size).

    Args:
        path: output file.
        fps: frame rate of the video grid, e.g. the camera's nominal rate.
        max_hold_s: longest gap filled by repeating the previous frame.
        private: create the file mode 0600 whatever the umask (the cabin camera's video shows
            the driver's face: other users of the machine must not read it); else the umask's
            mode, never writable by group or others (:func:`~sense_perception.fileio.shared_mode`).
        private_folder: a folder made for it is 0700 (default: as ``private``), else shared.
    """

    def __init__(self, path: Path, fps: float, max_hold_s: float = 2.0,
                 private: bool = False, private_folder: bool | None = None) -> None:
        self.path = Path(path)
        self.private = private
        self.private_folder = private if private_folder is None else private_folder
        self.fps = float(min(max(fps, 1.0), 60.0))
        self.max_hold = max(1, int(round(max_hold_s * self.fps)))
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self._slots = 0  # grid slots written so far
        self._last: np.ndarray | None = None
        self._last_t = 0.0  # the previous frame's stamp
        self.frames = 0  # source frames written

    def _open(self, width: int, height: int) -> None:
        # Made here first, with its mode and never through a link; OpenCV then truncates and
        # fills this very file (it keeps the inode and the mode). Left to OpenCV, an exterior
        # video was 0666 under umask 000, its folder 0777 (R88).
        try:
            make_dirs(self.path.parent, 0o700 if self.private_folder else shared_mode(0o777))
            self.path.unlink(missing_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600 if self.private else shared_mode(0o666)))
        except OSError as exc:
            raise BagError(f"video {self.path} cannot be created: {exc.strerror or exc}; "
                           "check the directory is writable") from exc
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*FOURCC), self.fps, (width, height))
        if not writer.isOpened():
            raise BagError(f"video {self.path} cannot be written with OpenCV's '{FOURCC}' codec; "
                           "check the directory is writable, or replay without --video")
        self._writer = writer
        self._size = (width, height)

    def write(self, bgr: np.ndarray, t: float) -> None:
        """Add a BGR frame stamped ``t`` seconds (header time)."""
        if self._writer is None:
            self._open(bgr.shape[1], bgr.shape[0])
            self._t0 = t
        assert self._writer is not None and self._size is not None and self._t0 is not None
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        slot = int(round((t - self._t0) * self.fps))
        if self._last is not None and (t < self._last_t or slot - self._slots > self.max_hold):
            # Time went back (a bag played in a loop, a simulator reset) or on by more than is
            # held: the grid goes on from this frame. On the first grid no frame after a step back
            # was held over a gap again until the stamps passed where they had been (a 1 Hz
            # camera played 10 times too fast), and after a jump ahead every frame was held
            # max_hold times (the video 21 times too long).
            slot = self._slots + (0 if t < self._last_t else self.max_hold)
            self._t0 = t - slot / self.fps
        self._last_t = t
        if self._last is not None:
            # hold the previous frame until this one's slot; a frame faster than the grid appends
            for _ in range(min(slot - self._slots, self.max_hold)):
                self._writer.write(self._last)
                self._slots += 1
        self._writer.write(bgr)
        self._slots += 1
        self._last = bgr
        self.frames += 1

    def close(self) -> None:
        """Finish the file, check it holds every frame written, and flush it to disk (a power
        cut soon after the replay left an MP4 cut short beside a summary that declares it done).

        Raises:
            OutputWriteError: the finished file does not (OpenCV's writer reports no write error:
                on a full disk it left an MP4 cut short, without its index, and the replay passed
                it as done), or it cannot be flushed to disk.
        """
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._check_written()
            try:  # OpenCV closes it unflushed: flushed once here, before a summary names it
                fsync_file(self.path)
            except OSError as exc:
                raise OutputWriteError(self.path, exc) from exc

    def _check_written(self) -> None:
        capture = cv2.VideoCapture(str(self.path))
        try:
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        finally:
            capture.release()
        if frames >= self._slots:
            return
        try:
            stat = os.statvfs(self.path.parent)
            full = stat.f_bavail * stat.f_frsize < (1 << 20)
        except OSError:
            full = False
        raise OutputWriteError(self.path, OSError(
            errno.ENOSPC if full else errno.EIO,
            os.strerror(errno.ENOSPC) if full else
            f"the video holds {frames} of the {self._slots} frames written (OpenCV could not "
            "write the rest)"))


class VideoSet:
    """The videos of all cameras of a replay, in ``directory``; ``private``: the folder is made
    0700 whatever the umask (it holds the cabin video), else :func:`~sense_perception.fileio.shared_mode`."""

    def __init__(self, directory: Path, fps_by_topic: dict[str, float], private: bool = False) -> None:
        self.directory = Path(directory)
        self.private = private
        self._fps = fps_by_topic
        self.videos: dict[str, CameraVideo] = {}
        self._names: dict[str, str] = {}  # topic -> its file name, each name one topic's

    def name_of(self, topic: str) -> str:
        """The file name of ``topic``'s video: :func:`video_name`, with ``_2``, ``_3``... before
        ``.mp4`` where another camera of this replay has that name. Two topics that differ only
        in ``/`` against ``_`` (``/camera/front_left/image_raw``, ``/camera/front/left/image_raw``)
        were written into one file, each camera's frames among the other's."""
        name = self._names.get(topic)
        if name is None:
            taken = set(self._names.values())
            name = first = video_name(topic)
            number = 2
            while name in taken:
                name = f"{first[:-len('.mp4')]}_{number}.mp4"
                number += 1
            self._names[topic] = name
        return name

    def write(self, topic: str, bgr: np.ndarray, t: float, private: bool = False) -> None:
        """Add an annotated frame of ``topic``; ``private``: its video is created mode 0600 (see
        :class:`CameraVideo`)."""
        video = self.videos.get(topic)
        if video is None:
            video = self.videos[topic] = CameraVideo(self.directory / self.name_of(topic),
                                                     self._fps.get(topic, 10.0), private=private,
                                                     private_folder=self.private)
        video.write(bgr, t)

    def close(self) -> list[Path]:
        """Finish every video; returns their paths. One that cannot be finished does not keep
        the others from being finished (their index written: it left them unplayable).

        Raises:
            OutputWriteError: the first video that could not be finished, once all are closed
                (:meth:`close_each` tells them apart).
        """
        paths, problems = self.close_each()
        if problems:
            raise problems[0][1]
        return paths

    def close_each(self) -> tuple[list[Path], list[tuple[str, OutputWriteError]]]:
        """Finish every video (each flushed to disk, then their folder); their paths, and
        (topic, error) of each that could not be.

        Raises:
            OutputWriteError: the folder's entries cannot be flushed to disk.
        """
        problems: list[tuple[str, OutputWriteError]] = []
        for topic, video in self.videos.items():
            try:
                video.close()
            except OutputWriteError as exc:
                problems.append((topic, exc))
        if self.videos:  # the videos' names in their folder, and the folder's in --out
            for folder in (self.directory, self.directory.parent):
                try:
                    fsync_dir(folder)
                except OSError as exc:
                    raise OutputWriteError(folder, exc) from exc
        return [v.path for v in self.videos.values()], problems
