"""SIGTERM stops a command the way Ctrl-C does: one path for ``detect`` and the benchmarks.

A service manager, ``kill`` or ``timeout`` sends SIGTERM, whose default ends the process at once:
no ``finally``, no ``with`` block unwinds (a half-written output, a temporary folder of face
templates left under /tmp). :func:`stop_signals` turns it into :class:`Terminated`, a
KeyboardInterrupt, so the same cleanup runs as on Ctrl-C, and :func:`exit_code` gives the shell's
status for either (143 = 128 + SIGTERM, 130 = 128 + SIGINT).
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind as on Ctrl-C (exit status 143)."""


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit status of a run stopped by ``exc``: 143 after SIGTERM, 130 after Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130


def stopped_by(exc: KeyboardInterrupt) -> str:
    """What stopped the run, in words: "SIGTERM" or "Ctrl-C"."""
    return "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"


class Stops:
    """SIGINT and SIGTERM stop the run (KeyboardInterrupt, :class:`Terminated` for SIGTERM),
    except inside :meth:`held`, where a stop waits for the block to end.

    ``detect``: an image's annotated copy and its record must land together: a stop between the
    copy's rename and its record left a copy on disk that detections.json and the manifest did not
    list (the interrupted run's promise is exactly the finished images)."""

    def __init__(self) -> None:
        self._holding = False
        self._pending: int | None = None

    def stop(self, signum: int, frame: Any) -> None:
        """Signal handler: raise the stop now, or keep it for the end of the held block."""
        if self._holding:
            self._pending = signum
            return
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    @contextmanager
    def held(self) -> Iterator[None]:
        """Run the block whole: a stop arriving in it is raised once it ends."""
        with self.deferred():
            yield
        self.raise_pending()

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Run the block whole: a stop arriving in it is kept for :meth:`raise_pending` (the
        caller first reports what the block did: ``driver forget`` says what it erased)."""
        try:
            self._holding = True  # inside try: a stop raised just before still clears it
            yield
        finally:
            self._holding = False

    def raise_pending(self) -> None:
        """Raise the stop that arrived in a :meth:`deferred` block, if one did."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.stop(pending, None)


@contextmanager
def stop_signals() -> Iterator[Stops]:
    """Install :class:`Stops` for SIGTERM and for SIGINT where Python's own Ctrl-C handler is in
    place (an ignored SIGINT, as in a background job, stays ignored); the earlier handlers come
    back when the block ends. Off the main thread nothing is installed (signal handlers can only
    be set there)."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, stops.stop)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, stops.stop)
    try:
        yield stops
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


__all__ = ["Stops", "Terminated", "exit_code", "stop_signals", "stopped_by"]
