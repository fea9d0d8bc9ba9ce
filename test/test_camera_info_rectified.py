"""Rectified images (``image_rect_color``, Autoware's camera input) are placed with the
rectified camera's intrinsics, the CameraInfo's P and R (REP 104), not with the raw camera's K and
D: K and D describe the distorted image the rectified one was made from. Real
sensor_msgs/CameraInfo messages (rosbags) and message-shaped dicts, through the positioner the
node and the replay share."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from sense_perception.core.geometry import mount_transform
from sense_perception.core.geometry.calibration import from_camera_info
from sense_perception.core.geometry.positioner import CameraPositions
from sense_perception.core.output.topics import rectified_topic

RECT = "/sensing/camera/camera0/image_rect_color"
RAW = "/sensing/camera/camera0/image_raw"
W, H = 1920, 1080
K = np.array([[1000.0, 0, 960], [0, 1000.0, 540], [0, 0, 1]])
D = [-0.3, 0.1, 0.0, 0.0, 0.0]
MOUNT = mount_transform(1.5, pitch=math.radians(3))
LABELS = ("pedestrian", "car")
# A pedestrian in the lower right of the image, where the lens distortion is strong.
BOX = np.array([[1650.0, 700.0, 1750.0, 1000.0]])


def _info(p=None, r=None, d=D, message=False):
    new_k, _ = cv2.getOptimalNewCameraMatrix(K, np.array(d, float), (W, H), 0)
    p = np.hstack([new_k, np.zeros((3, 1))]).ravel().tolist() if p is None else p
    fields = {"k": K.ravel().tolist(), "d": list(d), "distortion_model": "plumb_bob", "width": W,
              "height": H, "p": list(p), "r": np.eye(3).ravel().tolist() if r is None else list(r)}
    if not message:
        return {**fields, "header": {"frame_id": "camera0/camera_optical_link"}}
    store = get_typestore(Stores.ROS2_JAZZY)
    T = store.types
    return T["sensor_msgs/msg/CameraInfo"](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                        frame_id="camera0/camera_optical_link"),
        height=H, width=W, distortion_model="plumb_bob", d=np.array(fields["d"], float),
        k=np.array(fields["k"], float), r=np.array(fields["r"], float), p=np.array(fields["p"], float),
        binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                  do_rectify=False))


def _place(topic, info):
    positions = CameraPositions(mount=MOUNT)
    positions.camera_info(topic, info)
    out = positions.positions(topic, "camera0/camera_optical_link", W, H, BOX, np.array([0]), LABELS)
    return out, positions


def _project(calibration, point_base):
    """Pixel of a base_link point through a calibration (no distortion: rectified)."""
    p_cam = np.linalg.inv(calibration.T_base_link_camera) @ np.append(point_base, 1.0)
    uvw = calibration.K @ p_cam[:3]
    return uvw[:2] / uvw[2]


@pytest.mark.parametrize("message", [False, True], ids=["dict", "rosbags message"])
def test_rectified_images_are_placed_with_p_and_r_not_with_the_raw_k_and_d(message):
    """The same box on image_rect_color was placed as if the image were still distorted: 0.45 m
    nearer and 0.4 m more to the side at 4 m (and so on into Autoware's DetectedObjects)."""
    assert rectified_topic(RECT) and rectified_topic(RECT + "/compressed") and not rectified_topic(RAW)
    info = _info(message=message)
    rect, positions = _place(RECT, info)
    raw, _ = _place(RAW, info)
    assert rect is not None and rect.valid.all(), positions.reason(RECT)
    # The rectified camera: P's 3x3, no distortion.
    p = np.asarray(info["p"] if isinstance(info, dict) else info.p, float).reshape(3, 4)
    ideal, _ = _place(RECT, {**_info(), "k": p[:, :3].ravel().tolist(), "d": [],
                             "distortion_model": "", "p": [], "r": []})
    np.testing.assert_allclose(rect.xyz, ideal.xyz, atol=1e-9)
    assert np.abs(rect.xyz - raw.xyz).max() > 0.3  # the raw image's K and D place it elsewhere
    assert "P and R" in positions.diagnostic_values([RECT])[f"positions[{RECT}]"]


def test_p_s_translation_and_r_move_the_camera_as_rep_104_defines_them():
    """A stereo pair's right camera: P = K' [I | t] of a frame turned by R. A base_link point
    projects through the calibration built from it to the pixel P @ [R p_optical; 1] gives."""
    angle = math.radians(2.0)
    R = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    new_k = np.array([[900.0, 0, 950], [0, 900.0, 530], [0, 0, 1]])
    P = np.hstack([new_k, new_k @ np.array([[-0.3], [0.02], [0.0]])])
    calibration = from_camera_info(_info(p=P.ravel().tolist(), r=R.ravel().tolist()), MOUNT, "t", True)
    assert calibration.distortion_model == "none"
    for point in ([12.0, -1.5, 0.0], [5.0, 2.0, 0.3], [30.0, 0.0, 1.0]):
        p_opt = (np.linalg.inv(MOUNT) @ np.append(point, 1.0))[:3]
        uvw = P @ np.append(R @ p_opt, 1.0)
        np.testing.assert_allclose(_project(calibration, np.array(point)), uvw[:2] / uvw[2], atol=1e-6)


def test_a_rectified_camera_without_p_is_refused_unless_it_has_no_distortion():
    """P all zero (a driver that does not fill it) beside a non-zero D: K and D are not the
    rectified image's, refused by name (a fault in /diagnostics); with D zero the raw image is
    the rectified one and K places it. A raw image topic keeps K and D."""
    out, positions = _place(RECT, _info(p=[0.0] * 12))
    assert out is None
    reason = positions.reason(RECT)
    assert "rectified" in reason and "P" in reason and "image_raw" in reason, reason
    assert positions.warnings([RECT])  # received and refused: a WARN
    out, positions = _place(RECT, _info(p=[0.0] * 12, d=[0.0] * 5))
    assert out is not None and out.valid.all(), positions.reason(RECT)
    out, positions = _place(RAW, _info(p=[0.0] * 12))
    assert out is not None and out.valid.all()
    for bad, what in (([1.0] * 12, "not a rectified camera's projection"),
                      ([math.nan] + [0.0] * 11, "P has a non-finite number")):
        out, positions = _place(RECT, _info(p=bad))
        assert out is None and what in positions.reason(RECT), positions.reason(RECT)
    out, positions = _place(RECT, _info(r=[2.0, 0, 0, 0, 1, 0, 0, 0, 1]))
    assert out is None and "R is not a rotation" in positions.reason(RECT)


def test_a_new_p_alone_is_a_new_calibration():
    """A CameraInfo whose P changes (a re-run of image_proc's calibration) with K and D kept was
    taken for the same message and its first P kept."""
    positions = CameraPositions(mount=MOUNT)
    positions.camera_info(RECT, _info())
    first = positions.positions(RECT, "f", W, H, BOX, np.array([0]), LABELS)
    wider = np.array([[700.0, 0, 960], [0, 700.0, 540], [0, 0, 1]])
    positions.camera_info(RECT, _info(p=np.hstack([wider, np.zeros((3, 1))]).ravel().tolist()))
    second = positions.positions(RECT, "f", W, H, BOX, np.array([0]), LABELS)
    assert np.abs(first.xyz - second.xyz).max() > 0.1
    assert positions.generation(RECT) == 1


@pytest.mark.parametrize("message", [False, True], ids=["dict", "rosbags message"])
def test_binning_and_roi_give_the_published_image_its_intrinsics(message):
    """REP 104: K, P, width and height are the full sensor's; a driver binning 2x2 (or cropping
    to a roi) publishes a smaller image. Every frame was refused as 'calibrated for 1920x1080 but
    the image is 960x540; fix: calibrate at the resolution the camera publishes', which the
    camera had done. The binned, cropped image places a box as the full one does."""
    full, _ = _place(RAW, _info(message=message))
    info = _info(message=message)
    x0, y0 = 160, 60
    if message:
        info.binning_x = info.binning_y = 2
        info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = x0, y0, 1760, 980
    else:
        info.update(binning_x=2, binning_y=2, roi={"x_offset": x0, "y_offset": y0, "width": 1760,
                                                   "height": 980, "do_rectify": False})
    positions = CameraPositions(mount=MOUNT)
    positions.camera_info(RAW, info)
    box = (BOX - [x0, y0, x0, y0]) / 2.0
    binned = positions.positions(RAW, "f", 880, 490, box, np.array([0]), LABELS)
    assert binned is not None, positions.reason(RAW)
    # Within 3 cm: the cues' 1.5 px edge noise is twice as wide in sensor pixels once binned.
    np.testing.assert_allclose(binned.xyz, full.xyz, atol=0.05)
    assert "binning 2x2" in positions.diagnostic_values([RAW])[f"positions[{RAW}]"]
    # A binning leaving no pixel, a roi outside the sensor: refused by name.
    for change, what in (({"binning_x": 5000}, "binning 5000x1 leaves no pixel"),
                         ({"roi": {"x_offset": 1800, "y_offset": 0, "width": 400, "height": 10}},
                          "roi (1800, 0, 400x10) reaches outside")):
        positions = CameraPositions(mount=MOUNT)
        positions.camera_info(RAW, {**_info(), **change})
        assert positions.positions(RAW, "f", 800, 450, box, np.array([0]), LABELS) is None
        assert what in positions.reason(RAW), positions.reason(RAW)
