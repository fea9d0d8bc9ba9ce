"""Ground positions from one calibrated camera, on geometry built here and on the developer set.

Boxes of constructed scenes are the exact projection (cv2.projectPoints, with the distortion) of a
cuboid standing in base_link, so the true position is known; the developer set's boxes are the
projection of PandaSet's cuboids with its lidar-derived calibration.
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from sense_perception.core.geometry import (CalibrationError, estimate_positions, from_camera_info,
                                            from_dict, load_calibration, mount_transform)
from sense_perception.core.geometry.ground import BORDER, GROUND, SIZE, TOP, WIDTH
from sense_perception.core.geometry.priors import PRIORS
from support import DEV_SET

NAMES = ("pedestrian", "bicycle", "car", "motorcycle", "bus", "truck", "traffic_light")
DEV_SET_3D = DEV_SET.parent / "ground_truth_3d.json"


def make_calibration(height: float = 1.5, pitch: float = 0.02, model: str = "none",
                     D: list[float] | None = None, size: tuple[int, int] = (1280, 720),
                     f: float = 1000.0, cy: float | None = None) -> dict:
    """A calibration dict: a car camera ``height`` m up, pitched ``pitch`` rad down."""
    w, h = size
    cy = h / 2 - 20 if cy is None else cy
    return {"K": [[f, 0.0, w / 2], [0.0, f, cy], [0.0, 0.0, 1.0]], "D": D or [],
            "distortion_model": model, "width": w, "height": h,
            "T_base_link_camera": mount_transform(height, pitch).tolist()}


CLEARANCE = {"pedestrian": 0.1, "bicycle": 0.3, "car": 0.3, "motorcycle": 0.3, "bus": 0.4,
             "truck": 0.4}  # the body's bottom above the road: it stands on its wheels (feet)


def project_box(calib: dict, centre: tuple[float, float], label: str, base_z: float = 0.0,
                yaw: float = 0.0, clip: bool = True) -> list[float]:
    """The bounding box of the label's prior body (above its ground clearance) and its ground
    contacts (wheels, feet), standing at ``centre`` (base_link, on z = ``base_z``), projected
    with the calibration's distortion, clipped to the image."""
    p = PRIORS[label]
    c, s = math.cos(yaw), math.sin(yaw)
    body = [[sx * p.length / 2, sy * p.width / 2, z] for sx in (-1, 1) for sy in (-1, 1)
            for z in (CLEARANCE[label], p.height)]
    contacts = [[sx * p.contact_length / 2, sy * p.contact_width / 2, 0.0] for sx in (-1, 1)
                for sy in (-1, 1)]
    rotated = np.array(body + contacts) @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    points = rotated + np.array([centre[0], centre[1], base_z])
    T = np.linalg.inv(np.array(calib["T_base_link_camera"]))
    rvec, _ = cv2.Rodrigues(T[:3, :3])
    pixels, _ = cv2.projectPoints(points.reshape(-1, 1, 3), rvec, T[:3, 3], np.array(calib["K"]),
                                  np.array(calib["D"], np.float64))
    uv = pixels.reshape(-1, 2)
    box = [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()]
    if clip:
        box = [max(0.0, box[0]), max(0.0, box[1]), min(calib["width"], box[2]),
               min(calib["height"], box[3])]
    return box


def estimate(calib: dict, boxes: list[list[float]], labels: list[str]):
    return estimate_positions(from_dict(calib, "test"), np.array(boxes),
                              np.array([NAMES.index(lb) for lb in labels]), NAMES)


def rel_error(positions, truth: list[tuple[float, float]]) -> np.ndarray:
    true_range = np.hypot(*np.array(truth, float).T)
    return (positions.range_m - true_range) / true_range


# -- calibration ---------------------------------------------------------------------------------

def test_calibration_round_trip_and_file(tmp_path):
    calib = make_calibration(model="plumb_bob", D=[-0.1, 0.01, 0.0, 0.0, 0.0])
    read = from_dict(calib, "x")
    assert read.distortion_model == "plumb_bob" and read.D.shape == (5,)
    assert read.camera_height == pytest.approx(1.5)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(read.to_dict()))
    again = load_calibration(path)
    np.testing.assert_allclose(again.T_base_link_camera, read.T_base_link_camera)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CalibrationError, match="not readable JSON"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")


def test_mount_pitch_looks_down_and_yaw_left():
    T = mount_transform(1.4, pitch=0.1, yaw=0.2)
    axis = T[:3, 2]  # the optical axis in base_link
    assert axis[2] == pytest.approx(-math.sin(0.1))
    assert axis[1] > 0 and axis[0] > 0.9
    np.testing.assert_allclose(T[:3, 3], [0, 0, 1.4])


@pytest.mark.parametrize("change, message", [
    ({"K": [[1, 0], [0, 1]]}, "K must be 3x3"),
    ({"K": [[0.0, 0, 640], [0, 1000, 340], [0, 0, 1]]}, "focal lengths must be > 0"),
    ({"K": [[1000.0, 0, 4000], [0, 1000, 340], [0, 0, 1]]}, "principal point"),
    ({"width": 0}, "width must be a whole number"),
    ({"distortion_model": "fisheye"}, "'fisheye' is not supported"),
    ({"distortion_model": "plumb_bob", "D": [0.1, 0.2]}, "takes 4 or 5 coefficients"),
    ({"distortion_model": "rational_polynomial", "D": [0.1] * 5}, "takes 8 or 12 or 14"),
    ({"distortion_model": "none", "D": [0.1, 0, 0, 0, 0]}, "'none' with non-zero D"),
    ({"D": "0 0 0"}, "D must be a list"),
    ({"T_base_link_camera": np.linalg.inv(mount_transform(1.5, 0.02)).tolist()},
     "not its inverse"),
    ({"T_base_link_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.5], [0, 0, 0, 1]]},
     "optical axis .z. points up"),
    ({"T_base_link_camera": (np.eye(4) * 2).tolist()}, "last row"),
    ({"T_base_link_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]][:3]},
     "must be 4x4"),
    ({"T_base_link_camera": [[1.0, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]]},
     "not a rotation"),
    ({"K": [[float("nan"), 0, 1], [0, 1, 1], [0, 0, 1]]}, "non-finite"),
])
def test_calibration_errors_name_the_field_and_fix(change, message):
    calib = {**make_calibration(), **change}
    with pytest.raises(CalibrationError, match=message):
        from_dict(calib, "cal.json")


def test_calibration_missing_fields_and_image_size():
    with pytest.raises(CalibrationError, match="has no K, T_base_link_camera"):
        from_dict({"width": 10, "height": 10}, "cal.json")
    with pytest.raises(CalibrationError, match="no distortion_model|D is given without"):
        from_dict({**make_calibration(), "D": [0.1, 0, 0, 0, 0], "distortion_model": None},
                  "cal.json")
    calib = from_dict(make_calibration(), "cal.json")
    assert calib.for_image(1280, 720) is calib
    with pytest.raises(CalibrationError, match="1280x720 images but the image is 1920x1080"):
        calib.for_image(1920, 1080)


def test_camera_info_with_empty_model_is_rectified():
    info = {"k": [1000.0, 0, 640, 0, 1000, 340, 0, 0, 1], "d": [], "distortion_model": "",
            "width": 1280, "height": 720}
    calib = from_camera_info(info, mount_transform(1.5, 0.02), "/cam/camera_info")
    assert calib.distortion_model == "none" and calib.K[0, 2] == 640


# -- constructed scenes --------------------------------------------------------------------------

def test_near_pedestrians_and_cars_are_placed_within_a_few_percent():
    calib = make_calibration()
    truth = [(6.0, 0.5), (5.0, -1.5), (10.0, 3.0), (20.0, -4.0), (35.0, 2.0), (8.0, -2.5),
             (25.0, 3.5)]
    labels = ["pedestrian"] * 5 + ["car"] * 2
    boxes = [project_box(calib, c, lb) for c, lb in zip(truth, labels, strict=True)]
    pos = estimate(calib, boxes, labels)
    assert pos.valid.all()
    assert (pos.method & GROUND).all() and (pos.method & SIZE).all()
    error = np.abs(rel_error(pos, truth))
    assert error[:5].max() < 0.03  # pedestrians
    assert error[5:].max() < 0.08  # cars: an oblique car's nearest wheel is off the box centre
    d = pos.xyz[:, :2] - np.array(truth)
    assert (np.einsum("ni,nij,nj->n", d, np.linalg.inv(pos.covariance), d) < 9).all()  # 3 sigma
    assert (pos.xyz[:, 2] == 0).all()


def test_vehicle_nearest_edge_correction():
    """The box bottom of a car seen from behind is where its rear wheels touch the road, half a
    wheelbase before its centre: the ground cue (after correction) finds the centre, the naive
    ray does not."""
    calib = make_calibration()
    truth = [(12.0, 0.0)]
    pos = estimate(calib, [project_box(calib, truth[0], "car")], ["car"])
    ground = pos.cues[0, 0]
    assert ground == pytest.approx(12.0, rel=0.02)
    naive = ground - PRIORS["car"].contact_length / 2
    assert naive < 12.0 * 0.9  # what the correction removes: about 11 % at 12 m


def test_raised_pavement_the_size_prior_carries_it():
    """A pedestrian on a 0.25 m kerb: the ground ray meets z = 0 far behind them (about 20 %
    too far for a camera 1.5 m up); the fused position is much nearer the truth and the scale
    factor widens the covariance so the truth stays inside 2 sigma."""
    calib = make_calibration()
    truth = [(15.0, 4.0)]
    pos = estimate(calib, [project_box(calib, truth[0], "pedestrian", base_z=0.25)], ["pedestrian"])
    true_range = math.hypot(*truth[0])
    naive = pos.cues[0, 0]
    assert (naive - true_range) / true_range > 0.15
    error = abs(rel_error(pos, truth)[0])
    assert error < 0.5 * (naive - true_range) / true_range
    d = pos.xyz[0, :2] - np.array(truth[0])
    assert d @ np.linalg.solve(pos.covariance[0], d) < 4.0


def test_border_cut_box_uses_the_top_ray():
    """A near car whose bottom is below the image: no ground cue (its ray would meet the road at
    the border, too near), the top edge against the height prior places it."""
    calib = make_calibration(height=1.2, pitch=0.0)
    truth = [(4.5, -1.0)]
    box = project_box(calib, truth[0], "car")
    assert box[3] == 720  # cut by the border
    pos = estimate(calib, [box], ["car"])
    assert pos.method[0] & TOP and not pos.method[0] & GROUND
    assert abs(rel_error(pos, truth)[0]) < 0.15


def test_top_cut_pedestrian_uses_the_ground_only():
    calib = make_calibration(height=1.2, pitch=0.0, cy=100.0)
    truth = [(4.0, 0.3)]
    box = project_box(calib, truth[0], "pedestrian")
    assert box[1] == 0  # head out of the image
    pos = estimate(calib, [box], ["pedestrian"])
    assert pos.method[0] == GROUND
    assert abs(rel_error(pos, truth)[0]) < 0.05


def test_ray_above_the_horizon_uses_the_size_prior():
    """Feet above the horizon (a pedestrian up a slope): the ground ray never meets the road."""
    calib = make_calibration(pitch=0.0)
    truth = [(40.0, 2.0)]
    box = project_box(calib, truth[0], "pedestrian", base_z=2.0)
    pos = estimate(calib, [box], ["pedestrian"])
    assert pos.method[0] == SIZE
    assert abs(rel_error(pos, truth)[0]) < 0.05


def test_both_edges_cut_fall_back_to_the_width():
    calib = make_calibration(height=1.5, pitch=0.0, size=(1280, 300))
    truth = [(6.0, 0.0)]
    box = project_box(calib, truth[0], "truck")
    assert box[1] == 0 and box[3] == 300
    pos = estimate(calib, [box], ["truck"])
    assert pos.method[0] == WIDTH
    assert abs(rel_error(pos, truth)[0]) < 0.35


@pytest.mark.parametrize("model, D", [
    ("plumb_bob", [-0.32, 0.12, 0.001, -0.001, -0.02]),
    ("rational_polynomial", [-0.3, 0.1, 0.001, -0.001, 0.0, 0.05, 0.01, 0.0]),
])
def test_distortion_is_undone(model, D):
    calib = make_calibration(model=model, D=D)
    truth = [(6.0, -2.5), (12.0, 4.0), (25.0, -5.0)]
    boxes = [project_box(calib, c, "pedestrian") for c in truth]
    pos = estimate(calib, boxes, ["pedestrian"] * 3)
    assert np.abs(rel_error(pos, truth)).max() < 0.03
    ignored = estimate({**calib, "distortion_model": "none", "D": []}, boxes, ["pedestrian"] * 3)
    assert np.abs(rel_error(ignored, truth)).max() > 0.05  # the distortion mattered


def test_labels_without_prior_and_empty_input():
    calib = make_calibration()
    pos = estimate(calib, [project_box(calib, (10, 0), "pedestrian"), [600, 100, 620, 140]],
                   ["pedestrian", "traffic_light"])
    assert pos.valid.tolist() == [True, False]
    assert np.isnan(pos.xyz[1]).all() and pos.method[1] == 0
    empty = estimate(calib, [], [])
    assert len(empty) == 0 and empty.xyz.shape == (0, 3) and empty.covariance.shape == (0, 2, 2)


def test_covariance_is_symmetric_positive_and_along_the_ray():
    calib = make_calibration()
    truth = [(10.0, 3.0), (30.0, -10.0), (60.0, 5.0)]
    pos = estimate(calib, [project_box(calib, c, "car") for c in truth], ["car"] * 3)
    cov = pos.covariance
    np.testing.assert_allclose(cov, np.transpose(cov, (0, 2, 1)))
    values, vectors = np.linalg.eigh(cov)
    assert (values > 0).all()
    major = vectors[:, :, 1]
    direction = pos.xyz[:, :2] / pos.range_m[:, None]
    assert (np.abs((major * direction).sum(1)) > 0.95).all()  # the range is the uncertain part
    assert np.all(np.diff(values[:, 1]) > 0)  # and it grows with distance


# -- the developer set ---------------------------------------------------------------------------

@pytest.mark.skipif(not DEV_SET_3D.is_file(), reason=f"developer set not found at {DEV_SET_3D}")
def test_developer_set_ground_truth_boxes():
    """On PandaSet's own boxes: every box placed, cars and pedestrians (all 40-80 m) within the
    issue's targets. These boxes are the projected cuboids: their bottom is the ground under the
    bumper, about 1 m nearer than the wheels a tight detector box stands on, so near cars come
    out short here by that (the naive ray: 16 %); eval on detections measures the real case."""
    doc = json.loads(DEV_SET_3D.read_text())
    labels_all = ("pedestrian", "cyclist", "car", "truck", "bus")
    errors: dict[str, list[float]] = {"pedestrian": [], "car_near": [], "car_far": []}
    for key, cam in doc["cameras"].items():
        calib = from_dict(cam["calibration"], key)
        boxes = [b for b in cam["boxes"] if "position_base_link" in b and not b["difficult"]]
        if not boxes:
            continue
        pos = estimate_positions(calib, np.array([b["bbox_xyxy"] for b in boxes]),
                                 np.array([labels_all.index(b["label"]) for b in boxes]),
                                 labels_all)
        for b, r in zip(boxes, pos.range_m, strict=True):
            rel = abs(r - b["range_m"]) / b["range_m"]
            if b["label"] == "pedestrian":
                errors["pedestrian"].append(rel)
            elif b["label"] == "car":
                errors["car_near" if b["range_m"] < 40 else "car_far"].append(rel)
    assert not np.isnan(np.concatenate(list(errors.values()))).any()  # every box placed
    assert len(errors["pedestrian"]) > 50 and len(errors["car_near"]) > 300
    assert np.median(errors["car_near"]) < 0.10
    assert np.median(errors["car_far"]) < 0.06
    assert np.median(errors["pedestrian"]) < 0.12


def test_corner_filling_vehicle_gets_a_wide_border_estimate():
    """Bottom and side cut, top ray useless: the near edge lies before the bottom row's ground
    point; the position is there, with the wide variance of knowing only that."""
    calib = make_calibration(height=1.5, pitch=0.0)
    truth = [(4.0, -2.6)]
    box = project_box(calib, truth[0], "truck")
    assert box[2] == 1280 and box[3] == 720
    pos = estimate(calib, [box], ["truck"])
    assert pos.method[0] == BORDER
    d = pos.xyz[0, :2] - np.array(truth[0])
    assert d @ np.linalg.solve(pos.covariance[0], d) < 4.0
    assert np.sqrt(np.linalg.eigvalsh(pos.covariance[0])[1]) > 0.5  # and says it is unsure


def test_mount_pitch_sd_is_the_pitch_uncertainty_of_every_entry_point():
    """object_detector's mount_pitch_sd (deg) sets the pitch noise the positions assume: a far
    car's ground ray, weak against pitch, gets a wider covariance with 2 degrees than with the
    default 0.5; the same value reaches detect/eval (position_noise) and is range-checked."""
    from sense_perception.core.geometry.positioner import CameraPositions
    from sense_perception.errors import ConfigError
    from sense_perception.ros.settings import ObjectDetectorSettings, position_noise

    calib = make_calibration()
    box = np.array([project_box(calib, (50.0, 1.0), "car")])
    label = np.array([NAMES.index("car")])
    default = position_noise({}, "test")
    assert default.pitch_rad == pytest.approx(math.radians(0.5))
    wide = position_noise({"mount_pitch_sd": 2.0, "detector.score_threshold": 0.3}, "test")
    assert wide.pitch_rad == pytest.approx(math.radians(2.0))
    fixed = from_dict(calib, "test")
    narrow_cov = CameraPositions(fixed).positions("cam", "", 1280, 720, box, label, NAMES).covariance
    wide_cov = CameraPositions(fixed, noise=ObjectDetectorSettings(mount_pitch_sd=2.0).position_noise(
        )).positions("cam", "", 1280, 720, box, label, NAMES).covariance
    assert wide_cov[0, 0, 0] > 1.2 * narrow_cov[0, 0, 0]  # the size cue, blind to pitch, shares it
    with pytest.raises(ConfigError, match="'mount_pitch_sd' must be in \\[0, 10\\] degrees"):
        position_noise({"mount_pitch_sd": 12.0}, "test")
