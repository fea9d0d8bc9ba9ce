"""Raise a condition after N consecutive frames that show it, clear it after M that do not.

The frames are the camera's: a node behind a slow inference judges only the newest frame after
each inference, and each frame judged then stands for the frames the camera sent since the one
judged before it, once it is the second in a row to agree (the frames between two that agree are
taken to agree too; a lone frame counts one). Counted in frames judged, the default five took
4.8 s to raise behind a 1.2 s inference (five frames judged), a replay of the same 10 Hz camera,
which judges every frame, 0.4 s.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .camera_settings import Hysteresis


@dataclass
class ConditionState:
    """The debounced state of one condition.

    Attributes:
        active: the condition is raised.
        streak: the camera's consecutive frames that disagree with ``active`` (they count
            towards a change).
        since: stamp (seconds) at which the condition was last raised or cleared; None before.
    """

    rule: Hysteresis
    active: bool = False
    streak: int = 0
    since: float | None = None

    def update(self, seen: bool, stamp: float, frames: int = 1) -> bool:
        """Feed one frame's raw verdict; True when the state changed with it.

        Args:
            seen: the frame shows the condition.
            stamp: its stamp, seconds.
            frames: the camera's frames since the frame judged before, this one included (1
                where every frame is judged); counted only after a frame that agreed.
        """
        if seen == self.active:
            self.streak = 0
            return False
        self.streak += max(1, frames) if self.streak else 1
        if self.streak < (self.rule.raise_frames if seen else self.rule.clear_frames):
            return False
        self.active, self.streak, self.since = seen, 0, stamp
        return True


@dataclass
class ConditionTracker:
    """The debounced states of a set of conditions, each with its own :class:`Hysteresis`."""

    rules: dict[str, Hysteresis]
    states: dict[str, ConditionState] = field(init=False)

    def __post_init__(self) -> None:
        self.states = {name: ConditionState(rule) for name, rule in self.rules.items()}

    def update(self, seen: Iterable[str], stamp: float, frames: int = 1) -> list[tuple[str, bool]]:
        """Feed the conditions one frame shows; the (condition, raised) changes it caused.
        ``frames``: the camera's frames since the frame judged before (:meth:`ConditionState.update`).

        Raises:
            KeyError: a condition that has no rule.
        """
        seen = set(seen)
        unknown = seen - self.states.keys()
        if unknown:
            raise KeyError(f"no hysteresis for condition(s) {sorted(unknown)}")
        return [(name, state.active) for name, state in self.states.items()
                if state.update(name in seen, stamp, frames)]

    def set(self, name: str, active: bool, stamp: float) -> bool:
        """Raise or clear ``name`` at once (a timer found the stream silent); True if it changed."""
        state = self.states[name]
        changed = state.active != active
        if changed:
            state.active, state.since = active, stamp
        state.streak = 0
        return changed

    @property
    def active(self) -> list[str]:
        """The raised conditions, in rule order."""
        return [name for name, state in self.states.items() if state.active]
