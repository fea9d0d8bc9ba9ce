"""Temporal identity decision: votes over a sliding window of frames, with hysteresis.

One frame never decides. A driver becomes ``identified`` after ``min_votes`` recent frames matched
them at or above ``enter_threshold``, and stays identified while ``min_votes`` recent frames still
match them at or above the lower ``exit_threshold``; a single bad frame (blink, motion blur, a hand
in front of the face) therefore neither grants nor drops an identity. ``unknown`` needs the same
number of frames below ``exit_threshold``. Anything in between is ``uncertain``. An unknown face is
only reported, never enrolled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..config import check_settings, setting

#: Calibrated on real photo pairs (test/data/face_pairs.csv) plus augmentations: see
#: docs/driver-monitoring.md.
DEFAULT_MATCH_THRESHOLD = 0.45


class DriverState(str, Enum):
    """What the identity pipeline concludes about the driver seat."""

    NO_FACE = "no_face"
    UNKNOWN = "unknown"
    IDENTIFIED = "identified"
    UNCERTAIN = "uncertain"
    CAMERA_FAULT = "camera_fault"  # the cabin camera cannot be trusted: nothing is judged


@dataclass
class IdentityConfig:
    """The ``identity.*`` parameters.

    Attributes:
        match_threshold: cosine similarity at or above which one face matches a template (single
            image decisions: ``driver identify``, ``driver eval``).
        enter_threshold: per-frame score a vote needs to make a driver identified.
        exit_threshold: per-frame score that still supports an identified driver; below it a frame
            votes "unknown".
        window: frames with a face kept for voting.
        min_votes: votes needed within the window to identify (or to call a face unknown).
        no_face_frames: consecutive frames without a driver face before the state is no_face and
            the window is cleared (a new person must then earn the identity afresh).
        max_gap_s: a pause between frames longer than this clears the window.
        min_face_px: driver faces narrower than this (source pixels) are too small to identify;
            they count as present but cast no vote.
        embed_interval_s: once the decision is settled (identified or unknown), embed the
            driver's face at most this often while it stays the same face (its box moving little
            from frame to frame); the frames between keep the decision. 0 = every frame. A face
            that jumps, leaves or is not settled (its last vote went against the decision
            included) is embedded on every frame.
    """

    match_threshold: float = setting(DEFAULT_MATCH_THRESHOLD, range=(-1.0, 1.0))
    enter_threshold: float = setting(0.50, range=(-1.0, 1.0), constraint="at least identity.exit_threshold")
    exit_threshold: float = setting(0.40, range=(-1.0, 1.0), constraint="at most identity.enter_threshold")
    window: int = setting(10, range=(1, 1000), constraint="at least identity.min_votes")
    min_votes: int = setting(6, range=(1, 1000), constraint="at most identity.window")
    no_face_frames: int = setting(3, range=(1, None))
    max_gap_s: float = setting(2.0, range=(0.0, None), constraint="above 0")
    min_face_px: int = setting(40, range=(0, None))
    embed_interval_s: float = setting(0.0, range=(0.0, None))

    def __post_init__(self) -> None:
        for name in ("match_threshold", "enter_threshold", "exit_threshold"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"identity.{name} is a cosine similarity in [-1, 1], "
                                 f"got {getattr(self, name)}")
        if self.exit_threshold > self.enter_threshold:
            raise ValueError(f"identity.exit_threshold ({self.exit_threshold}) must not exceed "
                             f"identity.enter_threshold ({self.enter_threshold}): hysteresis needs "
                             "exit <= enter")
        if self.window < 1 or not 1 <= self.min_votes <= self.window:
            raise ValueError(f"identity.min_votes ({self.min_votes}) must be in [1, identity.window "
                             f"({self.window})]")
        if self.no_face_frames < 1 or self.max_gap_s <= 0 or self.min_face_px < 0:
            raise ValueError("identity.no_face_frames must be >= 1, identity.max_gap_s > 0 and "
                             "identity.min_face_px >= 0")
        if not 0.0 <= self.embed_interval_s < self.max_gap_s:
            raise ValueError(f"identity.embed_interval_s must be in [0, identity.max_gap_s "
                             f"({self.max_gap_s})), got {self.embed_interval_s}")
        check_settings(self)  # the ranges and NaN, as the loader refuses them


@dataclass
class Decision:
    """State after one frame: driver index into the template index (-1 if none), score, reason."""

    state: DriverState
    index: int = -1
    score: float = 0.0
    reason: str = ""


class IdentityDecider:
    """Sliding-window vote with hysteresis over per-frame best matches.

    Args:
        config: thresholds and window sizes.
        names: pseudonymous driver ids by driver index, used in reasons. Never display names:
            the reason is published (``driver_reason`` in ``/diagnostics``, replay bags).
    """

    def __init__(self, config: IdentityConfig, names: list[str] | None = None) -> None:
        self.config = config
        self.names = list(names or [])
        self._index = np.full(config.window, -1, np.int64)
        self._score = np.full(config.window, np.nan, np.float32)
        self.reset()

    def reset(self, names: list[str] | None = None) -> None:
        """Forget all evidence (new gallery, new session, time jump)."""
        if names is not None:
            self.names = list(names)
        self._filled = 0
        self._pos = 0
        self._missing = 0
        self._last_t: float | None = None
        self._agrees = False  # the newest vote supports the decision (see settled)
        self.decision = Decision(DriverState.NO_FACE, reason="no frame seen yet")

    def _name(self, index: int) -> str:
        return self.names[index] if 0 <= index < len(self.names) else f"#{index}"

    def update(self, t: float, face: bool, index: int = -1, score: float = math.nan) -> Decision:
        """Add one frame and return the decision.

        Args:
            t: frame time in seconds (monotonic within a stream).
            face: a driver face was seen in this frame.
            index: best matching driver index, -1 when the gallery is empty or the face was not
                scored.
            score: that driver's cosine similarity; NaN when the face was not scored (too small).
        """
        cfg = self.config
        if self._last_t is not None and (t < self._last_t or t - self._last_t > cfg.max_gap_s):
            self.reset()  # a pause or a rewind: the seat may hold someone else now
        self._last_t = t
        if not face:
            self._missing += 1
            if self._missing >= cfg.no_face_frames or self.decision.state is DriverState.NO_FACE:
                self._filled = self._pos = 0
                self.decision = Decision(DriverState.NO_FACE,
                                         reason=f"no driver face for {self._missing} frame(s)")
            else:
                self.decision = Decision(self.decision.state, self.decision.index,
                                         self.decision.score,
                                         f"driver face missed in {self._missing} frame(s); holding")
            return self.decision
        self._missing = 0
        self._index[self._pos] = index
        self._score[self._pos] = score
        self._pos = (self._pos + 1) % cfg.window
        self._filled = min(self._filled + 1, cfg.window)
        # Vote order does not matter, so the ring buffer's filled prefix is the window.
        self.decision = self._decide(self._index[: self._filled], self._score[: self._filled])
        self._agrees = self._supports(index, score)
        return self.decision

    def _supports(self, index: int, score: float) -> bool:
        """Whether one vote (``index``, ``score``) says what the decision says."""
        cfg, decision = self.config, self.decision
        if not math.isfinite(score):
            return False
        if decision.state is DriverState.IDENTIFIED:
            return index == decision.index and score >= cfg.exit_threshold
        if decision.state is DriverState.UNKNOWN:
            return index < 0 or score < cfg.exit_threshold
        return False

    def camera_fault(self, reason: str = "the cabin camera is in fault") -> Decision:
        """A frame of a camera in fault (blocked, dark, ...): ``camera_fault``, no evidence taken.

        The frame does not count as a frame at all: neither a missing face nor a vote, and the
        time of the last frame stays, so a fault longer than ``max_gap_s`` starts the decision
        afresh (the seat may hold someone else by then) and a short one resumes where it was.
        """
        return Decision(DriverState.CAMERA_FAULT, reason=f"{reason}: the driver is not judged")

    @property
    def settled(self) -> bool:
        """The decision is identified or unknown (not collecting evidence, not no_face) and the
        newest vote says the same. A vote against it (another person in the seat, whom the
        window's older votes still outnumber) unsettles it: ``identity.embed_interval_s`` then
        embeds every frame again, where it held the old identity on the new person for one
        interval per vote (2 s at 0.5 s with the default window, instead of 4 frames)."""
        return self._agrees and self.decision.state in (DriverState.IDENTIFIED, DriverState.UNKNOWN)

    def hold(self, t: float) -> Decision:
        """A frame whose driver face was present but deliberately not scored
        (``identity.embed_interval_s``): time and presence advance, window and decision stay.
        Call it only within ``max_gap_s`` of the previous frame."""
        self._last_t = t
        self._missing = 0
        return self.decision

    def _decide(self, idx: np.ndarray, score: np.ndarray) -> Decision:
        cfg = self.config
        scored = np.isfinite(score)
        with np.errstate(invalid="ignore"):
            support = scored & (score >= cfg.exit_threshold) & (idx >= 0)
            strong = support & (score >= cfg.enter_threshold)
            reject = scored & ~support
        n = idx.size
        current = self.decision
        if current.state is DriverState.IDENTIFIED:
            mine = support & (idx == current.index)
            if mine.sum() >= cfg.min_votes:  # hysteresis: stays while it keeps exit-level support
                return Decision(DriverState.IDENTIFIED, current.index, float(score[mine].mean()),
                                f"{int(mine.sum())}/{n} recent frames still match "
                                f"'{self._name(current.index)}' >= {cfg.exit_threshold:.2f}")
        if strong.any():
            votes = np.bincount(idx[strong])
            best = int(votes.argmax())
            if votes[best] >= cfg.min_votes:
                mine = strong & (idx == best)
                return Decision(DriverState.IDENTIFIED, best, float(score[mine].mean()),
                                f"{int(votes[best])}/{n} recent frames match '{self._name(best)}' "
                                f">= {cfg.enter_threshold:.2f}")
        mean = float(score[scored].mean()) if scored.any() else 0.0
        if reject.sum() >= cfg.min_votes:
            return Decision(DriverState.UNKNOWN, -1, mean,
                            f"{int(reject.sum())}/{n} recent frames match no enrolled driver "
                            f"(< {cfg.exit_threshold:.2f})")
        if not scored.any():
            why = f"driver face too small to identify (< {cfg.min_face_px} px wide)"
        elif current.state is DriverState.IDENTIFIED:
            why = f"'{self._name(current.index)}' no longer matches enough recent frames"
        else:
            why = (f"collecting evidence: {int(strong.sum())} match and {int(reject.sum())} "
                   f"no-match votes of {cfg.min_votes} needed in {n} frames")
        return Decision(DriverState.UNCERTAIN, -1, mean, why)
