"""Ctrl-C, SIGTERM and SIGHUP during a fleet run: stop handing out bags, end the workers and Ray,
and still write ``fleet_summary.json`` (unfinished bags marked ``interrupted``), then exit 128 + the signal.

The handler only notes the signal; the dispatcher's loop, which wakes at least every quarter of
a second, calls :meth:`InterruptGuard.check` and stops. (An exception raised by the handler
itself would surface inside Ray's native calls, as a SystemError.) ``ray.init`` installs its own
SIGTERM handler (``sys.exit``), which would end the run without a summary and with Ray's native
stack dumps; :meth:`InterruptGuard.install` is therefore called again once Ray is up.

SIGHUP (the terminal closed: a dropped SSH session) is caught only where its default is in place
(or the command's stop block, :func:`~sense_perception.stops.stop_signals`, took it from there):
that default ended the run at once, without a summary (R89); under ``nohup`` it stays ignored, so
the run outlives its terminal as asked.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..stops import Stops

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised by :meth:`InterruptGuard.check` after the first SIGINT / SIGTERM of a run.

    A BaseException, like KeyboardInterrupt, so that the ``except Exception`` around each Ray call
    does not swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        """SIGINT, SIGTERM or SIGHUP."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it (130, 143, 129)."""
        return 128 + self.signum


class InterruptGuard:
    """Notes the first SIGINT / SIGTERM / SIGHUP (:meth:`check` raises :class:`Interrupted`); a
    second one exits at once, except while :meth:`protecting` the summary's write.

    Only in the main thread (Python delivers signals there); elsewhere it does nothing.
    """

    def __init__(self) -> None:
        self._old: dict[int, Any] = {}
        self._caught: int | None = None
        self._caught_at = 0.0  # when (time.monotonic)
        self._hung_up = False  # a SIGHUP came: the terminal is gone
        self._protecting = False  # fleet_summary.json is being written: a second signal waits

    def install(self) -> None:
        """Install (again) the handlers; the first call remembers the previous ones."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            if sig == signal.SIGHUP and sig not in self._old \
                    and signal.getsignal(sig) != signal.SIG_DFL \
                    and _stops_of(signal.getsignal(sig)) is None:
                # ignored (nohup) or someone's own handler: left as it is; the command's
                # stop_signals block (cli.main) took it from its default, as this would
                continue
            previous = signal.signal(sig, self._handle)
            self._old.setdefault(sig, previous)

    def restore(self) -> None:
        """Put back the handlers found by the first :meth:`install`. Where they are the command's
        :class:`~sense_perception.stops.Stops` (cli.main's block), the stop noted here is handed
        to it as its first (:meth:`~sense_perception.stops.Stops.took`): a later one, while the
        results table is printed, is then a second stop, not a first."""
        outer = _stops_of(self._old.get(signal.SIGTERM))
        if outer is not None and self._caught is not None:
            outer.took(self._caught, self._caught_at)
            if self._hung_up:  # the terminal is gone, whichever stop came first
                outer.took(signal.SIGHUP, self._caught_at)
        for sig, previous in self._old.items():
            if sig == signal.SIGHUP and self._hung_up:
                previous = signal.SIG_IGN  # hung up: the shell's second SIGHUP may come after
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._old.clear()

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal came.

        Raises:
            Interrupted: the first SIGINT / SIGTERM / SIGHUP since :meth:`install`.
        """
        if self._caught is not None:
            raise Interrupted(self._caught)

    @contextmanager
    def protecting(self) -> Iterator[None]:
        """Run the block whole: a second signal in it is ignored (the first one's stop stands).
        Around ``fleet_summary.json``'s write, which takes milliseconds: a second Ctrl-C there
        ended the run between its temp file and the rename, no summary written and the temp
        file left in ``--out`` (R99); the waits for the workers and Ray protect no data, and a
        second signal still ends those at once."""
        self._protecting = True
        try:
            yield
        finally:
            self._protecting = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        hung_up, self._hung_up = self._hung_up, self._hung_up or signum == signal.SIGHUP
        if self._caught is None:
            self._caught, self._caught_at = signum, time.monotonic()
            _note(f"\nfleet: {signal.Signals(signum).name}: stopping the workers and writing the "
                  "summary (again to exit at once)\n")
            return
        if signum == signal.SIGHUP or hung_up or self._protecting:
            # Nobody insists: a closed terminal's hangup comes twice (the kernel's, then the
            # shell's, passed on to its jobs), and the second ended the run without its summary;
            # after it, a SIGTERM is the logout's (systemd-logind's to the session), not a user's.
            return
        # Cleanup is under way and the user insists: leave now. Ray's reaper process ends the
        # local instance's processes when this one is gone.
        _note(f"\nfleet: {signal.Signals(signum).name} again: exiting without cleaning up\n")
        os._exit(128 + signum)

    def __enter__(self) -> InterruptGuard:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _stops_of(handler: Any) -> Stops | None:
    """The :class:`~sense_perception.stops.Stops` whose handler ``handler`` is, else None."""
    from ..stops import Stops

    owner = getattr(handler, "__self__", None)
    return owner if isinstance(owner, Stops) else None


def _note(text: str) -> None:
    """Write ``text`` to stderr from the signal handler, which must never raise: after SIGHUP the
    terminal is gone and a write there fails (EIO), and an exception raised in the handler
    surfaced inside Ray's native call as a SystemError that ended the run without its summary,
    its work folders left."""
    try:
        sys.stderr.write(text)
    except (OSError, ValueError):  # a hung-up terminal, a closed stream
        pass
