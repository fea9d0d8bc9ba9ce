"""CameraInfo checks: what Autoware's camera-LiDAR fusion would silently ignore (ROS-free).

Autoware's fusion nodes take a camera's first CameraInfo and ignore it, with only a log line, unless
``distortion_model`` is ``plumb_bob`` or ``rational_polynomial`` with 5 or 8 coefficients in D; a K
of zeros projects nothing, nor does a nan or inf in K, D or P, a P of zeros (the fusion projects
through P, rectified images or raw) puts every point on pixel (0, 0), a size of 0 keeps no
point (the fusion bounds its projections by the CameraInfo's width and height) and a size other
than the images' misplaces them, and the ROIs' frame_id (the image's)
must be the camera's optical frame the calibration belongs to. Such a camera then contributes
nothing to fusion, without an error.
:func:`camera_info_problems` names each of these problems with its fix; :class:`CameraInfoWatch`
keeps them per camera so a node warns once per problem and shows them in /diagnostics.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..geometry.camera_info_fields import binning_and_roi, get_field, getter

#: The distortion models Autoware's fusion accepts, and the D lengths it accepts.
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial")
D_LENGTHS = (5, 8)


#: Longest piece of a received text (distortion_model, frame_id) quoted in a problem.
MAX_QUOTED = 64


def _quoted(text: str) -> str:
    """``text`` for a problem sentence: repr, cut to :data:`MAX_QUOTED` characters (a publisher
    may send megabytes)."""
    if len(text) <= MAX_QUOTED:
        return repr(text)
    return repr(text[:MAX_QUOTED]) + f"... ({len(text)} characters)"


def _published_size(info: Any) -> tuple[int, int] | None:
    """(width, height) of the image a CameraInfo describes: its size, or its roi's, divided by
    its binning (REP 104, as image_geometry reduces it); None when they are no whole numbers."""
    binning_x, binning_y, roi = binning_and_roi(info)
    _, _, roi_width, roi_height = roi or (0, 0, 0, 0)
    try:
        width, height = int(get_field(info, "width") or 0), int(get_field(info, "height") or 0)
        if int(roi_width or 0) or int(roi_height or 0):
            width, height = int(roi_width or 0), int(roi_height or 0)
        return width // max(1, int(binning_x or 1)), height // max(1, int(binning_y or 1))
    except (TypeError, ValueError):
        return None


def camera_info_problems(info: Any, image_frame_id: str | None = None,
                         image_size: tuple[int, int] | None = None) -> list[str]:
    """What in a sensor_msgs/CameraInfo makes Autoware's fusion ignore or misplace the camera.

    Args:
        info: the CameraInfo (rclpy or rosbags message, or an equal dict).
        image_frame_id: frame_id of the camera's images; None when no image was seen yet (the
            frame ids are then not compared).
        image_size: (width, height) of the camera's images; None when no image was seen yet (the
            sizes are then not compared).

    Returns:
        One sentence per problem, with the fix; empty when Autoware would use it.
    """
    problems = []
    get = getter(info)
    model = str(get("distortion_model") or "")
    if model not in DISTORTION_MODELS:
        problems.append(f"distortion_model is {_quoted(model)}: Autoware's fusion accepts only "
                        f"{' or '.join(DISTORTION_MODELS)} (fix the camera driver's calibration file)")
    d = np.asarray(get("d") if get("d") is not None else [], np.float64).reshape(-1)
    if d.size not in D_LENGTHS:
        problems.append(f"D has {d.size} coefficients: Autoware's fusion accepts 5 (plumb_bob) or 8 "
                        "(rational_polynomial)")
    k = np.asarray(get("k") if get("k") is not None else [], np.float64).reshape(-1)
    if k.size != 9 or not np.any(k):
        problems.append("K is all zero: the camera is not calibrated (calibrate it, e.g. with "
                        "camera_calibration, and publish the result)")
    raw_p = get("p")  # every message has one (a dict built by hand may leave it out)
    p = np.asarray(raw_p if raw_p is not None else [], np.float64).reshape(-1)
    if raw_p is not None and (p.size != 12 or not np.any(p)):
        problems.append("P is all zero: Autoware's fusion projects every point through P "
                        "(image_geometry's project3dToPixel, for rectified and raw images alike), "
                        "so all of them land on pixel (0, 0) (publish the P camera_calibration "
                        "computes; for images that are not rectified, [fx, 0, cx, 0, 0, fy, cy, 0, "
                        "0, 0, 1, 0] from K)")
    for name, values in (("K", k), ("D", d), ("P", p)):
        if not np.isfinite(values).all():  # Autoware would project every point to nan
            problems.append(f"{name} has a non-finite number (nan or inf): the fusion would "
                            "project nothing where it belongs (fix the camera driver's "
                            "calibration file)")
    width, height = get("width"), get("height")  # (a dict by hand may leave them out)
    if width is None or height is None:
        pass
    elif not width or not height:
        problems.append(f"the size is {width}x{height}: Autoware's fusion keeps only the points that "
                        "project inside the CameraInfo's width and height, so none (publish the "
                        "calibrated image size with the CameraInfo)")
    elif image_size is not None and (published := _published_size(info)) is not None \
            and tuple(published) != tuple(image_size):
        problems.append(f"the size {published[0]}x{published[1]} (with its binning and roi) "
                        f"differs from the images' {image_size[0]}x{image_size[1]}: Autoware's "
                        "fusion projects into the CameraInfo's pixels while the ROIs are in the "
                        "image's (publish the CameraInfo of the image the camera sends: rescale K "
                        "and P with a resized image)")
    header = get("header")
    frame_id = str((get_field(header, "frame_id") if header is not None else "") or "")
    if not frame_id:
        problems.append("header.frame_id is empty: Autoware cannot place the camera in TF (set the "
                        "camera's optical frame)")
    elif image_frame_id is not None and frame_id != image_frame_id:
        problems.append(f"header.frame_id {_quoted(frame_id)} differs from the images' "
                        f"{_quoted(image_frame_id)}: "
                        "Autoware looks the ROIs up in TF by the image's frame (make the camera driver "
                        "use one optical frame for both)")
    return problems


#: Problems remembered as reported, per camera.
MAX_REPORTED = 32
#: Problems told one by one per camera (a log line or a replay note each); a CameraInfo that
#: brings new ones with every message (its frame_id changing) is then told once more, that the
#: rest are not, and /diagnostics keeps showing the current ones.
MAX_TOLD = 8


class CameraInfoWatch:
    """The CameraInfo problems of each camera, each reported once (thread-safe).

    Args:
        cameras: the camera (image) topics, in input order.
    """

    def __init__(self, cameras: list[str]) -> None:
        self._lock = threading.Lock()
        self._frame_ids: dict[str, str | None] = dict.fromkeys(cameras)
        self._sizes: dict[str, tuple[int, int] | None] = dict.fromkeys(cameras)
        self._infos: dict[str, Any] = dict.fromkeys(cameras)
        self._problems: dict[str, list[str]] = {c: [] for c in cameras}
        # problems already reported, per camera, oldest first; bounded, since a camera whose
        # frame_id changes every frame names a new frame in every problem text
        self._reported: dict[str, dict[str, None]] = {c: {} for c in cameras}
        self._told: dict[str, int] = dict.fromkeys(cameras, 0)  # problems told, per camera

    def image_frame(self, camera: str, frame_id: str,
                    size: tuple[int, int] | None = None) -> list[str]:
        """Note the frame_id (and size) of an image of ``camera``; returns the problems not
        reported before."""
        with self._lock:
            size = None if size is None else (int(size[0]), int(size[1]))
            if self._frame_ids.get(camera) == frame_id and self._sizes.get(camera) == size:
                return []  # the usual case: the same frame as before, nothing to check again
            self._frame_ids[camera] = frame_id
            self._sizes[camera] = size
            return self._check(camera)

    def camera_info(self, camera: str, info: Any) -> list[str]:
        """Check a CameraInfo of ``camera``; returns the problems not reported before."""
        with self._lock:
            self._infos[camera] = info
            return self._check(camera)

    def _check(self, camera: str) -> list[str]:
        info = self._infos.get(camera)
        if info is None:
            return []
        problems = camera_info_problems(info, self._frame_ids.get(camera), self._sizes.get(camera))
        self._problems[camera] = problems
        reported = self._reported.setdefault(camera, {})
        new = [p for p in problems if p not in reported]
        for problem in new:
            reported[problem] = None
            if len(reported) > MAX_REPORTED:
                del reported[next(iter(reported))]  # forget the oldest
        told = self._told.get(camera, 0)
        if told >= MAX_TOLD or not new:
            return []
        # Bounded: a CameraInfo bringing new problems with every message (its frame_id or
        # distortion_model changing) would give a log line or a replay note per message.
        new = new[:MAX_TOLD - told]
        self._told[camera] = told + len(new)
        if self._told[camera] >= MAX_TOLD:
            new.append(f"{MAX_TOLD} problems told; further ones are not told one by one (the "
                       "CameraInfo changes from message to message: fix the camera driver), "
                       "/diagnostics shows the current ones")
        return new

    def status(self) -> dict[str, str]:
        """Per camera: ``ok``, ``no CameraInfo received`` or its problems, for /diagnostics."""
        with self._lock:
            return {c: "; ".join(p) if p else ("ok" if self._infos[c] is not None
                                               else "no CameraInfo received")
                    for c, p in self._problems.items()}

    def warnings(self) -> list[str]:
        """``<camera>: <problem>`` for every current problem (the diagnostic level is WARN)."""
        with self._lock:
            return [f"{c} CameraInfo: {p}" for c, ps in self._problems.items() for p in ps]


__all__ = ["CameraInfoWatch", "D_LENGTHS", "DISTORTION_MODELS", "MAX_QUOTED", "MAX_TOLD",
           "camera_info_problems"]
