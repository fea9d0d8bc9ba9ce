"""Tracker tests on synthetic moving boxes: stable ids, crossings, occlusion gaps, ByteTrack's
second stage, confirmation, lifetime, class gating, duplicates, resets, and the pieces (IoU,
assignment, Kalman)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from sense_perception.config import section_from_params
from sense_perception.core.tracking import kalman
from sense_perception.core.tracking.tracker import (MultiObjectTracker, TrackerBank,
                                                    TrackingConfig, label_groups,
                                                    linear_assignment, pairwise_iou)
from sense_perception.core.types import Detections
from sense_perception.errors import ConfigError

CAR, PERSON, TRUCK = 2, 0, 7
NAMES = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]
DT = 0.1  # 10 Hz camera


def dets(boxes, scores=None, labels=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = boxes.shape[0]
    scores = np.full(n, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    labels = np.full(n, CAR, np.int32) if labels is None else np.asarray(labels, np.int32)
    return Detections(boxes, scores, labels)


def box(cx: float, cy: float, w: float = 60.0, h: float = 40.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def run(tracker: MultiObjectTracker, frames, t0: float = 0.0, dt: float = DT) -> list[np.ndarray]:
    return [tracker.update(d, t0 + i * dt).track_ids.copy() for i, d in enumerate(frames)]


# --- pieces ------------------------------------------------------------------------------------

def test_pairwise_iou_known_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]], np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float64)
    iou = pairwise_iou(a, b)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0])
    np.testing.assert_allclose(iou[1], [4 / 100, 0.0, 0.0])
    assert pairwise_iou(a[:0], b).shape == (0, 3)


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (8, 2)])
def test_linear_assignment_is_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    cost = rng.random(shape)
    rows, cols, ur, uc = linear_assignment(cost, max_cost=10.0)
    ref_r, ref_c = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(cost[ref_r, ref_c].sum())
    assert len(rows) == min(shape)
    assert len(ur) == shape[0] - len(rows) and len(uc) == shape[1] - len(cols)


def test_linear_assignment_respects_cost_limit():
    cost = np.array([[0.1, 0.95], [0.9, 0.95]])
    rows, cols, ur, uc = linear_assignment(cost, max_cost=0.8)
    assert rows.tolist() == [0] and cols.tolist() == [0]
    assert ur.tolist() == [1] and uc.tolist() == [1]
    empty = linear_assignment(np.zeros((0, 3)), 0.8)
    assert empty[3].tolist() == [0, 1, 2]


def test_kalman_predict_matches_textbook_form():
    rng = np.random.default_rng(0)
    mean, cov = kalman.initiate(np.array([box(100, 50), box(300, 200, 80, 120)]))
    mean[:, 4:] = rng.normal(size=(2, 4))
    ref_mean, ref_cov = mean.copy(), cov.copy()
    kalman.predict_(mean, cov, 2.5, np.empty((4, 8, 8)))
    f = kalman.transition(2.5)
    for i in range(2):
        w, h = np.maximum(ref_mean[i, 2:4] + 2.5 * ref_mean[i, 6:8], 1.0)
        std = np.r_[np.array([w, h, w, h]) / 20, np.array([w, h, w, h]) / 160]
        np.testing.assert_allclose(mean[i], f @ ref_mean[i])
        np.testing.assert_allclose(cov[i], f @ ref_cov[i] @ f.T + 2.5 * np.diag(std ** 2))


def test_kalman_learns_constant_velocity():
    mean, cov = kalman.initiate(np.array([box(100, 100)]))
    scratch = np.empty((1, 8, 8))
    for k in range(1, 15):
        kalman.predict_(mean, cov, 1.0, scratch)
        mean, cov = kalman.update(mean, cov, np.array([box(100 + 8 * k, 100 - 3 * k)]))
    np.testing.assert_allclose(mean[0, 4:6], [8.0, -3.0], atol=0.3)
    assert np.all(np.linalg.eigvalsh(cov[0]) > 0)  # stays a valid covariance


# --- tracking ----------------------------------------------------------------------------------

def test_constant_velocity_keeps_one_id_after_confirmation():
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2))
    ids = run(tracker, [dets([box(50 + 12 * k, 200 + 2 * k)]) for k in range(30)])
    assert ids[0].tolist() == [-1]  # tentative on its first frame
    assert {int(i[0]) for i in ids[1:]} == {1}


@pytest.mark.parametrize("min_hits", [1, 3, 5])
def test_confirmation_delay_is_min_hits(min_hits):
    tracker = MultiObjectTracker(TrackingConfig(min_hits=min_hits))
    ids = [int(i[0]) for i in run(tracker, [dets([box(100 + 5 * k, 100)]) for k in range(8)])]
    assert ids == [-1] * (min_hits - 1) + [1] * (8 - min_hits + 1)


def test_one_frame_false_positive_never_gets_an_id_nor_uses_one():
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2))
    frames = [dets([box(100, 100)]), dets(np.zeros((0, 4))), dets([box(400, 300)]),
              dets([box(402, 300)])]
    ids = run(tracker, frames)
    assert ids[0].tolist() == [-1] and ids[2].tolist() == [-1]
    assert ids[3].tolist() == [1]  # the first id goes to the first object ever confirmed


@pytest.mark.parametrize("start_b, dy, size_b", [
    (500.0, 0.0, (60.0, 40.0)), (503.0, 0.0, (60.0, 40.0)), (500.0, 10.0, (60.0, 40.0)),
    (500.0, -6.0, (70.0, 50.0))])
def test_crossing_objects_of_one_class_keep_their_ids(start_b, dy, size_b):
    """Two cars of one class drive through each other's box in the image."""
    n = 40
    frames, same = [], []
    for k in range(n):
        a = box(100 + 10 * k, 200)
        b = box(start_b - 10 * k, 200 + dy, *size_b)
        frames.append(dets([a, b], scores=[0.9, 0.85]))
        same.append(a == b)
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2)), frames)
    id_a, id_b = ids[2].tolist()
    assert id_a > 0 and id_b > 0 and id_a != id_b
    for k in range(2, n):
        if same[k]:
            continue  # two identical boxes: which is which is undecidable in that one frame
        assert ids[k].tolist() == [id_a, id_b], f"frame {k}: ids {ids[k]} swapped or lost"


def test_car_passing_behind_another_gets_its_id_back():
    """Car B crosses behind car A: for six frames the detector sees only A, then B again."""
    frames = []
    for k in range(40):
        a = box(100 + 10 * k, 200, 80, 60)
        b = box(600 - 10 * k, 190, 50, 36)
        hidden = pairwise_iou(np.array([a]), np.array([b]))[0, 0] > 0.15
        frames.append(dets([a], scores=[0.9]) if hidden else dets([a, b], scores=[0.9, 0.8]))
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2)), frames)
    hidden_frames = [k for k, f in enumerate(frames) if len(f) == 1]
    assert 4 <= len(hidden_frames) <= 10
    assert all(i.tolist() == [1, 2] for k, i in enumerate(ids) if k >= 1 and k not in hidden_frames)
    assert all(ids[k].tolist() == [1] for k in hidden_frames)


def test_occlusion_gap_resumes_the_same_id():
    cfg = TrackingConfig(min_hits=2, max_age=1.0)
    frames = []
    for k in range(30):
        hidden = 10 <= k < 16  # 0.6 s behind a truck, less than max_age
        frames.append(dets(np.zeros((0, 4))) if hidden else dets([box(80 + 9 * k, 150 + 1 * k)]))
    ids = run(MultiObjectTracker(cfg), frames)
    seen = {int(i[0]) for k, i in enumerate(ids) if k >= 1 and len(i)}
    assert seen == {1}


def test_gap_longer_than_max_age_gives_a_new_id():
    cfg = TrackingConfig(min_hits=2, max_age=0.3)
    seen, gap = dets([box(100, 100)]), dets(np.zeros((0, 4)))
    frames = [seen] * 3 + [gap] * 5 + [seen] * 3
    ids = run(MultiObjectTracker(cfg), frames)
    assert ids[2].tolist() == [1]
    assert ids[-1].tolist() == [2]  # the old track was deleted; ids are never reused


def test_max_age_is_measured_in_seconds_not_frames():
    """Two frames 0.8 s apart (camera dropped seven): within max_age 1 s the track survives."""
    tracker = MultiObjectTracker(TrackingConfig(min_hits=1, max_age=1.0))
    tracker.update(dets([box(100, 100)]), 0.0)
    tracker.update(dets(np.zeros((0, 4))), 0.1)
    assert tracker.update(dets([box(100, 100)]), 0.9).track_ids.tolist() == [1]
    tracker.update(dets(np.zeros((0, 4))), 1.0)
    assert tracker.update(dets([box(100, 100)]), 2.5).track_ids.tolist() == [2]


def test_dropped_frames_use_elapsed_time_in_the_prediction():
    """A car moving 20 px per 0.1 s, 60 px wide; then frames are dropped so it jumps 60 px (no
    overlap with its last box). Only a prediction over the real elapsed time keeps the id."""
    times = [0.1 * k for k in range(10)] + [1.2, 1.5, 1.8, 2.1]
    frames = [dets([box(100 + 200 * t, 200)]) for t in times]
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2))
    ids = [int(tracker.update(d, t).track_ids[0]) for d, t in zip(frames, times, strict=True)]
    assert ids[1:] == [1] * (len(times) - 1)


def test_score_dip_is_kept_by_the_second_stage():
    scores = [0.9] * 8 + [0.3, 0.25, 0.3] + [0.9] * 5
    frames = [dets([box(100 + 6 * k, 300)], scores=[s]) for k, s in enumerate(scores)]
    ids = run(MultiObjectTracker(TrackingConfig(high_threshold=0.5, low_threshold=0.1)), frames)
    assert [int(i[0]) for i in ids[1:]] == [1] * (len(scores) - 1)
    # Without the second stage the weak detections are left untracked (ByteTrack's point).
    ids = run(MultiObjectTracker(TrackingConfig(high_threshold=0.5, low_threshold=0.5)), frames)
    assert [int(i[0]) for i in ids[8:11]] == [-1, -1, -1]


def test_weak_detection_never_starts_a_track():
    frames = [dets([box(100, 100)], scores=[0.4])] * 5
    ids = run(MultiObjectTracker(TrackingConfig(high_threshold=0.5, min_hits=1)), frames)
    assert all(i.tolist() == [-1] for i in ids)


def test_new_object_gets_a_new_id_and_old_ones_stay():
    frames = []
    for k in range(20):
        boxes = [box(100 + 5 * k, 100)]
        if k >= 8:
            boxes.append(box(600 - 4 * k, 400, 40, 90))
        frames.append(dets(boxes))
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2)), frames)
    assert ids[5].tolist() == [1]
    assert ids[8].tolist() == [1, -1]
    assert all(i.tolist() == [1, 2] for i in ids[9:])


def test_a_car_never_continues_a_pedestrian_track():
    person, car = dets([box(200, 200)], labels=[PERSON]), dets([box(200, 200)], labels=[CAR])
    frames = [person] * 4 + [car] * 4
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2)), frames)
    assert [int(i[0]) for i in ids] == [-1, 1, 1, 1, -1, 2, 2, 2]
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2, class_aware=False)), frames)
    assert [int(i[0]) for i in ids] == [-1, 1, 1, 1, 1, 1, 1, 1]


def test_class_groups_let_car_and_truck_share_a_track():
    labels = [CAR, CAR, TRUCK, CAR, TRUCK, TRUCK]
    frames = [dets([box(200 + 3 * k, 200)], labels=[lab]) for k, lab in enumerate(labels)]
    grouped = run(MultiObjectTracker(TrackingConfig(min_hits=2), NAMES), frames)
    assert [int(i[0]) for i in grouped] == [-1, 1, 1, 1, 1, 1]
    # Without label names the tracker cannot know the groups and matches labels exactly.
    exact = run(MultiObjectTracker(TrackingConfig(min_hits=2)), frames)
    assert int(exact[2][0]) == -1


def test_default_groups_fit_models_without_some_coco_names():
    groups = label_groups(TrackingConfig(), ["person", "car", "truck"])
    assert groups[1] == groups[2] != groups[0]


def test_one_car_seen_as_car_and_truck_gets_one_id():
    """The detector's per-class NMS keeps both boxes of one vehicle; only one may get an id, and
    that id must not jump between the two boxes."""
    frames = []
    for k in range(12):
        car = box(300 + 6 * k, 200, 120, 80)
        truck = box(302 + 6 * k, 201, 116, 84)  # IoU ~0.9 with the car box
        # The truck box scores above new_track_threshold, below the car box.
        frames.append(dets([car, truck], scores=[0.8, 0.75 + 0.01 * (k % 3)], labels=[CAR, TRUCK]))
    frames[5] = dets([frames[5].boxes[0]], scores=[0.8])  # truck box missing in one frame
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2), NAMES), frames)
    assert all(i[0] == 1 for i in ids[1:])
    assert all((i[1:] == -1).all() for i in ids)
    # Off (duplicate_iou 1): the truck box becomes a second, duplicate track.
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2, duplicate_iou=1.0), NAMES), frames)
    assert ids[-1].tolist() == [1, 2]


def test_late_duplicate_box_cannot_confirm_a_second_track():
    """The second box first appears offset (IoU ~0.6, so it may start a tentative track), then
    lies on the tracked car: that tentative track is a duplicate and must die unconfirmed."""
    frames = [dets([box(300 + 6 * k, 200, 120, 80)]) for k in range(4)]
    frames.append(dets([box(324, 200, 120, 80), box(345, 204, 110, 80)], scores=[0.8, 0.6],
                       labels=[CAR, TRUCK]))
    frames += [dets([box(300 + 6 * k, 200, 120, 80), box(303 + 6 * k, 202, 118, 80)],
                    scores=[0.8, 0.6], labels=[CAR, TRUCK]) for k in range(5, 10)]
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2), NAMES), frames)
    assert all(i.tolist() == [1, -1] for i in ids[4:])


def test_close_but_distinct_objects_are_both_tracked():
    """Two pedestrians walking side by side overlap (IoU ~0.4), below duplicate_iou."""
    frames = [dets([box(200 + 3 * k, 300, 40, 100), box(223 + 3 * k, 302, 40, 100)],
                   labels=[PERSON, PERSON]) for k in range(8)]
    ids = run(MultiObjectTracker(TrackingConfig(min_hits=2), NAMES), frames)
    assert all(i.tolist() == [1, 2] for i in ids[1:])


def test_unknown_class_group_name_is_a_config_error():
    with pytest.raises(ConfigError, match="'lorry'"):
        label_groups(TrackingConfig(class_groups=["car,lorry"]), NAMES)
    with pytest.raises(ConfigError, match="'lorry'"):
        TrackerBank(TrackingConfig(class_groups=["car,lorry"]), NAMES)


def test_time_going_back_resets_but_ids_are_never_reused():
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2))
    frames = [dets([box(100 + 5 * k, 100)]) for k in range(5)]
    first = run(tracker, frames, t0=100.0)
    again = run(tracker, frames, t0=100.0)  # the bag loops
    assert int(first[-1][0]) == 1
    assert tracker.resets == 1
    # the first frame behind may be one wrong stamp: taken at the last time, it continues the
    # track; the second, going on from it, confirms the loop: afresh, with a new id
    assert [int(i[0]) for i in again] == [1, -1, 2, 2, 2]


def test_one_frame_stamped_in_the_past_does_not_reset_the_tracks():
    """One frame stamped 0 (an uninitialised header) in a stream reset every track: the ids of
    every object changed. It is taken at the previous frame's time now."""
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2))
    frames = [dets([box(100 + 5 * k, 100)]) for k in range(8)]
    ids = [int(tracker.update(d, 0.0 if k == 4 else 100.0 + k * DT).track_ids[0])
           for k, d in enumerate(frames)]
    assert tracker.resets == 0
    assert ids == [-1, 1, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("ahead", [5 * 3600.0, 2**31 - 1.0])
def test_one_frame_stamped_far_ahead_does_not_cost_the_tracks(ahead):
    """One frame stamped hours ahead (a corrupt header, a simulator's /clock glitch under
    use_sim_time) between frames on the camera's clock: every track was predicted hours on and
    lost, the frames back on the clock then reset the tracker, and the car got new ids (2, 3).
    The tracks go on from before that frame now; its own detections may go unmatched."""
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2))
    frames = [dets([box(100 + 5 * k, 100), box(400 - 5 * k, 200)]) for k in range(10)]
    ids = [tracker.update(d, (100.0 + ahead) if k == 4 else 100.0 + k * DT).track_ids.tolist()
           for k, d in enumerate(frames)]
    assert tracker.resets == 0
    assert ids[3] == [1, 2] and all(i == [1, 2] for i in ids[5:]), ids
    # a real pause longer than max_age, the stream going on after it, still ends the tracks
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2))
    ids = [tracker.update(d, 100.0 + k * DT + (60.0 if k >= 4 else 0.0)).track_ids.tolist()
           for k, d in enumerate(frames)]
    assert ids[3] == [1, 2] and ids[-1] == [3, 4] and tracker.resets == 0, ids


def test_tracker_bank_keeps_cameras_apart():
    bank = TrackerBank(TrackingConfig(min_hits=1), NAMES)
    a = bank.update("front", dets([box(100, 100)]), 0.0)
    b = bank.update("rear", dets([box(100, 100), box(400, 100)]), 0.0)
    a2 = bank.update("front", dets([box(103, 100)]), 0.1)
    assert a.track_ids.tolist() == [1] and a2.track_ids.tolist() == [1]
    assert b.track_ids.tolist() == [1, 2]
    assert bank.cameras == ["front", "rear"]
    bank.update("rear", dets([box(100, 100)]), 5.0)
    bank.reset("rear")
    assert bank.tracker("rear").num_tracks == 0 and bank.tracker("front").num_tracks == 1


def test_output_keeps_input_order_and_arrays():
    d = dets([box(100, 100), box(300, 100), box(500, 100)], scores=[0.9, 0.0005, 0.8])
    out = MultiObjectTracker(TrackingConfig(min_hits=1)).update(d, 0.0)
    assert out.boxes is d.boxes and out.scores is d.scores and out.labels is d.labels
    assert out.track_ids.dtype == np.int64
    assert out.track_ids.tolist() == [1, -1, 2]  # below low_threshold: untouched


def test_disabled_tracker_leaves_ids_unset():
    tracker = MultiObjectTracker(TrackingConfig(enabled=False, min_hits=1))
    ids = run(tracker, [dets([box(100, 100)])] * 3)
    assert all(i.tolist() == [-1] for i in ids) and tracker.num_tracks == 0


def test_many_tracks_grow_the_buffers():
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 4000, size=(150, 2))
    tracker = MultiObjectTracker(TrackingConfig(min_hits=2), capacity=4)
    for k in range(4):
        b = np.array([box(x + 2 * k, y, 20, 20) for x, y in centres])
        ids = tracker.update(dets(b), k * DT).track_ids
    assert sorted(ids.tolist()) == list(range(1, 151))
    assert tracker.num_tracks == 150


def test_mismatched_detection_arrays_are_rejected():
    bad = Detections(np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="scores"):
        MultiObjectTracker().update(bad, 0.0)


# --- configuration -----------------------------------------------------------------------------

def test_config_from_ros_params():
    params = {"tracking.min_hits": 3, "tracking.max_age": 2, "tracking.class_groups": ["car,bus"],
              "detector.score_threshold": 0.3, "score_threshold": 0.3}
    cfg = TrackingConfig.from_params(params, "object_detector.yaml")
    assert cfg.min_hits == 3 and cfg.max_age == 2.0 and cfg.class_groups == ["car,bus"]
    assert cfg == section_from_params(TrackingConfig, params, "tracking.")


@pytest.mark.parametrize("params, match", [
    ({"tracking.min_hitz": 3}, "tracking.min_hitz"),
    ({"tracking.min_hits": 0}, "tracking.min_hits"),
    ({"tracking.high_threshold": 1.5}, "tracking.high_threshold"),
    ({"tracking.low_threshold": 0.6, "tracking.high_threshold": 0.5}, "low_threshold"),
    ({"tracking.match_iou": 0.0}, "tracking.match_iou"),
    ({"tracking.max_age": -1.0}, "tracking.max_age"),
    ({"tracking.frame_rate": 0}, "tracking.frame_rate"),
    # .inf and absurd rates: the nominal frame period 0 made the motion model NaN (a raw numpy
    # RuntimeWarning on the terminal, tracks that never matched their predictions)
    ({"tracking.frame_rate": float("inf")}, "tracking.frame_rate"),
    ({"tracking.frame_rate": 1e300}, "tracking.frame_rate"),
    ({"tracking.enabled": "yes"}, "tracking.enabled"),
])
def test_bad_config_is_a_clear_error(params, match):
    with pytest.raises(ConfigError, match=match):
        TrackingConfig.from_params(params, "object_detector.yaml")


@pytest.mark.parametrize("max_age", [float("inf"), 1e9])
def test_a_max_age_of_forever_keeps_the_tracks_bounded(max_age):
    """tracking.max_age: .inf (its range allows it) or hours kept every object ever seen, lost for
    ever: the tracks grew by every new object and each frame matched against all of them. At most
    MAX_TRACKS are held now, the lost ones seen longest ago dropped first; a car lost a moment ago
    still gets its id back."""
    from sense_perception.core.tracking.tracker import MAX_TRACKS

    tracker = MultiObjectTracker(TrackingConfig(min_hits=1, max_age=max_age))
    grid = np.array([box(40 + 70 * (i % 40), 40 + 50 * (i // 40)) for i in range(120)])

    def cars(k: int) -> Detections:  # frame k's 120 cars, 4000 px right of frame k-1's: all new
        return dets(grid + [4000.0 * k, 0.0, 4000.0 * k, 0.0])

    frames = MAX_TRACKS // 120 + 5
    for k in range(frames):
        tracker.update(cars(k), 100.0 + k * DT)
    assert tracker.num_tracks <= MAX_TRACKS
    held = tracker.tracks()["ids"]
    assert held.min() > 120 and held.max() == 120 * frames  # the oldest lost ones are gone
    # the last frame's cars, lost for a frame, come back with their ids
    tracker.update(dets([]), 100.0 + frames * DT)
    ids = tracker.update(cars(frames - 1), 100.0 + (frames + 1) * DT).track_ids
    assert sorted(ids.tolist()) == list(range(120 * (frames - 1) + 1, 120 * frames + 1))
