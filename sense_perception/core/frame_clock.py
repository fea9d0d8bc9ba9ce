"""The time a camera's frames are timed with: their header stamp, or, for a camera that leaves its
stamps at 0, when they were received.

Many camera drivers (GStreamer and V4L2 wrappers, simulators' bridges, hand-written ones) publish
every frame with a zero ``header.stamp``. Timed by that stamp no time ever passes: tracks are never
deleted (``tracking.max_age`` never applies) and velocities never form; a cabin camera's driver
attention never times an eyes-off-road and its identity hysteresis never moves. A camera whose
first frame is stamped 0 is timed by the receive time (a bag's receive time, a node's monotonic
clock at arrival) for as long as its stamps stay 0, as its camera health is
(:class:`~.health.camera_health.CameraHealthMonitor`); once it has stamped a frame, its header
times it, and a later zero stamp is a stray frame for :class:`~.stamp_order.StampOrder` to hold
(a cabin camera's stamps that advanced and then stand still stay a ``frozen`` camera fault that
holds the attention's timers: R19). The outputs keep the header as it came.

ROS-free; one instance per run, not thread-safe.
"""
from __future__ import annotations

from typing import Callable

from .types import Header


class FrameClock:
    """Per camera: the seconds each frame is timed with, and which cameras are unstamped.

    Args:
        on_unstamped: told the camera once, when it is first timed by the receive time (the
            replay's note, the node's warning).
    """

    def __init__(self, on_unstamped: Callable[[str], None] | None = None) -> None:
        self._stamped: set[str] = set()
        self.unstamped: set[str] = set()  # cameras timed by the receive time
        self._on_unstamped = on_unstamped

    def seconds(self, camera: str, header: Header, received: float) -> float:
        """The time to time camera ``camera``'s frame with: ``header``'s stamp, or ``received``
        (seconds) while the camera has never stamped a frame and this one is stamped 0."""
        return self.time(camera, header.seconds, received, header.sec == 0 and header.nanosec == 0)

    def time(self, camera: str, stamp: float, received: float,
             unstamped: bool | None = None) -> float:
        """:meth:`seconds` of a frame stamped ``stamp`` (seconds); ``unstamped``: whether it is
        stamped 0 (None: ``stamp == 0``). Camera health times its frames with it too."""
        if camera not in self._stamped:
            if (stamp == 0.0) if unstamped is None else unstamped:
                if camera not in self.unstamped:
                    self.unstamped.add(camera)
                    if self._on_unstamped is not None:
                        self._on_unstamped(camera)
                return received
            self._stamped.add(camera)
            self.unstamped.discard(camera)
        return stamp


__all__ = ["FrameClock"]
