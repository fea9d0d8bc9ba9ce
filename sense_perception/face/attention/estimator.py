"""Driver attention per frame and over time: mesh -> head pose -> eyes -> state machine.

:class:`AttentionEstimator` measures one face in one image (no state: the ``driver attention`` CLI
uses it on photos); :class:`DriverAttention` adds the camera intrinsics and the
:class:`~.state.AttentionMonitor` of the driver seat, fed with the face the driver monitor
already selected. Identity plays no part: attention works for anyone in the driver seat.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.runtime.session import RuntimeOptions
from .eyes import EyeOpenness, Eyes
from .head_pose import (DEFAULT_INTRINSICS, CameraInfoError, CameraIntrinsics, HeadPose,
                        canonical_face, solve_head_pose)
from .mesh import FaceMesh, Mesh
from .state import AttentionConfig, AttentionMonitor, AttentionStatus, Observation


@dataclass
class FaceMeasurement:
    """Head pose and eyes of one face in one image.

    Attributes:
        pose: the head pose, None when not measured.
        eyes: the eye measurements, None when not measured.
        mesh: the 468-point mesh, None when not run.
        reason: why nothing was measured ("" when measured).
    """

    pose: HeadPose | None = None
    eyes: Eyes | None = None
    mesh: Mesh | None = None
    reason: str = ""

    @property
    def measured(self) -> bool:
        return self.pose is not None

    def observation(self) -> Observation:
        """What the state machine takes from this measurement."""
        if self.pose is None:
            return Observation(face=False)
        ear = self.eyes.mean_ear if self.eyes is not None else math.nan
        return Observation(True, self.pose.yaw, self.pose.pitch, ear)


class AttentionEstimator:
    """Face mesh, head pose and eye openness of one face (stateless).

    Args:
        config: ``attention.*`` settings (face size and mesh score gates).
        options: onnxruntime providers and threads for both networks.
    """

    def __init__(self, config: AttentionConfig | None = None,
                 options: RuntimeOptions | None = None) -> None:
        self.config = config or AttentionConfig()
        self.mesh = FaceMesh(options)
        self.eyes = EyeOpenness(options)
        self.face_model = canonical_face()
        self.timings_ms: dict[str, float] = {}

    @property
    def models(self) -> list[Any]:
        """The onnxruntime models (for providers and fallbacks in diagnostics)."""
        return [self.mesh.model, self.eyes.model]

    def measure(self, image_bgr: np.ndarray, box: np.ndarray, landmarks: np.ndarray,
                intrinsics: CameraIntrinsics | None = None,
                previous: Mesh | None = None) -> FaceMeasurement:
        """Measure the face with YuNet ``box`` (x1, y1, x2, y2) and ``landmarks`` (5, 2).

        Args:
            intrinsics: the camera's; default :meth:`CameraIntrinsics.default` for the image.
            previous: the same face's mesh in the previous frame of a stream (tracking: one mesh
                pass instead of two when the face moved little).
        """
        t0 = time.perf_counter()
        self.timings_ms = {"mesh": 0.0, "pose": 0.0, "eyes": 0.0}
        width = float(box[2] - box[0])
        if width < self.config.min_face_px:
            return FaceMeasurement(reason=f"face {width:.0f} px wide < attention.min_face_px "
                                          f"{self.config.min_face_px}")
        mesh = self.mesh.run(image_bgr, box, landmarks, previous)
        t1 = time.perf_counter()
        self.timings_ms["mesh"] = (t1 - t0) * 1e3
        if mesh.presence < self.config.mesh_min_score:
            return FaceMeasurement(mesh=mesh, reason=f"mesh face presence {mesh.presence:.2f} < "
                                                     f"attention.mesh_min_score")
        h, w = image_bgr.shape[:2]
        intrinsics = (intrinsics or CameraIntrinsics.default(w, h)).for_image(w, h)
        pose = solve_head_pose(mesh.points[:, :2], intrinsics, self.face_model)
        t2 = time.perf_counter()
        self.timings_ms["pose"] = (t2 - t1) * 1e3
        if pose is None:
            return FaceMeasurement(mesh=mesh, reason="solvePnP found no pose")
        eyes = self.eyes.run(image_bgr, mesh.points)
        self.timings_ms["eyes"] = (time.perf_counter() - t2) * 1e3
        return FaceMeasurement(pose, eyes, mesh)


@dataclass
class AttentionResult:
    """Attention after one cabin frame.

    Attributes:
        status: state, level, scores and calibration.
        measurement: this frame's pose and eyes (``measured`` False without a driver face).
        intrinsics: where the intrinsics used came from, in words.
        timings_ms: milliseconds spent in mesh / pose / eyes.
    """

    status: AttentionStatus
    measurement: FaceMeasurement
    intrinsics: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def pose(self) -> HeadPose | None:
        return self.measurement.pose

    @property
    def eyes(self) -> Eyes | None:
        return self.measurement.eyes

    def eye_openness(self) -> dict[str, float] | None:
        """Each eye's EAR over the driver's open-eye baseline (1 = as open as usual); None when
        the eyes were not measured or no baseline exists yet."""
        eyes, baseline = self.measurement.eyes, self.status.ear_baseline
        if eyes is None or not baseline > 0:
            return None
        return {eye: ear / baseline for eye, ear in eyes.ear.items()}


class DriverAttention:
    """Attention of whoever sits in the driver seat, from the driver face of each cabin frame.

    Args:
        config: ``attention.*`` settings.
        options: onnxruntime providers and threads.
        estimator: an estimator to share (tests, CLI); default built from ``config``.
    """

    def __init__(self, config: AttentionConfig | None = None, options: RuntimeOptions | None = None,
                 estimator: AttentionEstimator | None = None) -> None:
        self.config = config or AttentionConfig()
        self.estimator = estimator or AttentionEstimator(self.config, options)
        self.monitor = AttentionMonitor(self.config)
        self.intrinsics: CameraIntrinsics | None = None
        self.camera_info_error = ""
        self._previous: tuple[float, Mesh] | None = None  # the last measured mesh and its stamp

    def set_camera_info(self, info: Any, rectified: bool = False) -> bool:
        """Use the intrinsics of a sensor_msgs/CameraInfo from now on; False (the previous ones
        kept, the reason in :attr:`camera_info_error`) when it gives none. ``rectified``: the
        images are rectified (an ``image_rect*`` topic): P, not K and D, describes them."""
        try:
            self.intrinsics = CameraIntrinsics.from_camera_info(info, rectified)
        except CameraInfoError as exc:
            self.camera_info_error = str(exc)
            return False
        self.camera_info_error = ""
        return True

    def process(self, image_bgr: np.ndarray, box: np.ndarray | None, landmarks: np.ndarray | None,
                t: float, camera_fault: bool = False) -> AttentionResult:
        """One frame stamped ``t`` (seconds): the driver's face ``box``/``landmarks``, or None.

        ``camera_fault``: the cabin camera's health is in fault; nothing is measured and the state
        is ``camera_fault`` (:mod:`.state`), whatever a face detector made of the frame."""
        if camera_fault or box is None or landmarks is None:  # nothing to measure
            measurement = FaceMeasurement(reason="camera fault" if camera_fault else "no driver face")
            self.estimator.timings_ms = {"mesh": 0.0, "pose": 0.0, "eyes": 0.0}
        else:
            # Track from the last measured frame only, and never across a gap in time.
            previous = self._previous
            track = (previous[1] if previous is not None
                     and 0.0 <= t - previous[0] <= self.config.max_gap_s else None)
            measurement = self.estimator.measure(image_bgr, box, landmarks, self.intrinsics, track)
        mesh = measurement.mesh  # set whenever measured (a pose needs a mesh)
        self._previous = (t, mesh) if measurement.measured and mesh is not None else None
        observation = Observation(False, camera_fault=True) if camera_fault \
            else measurement.observation()
        status = self.monitor.update(t, observation)
        source = self.intrinsics.source if self.intrinsics is not None else DEFAULT_INTRINSICS
        return AttentionResult(status, measurement, source, dict(self.estimator.timings_ms))
