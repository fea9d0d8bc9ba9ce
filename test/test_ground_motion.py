"""Ground velocities per track (core/tracking/ground_motion.py) on geometry built here.

Boxes are the projection of road users walking or standing in base_link through a calibrated
camera (plumb_bob distortion; ``test_geometry.project_box``), moved by a pixel of noise, then
tracked by the real tracker and placed by the real positioner: the velocities are checked against
the motion that made them.
"""
from __future__ import annotations

import numpy as np
import pytest

from sense_perception.core.geometry import estimate_positions, from_dict
from sense_perception.core.geometry.ground import GroundPositions
from sense_perception.core.tracking.ground_motion import GroundMotion, VelocityConfig
from sense_perception.core.tracking.tracker import TrackerBank
from sense_perception.core.types import Detections
from sense_perception.errors import ConfigError
from sense_perception.config import section_from_params
from test_geometry import NAMES, make_calibration, project_box

CALIB = make_calibration(model="plumb_bob", D=[-0.1, 0.01, 0.0, 0.0, 0.0])
RATE = 10.0  # Hz


def _run(path, label: str, seconds: float = 4.0, noise_px: float = 1.0, seed: int = 0,
         config: VelocityConfig | None = None, stamp=None):
    """Track and place ``label`` at ``path(t)`` (base_link x, y) for ``seconds``; per frame the
    velocity result of its detection. ``stamp(k, t)``: the header stamp of frame ``k`` taken at
    ``t`` (default ``t``)."""
    rng = np.random.default_rng(seed)
    calib = from_dict(CALIB, "test")
    bank = TrackerBank(label_names=NAMES, velocity=config)
    out = []
    for k in range(int(seconds * RATE)):
        real = 100.0 + k / RATE
        t = real if stamp is None else stamp(k, real)
        box = np.array(project_box(CALIB, path(real - 100.0), label)) + rng.normal(0.0, noise_px, 4)
        dets = bank.update("cam", Detections(box[None].astype(np.float32),
                                             np.array([0.9], np.float32),
                                             np.array([NAMES.index(label)], np.int32)), t)
        placed = estimate_positions(calib, dets.boxes, dets.labels, NAMES)
        out.append(bank.velocities("cam", dets, placed, t))
    return out


def test_a_pedestrian_crossing_at_1_5_m_s():
    """12 m ahead, walking left across the road at 1.5 m/s: within 0.3 m/s in each axis once
    steady (2 s in), and steady after min_updates frames."""
    frames = _run(lambda t: (12.0, -3.0 + 1.5 * t), "pedestrian")
    assert frames[0].updates[0] == 0  # tentative: no track id yet, so no velocity
    steady = [f.steady[0] for f in frames]
    first = steady.index(True)
    assert first >= VelocityConfig().min_updates  # never before enough updates
    assert all(steady[first:])
    late = np.array([f.velocity[0] for f in frames[20:]])
    np.testing.assert_allclose(late.mean(0), [0.0, 1.5], atol=0.15)
    assert np.abs(late - [0.0, 1.5]).max() < 0.3
    # the covariance covers the error: within 3 sigma, per axis
    sd = np.sqrt(np.array([np.diag(f.covariance[0]) for f in frames[20:]]))
    assert np.all(np.abs(late - [0.0, 1.5]) < 3 * sd)


def test_a_standing_car_is_steady_at_zero():
    frames = _run(lambda t: (8.0, -3.5), "car", seconds=3.0, seed=1)
    late = np.array([f.velocity[0] for f in frames[15:]])
    assert np.abs(late).max() < 0.25
    assert all(f.steady[0] for f in frames[15:])


def test_a_new_track_is_not_steady_and_a_jump_restarts_it():
    motion = GroundMotion(VelocityConfig(min_updates=3))
    ids = np.array([7])

    def at(x: float, y: float, sd: float = 0.1) -> GroundPositions:
        cov = np.eye(2)[None] * sd ** 2
        return GroundPositions(np.array([[x, y, 0.0]]), np.array([np.hypot(x, y)]), cov,
                               np.array([True]), np.zeros(1, np.int8), np.full((1, 5), np.nan),
                               cov.copy())

    first = motion.update(ids, at(10.0, 0.0), 0.0)
    assert first.updates[0] == 1 and not first.steady[0]
    assert first.covariance[0, 0, 0] > 100.0  # nothing known about its velocity yet
    for k in range(1, 6):  # 1 m/s along x
        v = motion.update(ids, at(10.0 + 0.1 * k, 0.0), 0.1 * k)
    assert v.steady[0] and v.updates[0] == 6
    np.testing.assert_allclose(v.velocity[0], [1.0, 0.0], atol=0.05)
    jumped = motion.update(ids, at(25.0, 0.0), 0.6)  # 15 m in 0.1 s: another object
    assert jumped.updates[0] == 1 and not jumped.steady[0]
    np.testing.assert_allclose(jumped.velocity[0], [0.0, 0.0])
    # untracked (-1) and unplaced detections get none; a track unseen beyond max_age is dropped
    both = GroundPositions(np.array([[5.0, 1.0, 0.0], [np.nan] * 3]), np.array([5.1, np.nan]),
                           np.stack([np.eye(2) * 0.01] * 2), np.array([True, False]),
                           np.zeros(2, np.int8), np.full((2, 5), np.nan),
                           np.stack([np.eye(2) * 0.01] * 2))
    none = motion.update(np.array([-1, 9]), both, 0.7)
    assert none.updates.tolist() == [0, 0] and np.isnan(none.velocity).all()
    motion.update(np.array([8]), at(3.0, 3.0), 5.0)
    assert motion.num_tracks == 1  # 7 went stale after max_age (1 s)
    # time going back (a looped bag) starts over once the next frame is behind too: the first
    # frame behind may be one wrong stamp, taken at the last frame's time (behind 0.7, the frame
    # before the 4.3 s step: a frame between the two would undo that step as one wrong stamp,
    # test_one_frame_stamped_far_ahead_keeps_the_velocity_and_its_track)
    assert motion.update(np.array([8]), at(3.0, 3.0), 0.3).updates[0] == 2
    assert motion.update(np.array([8]), at(3.0, 3.0), 0.4).updates[0] == 1


def test_one_frame_stamped_far_ahead_keeps_the_velocity_and_its_track():
    """One frame of a crossing pedestrian stamped five hours ahead (a corrupt header, a
    simulator's /clock glitch): the track and its velocity filter were dropped and restarted
    (a new id, not steady for min_updates frames). Both go on from before that frame now."""
    ahead = 20
    frames = _run(lambda t: (12.0, -3.0 + 1.5 * t), "pedestrian",
                  stamp=lambda k, t: t + 5 * 3600.0 if k == ahead else t)
    assert all(f.steady[0] for f in frames[ahead - 5:ahead])
    after = frames[ahead + 1:]
    assert all(f.steady[0] for f in after), [f.updates[0] for f in after]
    assert [f.updates[0] for f in after] == list(range(frames[ahead - 1].updates[0] + 1,
                                                       frames[ahead - 1].updates[0] + 1 + len(after)))
    late = np.array([f.velocity[0] for f in after])
    assert np.abs(late - [0.0, 1.5]).max() < 0.3


@pytest.mark.parametrize("max_age", [float("inf"), 1e9])
def test_a_max_age_of_forever_keeps_the_filters_bounded(max_age: float) -> None:
    """tracking.max_age .inf (its range allows it) kept the velocity filter of every track id ever
    placed: one per object seen, for ever. At most MAX_TRACKS are held, those seen longest ago
    dropped first; the ids of this frame keep theirs."""
    from sense_perception.core.tracking.ground_motion import MAX_TRACKS

    motion = GroundMotion(VelocityConfig(), max_age=max_age)
    per_frame = 200
    frames = MAX_TRACKS // per_frame + 3
    cov = np.broadcast_to(np.eye(2) * 0.01, (per_frame, 2, 2)).copy()
    for k in range(frames):  # 200 new pedestrians a frame, each seen once
        ids = np.arange(k * per_frame, (k + 1) * per_frame) + 1
        xy = np.stack([np.full(per_frame, 5.0 + k), np.linspace(-10, 10, per_frame)], 1)
        placed = GroundPositions(np.c_[xy, np.zeros(per_frame)], np.hypot(*xy.T), cov,
                                 np.ones(per_frame, bool), np.zeros(per_frame, np.int8),
                                 np.full((per_frame, 5), np.nan), cov.copy())
        out = motion.update(ids, placed, 100.0 + k / RATE)
        assert (out.updates == 1).all()
    assert motion.num_tracks <= MAX_TRACKS
    # the last frame's ids are held: seen again, they continue their filters
    again = motion.update(ids, placed, 100.0 + frames / RATE)
    assert (again.updates == 2).all()


def test_ids_placed_out_of_order_keep_their_own_filters():
    """Track 5 first placed after track 6: each id keeps its own state (rows stay sorted)."""
    motion = GroundMotion(VelocityConfig(min_updates=2), capacity=1)

    def two(xs, valid):
        n = len(xs)
        cov = np.stack([np.eye(2) * 0.01] * n)
        xyz = np.array([[x, 0.0, 0.0] for x in xs])
        return GroundPositions(xyz, np.abs(xyz[:, 0]), cov, np.array(valid), np.zeros(n, np.int8),
                               np.full((n, 5), np.nan), cov.copy())

    motion.update(np.array([5, 6]), two([10.0, 20.0], [False, True]), 0.0)
    for k in range(1, 8):  # 5 recedes at 1 m/s, 6 approaches at 2 m/s
        v = motion.update(np.array([6, 5]), two([20.0 - 0.2 * k, 10.0 + 0.1 * (k - 1)],
                                                [True, True]), 0.1 * k)
    np.testing.assert_allclose(v.velocity[:, 0], [-2.0, 1.0], atol=0.05)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="min_updates must be >= 2"):
        section_from_params(VelocityConfig, {"tracking.velocity.min_updates": 1},
                            "tracking.velocity.", "test")
    with pytest.raises(ConfigError, match="steady_sd must be > 0"):
        VelocityConfig.from_params({"tracking.velocity.steady_sd": 0.0}, "test")
    assert VelocityConfig.from_params({"tracking.velocity.accel_sd": 3}, "t").accel_sd == 3.0


@pytest.mark.parametrize("accel_sd", [1e200, float("inf")])
def test_an_absurd_acceleration_is_refused_naming_it(accel_sd: float) -> None:
    """tracking.velocity.accel_sd 1e200 (its open range let it through): squaring it overflowed
    on the second position of every track, and each such frame raised OverflowError (a node drops
    the frame: every frame of a tracked object); .inf made every velocity NaN. Refused now."""
    with pytest.raises(ConfigError, match=r"tracking\.velocity\.accel_sd.*(at most|within)"):
        VelocityConfig.from_params({"tracking.velocity.accel_sd": accel_sd}, "object_detector.yaml")
    # the largest accepted value still gives finite velocities
    frames = _run(lambda t: (12.0, -3.0 + 1.5 * t), "pedestrian", seconds=2.0,
                  config=VelocityConfig(accel_sd=100.0))
    assert np.isfinite(frames[-1].velocity[0]).all()
