"""Per camera: which calibration places its detections, and how many it placed (ROS-free).

Shared by the replay and the object_detector node. A camera's calibration comes from, in order:

1. a calibration file (``--calibration [TOPIC=]FILE``), used for its camera (the one
   camera replayed, or ``TOPIC``);
2. its sensor_msgs/CameraInfo (K, D, distortion_model, size; P and R for a rectified image
   topic, ``image_rect*``; binning and roi: REP 104) and its mount: the /tf_static chain
   from ``base_link`` to the images' ``frame_id`` (the CameraInfo's when the image has none), or
   the mount given as parameters (``T_base_link_camera``, or height + pitch + roll).

Without one, the camera's detections get no position, and :meth:`CameraPositions.reason` says
why (for /diagnostics and the replay summary). Nothing is guessed. A calibration that is missing
(no CameraInfo yet, an all-zero K of an uncalibrated camera, no /tf_static chain) is a state; one
that was received but is refused (a wrong CameraInfo, a refused transform, an image of another
size) is a fault: :meth:`CameraPositions.warnings` names it (a WARN in /diagnostics), and
:meth:`CameraPositions.new_problems` gives each reason once, for a log line.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from ..output.topics import rectified_topic
from .calibration import CalibrationError, CameraCalibration, from_camera_info
from .camera_info_fields import binning_and_roi, get_field, getter
from .ground import GroundPositions, estimate_positions
from .priors import DEFAULT_NOISE, PositionNoise
from .tf_static import StaticTransforms


def check_one_mount(camera_topics: Sequence[str], mount: str) -> None:
    """Refuse the mount parameters for several cameras: they give one mount, and every camera
    would be placed as if it were mounted there (a rear camera's pedestrian 5 m behind the car
    published 5 m ahead, in ``detections_3d`` and Autoware's DetectedObjects).

    Topics of one camera (``<ns>/image_raw``, ``<ns>/image_rect_color``, their ``/compressed``:
    one namespace) share its mount and are one camera here.

    Args:
        camera_topics: the exterior cameras.
        mount: the mount parameter given (``mount_transform``, ``mount_height``); "" = none.

    Raises:
        ConfigError: naming the cameras and the fix.
    """
    from ...errors import ConfigError
    from ..output.topics import camera_namespace

    cameras = list(dict.fromkeys(camera_namespace(t) for t in camera_topics))
    if mount and len(cameras) > 1:
        raise ConfigError(
            f"parameter '{mount}' gives one camera mount, but the cameras {', '.join(cameras)} "
            "would all be placed with it (each camera's 3-D positions as if seen from that one "
            "mount); fix: publish each camera's mount in /tf_static (base_link -> the camera's "
            f"frame_id) and leave {mount} unset, or run one object_detector per camera with its "
            "own mount")


def check_mount_for_autoware(mount: str, autoware_topics: Sequence[str]) -> None:
    """Refuse ``mount_height`` with Autoware's outputs on: it places base_link's origin on the
    road below the camera, while Autoware's base_link is the rear axle's centre, so every
    DetectedObject (and the ROIs' kinematics) was off by the camera's offset along the car,
    objects ahead of a windshield camera published about 2 m nearer than they are.

    Args:
        mount: the mount parameter given (``mount_transform``, ``mount_height``; "" = none).
        autoware_topics: ``autoware.rois_topic`` and ``autoware.objects_topic`` ("" = off).

    Raises:
        ConfigError: naming the parameter and the fix.
    """
    from ...errors import ConfigError

    if mount == "mount_height" and any(autoware_topics):
        raise ConfigError(
            "parameter 'mount_height' places base_link's origin on the road below the camera, but "
            "Autoware's base_link is the centre of the rear axle: Autoware's DetectedObjects and "
            "the ROIs' kinematics would be off by the camera's offset along the car; fix: publish "
            "the camera's mount in /tf_static (Autoware's sensor kit description does), or give "
            "mount_transform with the camera's position in base_link")


@dataclass
class _Camera:
    info: Any = None
    info_topic: str = ""
    calibration: CameraCalibration | None = None
    error: str = ""
    frames: int = 0
    detections: int = 0
    placed: int = 0
    source: str = ""
    checked: set[tuple[int, int]] = field(default_factory=set)
    fault: bool = False  # the last frame's calibration was received but refused
    unplaced: dict[str, int] = field(default_factory=dict)  # reason -> frames without positions
    reported: set[str] = field(default_factory=set)  # faults seen (each reported once)
    pending: list[str] = field(default_factory=list)  # faults not yet taken by new_problems
    # (/tf_static version, frame, reason, fault) of the last failed calibration, reused until
    # either changes (a new CameraInfo clears it)
    tried: tuple[int, str, str, bool] | None = None
    # The last calibration built from the CameraInfo and mount, and how many times it changed:
    # positions before and after a change are in different estimates (the velocity filters of
    # the camera restart on it).
    used: CameraCalibration | None = None
    frame: str = ""  # the frame ``calibration``'s mount was looked up for
    generation: int = 0


# Distinct reasons counted per camera (a reason names sizes and values, so a camera whose
# CameraInfo changes every frame would make new ones without end); the rest are counted together.
MAX_REASONS = 8
OTHER_REASONS = "(other reasons)"


def _uncalibrated(info: Any) -> bool:
    """A CameraInfo whose K is all zero: the camera driver runs without a calibration."""
    k = get_field(info, "k")
    try:
        return not np.any(np.asarray(k if k is not None else [], np.float64))
    except (TypeError, ValueError):
        return False


def _same_calibration(a: CameraCalibration, b: CameraCalibration) -> bool:
    """Whether two calibrations place a box alike (the source text aside)."""
    return a is b or (a.distortion_model == b.distortion_model and (a.width, a.height) == (
        b.width, b.height) and np.array_equal(a.K, b.K) and np.array_equal(a.D, b.D)
        and np.array_equal(a.T_base_link_camera, b.T_base_link_camera))


def _same_info(a: Any, b: Any) -> bool:
    def fields(info: Any) -> tuple:
        get = getter(info)
        return (tuple(np.asarray(get("k"), float).ravel()), tuple(np.asarray(get("d"), float).ravel()),
                get("distortion_model"), get("width"), get("height"),
                # a rectified camera's intrinsics (REP 104): a new P or R is a new calibration
                tuple(np.asarray(get("p") if get("p") is not None else [], float).ravel()),
                tuple(np.asarray(get("r") if get("r") is not None else [], float).ravel()),
                binning_and_roi(info, missing=None))
    return fields(a) == fields(b)


_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Run ``method`` holding the instance's lock (see :class:`CameraPositions`)."""
    @functools.wraps(method)
    def run(self: "CameraPositions", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return run  # type: ignore[return-value]


class CameraPositions:
    """Ground positions of every camera's detections, and the bookkeeping of why (not).

    Args:
        calibration: a calibration for every camera (``--calibration FILE``), or for
            ``calibrated_camera`` alone (``--calibration TOPIC=FILE``); None: each camera's
            CameraInfo plus its mount.
        calibrated_camera: the one camera topic ``calibration`` is for; "": every camera.
        mount: ``T_base_link_camera`` given as parameters (4x4); None: from /tf_static.
        base_frame: the vehicle frame the mount is looked up from.
        noise: the noise the estimates assume (``mount_pitch_sd``).

    Thread-safe: the object_detector node hands it CameraInfo and /tf_static messages on the
    executor's thread while its inference thread places frames; every public method takes one
    lock. Without it a CameraInfo arriving while a frame built the calibration from the one
    before was overwritten by that calibration (the new intrinsics never used, the same message
    repeated by the driver taken as known), and /tf_static walking the cameras while a frame
    added one raised out of the executor (SECURITY.md R48).
    """

    def __init__(self, calibration: CameraCalibration | None = None,
                 mount: np.ndarray | None = None, base_frame: str = "base_link",
                 noise: PositionNoise = DEFAULT_NOISE, calibrated_camera: str = "") -> None:
        self.fixed = calibration
        self.fixed_camera = calibrated_camera
        self.noise = noise
        self.mount = None if mount is None else np.asarray(mount, np.float64)
        self.base_frame = base_frame
        self.tf = StaticTransforms()
        # Why /tf_static cannot be read, when it cannot (a node without tf2_msgs): said with a
        # camera's missing mount.
        self.tf_note = ""
        self._tf_version = 0  # /tf_static messages seen: a failed lookup is retried after one
        self._tf_cap_told = False  # the note of /tf_static frames over the cap was taken once
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.RLock()

    def _camera(self, topic: str) -> _Camera:
        return self._cameras.setdefault(topic, _Camera())

    @_locked
    def camera_info_topic(self, camera: str, info_topic: str) -> None:
        """Where ``camera``'s CameraInfo is expected (named while none has come)."""
        self._camera(camera).info_topic = info_topic

    @_locked
    def camera_info(self, camera: str, info: Any, info_topic: str = "") -> None:
        """A sensor_msgs/CameraInfo of ``camera`` (the image topic): used from the next frame."""
        cam = self._camera(camera)
        if cam.info is not None and _same_info(cam.info, info):
            return  # a camera driver repeats it with every frame: keep the checked calibration
        cam.info, cam.calibration, cam.error, cam.tried = info, None, "", None
        cam.info_topic = info_topic or cam.info_topic

    @_locked
    def tf_static(self, message: Any) -> None:
        """A tf2_msgs/TFMessage of /tf_static; a camera without a mount yet tries again."""
        self._tf_version += 1
        error = ""
        try:
            self.tf.add(message)
        except CalibrationError as exc:  # the message's other transforms are kept
            error = str(exc)
        for cam in self._cameras.values():
            if self.mount is None:
                # A mount from /tf_static is looked up again: a re-published one (a corrected
                # mount, a camera re-parented) replaces the earlier one, as in tf2. It was kept
                # for good once a first calibration was built.
                cam.calibration = None
            if cam.calibration is None:
                cam.error = error

    @_locked
    def new_tf_note(self) -> str:
        """The note of /tf_static transforms not kept (beyond the frame cap) the first time
        there are any, for one log line; "" otherwise (and every later time)."""
        if self._tf_cap_told or not self.tf.over_cap:
            return ""
        self._tf_cap_told = True
        return self.tf.cap_note()

    def _calibration(self, camera: str, frame_id: str, width: int, height: int
                     ) -> tuple[CameraCalibration | None, str, bool]:
        """The calibration for a frame, or None with the reason and whether it is a fault (a
        calibration received and refused) rather than a missing one."""
        cam = self._camera(camera)
        if self.fixed is not None and self.fixed_camera in ("", camera):
            try:
                return self.fixed.for_image(width, height), "", False
            except CalibrationError as exc:
                return None, str(exc), True
        if cam.calibration is not None and self.mount is None \
                and self._frame(cam, frame_id) != cam.frame:
            # Images of another frame_id (a driver reconfigured, two cameras on one topic) have
            # that frame's mount, as tf2 looks it up: they were placed with the first one's.
            cam.calibration = None
        if cam.calibration is not None:
            try:
                return cam.calibration.for_image(width, height, cam.source), "", False
            except CalibrationError as exc:
                return None, str(exc), True
        if cam.info is None:
            where = cam.info_topic or "its camera_info topic"
            return None, (f"no calibration: no sensor_msgs/CameraInfo on {where} yet and no "
                          "calibration file (replay: --calibration TOPIC=FILE)"), False
        frame = self._frame(cam, frame_id)
        if cam.tried is not None and cam.tried[:2] == (self._tf_version, frame):
            # nothing changed since this failed: not again for every frame (a lookup walks the
            # whole /tf_static tree)
            return None, cam.tried[2], cam.tried[3]
        fault = True
        try:
            if self.mount is not None:
                mount, source = self.mount, "CameraInfo and the mount parameters"
            else:
                if not frame:
                    raise CalibrationError("neither the images nor the CameraInfo name a frame_id "
                                           "to look the mount up in /tf_static")
                fault = bool(self.tf.refused)  # no chain, and nothing refused: not set up
                mount, source = self.tf.lookup(self.base_frame, frame), "CameraInfo and /tf_static"
            fault = not _uncalibrated(cam.info)  # an all-zero K: a camera nobody calibrated
            where = f"{cam.info_topic or camera} ({source})"
            cam.calibration = from_camera_info(cam.info, mount, where, rectified_topic(camera))
            cam.source, cam.frame = cam.calibration.source, frame
            return cam.calibration.for_image(width, height, cam.source), "", False
        except CalibrationError as exc:
            note = f" ({self.tf_note})" if self.tf_note and self.mount is None else ""
            error = f"no calibration: {exc}{note}"
            if cam.calibration is None:
                cam.tried = (self._tf_version, frame, error, fault)
            return None, error, fault or cam.calibration is not None

    @_locked
    def positions(self, camera: str, frame_id: str, width: int, height: int, boxes: np.ndarray,
                  labels: np.ndarray, label_names: Sequence[str],
                  bottom_hidden: np.ndarray | None = None) -> GroundPositions | None:
        """The ground positions of a frame's detections, or None (no usable calibration: see
        :meth:`reason`); ``bottom_hidden``: the boxes whose bottom an ignore region cuts
        (:func:`~.ground.estimate_positions`)."""
        cam = self._camera(camera)
        calibration, error, fault = self._calibration(camera, frame_id, width, height)
        cam.frames += 1
        cam.detections += len(boxes)
        cam.error, cam.fault = error, fault
        if calibration is None:
            self._unplaced(cam)
            return None
        cam.source = cam.source or calibration.source
        if calibration is not self.fixed:
            if cam.used is not None and not _same_calibration(cam.used, calibration):
                cam.generation += 1
            cam.used = calibration
        try:
            out = estimate_positions(calibration, boxes, labels, tuple(label_names), self.noise,
                                     bottom_hidden)
        except ArithmeticError as exc:
            # A finite but absurd calibration (a mount 1e200 m above the road) overflows: the
            # frame keeps its 2-D detections; only the positions are lost, and said why.
            cam.error = (f"no positions: the calibration from {cam.source} overflows the "
                         f"estimate ({exc}); fix the camera's mount or CameraInfo")
            cam.fault = True
            self._unplaced(cam)
            return None
        cam.placed += int(out.valid.sum())
        return out

    @staticmethod
    def _frame(cam: _Camera, frame_id: str) -> str:
        """The frame a camera's mount is looked up for: the image's, else its CameraInfo's."""
        header = getattr(cam.info, "header", None)
        return frame_id or str(getattr(header, "frame_id", "") or "")

    @_locked
    def generation(self, camera: str) -> int:
        """How many times ``camera``'s calibration from its CameraInfo and mount has changed (a
        new K, size or mount: a corrected /tf_static, a re-calibrated camera) between its
        frames; a frame placed with another calibration is not comparable with the earlier ones
        (:class:`~sense_perception.core.exterior_steps.ExteriorSteps` restarts the camera's
        velocity filters)."""
        cam = self._cameras.get(camera)
        return 0 if cam is None else cam.generation

    @staticmethod
    def _unplaced(cam: _Camera) -> None:
        reason = cam.error if cam.error in cam.unplaced or len(cam.unplaced) < MAX_REASONS \
            else OTHER_REASONS
        cam.unplaced[reason] = cam.unplaced.get(reason, 0) + 1
        if cam.fault and cam.error not in cam.reported and len(cam.reported) < 4 * MAX_REASONS:
            cam.reported.add(cam.error)
            cam.pending.append(cam.error)

    @_locked
    def warnings(self, cameras: Sequence[str]) -> list[str]:
        """``positions[<camera>]: <reason>`` for each camera whose last frame's calibration was
        received but refused (a WARN in /diagnostics); a missing one is not a fault. Also the
        note of /tf_static transforms not kept beyond the frame cap, once there are any."""
        tf_note = self.tf.cap_note()
        return [f"positions[{c}]: {self._camera(c).error}" for c in cameras
                if self._camera(c).fault and self._camera(c).error] + ([tf_note] if tf_note else [])

    @_locked
    def new_problems(self, cameras: Sequence[str]) -> list[str]:
        """The faults found since the last call, each reason once per camera (for a log line or
        a replay's note): ``positions[<camera>]: <reason>``."""
        out = []
        for camera in cameras:
            cam = self._camera(camera)
            out += [f"positions[{camera}]: {reason}" for reason in cam.pending]
            cam.pending.clear()
        return out

    @_locked
    def reason(self, camera: str) -> str:
        """Why ``camera``'s last frame got no positions ("" when it did)."""
        return self._camera(camera).error

    @_locked
    def summary(self, camera: str) -> dict[str, Any]:
        """For the replay summary: detections, how many got a position, the calibration or why
        none (the last frame's ``reason``); with frames that got none, ``frames`` and
        ``frames_without_positions`` (reason -> frames); with /tf_static transforms beyond the
        frame cap, ``tf_static_not_kept`` (how many)."""
        cam = self._camera(camera)
        out: dict[str, Any] = {"detections": cam.detections, "placed": cam.placed,
                               "calibration": cam.source or None}
        if cam.error or not cam.source:
            out["reason"] = cam.error or "no frame processed"
        if cam.unplaced:  # every frame without positions, and why: not only the last one's
            out["frames"] = cam.frames
            out["frames_without_positions"] = dict(cam.unplaced)
        if self.tf.over_cap:
            out["tf_static_not_kept"] = self.tf.over_cap
        return out

    @_locked
    def diagnostic_values(self, cameras: Sequence[str]) -> dict[str, str]:
        """``/diagnostics`` key/values: per camera, positions placed, or why none."""
        values = {}
        for camera in cameras:
            cam = self._camera(camera)
            values[f"positions[{camera}]"] = cam.error or (
                f"{cam.placed} of {cam.detections} detections placed ({cam.source})")
        return values
