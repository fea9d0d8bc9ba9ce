"""A camera's calibration for ground positions: intrinsics, distortion and its mount on the vehicle.

One type, :class:`CameraCalibration`, read from every source the same way (:func:`from_dict`): a
``--calibration FILE`` JSON, a ground-truth camera's ``calibration``, a sensor_msgs/CameraInfo plus
the base_link -> optical-frame transform of ``/tf_static``, or a mount given as height, pitch and
roll (:func:`mount_transform`). Every value is checked; a wrong one is a :class:`CalibrationError`
naming the field and the fix. Nothing is guessed: without a calibration there is no 3-D.

Frames: base_link is REP-103/105 (x forward, y left, z up, origin on the road surface); the camera
frame is the optical frame (z forward, x right, y down). ``T_base_link_camera`` maps a point of the
camera frame into base_link: ``p_base = T @ p_cam``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import ConfigError
from ...fileio import read_regular_file
from .camera_info_fields import ROI_FIELDS, binning_and_roi, get_field, getter

# distortion_model -> the numbers of coefficients D may have (ROS CameraInfo names).
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (4, 5), "rational_polynomial": (8, 12, 14), "none": (0,),
}
_ORTHONORMAL_TOL = 1e-3
# A calibration is well under a kB; a bigger file is refused rather than read into memory.
MAX_CALIBRATION_BYTES = 1 << 20
# The optical frame's rotation from base_link's camera body frame (x forward, y left, z up):
# optical z -> body x, optical x -> body -y, optical y -> body -z.
_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
# A camera on a vehicle: its optical centre at most 10 m above the road (the mount_height
# parameter's range) and within 100 m of base_link. Beyond, the mount is not in metres (a URDF in
# millimetres) or not this vehicle's, and the estimates would be absurd (thousands of km) or
# overflow to inf/nan.
MAX_MOUNT_HEIGHT_M = 10.0
MAX_MOUNT_OFFSET_M = 100.0
# The most a camera's image rows may tilt from level (its roll about the viewing direction):
# the ground positions take a box's bottom centre for the object's contact with the road, which a
# rolled camera moves sideways off it, along a row that is no longer level. On PandaSet's front
# camera the placements stay inside 2 sigma up to 5 degrees; at 15 most are beyond 3 sigma, at 45
# a pedestrian 30 m away was placed at 46 m, at 80 degrees (a portrait mount) at 110 m.
MAX_ROLL_DEG = 5.0
# A focal length between 1/100 and 100 times the image's larger side (a field of view between
# 0.6 and 178 degrees): outside, K is not in pixels of this image, and rays come out inf or nan.
_FOCAL_RANGE = (0.01, 100.0)


class CalibrationError(ConfigError):
    """A camera calibration is missing a field, has a wrong value or an impossible mount."""


@dataclass(frozen=True)
class CameraCalibration:
    """Intrinsics, distortion and mount of one camera.

    Attributes:
        K: (3, 3) pinhole camera matrix, pixels.
        D: distortion coefficients (empty for ``none``).
        distortion_model: ``plumb_bob``, ``rational_polynomial`` or ``none`` (rectified images).
        width, height: image size in pixels the calibration is for.
        T_base_link_camera: (4, 4) optical frame -> base_link, ``p_base = T @ p_cam``.
        source: where it came from, for messages (a file, a topic, parameters).
    """

    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    width: int
    height: int
    T_base_link_camera: np.ndarray
    source: str = ""

    @property
    def camera_height(self) -> float:
        """Height of the optical centre above the road (base_link z), metres."""
        return float(self.T_base_link_camera[2, 3])

    @property
    def focal(self) -> tuple[float, float]:
        """(fx, fy) in pixels."""
        return float(self.K[0, 0]), float(self.K[1, 1])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form :func:`from_dict` reads (``--calibration FILE``)."""
        return {"K": self.K.tolist(), "D": self.D.tolist(),
                "distortion_model": self.distortion_model, "width": self.width,
                "height": self.height, "T_base_link_camera": self.T_base_link_camera.tolist()}

    def for_image(self, width: int, height: int, where: str = "") -> "CameraCalibration":
        """This calibration, checked against the size of the image it is used on.

        Raises:
            CalibrationError: the image is another size (the intrinsics would be wrong).
        """
        if (int(width), int(height)) != (self.width, self.height):
            raise CalibrationError(
                f"{where or self.source}: the calibration is for {self.width}x{self.height} "
                f"images but the image is {width}x{height}; fix: calibrate at the resolution the "
                "camera publishes (or scale K with the image)")
        return self


def _matrix(value: Any, shape: tuple[int, ...], name: str, where: str) -> np.ndarray:
    flat = int(np.prod(shape))
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: {name} must be numbers in a {shape} array (row-major), "
                               f"got {str(value)[:80]}") from None
    if array.shape != shape and array.size == flat and array.ndim == 1:
        array = array.reshape(shape)  # ROS CameraInfo's k is 9 numbers, row-major
    if array.shape != shape:
        raise CalibrationError(f"{where}: {name} must be {'x'.join(map(str, shape))} (row-major), "
                               f"got shape {'x'.join(map(str, array.shape)) or 'scalar'}")
    if not np.isfinite(array).all():
        raise CalibrationError(f"{where}: {name} has a non-finite number (nan or inf)")
    return array


def _check_intrinsics(K: np.ndarray, width: int, height: int, where: str) -> None:
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        raise CalibrationError(f"{where}: K's focal lengths must be > 0 pixels, got fx={fx:g}, "
                               f"fy={fy:g}; fix: calibrate the camera (an all-zero K is an "
                               "uncalibrated one) and publish or give its K")
    low, high = (bound * max(width, height) for bound in _FOCAL_RANGE)
    if not (low <= fx <= high and low <= fy <= high):
        raise CalibrationError(
            f"{where}: K's focal lengths fx={fx:g}, fy={fy:g} are not those of a {width}x{height} "
            f"camera (a field of view between 0.6 and 178 degrees needs {low:g} to {high:g} "
            "pixels); fix: K is in pixels, for the images' resolution")
    if abs(K[0, 1]) > fx:
        raise CalibrationError(f"{where}: K's skew {K[0, 1]:g} exceeds fx={fx:g} (image axes less "
                               "than 45 degrees apart); fix: K is [[fx, 0, cx], [0, fy, cy], "
                               "[0, 0, 1]] for a camera's pixels")
    if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise CalibrationError(f"{where}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got "
                               f"{K.tolist()}")
    if not (0 <= cx <= width and 0 <= cy <= height):
        raise CalibrationError(f"{where}: K's principal point ({cx:g}, {cy:g}) lies outside the "
                               f"{width}x{height} image; fix: K is for another resolution")


def check_mount(T: np.ndarray, where: str) -> None:
    """Refuse a ``T_base_link_camera`` that is not a camera mount (CalibrationError, with the fix)."""
    if not np.isfinite(T).all():  # the mount parameters reach here without from_dict's check
        raise CalibrationError(f"{where}: T_base_link_camera has a non-finite number (nan or "
                               f"inf): {T.tolist()}")
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        raise CalibrationError(f"{where}: T_base_link_camera's last row must be [0, 0, 0, 1], "
                               f"got {T[3].tolist()}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=_ORTHONORMAL_TOL) or np.linalg.det(R) <= 0:
        raise CalibrationError(f"{where}: T_base_link_camera's 3x3 part is not a rotation "
                               f"(orthonormal, determinant +1): {np.round(R, 4).tolist()}")
    if T[2, 3] <= 0:
        raise CalibrationError(
            f"{where}: T_base_link_camera puts the camera {T[2, 3]:.3f} m from the road (z must be "
            "> 0: base_link's origin is on the road); fix: T maps camera -> base_link (p_base = "
            "T @ p_cam), not its inverse, and base_link's origin must be on the ground")
    offset = float(np.abs(T[:2, 3]).max())
    if T[2, 3] > MAX_MOUNT_HEIGHT_M or offset > MAX_MOUNT_OFFSET_M:
        raise CalibrationError(
            f"{where}: T_base_link_camera puts the camera at ({T[0, 3]:g}, {T[1, 3]:g}, "
            f"{T[2, 3]:g}) m in base_link; a camera on the vehicle is at most "
            f"{MAX_MOUNT_HEIGHT_M:g} m above the road and {MAX_MOUNT_OFFSET_M:g} m from base_link; "
            "fix: the translation is in metres (not millimetres) and T maps the camera's optical "
            "frame into base_link")
    if R[2, 2] > 0.5:
        raise CalibrationError(
            f"{where}: T_base_link_camera's optical axis (z) points up, {math.degrees(math.asin(min(1.0, R[2, 2]))):.0f} "
            "degrees above the horizon; fix: give the optical frame (z forward, x right, y "
            "down), not camera_link (x forward, z up)")
    if R[2, 1] >= 0:
        raise CalibrationError(
            f"{where}: T_base_link_camera's image y axis does not point down (base_link z "
            f"component {R[2, 1]:.2f}); fix: give the optical frame (z forward, x right, y down), "
            "and T maps camera -> base_link (p_base = T @ p_cam), not its inverse")
    roll = math.degrees(math.asin(min(1.0, abs(float(R[2, 0])))))
    if roll > MAX_ROLL_DEG:
        raise CalibrationError(
            f"{where}: T_base_link_camera rolls the camera {roll:.1f} degrees about its viewing "
            f"direction (its image rows tilt that much from level); ground positions take a box's "
            f"bottom centre for the object's contact with the road, which holds for a camera level "
            f"within {MAX_ROLL_DEG:g} degrees (rolled further, objects are placed metres off with "
            "a confident covariance); fix: check the mount's roll (a camera mounted on its side, "
            "portrait, is not supported for ground positions)")


def from_dict(doc: Any, where: str) -> CameraCalibration:
    """Read and check a calibration ``{K, D, distortion_model, width, height, T_base_link_camera}``.

    Raises:
        CalibrationError: a missing or wrong field, naming it and the fix.
    """
    if not isinstance(doc, Mapping):
        raise CalibrationError(f"{where}: a calibration is an object with K, D, "
                               "distortion_model, width, height, T_base_link_camera")
    missing = [k for k in ("K", "width", "height", "T_base_link_camera") if k not in doc]
    if missing:
        raise CalibrationError(f"{where}: the calibration has no {', '.join(missing)} (it needs "
                               "K, D, distortion_model, width, height, T_base_link_camera)")
    sizes = []
    for side in ("width", "height"):
        value = doc[side]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                or not float(value).is_integer():
            raise CalibrationError(f"{where}: {side} must be a whole number of pixels > 0, got "
                                   f"{value!r}")
        sizes.append(int(value))
    width, height = sizes
    K = _matrix(doc["K"], (3, 3), "K", where)
    _check_intrinsics(K, width, height, where)
    model = doc.get("distortion_model", "none" if not doc.get("D") else None)
    raw_d = doc.get("D", [])
    if model is None:
        raise CalibrationError(f"{where}: D is given without distortion_model; fix: name it "
                               f"({', '.join(DISTORTION_MODELS)})")
    if not isinstance(model, str) or model.strip() not in DISTORTION_MODELS and model.strip():
        raise CalibrationError(f"{where}: distortion_model {model!r} is not supported; use one of "
                               f"{', '.join(DISTORTION_MODELS)} (images from other models: "
                               "rectify them first and give 'none')")
    model = model.strip() or "none"  # CameraInfo leaves it empty for rectified images
    if not isinstance(raw_d, (list, tuple)):
        raise CalibrationError(f"{where}: D must be a list of numbers, got {str(raw_d)[:80]}")
    D = _matrix(list(raw_d), (len(raw_d),), "D", where)
    if model == "none" and D.size and np.any(D != 0):
        raise CalibrationError(f"{where}: distortion_model 'none' with non-zero D {D.tolist()}; "
                               "fix: name the model of D (plumb_bob, rational_polynomial)")
    if model == "none":
        D = np.zeros(0)
    elif D.size not in DISTORTION_MODELS[model]:
        raise CalibrationError(f"{where}: distortion_model {model} takes "
                               f"{' or '.join(map(str, DISTORTION_MODELS[model]))} coefficients in "
                               f"D, got {D.size}")
    T = _matrix(doc["T_base_link_camera"], (4, 4), "T_base_link_camera", where)
    check_mount(T, where)
    return CameraCalibration(K, D, model, width, height, T, where)


def load_calibration(path: Path) -> CameraCalibration:
    """Read ``--calibration FILE`` (JSON, :func:`from_dict`'s fields).

    Raises:
        CalibrationError: unreadable file or a wrong field.
    """
    path = Path(path)
    try:  # a FIFO or /dev/zero is refused, never waited on or read without end
        doc = json.loads(read_regular_file(path, MAX_CALIBRATION_BYTES))
    except OSError as exc:
        raise CalibrationError(f"--calibration {path}: cannot read it ({exc.strerror or exc})") \
            from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's advice would not help a user
            raise CalibrationError(f"--calibration {path}: not readable JSON: a number with "
                                   "thousands of digits; no calibration value is that long") \
                from None
        raise CalibrationError(f"--calibration {path}: not readable JSON: {exc}") from None
    except RecursionError:  # a 100 kB file of nested brackets ended detect in a traceback
        raise CalibrationError(f"--calibration {path}: not readable JSON: nested too deeply (a "
                               "calibration is one object of numbers and lists)") from None
    return from_dict(doc, f"--calibration {path}")


def mount_transform(height: float, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0,
                    x: float = 0.0, y: float = 0.0) -> np.ndarray:
    """``T_base_link_camera`` of a camera ``height`` m above the road, turned by REP-103 angles.

    Args:
        height: optical centre above the road, metres (> 0).
        pitch: radians, positive looks down (rotation about base_link y).
        roll: radians about the viewing direction (positive: right side down).
        yaw: radians, positive looks left.
        x, y: position of the optical centre in base_link, metres.
    """
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    T = np.eye(4)
    T[:3, :3] = rz @ ry @ rx @ _BODY_FROM_OPTICAL
    T[:3, 3] = (x, y, height)
    return T


def _numbers(value: Any, name: str, where: str) -> np.ndarray:
    """A CameraInfo array field (a list, a message's array or None) as a flat float array."""
    try:
        return np.zeros(0) if value is None else np.asarray(list(value), np.float64).ravel()
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: {name} must be numbers, got {str(value)[:80]}") from None


def _rectified(get: Any, T_base_link_camera: np.ndarray, where: str
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """K, mount and what was used for images rectified with a CameraInfo's P and R (REP 104).

    A rectified image is projected by P = K' [I | t] from a frame turned by R from the optical
    frame: K' is P's left 3x3, and the mount is moved to that (virtual) camera. A P left all zero
    (a driver that does not fill it) is taken as K only where D is zero too: then the raw image is
    the rectified one; otherwise K and D describe another image than the one received.

    Raises:
        CalibrationError: P or R is not a rectified camera's, or P is zero beside a non-zero D.
    """
    p = _numbers(get("p", None), "P", where)
    if p.size == 0 or (np.isfinite(p).all() and not np.any(p)):
        distorted = bool(np.any(_numbers(get("d", None), "D", where)))
        if distorted:
            raise CalibrationError(
                f"{where}: the images are rectified (an image_rect topic) but the CameraInfo's P, "
                "the rectified image's projection, is all zero, and K with D describe the raw, "
                "distorted image; fix: publish P and R with the CameraInfo (camera_calibration "
                "and image_proc fill them), or subscribe the raw image (image_raw) that K and D "
                "describe")
        return _matrix(list(get("k", [])), (3, 3), "K", where), np.asarray(
            T_base_link_camera, np.float64), "K (D zero: the raw image is the rectified one)"
    P = _matrix(p, (3, 4), "P", where)
    K = P[:, :3].copy()
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2].tolist() != [0.0, 0.0, 1.0]:
        raise CalibrationError(f"{where}: the CameraInfo's P {P.tolist()} is not a rectified "
                               "camera's projection [[fx', 0, cx', Tx], [0, fy', cy', Ty], [0, 0, 1, "
                               "0]]; fix: publish the P camera_calibration computed")
    raw_r = _numbers(get("r", None), "R", where)
    R = np.eye(3) if not raw_r.size else _matrix(raw_r, (3, 3), "R", where)
    if not np.any(R):
        R = np.eye(3)  # left unset by the driver: a monocular camera's identity
    if not np.allclose(R.T @ R, np.eye(3), atol=_ORTHONORMAL_TOL) or np.linalg.det(R) <= 0:
        raise CalibrationError(f"{where}: the CameraInfo's R is not a rotation: "
                               f"{np.round(R, 4).tolist()}; fix: publish the R camera_calibration "
                               "computed (identity for a monocular camera)")
    shift = np.linalg.solve(K, P[:, 3])  # P = K' [I | shift]: the camera sits at -shift
    to_rectified = np.eye(4)
    to_rectified[:3, :3] = R.T
    to_rectified[:3, 3] = -(R.T @ shift)
    return K, np.asarray(T_base_link_camera, np.float64) @ to_rectified, "P and R"


def _whole(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise CalibrationError(f"{where}: the CameraInfo's {name} must be a whole number >= 0, got "
                               f"{str(value)[:40]}")
    return int(value)


def _binning_and_roi(info: Any, K: np.ndarray, where: str) -> tuple[np.ndarray, int, int, str]:
    """K, width and height of the image a CameraInfo's ``binning_x``/``binning_y`` and ``roi``
    describe (REP 104: K, P, width and height are the full sensor's; the image published is the
    ROI, binned), as ROS's image_geometry adjusts them, and a note of what was applied ("" when
    nothing).

    Raises:
        CalibrationError: a binning or ROI that leaves no pixel or lies outside the sensor.
    """
    width, height = get_field(info, "width", 0), get_field(info, "height", 0)
    binning_x, binning_y, roi = binning_and_roi(info)
    bx = _whole(binning_x or 0, "binning_x", where) or 1  # 0 is the same as 1
    by = _whole(binning_y or 0, "binning_y", where) or 1
    x0, y0, rw, rh = (_whole(value or 0, f"roi.{name}", where)
                      for name, value in zip(ROI_FIELDS, roi or (0, 0, 0, 0), strict=True))
    if bx == by == 1 and not (x0 or y0 or rw or rh):
        return K, width, height, ""
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))):
        return K, width, height, ""  # from_dict names the wrong size
    rw, rh = rw or int(width), rh or int(height)
    if x0 + rw > width or y0 + rh > height:
        raise CalibrationError(
            f"{where}: the CameraInfo's roi ({x0}, {y0}, {rw}x{rh}) reaches outside its "
            f"{width}x{height} sensor; fix: the roi is in full-resolution pixels of the "
            "calibrated sensor (REP 104)")
    if rw // bx < 1 or rh // by < 1:
        raise CalibrationError(f"{where}: the CameraInfo's binning {bx}x{by} leaves no pixel of its "
                               f"{rw}x{rh} image; fix: binning_x and binning_y are the sensor "
                               "pixels per image pixel (0 or 1: none)")
    K = K.astype(np.float64).copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    K[0] /= bx
    K[1] /= by
    note = ", ".join(part for part in (f"roi {rw}x{rh} at ({x0}, {y0})" if (x0, y0, rw, rh) != (
        0, 0, width, height) else "", f"binning {bx}x{by}" if (bx, by) != (1, 1) else "") if part)
    return K, rw // bx, rh // by, note


def image_intrinsics(info: Any, where: str, rectified: bool = False) -> dict[str, Any]:
    """The intrinsics of the image a CameraInfo describes, for users of K alone (the cabin's
    head pose, which has no mount): CameraInfo fields ``{"k", "d", "distortion_model",
    "width", "height"}`` with a rectified image's P (``rectified``: no distortion; R turns only
    the mount, left to :func:`from_camera_info`) and the binning and roi applied (REP 104), and
    ``note``: what was applied ("" when nothing).

    Raises:
        CalibrationError: P, R, the binning or the roi cannot describe the image (named).
    """
    get = getter(info)
    notes = []
    if rectified:
        K, _, used = _rectified(get, np.eye(4), where)
        d: list[Any] = []
        model = "none"
        notes.append(f"rectified images: {used}")
    else:
        K = _matrix(list(get("k", [])), (3, 3), "K", where)
        d, model = list(get("d", []) or []), str(get("distortion_model", "") or "")
    K, width, height, reduced = _binning_and_roi(info, K, where)
    return {"k": K.ravel().tolist(), "d": d, "distortion_model": model, "width": width,
            "height": height, "note": ", ".join(notes + ([reduced] if reduced else []))}


def from_camera_info(info: Any, T_base_link_camera: np.ndarray, where: str,
                     rectified: bool = False) -> CameraCalibration:
    """A calibration from a sensor_msgs/CameraInfo (message or dict with ``k``, ``d``,
    ``distortion_model``, ``width``, ``height``; ``p`` and ``r`` for rectified images;
    ``binning_x``, ``binning_y`` and ``roi`` when set) and the mount (from /tf_static or
    parameters).

    Args:
        rectified: the images are rectified (:func:`~sense_perception.core.output.topics.rectified_topic`): placed with the
            CameraInfo's P and R, no distortion (REP 104), as Autoware's fusion projects into a
            rectified image; K and D describe the raw image.

    The binning and ROI (REP 104: the image published is that part of the calibrated sensor,
    binned) adjust K (or P) and the size as ROS's image_geometry does.
    """
    get = getter(info)
    if rectified:
        K, mount, used = _rectified(get, T_base_link_camera, where)
        D: list[Any] = []
        model = "none"
        where = f"{where}, rectified images: {used}"
    else:
        K, mount = _matrix(list(get("k", [])), (3, 3), "K", where), np.asarray(T_base_link_camera)
        D, model = list(get("d", [])), get("distortion_model", "")
    K, width, height, reduced = _binning_and_roi(info, K, where)
    return from_dict({"K": K.tolist(), "D": D, "distortion_model": model, "width": width,
                      "height": height, "T_base_link_camera": np.asarray(mount).tolist()},
                     f"{where}, {reduced}" if reduced else where)
