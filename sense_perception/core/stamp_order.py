"""Time going back: a restart, or one frame with a wrong stamp?

A tracker or the attention monitor starts afresh when its camera's time goes back: a bag replayed
in a loop, a simulation reset. But one frame stamped in the past (an uninitialised 0, a driver
that stamps one frame from another clock) is not a restart, and starting afresh on it throws
away every track, or a raised inattention alert and the driver's calibration. :class:`StampOrder`
tells the two apart: a step back is a restart only when the next frame is behind too and not
before it (the new timeline goes on); a frame behind that the next one does not confirm was a
stray, and is used at the last good stamp (no time passes).

ROS-free; one instance per camera stream, called once per frame, not thread-safe.
"""
from __future__ import annotations

from typing import Callable


class StampOrder:
    """Per-stream clock that turns each frame's stamp into the stamp to use and a restart flag."""

    def __init__(self) -> None:
        self.last: float | None = None  # the last stamp used
        self._behind: float | None = None  # the stamp of the previous frame when it was behind

    def step(self, t: float, on_restart: Callable[[], None] | None = None) -> tuple[float, bool]:
        """The stamp to use for a frame stamped ``t``, and whether the stream restarted here.

        A frame at or after the last stamp is used as it is. A frame behind it is a restart when
        the previous frame was behind too and ``t`` is not before that one's stamp (the stream
        goes on from where it went back): ``on_restart`` is called first (it may :meth:`reset`
        this clock). Otherwise it is held at the last stamp (no time passes), awaiting the next
        frame to tell.
        """
        t = float(t)
        if self.last is None or t >= self.last:
            self._behind = None
            self.last = t
            return t, False
        if self._behind is not None and t >= self._behind:
            if on_restart is not None:
                on_restart()
            self._behind = None
            self.last = t
            return t, True
        self._behind = t
        return self.last, False

    def rewind(self, t: float) -> None:
        """Take ``t`` as the last stamp (the stream is known to go on from there)."""
        self.last = float(t)
        self._behind = None

    def reset(self) -> None:
        """Forget the stream's time (the next frame starts it)."""
        self.last = None
        self._behind = None


__all__ = ["StampOrder"]
