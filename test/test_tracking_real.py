"""Tracking the bundled detector's real detections through short simulated drives.

The street frames in shared/data are single frames (the PandaSet ones 1-3 s apart, too far for
IoU tracking), so each sequence is made from one real frame by simulating the car driving forward
and drifting sideways: frame k is the first view zoomed in about the focus of expansion and
shifted by a few pixels. Because the warp is known exactly, every car the detector finds in the
first frame has a known box in every later frame: the ground truth the track ids are checked
against. The detections themselves are real: they flicker, change score, split and merge.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sense_perception.core.detection.detector import ObjectDetector
from sense_perception.core.tracking.tracker import MultiObjectTracker, TrackingConfig, pairwise_iou

STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
# Two cities, two cameras: PandaSet (San Francisco, 1920x1080) and comma2k19 (CA-280, 1164x874).
FRAMES = ("pandaset_seq002_front_camera_00.jpg", "comma2k19_highway280_rav4_preview.png")
N_FRAMES = 12
RATE_HZ = 10.0
VEHICLES = ("car", "truck", "bus")

pytestmark = pytest.mark.slow  # ~25 detector runs


def ego_motion(k: int, width: int, height: int) -> np.ndarray:
    """2x3 affine map from the first frame to frame ``k``: zoom 0.8 % per frame about the focus
    of expansion (a little above the image centre), plus a sideways drift of 3 px per frame."""
    zoom = 1.008 ** k
    fx, fy = width * 0.5, height * 0.45
    return np.array([[zoom, 0.0, fx - zoom * fx - 3.0 * k],
                     [0.0, zoom, fy - zoom * fy]], np.float64)


def warp_boxes(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply an axis-aligned affine map (zoom + shift) to xyxy boxes."""
    out = boxes.astype(np.float64).copy()
    out[:, [0, 2]] = boxes[:, [0, 2]] * m[0, 0] + m[0, 2]
    out[:, [1, 3]] = boxes[:, [1, 3]] * m[1, 1] + m[1, 2]
    return out


@pytest.fixture(scope="module")
def detector():
    return ObjectDetector.from_params({}, "test")


@pytest.fixture(scope="module", params=FRAMES)
def drive(request, detector):
    path = STREET / request.param
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    height, width = image.shape[:2]
    maps = [ego_motion(k, width, height) for k in range(N_FRAMES)]
    detections = []
    for m in maps:  # one frame at a time, as a live camera delivers them
        frame = cv2.warpAffine(image, m, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        detections.extend(detector.detect([frame]))
    return detector.label_names, maps, detections, (width, height)


def vehicle_mask(labels: np.ndarray, names: list[str]) -> np.ndarray:
    wanted = np.array([names[i] in VEHICLES for i in range(len(names))])
    return wanted[labels]


def ids_of_true_cars(names, maps, detections, tracked, size, min_score):
    """Track id covering each first-frame car's known box in every frame.

    -1: only untracked detections cover it; -2: no detection covers it (IoU >= 0.5).
    """
    width, height = size
    first = detections[0]
    keep = vehicle_mask(first.labels, names) & (first.scores >= min_score)
    gt0, score0 = first.boxes[keep], first.scores[keep]
    # One car seen as car and as truck is one car: drop the weaker of boxes overlapping >= 0.7.
    overlap = pairwise_iou(gt0.astype(np.float64), gt0.astype(np.float64))
    weaker = (overlap >= 0.7) & (score0[None, :] > score0[:, None])
    gt0 = gt0[~weaker.any(axis=1)]
    # Cars whose true box stays inside the image for the whole drive, at least 20 px wide.
    last = warp_boxes(gt0, maps[-1])
    inside = (last[:, 0] >= 0) & (last[:, 1] >= 0) & (last[:, 2] <= width) & (last[:, 3] <= height)
    gt0 = gt0[inside & (gt0[:, 2] - gt0[:, 0] >= 20)]
    ids = np.full((len(gt0), len(tracked)), -2, np.int64)
    for k, det in enumerate(tracked):
        if len(det) == 0 or len(gt0) == 0:
            continue
        iou = pairwise_iou(warp_boxes(gt0, maps[k]), det.boxes.astype(np.float64))
        ids[iou.max(axis=1) >= 0.5, k] = -1  # covered, but by no tracked detection
        # An untracked duplicate (the same car also seen as a truck) is not the tracker's fault:
        # take the best-covering detection that has an id.
        iou_tracked = np.where(det.track_ids[None, :] >= 0, iou, -1.0)
        best = iou_tracked.argmax(axis=1)
        found = iou_tracked[np.arange(len(gt0)), best] >= 0.5
        ids[found, k] = det.track_ids[best[found]]
    return ids


def kept_one_id(ids: np.ndarray, skip: int) -> np.ndarray:
    """Per car: found in >= 80 % of frames after ``skip`` and always under one published id."""
    out = []
    for row in ids[:, skip:]:
        seen = row[row != -2]
        positive = seen[seen >= 0]
        out.append(len(seen) >= 0.8 * row.size and len(positive) == len(seen)
                   and len(np.unique(positive)) == 1)
    return np.array(out, bool)


def test_real_cars_keep_their_ids_through_a_simulated_drive(drive):
    names, maps, detections, size = drive
    cfg = TrackingConfig(min_hits=2, frame_rate=RATE_HZ)
    tracker = MultiObjectTracker(cfg, names)
    tracked = [tracker.update(d, k / RATE_HZ) for k, d in enumerate(detections)]
    for k, det in enumerate(tracked):  # within a frame an id names one detection only
        published = det.track_ids[det.track_ids >= 0]
        assert len(np.unique(published)) == len(published), f"frame {k}: duplicate ids {published}"

    ids = ids_of_true_cars(names, maps, detections, tracked, size, cfg.new_track_threshold)
    assert len(ids) >= 4, f"the detector found only {len(ids)} usable cars"
    stable = kept_one_id(ids, cfg.min_hits)
    report = "\n".join(f"car {i}: ids {row.tolist()}" for i, row in enumerate(ids))
    # Measured: 4/4 (PandaSet) and 6/7 (comma2k19: two small distant cars side by side are one
    # merged box in some frames and two in others, and the id follows the wrong half).
    assert stable.mean() >= 0.8, f"only {stable.sum()}/{len(stable)} cars kept one id:\n{report}"
    # Two different cars never share an id.
    after = ids[:, cfg.min_hits:]
    final = [int(row[row >= 0][0]) for row, ok in zip(after, stable, strict=True) if ok]
    assert len(set(final)) == len(final), report


def test_the_id_check_fails_when_ids_are_not_kept(drive):
    """Control: the same check on untracked output, and on a tracker reset every frame, fails."""
    names, maps, detections, size = drive
    off = MultiObjectTracker(TrackingConfig(enabled=False), names)
    tracked = [off.update(d, k / RATE_HZ) for k, d in enumerate(detections)]
    ids = ids_of_true_cars(names, maps, detections, tracked, size, 0.5)
    assert len(ids) and not kept_one_id(ids, 2).any()
    forgetful = MultiObjectTracker(TrackingConfig(min_hits=1), names)
    tracked = []
    for k, d in enumerate(detections):
        forgetful.reset()
        tracked.append(forgetful.update(d, k / RATE_HZ))
    ids = ids_of_true_cars(names, maps, detections, tracked, size, 0.5)
    assert not kept_one_id(ids, 2).any()
