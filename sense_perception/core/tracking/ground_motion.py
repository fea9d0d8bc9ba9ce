"""Velocities of tracked road users on the ground: a constant-velocity Kalman filter per track.

The image tracker (:mod:`.tracker`) says which detections are one object; the positioner
(:mod:`..geometry.ground`) places each on the road in base_link with a 2x2 covariance. This module
filters those positions per track id with a constant-velocity model in (x, y) and gives each
tracked, placed detection a velocity (vx, vy) in m/s and its 2x2 covariance.

* State per track ``(x, y, vx, vy)`` in base_link; the measurement is the positioner's (x, y) with
  its covariance; the step is the difference of the frames' stamps (dropped frames and lost tracks
  predict over the longer gap, with more process noise).
* Process noise: white acceleration of spectral density ``accel_sd**2`` (m^2/s^3) per axis,
  ``Q = accel_sd**2 [[dt^3/3, dt^2/2], [dt^2/2, dt]]``.
* A measurement whose squared Mahalanobis distance from the prediction exceeds ``reset_gate``
  (chi-square, 2 degrees of freedom) restarts the track's filter there: a jump (an id switch in the
  tracker, a cue change of the positioner) is not turned into a velocity.
* A velocity is *steady* once the track has ``min_updates`` updates since its (re)start and the
  larger eigenvalue of its covariance is at most ``steady_sd**2``.

**Relative to base_link.** The velocities are of the object relative to the ego vehicle's
base_link: the ego car's own motion is not subtracted (there is no odometry input). A parked car
seen from a car driving at 10 m/s moves at about -10 m/s in x; when the ego car turns, everything
sweeps sideways. Only when the ego car stands still is it the velocity over the ground.

The measurement noise is the positioner's frame-to-frame part (``GroundPositions.jitter``: the
box edges' pixel noise); what persists over a track (one person's height against the prior, a
car's footprint, the camera's pitch, a kerb) moves all of its positions alike and so does not
make a velocity, except as a scale: a track placed k % too far moves k % too fast. That part is
added to the velocity covariance as ``var(k) v v^T``.

Everything works on arrays over all tracks of a camera; storage is allocated once and grows by
doubling, and per-frame work is a handful of stacked (m, 4, 4) products.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...config import check_settings, section_from_params, setting
from ..geometry.ground import BORDER, GroundPositions
from ..stamp_order import StampOrder

# Velocity prior of a new track, m/s (per axis): anything a road user may do relative to the ego
# car; the second measurement then sets the velocity.
_INITIAL_VELOCITY_SD = 15.0
_MIN_VAR = 1e-6  # floor of a measurement variance, m^2 (keeps S invertible)
# The per-track arrays of GroundMotion, rows [:n] live and sorted by id.
_FIELDS = ("_ids", "_x", "_P", "_updates", "_seen")
#: The largest ``tracking.velocity.accel_sd`` (m/s^2): ten times what a braking car reaches.
MAX_ACCEL_SD = 100.0
#: Tracks (and ground-velocity filters) held at most per camera: beyond, those seen longest ago are
#: dropped. A ``tracking.max_age`` of hours (or .inf, which its range allows) kept every object
#: ever seen. Tracked and tentative tracks number at most two frames' detections
#: (``detector.max_detections`` is at most 1000).
MAX_TRACKS = 4096


@dataclass
class VelocityConfig:
    """The ``tracking.velocity.*`` parameters of object_detector: ground velocities per track.

    Attributes:
        accel_sd: white-noise acceleration of the constant-velocity model (m/s^2; spectral
            density accel_sd^2 m^2/s^3): how fast a road user may change its velocity relative to
            the ego car.
        min_updates: updates since a track's (re)start before its velocity can be steady.
        steady_sd: the velocity is steady (and published as the twist) when its larger standard
            deviation is at most this (m/s).
        reset_gate: a position whose squared Mahalanobis distance from the prediction exceeds this
            restarts the track's filter (chi-square with 2 degrees of freedom: 13.8 = 0.1 %).
    """

    # At most MAX_ACCEL_SD: 1e200 (an open range let it through) overflowed squaring it, every
    # frame of a tracked, placed object raised; .inf made every velocity NaN.
    accel_sd: float = setting(1.0, "white-noise acceleration of the constant-velocity model of "
                                   "each track's ground position (m/s^2)", (0.0, MAX_ACCEL_SD), constraint="above 0")
    min_updates: int = setting(5, "updates since a track's (re)start before its velocity can be "
                                  "steady", (2, None))
    steady_sd: float = setting(1.0, "a velocity is steady (published as the twist) when its larger "
                                    "standard deviation is at most this (m/s)", (0.0, None), constraint="above 0")
    reset_gate: float = setting(13.8, "squared Mahalanobis distance of a position from its "
                                      "prediction beyond which the track's filter restarts (a jump)",
                                (0.0, None), constraint="above 0")

    PREFIX = "tracking.velocity."

    def __post_init__(self) -> None:
        for name in ("accel_sd", "steady_sd", "reset_gate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"tracking.velocity.{name} must be > 0, got {getattr(self, name)}")
        if not self.accel_sd <= MAX_ACCEL_SD:
            raise ValueError(f"tracking.velocity.accel_sd must be at most {MAX_ACCEL_SD:g} m/s^2, "
                             f"got {self.accel_sd}")
        if self.min_updates < 2:
            raise ValueError(f"tracking.velocity.min_updates must be >= 2 (one position gives no "
                             f"velocity), got {self.min_updates}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "config") -> "VelocityConfig":
        """Read the ``tracking.velocity.*`` keys of flattened object_detector parameters."""
        return section_from_params(cls, params, cls.PREFIX, source)


@dataclass
class GroundVelocities:
    """Velocities of a frame's N detections, base_link, relative to the ego car.

    Attributes:
        velocity: (N, 2) vx, vy in m/s; nan where ``updates`` is 0.
        covariance: (N, 2, 2) its covariance, (m/s)^2; nan where ``updates`` is 0.
        steady: (N,) enough updates and a velocity variance within the bound.
        updates: (N,) positions the track's filter has taken since its (re)start, this one
            included; 0 for a detection without a track or a position.
    """

    velocity: np.ndarray
    covariance: np.ndarray
    steady: np.ndarray
    updates: np.ndarray

    def __len__(self) -> int:
        return int(self.steady.shape[0])

    @classmethod
    def none(cls, n: int = 0) -> "GroundVelocities":
        """N detections without a velocity."""
        return cls(np.full((n, 2), np.nan), np.full((n, 2, 2), np.nan), np.zeros(n, bool),
                   np.zeros(n, np.int32))


class GroundMotion:
    """The ground-velocity filters of one camera's tracks; give it every frame in time order.

    Args:
        config: the ``tracking.velocity.*`` settings.
        max_age: seconds a track may go unseen before its filter is dropped (``tracking.max_age``:
            the tracker drops the track then, and ids are never reused).
        capacity: initial number of track slots (grows as needed).
    """

    # Per-track state (:data:`_FIELDS`), rows [:n] live, sorted by id; (re)created together by
    # ``_grow``.
    _ids: np.ndarray
    _x: np.ndarray
    _P: np.ndarray
    _updates: np.ndarray
    _seen: np.ndarray

    def __init__(self, config: VelocityConfig | None = None, max_age: float = 1.0,
                 capacity: int = 64) -> None:
        self.config = config or VelocityConfig()
        self.max_age = float(max_age)
        self._n = 0
        self._order = StampOrder()  # a restart, or one frame stamped in the past?
        # The filters before a frame stamped more than max_age ahead (its stamp, the stamp
        # before, the arrays), for the next frame only: see MultiObjectTracker._undo_jump.
        self._jump: tuple[float, float, int, dict[str, np.ndarray]] | None = None
        self._capacity = 0
        self._grow(max(int(capacity), 1))

    def _grow(self, capacity: int) -> None:
        n = self._n
        new: dict[str, np.ndarray] = dict(zip(_FIELDS, (np.full(capacity, -1, np.int64),
                                                     np.zeros((capacity, 4)),
                                                     np.zeros((capacity, 4, 4)),
                                                     np.zeros(capacity, np.int32),
                                                     np.zeros(capacity)), strict=True))
        for name, arr in new.items():
            if n:
                arr[:n] = getattr(self, name)[:n]
            setattr(self, name, arr)
        self._capacity = capacity

    def _keep(self, keep: np.ndarray) -> None:
        idx = np.flatnonzero(keep)
        for name in _FIELDS:
            arr = getattr(self, name)
            arr[:idx.size] = arr[idx]
        self._n = int(idx.size)

    def reset(self) -> None:
        """Drop every track's filter."""
        self._n = 0
        self._jump = None
        self._order.reset()

    @property
    def num_tracks(self) -> int:
        """Tracks with a filter now."""
        return self._n

    def update(self, track_ids: np.ndarray, positions: GroundPositions | None,
               t: float) -> GroundVelocities:
        """Filter one frame's placed, tracked detections and return every detection's velocity.

        Args:
            track_ids: (N,) the tracker's ids (-1: no track); each id at most once.
            positions: the frame's ground positions (None: the camera has no calibration).
            t: the frame's stamp in seconds. Time going back (a bag replayed in a loop) drops
                every filter once the next frame confirms it; one frame stamped in the past is
                taken at the last frame's time (:class:`~sense_perception.core.stamp_order.StampOrder`);
                one frame stamped more than ``max_age`` ahead, the next back behind it, is undone.
        """
        track_ids = np.asarray(track_ids, np.int64)
        out = GroundVelocities.none(len(track_ids))
        if self._jump is not None:
            ahead, before, n, arrays = self._jump
            self._jump = None
            if before <= t < ahead:  # that frame's stamp was wrong: the filters as before it
                self._n = n
                for name, saved in arrays.items():
                    getattr(self, name)[:n] = saved
                self._order.rewind(before)
        last = self._order.last
        t, _ = self._order.step(t, on_restart=self.reset)
        if last is not None and t - last > self.max_age and self._n:
            self._jump = (t, last, self._n, {name: getattr(self, name)[:self._n].copy()
                                             for name in _FIELDS})
        if self._n:  # tracks unseen beyond max_age are gone from the tracker too
            stale = t - self._seen[:self._n] > self.max_age
            if stale.any():
                self._keep(~stale)
        if positions is None or not len(track_ids):
            return out
        # A position from the image border alone (a vehicle filling a corner) is where the
        # image's bottom row meets the road, whatever the object does: it measures no motion (a
        # car pulling away there was filtered into a steady 0 m/s), and its frame-to-frame noise
        # is 0 along the ray.
        sel = np.flatnonzero((track_ids >= 0) & positions.valid & (positions.method != BORDER))
        if not sel.size:
            return out
        ids = track_ids[sel]
        z = positions.xyz[sel, :2]
        # Measurement noise: what changes from frame to frame. The persistent part (size
        # priors, pitch) moves every position of a track alike and is added below as a scale.
        noise = positions.jitter if positions.jitter is not None else positions.covariance
        R = noise[sel].copy()
        R[:, 0, 0] = np.maximum(R[:, 0, 0], _MIN_VAR)
        R[:, 1, 1] = np.maximum(R[:, 1, 1], _MIN_VAR)
        # A rank-one noise (one direction without noise) made S singular on a frame with the
        # last one's stamp (no process noise): LinAlgError, and the whole frame was dropped.
        flat = R[:, 0, 0] * R[:, 1, 1] - R[:, 0, 1] ** 2 < _MIN_VAR ** 2
        R[flat, 0, 0] += _MIN_VAR
        R[flat, 1, 1] += _MIN_VAR

        n = self._n
        rows = np.searchsorted(self._ids[:n], ids)
        found = rows < n
        found[found] = self._ids[rows[found]] == ids[found]
        restart = ~found
        old = rows[found]
        if old.size:
            jump = self._predict_update(old, z[found], R[found], t)
            restart[np.flatnonzero(found)[jump]] = True
            self._updates[old[~jump]] += 1
        if restart.any():
            self._start(ids[restart], rows, found, restart, z[restart], R[restart], t)
        # Rows of this frame's ids after any append (ids are kept sorted).
        rows = np.searchsorted(self._ids[:self._n], ids)
        self._seen[rows] = t
        v = self._x[rows, 2:4]
        cov = self._P[rows, 2:4, 2:4] + _scale_covariance(positions, sel, v)
        updates = self._updates[rows]
        # Larger eigenvalue of each symmetric 2x2 covariance.
        a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
        largest = 0.5 * (a + c) + np.sqrt(0.25 * (a - c) ** 2 + b * b)
        out.velocity[sel] = v
        out.covariance[sel] = cov
        out.updates[sel] = updates
        out.steady[sel] = (updates >= self.config.min_updates) \
            & (largest <= self.config.steady_sd ** 2)
        if self._n > MAX_TRACKS:  # (this frame's filters were just seen: never among them)
            keep = np.ones(self._n, bool)
            keep[np.argsort(self._seen[:self._n], kind="stable")[:self._n - MAX_TRACKS]] = False
            self._keep(keep)
        return out

    def _predict_update(self, rows: np.ndarray, z: np.ndarray, R: np.ndarray,
                        t: float) -> np.ndarray:
        """Predict the filters at ``rows`` to ``t`` and update them with ``z``; returns the mask of
        rows whose measurement jumped beyond the gate (left unchanged, to be restarted)."""
        m = rows.size
        dt = np.maximum(t - self._seen[rows], 0.0)
        F = np.broadcast_to(np.eye(4), (m, 4, 4)).copy()
        F[:, 0, 2] = F[:, 1, 3] = dt
        q = self.config.accel_sd ** 2
        Q = np.zeros((m, 4, 4))
        pos, cross, vel = q * dt ** 3 / 3.0, q * dt ** 2 / 2.0, q * dt
        Q[:, 0, 0] = Q[:, 1, 1] = pos
        Q[:, 0, 2] = Q[:, 2, 0] = Q[:, 1, 3] = Q[:, 3, 1] = cross
        Q[:, 2, 2] = Q[:, 3, 3] = vel
        x = (F @ self._x[rows][:, :, None])[:, :, 0]
        P = F @ self._P[rows] @ F.transpose(0, 2, 1) + Q
        S = P[:, :2, :2] + R
        innovation = z - x[:, :2]
        solved = np.linalg.solve(S, innovation[:, :, None])[:, :, 0]
        jump = np.einsum("ni,ni->n", innovation, solved) > self.config.reset_gate
        ok = ~jump
        if ok.any():
            P, S, x, innovation = P[ok], S[ok], x[ok], innovation[ok]
            # K = P H^T S^-1 (H picks x, y), solved rather than inverted; S is symmetric.
            gain = np.linalg.solve(S, P[:, :2, :].copy()).transpose(0, 2, 1)
            x = x + np.einsum("nij,nj->ni", gain, innovation)
            P = P - gain @ S @ gain.transpose(0, 2, 1)
            P = 0.5 * (P + P.transpose(0, 2, 1))
            self._x[rows[ok]] = x
            self._P[rows[ok]] = P
        return jump

    def _start(self, ids: np.ndarray, rows: np.ndarray, found: np.ndarray, restart: np.ndarray,
               z: np.ndarray, R: np.ndarray, t: float) -> None:
        """(Re)start the filters of ``ids`` at their positions: known ids in place, new ones
        appended, then every row kept sorted by id."""
        m = ids.size
        x = np.zeros((m, 4))
        x[:, :2] = z
        P = np.zeros((m, 4, 4))
        P[:, :2, :2] = R
        P[:, 2, 2] = P[:, 3, 3] = _INITIAL_VELOCITY_SD ** 2
        known = found[restart]
        if known.any():
            at = rows[restart][known]
            self._x[at], self._P[at], self._updates[at] = x[known], P[known], 1
        new = ~known
        k = int(new.sum())
        if not k:
            return
        if self._n + k > self._capacity:
            self._grow(max(2 * self._capacity, self._n + k))
        s = slice(self._n, self._n + k)
        self._ids[s], self._x[s], self._P[s], self._updates[s], self._seen[s] = \
            ids[new], x[new], P[new], 1, t
        self._n += k
        ids_now = self._ids[:self._n]
        if np.any(ids_now[1:] <= ids_now[:-1]):  # an id placed only now, after a newer one
            order = np.argsort(ids_now, kind="stable")
            for name in _FIELDS:
                arr = getattr(self, name)
                arr[:self._n] = arr[:self._n][order]


def _scale_covariance(positions: GroundPositions, sel: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(m, 2, 2): a persistent relative range error k (the share of the along-ray variance that is
    not jitter) scales the whole track about the camera, and so its velocity: var(k) v v^T."""
    if positions.jitter is None:
        return np.zeros((sel.size, 2, 2))
    xy = positions.xyz[sel, :2]
    r2 = np.maximum((xy ** 2).sum(1), 1e-6)
    along = np.einsum("ni,nij,nj->n", xy, positions.covariance[sel] - positions.jitter[sel], xy) / r2
    rel_var = np.maximum(along, 0.0) / r2
    return rel_var[:, None, None] * v[:, :, None] * v[:, None, :]


class GroundMotionBank:
    """One :class:`GroundMotion` per camera (ids are per camera), created on its first frame."""

    def __init__(self, config: VelocityConfig | None = None, max_age: float = 1.0) -> None:
        self.config = config or VelocityConfig()
        self.max_age = max_age
        self._cameras: dict[Any, GroundMotion] = {}

    def update(self, camera: Any, track_ids: np.ndarray, positions: GroundPositions | None,
               t: float) -> GroundVelocities:
        """One frame of ``camera``; see :meth:`GroundMotion.update`."""
        motion = self._cameras.get(camera)
        if motion is None:
            motion = self._cameras[camera] = GroundMotion(self.config, self.max_age)
        return motion.update(track_ids, positions, t)

    def reset(self, camera: Any | None = None) -> None:
        """Reset one camera's filters, or every camera's when ``camera`` is None."""
        for key, motion in self._cameras.items():
            if camera is None or key == camera:
                motion.reset()
