"""ByteTrack-style multi-object tracking of detections, one tracker per camera.

Association per frame (Zhang et al., "ByteTrack", ECCV 2022):

1. Detections scoring at least ``high_threshold`` are matched to every confirmed track, tracked or
   lost, by the IoU of the track's Kalman-predicted box (optionally weighted by the score).
2. Detections between ``low_threshold`` and ``high_threshold`` are matched to the confirmed tracks
   seen last frame that stage 1 left over. This keeps a car whose score dips while it is partly
   hidden, instead of dropping it and starting a new id when it reappears.
3. Tentative tracks (seen fewer than ``min_hits`` frames) are matched to the remaining high
   detections; a tentative track that misses a frame is deleted, which filters one-frame false
   positives. What is still unmatched and scores at least ``new_track_threshold`` starts a
   tentative track.

A detection overlapping an already matched one of its class group by ``duplicate_iou`` or more
(the detector's per-class NMS keeps one car as both "car" and "truck") never starts or confirms a
track, so one vehicle never carries two ids that swap from frame to frame.

Assignment is the optimal one (Jonker-Volgenant, ``lap.lapjv``), never greedy. A track only ever
matches a detection of its own class group: a car never continues a pedestrian track.

Lifetime is measured in seconds from the frames' timestamps, not in frames, because cameras drop
frames and a bag may be replayed at another rate: a confirmed track that goes unmatched is kept
(and its position predicted) for ``max_age`` seconds, then deleted. Track ids start at 1, are given
when a track is confirmed, increase by one per new track and are never reused, even after a reset.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import lap
import numpy as np

from ...config import check_settings, section_from_params, setting
from ...errors import ConfigError
from ..stamp_order import StampOrder
from . import kalman
# MAX_TRACKS: tracks held at most per camera; beyond, the lost ones seen longest ago are dropped
from .ground_motion import MAX_TRACKS, GroundMotionBank, GroundVelocities, VelocityConfig
from ..geometry.ground import GroundPositions
from ..boxes import pairwise_iou
from ..types import Detections

LOG = logging.getLogger(__name__)

TENTATIVE, TRACKED, LOST = 0, 1, 2

# COCO names; a model without some of them simply has smaller groups (see label_groups).
DEFAULT_CLASS_GROUPS = ("car,truck,bus", "bicycle,motorcycle")

#: The highest nominal camera rate ``tracking.frame_rate`` may give (Hz): far above any camera's.
MAX_FRAME_RATE = 1000.0

# Per-track arrays: what a track is (the scratch buffer holds nothing between frames).
_TRACK_ARRAYS = ("_mean", "_cov", "_ids", "_group", "_state", "_hits", "_last_seen")

# Cost given to pairs that must never match (other class group); above every admissible limit.
_GATED = 2.0


@dataclass
class TrackingConfig:
    """Settings of the tracker, the ``tracking.*`` parameters of ``object_detector``.

    Attributes:
        enabled: track at all; when false every detection keeps track id -1.
        high_threshold: score from which a detection takes part in the first association stage.
        low_threshold: lowest score a detection may have to continue a track in the second stage
            (the detector must keep detections down to this score for that stage to help).
        new_track_threshold: lowest score of an unmatched detection that starts a track.
        match_iou: first stage: least IoU (times the detection score when ``fuse_score``) for a
            detection to continue a track. ByteTrack's ``match_thresh`` 0.8 is 1 - 0.2.
        low_match_iou: second stage: least IoU for a low-score detection to continue a track.
        tentative_match_iou: least IoU (times score when ``fuse_score``) for a detection to
            continue a tentative track.
        fuse_score: weight IoU by the detection score in stages 1 and 3, so a confident detection
            wins over a weak one that overlaps the prediction as well.
        duplicate_iou: an unmatched detection overlapping, by at least this IoU, a detection of
            its class group that continued a track is a duplicate (the detector saw one car as a
            car and as a truck) and starts no track; 1 turns this off.
        min_hits: consecutive frames a track must be matched before it gets an id (1 = at once).
        max_age: seconds a confirmed track is kept while unmatched before it is deleted (and
            at most :data:`MAX_TRACKS` tracks are held: the lost ones seen longest ago go first).
        frame_rate: the camera's nominal rate in Hz; scales the motion model's noise to the time
            between frames (a hint: dropped frames and other rates are handled by timestamps).
        class_aware: only match tracks and detections of the same class group.
        class_groups: label names that may continue each other's tracks, comma-separated per
            group (detectors flip a car to truck between frames); other labels form their own group.
            Ignored when the tracker is not given the detector's label names. A name the detector
            does not output is an error, except in the default groups (written for COCO models).

    The score thresholds suit the bundled PP-PicoDet, whose clear cars score 0.6-0.9 raw and
    partly hidden ones 0.35-0.5 (ByteTrack's 0.6 / 0.1 were tuned for YOLOX-X on MOT17): they were
    chosen as raw 0.45 / 0.1 / 0.5 and are given as PicoDet's calibrated car scores of those
    (``detector.calibrated_scores``; raw 0.1 calibrates to 0.001, below every detector threshold).
    """

    enabled: bool = True
    high_threshold: float = setting(0.575, range=(0.0, 1.0), constraint="at least tracking.low_threshold")
    low_threshold: float = setting(0.001, range=(0.0, 1.0), constraint="at most tracking.high_threshold")
    new_track_threshold: float = setting(0.738, range=(0.0, 1.0))
    match_iou: float = setting(0.2, range=(0.0, 1.0), constraint="above 0")
    low_match_iou: float = setting(0.5, range=(0.0, 1.0), constraint="above 0")
    tentative_match_iou: float = setting(0.3, range=(0.0, 1.0), constraint="above 0")
    fuse_score: bool = True
    duplicate_iou: float = setting(0.7, range=(0.0, 1.0), constraint="above 0")
    min_hits: int = setting(2, range=(1, None))
    max_age: float = setting(1.0, range=(0.0, None))
    # At most MAX_FRAME_RATE: .inf (an open range let it through) made the nominal frame period 0,
    # and the motion model NaN on every frame with the stamp of the one before.
    frame_rate: float = setting(10.0, range=(0.0, MAX_FRAME_RATE), constraint="above 0")
    class_aware: bool = True
    class_groups: list[str] = setting(
        list(DEFAULT_CLASS_GROUPS),
        range="comma-separated label names per group, e.g. car,truck,bus")

    PREFIX = "tracking."

    def __post_init__(self) -> None:
        for name in ("high_threshold", "low_threshold", "new_track_threshold"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        for name in ("match_iou", "low_match_iou", "tentative_match_iou", "duplicate_iou"):
            _check_range(name, getattr(self, name), 0.0, 1.0, low_open=True)
        if self.low_threshold > self.high_threshold:
            raise ConfigError(
                f"tracking.low_threshold ({self.low_threshold}) is above tracking.high_threshold "
                f"({self.high_threshold}); fix: set low_threshold <= high_threshold")
        if self.min_hits < 1:
            raise ConfigError(f"tracking.min_hits must be >= 1, got {self.min_hits}")
        if not self.max_age >= 0.0:
            raise ConfigError(f"tracking.max_age must be >= 0 seconds, got {self.max_age}")
        if not 0.0 < self.frame_rate <= MAX_FRAME_RATE:
            raise ConfigError(f"tracking.frame_rate must be > 0 and at most {MAX_FRAME_RATE:g} Hz, "
                              f"got {self.frame_rate}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "config") -> "TrackingConfig":
        """Read the ``tracking.*`` keys of flattened ``object_detector`` parameters."""
        return section_from_params(cls, params, cls.PREFIX, source)


def _check_range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    ok = (low < value <= high) if low_open else (low <= value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ConfigError(f"tracking.{name} must be in {interval}, got {value}")


def linear_assignment(cost: np.ndarray, max_cost: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of rows to columns with cost below ``max_cost``.

    Returns:
        ``(rows, cols, unmatched_rows, unmatched_cols)`` index arrays; ``rows[i]`` matches
        ``cols[i]``.
    """
    n_rows, n_cols = cost.shape
    if n_rows == 0 or n_cols == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty, np.arange(n_rows), np.arange(n_cols)
    _, x, y = lap.lapjv(np.ascontiguousarray(cost, np.float64), extend_cost=True,
                        cost_limit=max_cost)
    rows = np.flatnonzero(x >= 0)
    return rows, x[rows].astype(np.intp), np.flatnonzero(x < 0), np.flatnonzero(y < 0)


def label_groups(config: TrackingConfig, label_names: Sequence[str] | None) -> np.ndarray | None:
    """Class group of every label index, or None when labels are matched exactly by index.

    Raises:
        ConfigError: a name in ``tracking.class_groups`` is not one of ``label_names``.
    """
    if label_names is None:
        return None
    index = {name: i for i, name in enumerate(label_names)}
    groups = np.arange(len(label_names), dtype=np.int64)
    for g, spec in enumerate(config.class_groups):
        names = [n.strip() for n in spec.split(",") if n.strip()]
        unknown = [n for n in names if n not in index]
        if unknown and spec in DEFAULT_CLASS_GROUPS:
            names = [n for n in names if n in index]
        elif unknown:
            raise ConfigError(
                f"tracking.class_groups entry '{spec}' names {', '.join(map(repr, unknown))}, "
                f"which the detector does not output; fix: use its label names "
                f"(e.g. {', '.join(label_names[:8])}, ...)")
        # Offset past every label index so a group id never equals an ungrouped label's id.
        groups[[index[n] for n in names]] = len(label_names) + g
    return groups


class MultiObjectTracker:
    """Tracks the detections of one camera; give it every frame in time order.

    Tracks live in preallocated arrays, packed at the front (``[:n]``); the arrays double when
    full, so steady-state frames allocate only small temporaries.
    """

    # Per-track state, rows [:n] live; (re)created together by ``_alloc``.
    _mean: np.ndarray
    _cov: np.ndarray
    _scratch: np.ndarray
    _ids: np.ndarray
    _group: np.ndarray
    _state: np.ndarray
    _hits: np.ndarray
    _last_seen: np.ndarray

    def __init__(self, config: TrackingConfig | None = None,
                 label_names: Sequence[str] | None = None, capacity: int = 64) -> None:
        """Create an empty tracker.

        Args:
            config: settings; defaults when None.
            label_names: the detector's class names, needed to apply ``class_groups``.
            capacity: initial number of track slots (grows as needed).
        """
        self.config = config or TrackingConfig()
        self._label_group = label_groups(self.config, label_names)
        self._next_id = 1
        self._last_t: float | None = None
        self._order = StampOrder()  # a restart, or one frame stamped in the past?
        # The tracks as they were before a frame stamped more than max_age ahead of the last one
        # (its stamp, the stamp before, the arrays), kept for the next frame only: see _undo_jump.
        self._jump: tuple[float, float, int, dict[str, np.ndarray]] | None = None
        self.resets = 0
        self._n = 0
        self._alloc(max(int(capacity), 1))

    # -- storage -------------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "_mean", None)
        n = self._n
        new: dict[str, np.ndarray] = {
            "_mean": np.zeros((capacity, 8), np.float64),
            "_cov": np.zeros((capacity, 8, 8), np.float64),
            "_scratch": np.zeros((capacity, 8, 8), np.float64),
            "_ids": np.full(capacity, -1, np.int64),
            "_group": np.zeros(capacity, np.int64),
            "_state": np.zeros(capacity, np.int8),
            "_hits": np.zeros(capacity, np.int32),
            "_last_seen": np.zeros(capacity, np.float64),
        }
        for name, arr in new.items():
            if old is not None and n:
                arr[:n] = getattr(self, name)[:n]
            setattr(self, name, arr)
        self._capacity = capacity

    def _compact(self, keep: np.ndarray) -> None:
        """Keep the tracks with ``keep`` true, packed to the front in their order."""
        idx = np.flatnonzero(keep)
        if idx.size == self._n:
            return
        k = idx.size
        for name in _TRACK_ARRAYS:
            arr = getattr(self, name)
            arr[:k] = arr[idx]
        self._n = k

    def _append(self, boxes: np.ndarray, groups: np.ndarray, t: float) -> slice:
        m = boxes.shape[0]
        if self._n + m > self._capacity:
            self._alloc(max(2 * self._capacity, self._n + m))
        s = slice(self._n, self._n + m)
        self._mean[s], self._cov[s] = kalman.initiate(boxes)
        self._ids[s] = -1
        self._group[s] = groups
        self._state[s] = TENTATIVE
        self._hits[s] = 1
        self._last_seen[s] = t
        self._n += m
        return s

    # -- public --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop every track. Id numbering continues, so an id never names two objects."""
        self._n = 0
        self._last_t = None
        self._jump = None
        self._order.reset()
        self.resets += 1

    @property
    def num_tracks(self) -> int:
        """Tracks held now: tentative, tracked and lost."""
        return self._n

    def tracks(self) -> dict[str, np.ndarray]:
        """A copy of the confirmed tracks: ``ids``, predicted ``boxes`` (xyxy), ``states``."""
        n = self._n
        confirmed = np.flatnonzero(self._state[:n] != TENTATIVE)
        return {
            "ids": self._ids[confirmed].copy(),
            "boxes": kalman.cxcywh_to_xyxy(self._mean[confirmed, :4]).astype(np.float32),
            "states": self._state[confirmed].copy(),
        }

    def _groups_of(self, labels: np.ndarray) -> np.ndarray:
        labels = labels.astype(np.int64, copy=False)
        if self._label_group is None:
            return labels
        table = self._label_group
        inside = (labels >= 0) & (labels < table.shape[0])
        # A label the names do not cover is its own group, apart from every known one.
        return np.where(inside, table[np.clip(labels, 0, table.shape[0] - 1)], -1 - labels)

    def _cost(self, trk: np.ndarray, det: np.ndarray, pred: np.ndarray, boxes: np.ndarray,
              scores: np.ndarray, groups: np.ndarray, fuse: bool) -> np.ndarray:
        sim = pairwise_iou(pred[trk], boxes[det])
        if fuse:
            sim *= scores[det][None, :]
        cost = 1.0 - sim
        if self.config.class_aware:
            cost[self._group[trk][:, None] != groups[det][None, :]] = _GATED
        return cost

    def update(self, detections: Detections, t: float) -> Detections:
        """Associate one frame's detections with the tracks and advance the tracks to time ``t``.

        Args:
            detections: this frame's detections (boxes in source pixels).
            t: the frame's timestamp in seconds (e.g. ``Header.seconds``). Time going back (a
                bag replayed in a loop) resets the tracker, once the next frame confirms it
                (:class:`~sense_perception.core.stamp_order.StampOrder`); one frame stamped in
                the past is taken at the previous frame's time, and one frame stamped more than
                ``max_age`` ahead followed by frames back on the camera's clock (a corrupt
                header, a simulator's /clock glitch) is undone: the tracks go on from before it.

        Returns:
            The same detections, in the same order, with ``track_ids`` set: the id of the
            confirmed track each continues or starts, -1 for the rest.

        Raises:
            ValueError: the arrays of ``detections`` disagree in length.
        """
        cfg = self.config
        n_det = len(detections)
        if detections.scores.shape[0] != n_det or detections.labels.shape[0] != n_det:
            raise ValueError(f"detections: boxes ({n_det}), scores ({detections.scores.shape[0]}) "
                             f"and labels ({detections.labels.shape[0]}) must have one row each")
        out_ids = np.full(n_det, -1, np.int64)
        result = Detections(detections.boxes, detections.scores, detections.labels, out_ids)
        if not cfg.enabled:
            return result
        self._undo_jump(t)
        t, _ = self._order.step(t, on_restart=self._restart)
        last = self._last_t
        self._jump = (t, last, self._n, {name: getattr(self, name)[:self._n].copy()
                                         for name in _TRACK_ARRAYS}) \
            if last is not None and t - last > cfg.max_age and self._n > 0 else None
        pred = self._advance(t)
        boxes = detections.boxes.astype(np.float64, copy=False)
        scores = detections.scores
        groups = self._groups_of(detections.labels)
        trk, det, lost, dead, born = self._associate(pred, boxes, scores, groups)

        n = self._n
        state = self._state[:n]
        if trk.size:
            self._mean[trk], self._cov[trk] = kalman.update(self._mean[trk], self._cov[trk],
                                                            boxes[det])
            self._hits[trk] += 1
            self._last_seen[trk] = t
            was_tentative = state[trk] == TENTATIVE
            state[trk[~was_tentative]] = TRACKED
            self._confirm(trk[was_tentative & (self._hits[trk] >= cfg.min_hits)])
            out_ids[det] = self._ids[trk]
        state[lost] = LOST
        if dead.size:  # a tentative track that misses a frame was most likely a false positive
            keep = np.ones(n, bool)
            keep[dead] = False
            self._compact(keep)
        if born.size:
            s = self._append(boxes[born], groups[born], t)
            if cfg.min_hits <= 1:
                self._confirm(np.arange(s.start, s.stop))
                out_ids[born] = self._ids[s]
        if self._n > MAX_TRACKS:
            lost = np.flatnonzero(self._state[:self._n] == LOST)
            oldest = lost[np.argsort(self._last_seen[lost], kind="stable")][:self._n - MAX_TRACKS]
            keep = np.ones(self._n, bool)
            keep[oldest] = False
            self._compact(keep)
        return result

    def _undo_jump(self, t: float) -> None:
        """Put the tracks back as they were before the last frame when that frame jumped more
        than ``max_age`` ahead and ``t`` is back between the two stamps: that one frame's stamp was
        wrong. Taken at face value it expired or lost every track (hours of predicted motion),
        and the frames after it, behind it, then reset the tracker: every object got a new id.
        Ids given meanwhile stay used (an id never names two objects)."""
        if self._jump is None:
            return
        ahead, before, n, arrays = self._jump
        self._jump = None
        if not before <= t < ahead:
            return
        self._n = n  # the buffers only ever grow: the saved tracks fit
        for name, saved in arrays.items():
            getattr(self, name)[:n] = saved
        self._last_t = before
        self._order.rewind(before)

    def _restart(self) -> None:
        LOG.info("time went back from %.3f s (bag loop?); tracker reset", self._last_t or 0.0)
        self.reset()

    def _advance(self, t: float) -> np.ndarray:
        """Move the tracks to time ``t`` (never before the last frame's): expire, predict.

        Returns:
            (n, 4) predicted xyxy boxes of the tracks.
        """
        cfg = self.config
        dt_frames = 0.0 if self._last_t is None else (t - self._last_t) * cfg.frame_rate
        self._last_t = t
        # Expire before matching: after a long gap between frames a stale track must not win.
        n = self._n
        expired = (self._state[:n] == LOST) & (t - self._last_seen[:n] > cfg.max_age)
        if expired.any():
            self._compact(~expired)
        n = self._n
        mean = self._mean[:n]
        # A lost track keeps drifting with its last velocity but must not keep growing or shrinking.
        mean[self._state[:n] == LOST, 6:8] = 0.0
        kalman.predict_(mean, self._cov[:n], dt_frames, self._scratch)
        return kalman.cxcywh_to_xyxy(mean[:, :4])

    def _associate(self, pred: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                   groups: np.ndarray) -> tuple[np.ndarray, ...]:
        """ByteTrack's three matching stages plus duplicate checks.

        Returns:
            ``(trk, det, lost, dead, born)``: matched track and detection indices (row for row),
            tracks that go lost, tentative tracks to delete, detections that start tracks.
        """
        cfg = self.config
        state = self._state[:self._n]
        high = np.flatnonzero(scores >= cfg.high_threshold)
        low = np.flatnonzero((scores >= cfg.low_threshold) & (scores < cfg.high_threshold))
        confirmed = np.flatnonzero(state != TENTATIVE)
        tentative = np.flatnonzero(state == TENTATIVE)

        # Stage 1: confident detections vs every confirmed track, tracked or lost.
        cost = self._cost(confirmed, high, pred, boxes, scores, groups, cfg.fuse_score)
        r1, c1, ur1, uc1 = linear_assignment(cost, 1.0 - cfg.match_iou)
        left_tracks, left_high = confirmed[ur1], high[uc1]

        # Stage 2: weak detections vs tracks seen last frame; lost ones need a confident detection.
        recent = left_tracks[state[left_tracks] == TRACKED]
        cost = self._cost(recent, low, pred, boxes, scores, groups, False)
        r2, c2, ur2, _ = linear_assignment(cost, 1.0 - cfg.low_match_iou)

        # Stage 3: tentative tracks vs the confident detections nobody took.
        cost = self._cost(tentative, left_high, pred, boxes, scores, groups, cfg.fuse_score)
        r3, c3, ur3, uc3 = linear_assignment(cost, 1.0 - cfg.tentative_match_iou)
        # A tentative track following a second box of an object already tracked (the car also
        # seen as a truck) would become a duplicate id that swaps with the real one: drop it.
        dup = self._duplicates(left_high[c3], np.concatenate((high[c1], low[c2])), boxes, groups)
        if dup.any():
            ur3, r3, c3 = np.concatenate((ur3, r3[dup])), r3[~dup], c3[~dup]

        trk = np.concatenate((confirmed[r1], recent[r2], tentative[r3]))
        det = np.concatenate((high[c1], low[c2], left_high[c3]))
        born = left_high[uc3]
        born = born[scores[born] >= cfg.new_track_threshold]
        if born.size:
            # Of new detections overlapping each other or a matched one, only the strongest starts
            # a track; a detection that continued a track always wins.
            s = scores[born]
            order = np.arange(born.size)
            stronger = (s[None, :] > s[:, None]) | ((s[None, :] == s[:, None])
                                                     & (order[None, :] < order[:, None]))
            counts = np.concatenate((np.ones((born.size, det.size), bool), stronger), axis=1)
            born = born[~self._duplicates(born, np.concatenate((det, born)), boxes, groups, counts)]
        return trk, det, recent[ur2], tentative[ur3], born

    def _duplicates(self, cand: np.ndarray, winners: np.ndarray, boxes: np.ndarray,
                    groups: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """Mask of the ``cand`` detections that overlap a ``winners`` detection of their class
        group by at least ``duplicate_iou`` (only (cand, winner) pairs where ``counts`` is true)."""
        if cand.size == 0 or winners.size == 0 or self.config.duplicate_iou >= 1.0:
            return np.zeros(cand.size, bool)
        mask = pairwise_iou(boxes[cand], boxes[winners]) >= self.config.duplicate_iou
        if counts is not None:
            mask &= counts
        if self.config.class_aware:
            mask &= groups[cand][:, None] == groups[winners][None, :]
        return np.asarray(mask.any(axis=1))

    def _confirm(self, idx: np.ndarray) -> None:
        if idx.size == 0:
            return
        self._state[idx] = TRACKED
        self._ids[idx] = np.arange(self._next_id, self._next_id + idx.size)
        self._next_id += int(idx.size)


class TrackerBank:
    """One :class:`MultiObjectTracker` per camera, created on the camera's first frame.

    A camera is any hashable key naming one image stream, e.g. ``(topic, frame_id)``. Each tracker
    resets itself when its camera's time goes backwards for two frames, as when a bag is replayed
    in a loop (one frame stamped in the past is not a restart); the
    ids of a camera keep increasing across such resets. Ids are per camera: the same number on two
    cameras names two different objects.

    It also holds each camera's ground-velocity filters (:mod:`.ground_motion`, settings
    ``velocity``), fed by :meth:`velocities` with the tracked detections' ground positions.
    """

    def __init__(self, config: TrackingConfig | None = None,
                 label_names: Sequence[str] | None = None,
                 velocity: VelocityConfig | None = None) -> None:
        self.config = config or TrackingConfig()
        self.motion = GroundMotionBank(velocity, self.config.max_age)
        self._label_names = None if label_names is None else list(label_names)
        # Resolve class groups now so a bad name fails at start-up, not on the first frame.
        label_groups(self.config, self._label_names)
        self._trackers: dict[Any, MultiObjectTracker] = {}

    def tracker(self, camera: Any) -> MultiObjectTracker:
        """The tracker of ``camera``, created if new."""
        tracker = self._trackers.get(camera)
        if tracker is None:
            tracker = self._trackers[camera] = MultiObjectTracker(self.config, self._label_names)
        return tracker

    def update(self, camera: Any, detections: Detections, t: float) -> Detections:
        """Track one frame of ``camera``; see :meth:`MultiObjectTracker.update`."""
        return self.tracker(camera).update(detections, t)

    def velocities(self, camera: Any, detections: Detections, positions: GroundPositions | None,
                   t: float) -> GroundVelocities:
        """Ground velocities of ``camera``'s tracked detections (after :meth:`update`) from their
        ground positions; see :meth:`.ground_motion.GroundMotion.update`."""
        return self.motion.update(camera, detections.track_ids, positions, t)

    def reset(self, camera: Any | None = None) -> None:
        """Reset one camera's tracker (and its velocities), or all of them when ``camera`` is
        None."""
        self.motion.reset(camera)
        if camera is None:
            for tracker in self._trackers.values():
                tracker.reset()
        elif camera in self._trackers:
            self._trackers[camera].reset()

    @property
    def cameras(self) -> list[Any]:
        """Cameras seen so far."""
        return list(self._trackers)
