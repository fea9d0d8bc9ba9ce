"""Head pose from the 468 mesh points: ``cv2.solvePnP`` against MediaPipe's canonical 3-D face.

Frames and conventions (also in docs/driver-monitoring.md and ``driver attention --help``):

* The camera optical frame (REP-103 ``*_optical``): x right, y down, z forward out of the lens.
* The head frame is the canonical face's: x towards the person's left (image right on a frontal
  face), y up, z out of the face (along the nose), origin inside the head, units metres.
* :attr:`HeadPose.rotation` maps head coordinates to camera coordinates; ``translation`` is the
  head origin in the camera frame. That is the pose published as geometry_msgs/PoseStamped.
* Angles, in degrees, relative to a face looking straight into the camera: **yaw** > 0 when the
  face turns towards the image's left (the person turns to their right), **pitch** > 0 chin up,
  **roll** > 0 when the head tilts counter-clockwise in the image as displayed. They are the
  intrinsic Y-X-Z Euler angles of the rotation in a viewer frame (x right, y up, z towards the
  camera): a mirrored image negates yaw and roll, and rolling the camera about its optical axis
  by theta shifts roll by theta.

Without a CameraInfo the intrinsics are the stated default: fx = fy = image width (a 53 degree
horizontal field of view), principal point at the image centre, no distortion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...core.geometry.camera_info_fields import binning_and_roi, getter
from ...core.runtime.model_registry import get_model
from ...errors import ModelError, SensePerceptionError
from .mesh import MESH_POINTS

#: Camera optical frame (y down, z forward) to the viewer frame the angles are defined in.
_OPTICAL_TO_VIEWER = np.diag([1.0, -1.0, -1.0])
#: Distortion models whose coefficients cv2 takes as they are (sensor_msgs/CameraInfo names).
SUPPORTED_DISTORTION = ("plumb_bob", "rational_polynomial")
DEFAULT_INTRINSICS = "default (fx = fy = image width, principal point at the centre, no distortion)"


class CameraInfoError(SensePerceptionError):
    """A CameraInfo message cannot give usable intrinsics (the default stays in use)."""


#: Plausible focal lengths, in image widths: 0.02 is a 175 degree field of view, 100 one of 0.6
#: degrees. Outside that, K is a unit or calibration mistake (fx = 1e-30 puts every face outside
#: the image, so the head pose would fail and a visible driver read as "no face").
FOCAL_RANGE = (0.02, 100.0)


def _check_plausible(k: np.ndarray, width: int, height: int) -> None:
    """Refuse a K no camera of ``width`` x ``height`` has, naming the value and the range."""
    lo, hi = FOCAL_RANGE[0] * width, FOCAL_RANGE[1] * width
    for name, value in (("fx", k[0, 0]), ("fy", k[1, 1])):
        if not lo <= value <= hi:
            raise CameraInfoError(
                f"CameraInfo {name} = {value:.6g} px is implausible for a {width}x{height} image "
                f"(expected {lo:.6g} to {hi:.6g} px, a field of view between 0.6 and 175 "
                "degrees); fix the calibration, or set camera_info_topic to \"\" to use the "
                "default intrinsics")
    for name, value, size in (("cx", k[0, 2], width), ("cy", k[1, 2], height)):
        if not -size <= value <= 2 * size:
            raise CameraInfoError(
                f"CameraInfo {name} = {value:.6g} px lies far outside the {width}x{height} image "
                "(the principal point is near its centre); fix the calibration, or set "
                "camera_info_topic to \"\" to use the default intrinsics")


def _binned_or_cropped(info: Any) -> bool:
    """A CameraInfo whose image is binned or a roi of the calibrated sensor (REP 104)."""
    binning_x, binning_y, roi = binning_and_roi(info)
    return (binning_x or 0) > 1 or (binning_y or 0) > 1 or (roi is not None and any(roi))


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics for solvePnP, in continuous image coordinates (pixel ``i`` spans
    ``[i, i + 1)``, the mesh's convention; CameraInfo's K is converted on the way in).

    Attributes:
        matrix: (3, 3) float64 K.
        distortion: distortion coefficients for cv2 (empty: none).
        width, height: the image size K belongs to.
        source: where they came from, in words (for diagnostics).
    """

    matrix: np.ndarray
    distortion: np.ndarray
    width: int
    height: int
    source: str = DEFAULT_INTRINSICS

    @property
    def is_default(self) -> bool:
        """True for the stated default, False for intrinsics from a CameraInfo."""
        return self.source == DEFAULT_INTRINSICS

    @classmethod
    def default(cls, width: int, height: int) -> "CameraIntrinsics":
        """fx = fy = ``width``, principal point at the image centre, no distortion."""
        k = np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0], [0.0, 0.0, 1.0]])
        return cls(k, np.zeros(0), int(width), int(height), DEFAULT_INTRINSICS)

    @classmethod
    def from_camera_info(cls, info: Any, rectified: bool = False) -> "CameraIntrinsics":
        """Intrinsics of a sensor_msgs/CameraInfo (rclpy or rosbags message, or an equal dict).

        ``rectified``: the cabin images are rectified (an ``image_rect*`` topic,
        :func:`~sense_perception.core.geometry.calibration.rectified_topic`): their intrinsics
        are the CameraInfo's P, without distortion, not the raw camera's K and D (REP 104), as
        the exterior cameras' 3-D positions take them; a binning or roi is applied as there.

        Raises:
            CameraInfoError: K is zero or not finite (an uncalibrated camera publishes zeros),
                implausible for the image size (see :data:`FOCAL_RANGE`), or the image size is
                missing; the message names the value and the fix.
        """
        get = getter(info)
        applied = ""
        if rectified or _binned_or_cropped(info):
            from ...core.geometry.calibration import CalibrationError, image_intrinsics

            try:
                fields = image_intrinsics(info, "CameraInfo", rectified)
            except CalibrationError as exc:
                raise CameraInfoError(str(exc)) from None
            get, applied = fields.get, fields["note"]
        flat_k = np.asarray(get("k", ()), np.float64).reshape(-1)
        width, height = int(get("width", 0) or 0), int(get("height", 0) or 0)
        if flat_k.size != 9 or not np.all(np.isfinite(flat_k)):
            raise CameraInfoError(f"CameraInfo.k must hold 9 finite numbers, got {flat_k.size}")
        k = flat_k.reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0 or k[2, 2] == 0:
            raise CameraInfoError("CameraInfo.k has no focal length (fx, fy <= 0): the camera is "
                                  "not calibrated; calibrate it (camera_calibration) or set "
                                  "camera_info_topic to \"\" to use the default intrinsics")
        if width <= 0 or height <= 0:
            raise CameraInfoError(f"CameraInfo width/height must be > 0, got {width}x{height}")
        model = str(get("distortion_model", "") or "")
        d = np.asarray(get("d", ()), np.float64).reshape(-1)
        note = ""
        if d.size and not np.any(d):
            d = np.zeros(0)
        elif d.size and model not in SUPPORTED_DISTORTION:
            note = f"; distortion model '{model}' not supported, coefficients ignored"
            d = np.zeros(0)
        elif d.size not in (0, 4, 5, 8, 12, 14):
            note = f"; {d.size} distortion coefficients are not a cv2 model, ignored"
            d = np.zeros(0)
        elif not np.all(np.isfinite(d)):
            note = "; non-finite distortion coefficients ignored"
            d = np.zeros(0)
        k = k / k[2, 2]
        _check_plausible(k, width, height)
        k[:2, 2] += 0.5  # ROS puts pixel centres at integers; here they are at +0.5
        applied = f"; {applied}" if applied else ""
        return cls(k, d, width, height, f"camera_info ({width}x{height}, fx {k[0, 0]:.1f}, "
                                        f"fy {k[1, 1]:.1f}{note}{applied})")

    def for_image(self, width: int, height: int) -> "CameraIntrinsics":
        """These intrinsics for an image of ``width`` x ``height``: the default is rebuilt for the
        new size; calibrated K is scaled when the image was resized from the calibrated size."""
        if (width, height) == (self.width, self.height):
            return self
        if self.is_default:
            return CameraIntrinsics.default(width, height)
        k = self.matrix * np.array([[width / self.width], [height / self.height], [1.0]])
        return CameraIntrinsics(k, self.distortion, width, height,
                                f"{self.source}, scaled to {width}x{height}")


def canonical_face(path: str | None = None) -> np.ndarray:
    """The canonical face's 468 vertices (x to the person's left, y up, z out of the face), metres.

    Read and sha256-checked on every call: load it once (as :class:`~.estimator.AttentionEstimator`
    does) and pass it to :func:`solve_head_pose`.

    Args:
        path: an .obj file; default the bundled, sha256-checked one.

    Raises:
        ModelError: the file is missing, altered, or has not 468 vertices.
    """
    source = Path(path) if path else get_model("canonical_face").verified_path()
    rows = [line.split()[1:4] for line in source.read_text().splitlines() if line.startswith("v ")]
    try:
        vertices = np.asarray(rows, np.float64)
    except ValueError as exc:
        raise ModelError(f"{source}: vertex lines are not numbers: {exc}") from exc
    if vertices.shape != (MESH_POINTS, 3):
        raise ModelError(f"{source} has {len(rows)} vertices; the face mesh needs {MESH_POINTS} "
                         "in its order (mediapipe/tasks/.../face_geometry/data/canonical_face_model.obj)")
    return vertices * 0.01  # the file is in centimetres


@dataclass(frozen=True)
class HeadPose:
    """A head pose in the camera optical frame.

    Attributes:
        yaw, pitch, roll: degrees (conventions in the module docstring).
        rotation: (3, 3) head-to-camera rotation.
        translation: (3,) head origin in the camera frame, metres (an estimate: it assumes the
            canonical face's size and is only as good as the intrinsics).
    """

    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray
    translation: np.ndarray

    def quaternion(self) -> tuple[float, float, float, float]:
        """The rotation as a unit quaternion (x, y, z, w), as geometry_msgs/Quaternion holds it."""
        from scipy.spatial.transform import Rotation

        x, y, z, w = Rotation.from_matrix(self.rotation).as_quat()
        return float(x), float(y), float(z), float(w)


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll (degrees) of a head-to-camera rotation (conventions in the module doc)."""
    r = _OPTICAL_TO_VIEWER @ np.asarray(rotation, np.float64)
    # r = Ry(a) Rx(b) Rz(c): a = atan2(r02, r22), b = asin(-r12), c = atan2(r10, r11).
    yaw = -math.degrees(math.atan2(r[0, 2], r[2, 2]))  # a > 0 turns the face to the image right
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, r[1, 2]))))  # -b: chin up is positive
    roll = math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head-to-camera rotation of the given angles (degrees): the inverse of :func:`euler_angles`."""
    a, b, c = math.radians(-yaw), math.radians(-pitch), math.radians(roll)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return _OPTICAL_TO_VIEWER @ (ry @ rx @ rz)


def solve_head_pose(points_xy: np.ndarray, intrinsics: CameraIntrinsics,
                    model: np.ndarray | None = None) -> HeadPose | None:
    """Head pose from the (468, 2) mesh points in image pixels; None when solvePnP fails.

    SQPnP is a global solver (no initial guess, no local minimum), so each frame's pose depends on
    that frame alone.

    Args:
        points_xy: mesh points in continuous image coordinates.
        intrinsics: the camera's, for this image size.
        model: :func:`canonical_face` vertices; read (and checked) on each call when None.
    """
    model = canonical_face() if model is None else model
    image = np.ascontiguousarray(points_xy, np.float64).reshape(-1, 1, 2)
    try:
        ok, rvec, tvec = cv2.solvePnP(model.reshape(-1, 1, 3), image, intrinsics.matrix,
                                      intrinsics.distortion if intrinsics.distortion.size else None,
                                      flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error:
        # Degenerate points: a CameraInfo whose distortion (1e30) undistorts every mesh point to
        # one spot makes SQPnP assert. That frame has no pose; the frame itself goes on.
        return None
    if not ok or not np.all(np.isfinite(rvec)) or not np.all(np.isfinite(tvec)):
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    yaw, pitch, roll = euler_angles(rotation)
    return HeadPose(yaw, pitch, roll, rotation, tvec.reshape(3))
