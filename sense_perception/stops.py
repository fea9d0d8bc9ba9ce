"""SIGTERM and SIGHUP stop a command the way Ctrl-C does: one path for every command.

A service manager, ``kill`` or ``timeout`` sends SIGTERM, and a terminal that closes (a dropped
SSH session, a closed window) sends SIGHUP; the default of either ends the process at once: no
``finally``, no ``with`` block unwinds (a half-written output, a temporary folder of face
templates left under /tmp, an old gallery version unzeroed). :func:`stop_signals` turns them into
:class:`Terminated` (:class:`HungUp` for SIGHUP), a KeyboardInterrupt, so the same cleanup runs as
on Ctrl-C, and :func:`exit_code` gives the shell's status for each (143 = 128 + SIGTERM, 129 =
128 + SIGHUP, 130 = 128 + SIGINT). Only a block's first stop counts: a later one is ignored, so
the cleanup the first began runs whole and the exit status is the first's (:meth:`Stops.stop`).
"""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind as on Ctrl-C (exit status 143)."""

    signum: int = signal.SIGTERM


class HungUp(Terminated):
    """SIGHUP arrived (the command's terminal closed): unwind as on Ctrl-C (exit status 129)."""

    signum: int = signal.SIGHUP


#: The stops other than Ctrl-C (SIGINT): what each raises, by signal number.
_STOPS: dict[int, type[KeyboardInterrupt]] = {signal.SIGTERM: Terminated, signal.SIGHUP: HungUp}


class StoppedAfterFailure(KeyboardInterrupt):
    """A stop kept for the end of a block (:meth:`Stops.obeyed`) whose work then failed: the run
    is stopped as asked (exit status 130 / 143 / 129), and ``failure`` is what went wrong first, for
    the command to name (``error: ...``). The failure's exit status (2) lost the stop, and an
    error that is no SensePerceptionError ended in a traceback, exit status 1.

    Attributes:
        signum: the signal that asked for the stop.
        failure: the exception the block ended with.
    """

    def __init__(self, signum: int, failure: BaseException) -> None:
        super().__init__(f"stopped by {_signal_words(signum)} after: {failure}")
        self.signum = signum
        self.failure = failure


def _signal_words(signum: int) -> str:
    return signal.Signals(signum).name if signum in _STOPS else "Ctrl-C"


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit status of a run stopped by ``exc``: 128 + the signal (143 after SIGTERM, 129
    after SIGHUP, 130 after Ctrl-C)."""
    return 128 + signal_of(exc)


def signal_of(exc: KeyboardInterrupt) -> int:
    """The signal that stopped the run: SIGTERM, SIGHUP or SIGINT (Ctrl-C)."""
    if isinstance(exc, (StoppedAfterFailure, Terminated)):
        return exc.signum
    return signal.SIGINT


def stopped_by(exc: KeyboardInterrupt) -> str:
    """What stopped the run, in words: "SIGTERM", "SIGHUP" or "Ctrl-C"."""
    return _signal_words(signal_of(exc))


#: Seconds after the first stop from which a later one ends the process at once: the stops
#: before are ignored (Ctrl-C pressed twice or thrice, a shell's second SIGHUP), since a cleanup
#: (a summary, a gallery's change) takes a second or two, not this.
FORCE_AFTER_S = 5.0


def _say(text: str) -> None:
    """A line on stderr from a signal handler: os.write, since the handler may have interrupted
    a write to sys.stderr's buffer (a reentrant write raises); a closed terminal (EIO) is no
    error."""
    import os

    try:
        os.write(2, f"{text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` at once (``os._exit``: no finalization, no thread joined),
    the log and the standard streams flushed first: what ``run`` and the commands do when a
    thread they gave up on (a hung model load, a stuck callback) is still running (R85, R87)."""
    import logging
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class Stops:
    """SIGINT, SIGTERM and SIGHUP stop the run (KeyboardInterrupt, :class:`Terminated` for
    SIGTERM, :class:`HungUp` for SIGHUP), except inside :meth:`held`, where a stop waits for the
    block to end; once one has come, the later ones are ignored.

    ``detect``: an image's annotated copy and its record must land together: a stop between the
    copy's rename and its record left a copy on disk that detections.json and the manifest did not
    list (the interrupted run's promise is exactly the finished images)."""

    def __init__(self) -> None:
        self._holding = False
        self._pending: int | None = None
        self._first: int | None = None  # the stop that came (raised or kept)
        self._first_at = 0.0  # when it came (time.monotonic)
        self._hung_up = False
        self._in_force = False  # its stop_signals block is running: a nested one reuses it

    @property
    def first(self) -> int | None:
        """The signal of this block's first stop (raised, kept or :meth:`took`), else None."""
        return self._first

    @property
    def hung_up(self) -> bool:
        """Whether a SIGHUP arrived (the terminal is gone)."""
        return self._hung_up

    def stop(self, signum: int, frame: Any) -> None:
        """Signal handler: raise the stop now, or keep it for the end of the held block. Only the
        first stop counts: a later one (Ctrl-C pressed twice, a ``timeout`` or service manager's
        SIGTERM after it, a closed terminal's second SIGHUP) is ignored, so the cleanup the first
        began (the summary, the partial outputs, the gallery's change, a temp folder's removal)
        runs whole and the exit status is the first stop's (R99). Raised there, a second one cut
        that cleanup short (no detections.json beside this run's copies, an unpacked copy of the
        driver's frames half removed from TMPDIR), and one kept beside the first replaced it
        (SIGTERM then Ctrl-C exited 130). A later stop says so on stderr; one :data:`FORCE_AFTER_S`
        or more after the first ends the process at once with the first's status (R100): a
        cleanup that hangs (a stalled disk) or a first stop that Python swallowed (raised inside
        a finalizer) would otherwise leave only SIGKILL."""
        if signum == signal.SIGHUP:
            self._hung_up = True  # the terminal is gone, whichever stop came first
        if self._first is not None:
            waited = time.monotonic() - self._first_at
            if waited >= FORCE_AFTER_S:  # the user insists: a cleanup that hangs holds no one
                _say(f"{_signal_words(signum)} {waited:.0f} s after the first stop: stopping at "
                     "once, the cleanup cut short (outputs may be incomplete or left as temp "
                     "files)")
                import os

                os._exit(128 + self._first)
            _say(f"{_signal_words(signum)} again: still stopping, keeping the outputs whole; a "
                 f"stop {FORCE_AFTER_S:g} s or more after the first ends the process at once")
            return
        self._first, self._first_at = signum, time.monotonic()
        if self._holding:
            self._pending = signum
            return
        raise _STOPS.get(signum, KeyboardInterrupt)

    def took(self, signum: int, at: float) -> None:
        """Count a stop that another handler took in this block (fleet's
        :class:`~sense_perception.fleet.signals.InterruptGuard`, which only notes it) as this
        block's first, come at ``at`` (time.monotonic), unless one came before: a later stop is
        then ignored or, :data:`FORCE_AFTER_S` after it, ends the process, as :meth:`stop` says.
        Uncounted, a second stop in the command's tail (fleet's results table) counted as the
        first: a Ctrl-C after a SIGTERM exited 130 (R101)."""
        if signum == signal.SIGHUP:
            self._hung_up = True
        if self._first is None:
            self._first, self._first_at = signum, at

    @contextmanager
    def held(self) -> Iterator[None]:
        """Run the block whole: a stop arriving in it is raised once it ends, also when the
        block fails: then as :class:`StoppedAfterFailure`, naming the failure (:meth:`obeyed`).
        A failure left the stop kept and unraised: ``detect`` stopped by SIGTERM while its
        results were written, whose write then failed, exited 2, not 143 (R61)."""
        with self.obeyed(), self.deferred():
            yield

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Run the block whole: a stop arriving in it is kept for :meth:`raise_pending` (the
        caller first reports what the block did: ``driver forget`` says what it erased)."""
        outer = self._holding  # a block held inside another (a nested stop_signals) keeps it
        try:
            self._holding = True  # inside try: a stop raised just before still clears it
            yield
        finally:
            self._holding = outer

    def raise_pending(self) -> None:
        """Raise the stop that arrived in a :meth:`deferred` block, if one did; inside an outer
        held block it stays kept, for that block's end."""
        if self._holding:
            return
        pending, self._pending = self._pending, None
        if pending is not None:  # raised here, not by stop(), which ignores every later stop
            raise _STOPS.get(pending, KeyboardInterrupt)

    @contextmanager
    def obeyed(self) -> Iterator[None]:
        """Around work holding :meth:`deferred` blocks (a ``driver`` command's gallery change):
        at its end, the stop one of them kept is raised (:meth:`raise_pending`), also when the
        work failed: then as :class:`StoppedAfterFailure`, naming the failure. A failure raised
        while a stop was kept lost the stop: a ``driver forget`` asked to stop by SIGTERM whose
        gallery write then failed exited 2 (or 1, with a traceback, for an error that is no
        SensePerceptionError), not 143."""
        try:
            yield
        except Exception as exc:
            if self._holding:  # inside an outer held block: its obeyed() names the failure
                raise
            pending, self._pending = self._pending, None
            if pending is not None:
                raise StoppedAfterFailure(pending, exc) from exc
            raise
        self.raise_pending()


@contextmanager
def stop_signals() -> Iterator[Stops]:
    """Install :class:`Stops` for SIGTERM, for SIGINT where Python's own Ctrl-C handler is in
    place (an ignored SIGINT, as in a background job, stays ignored) and for SIGHUP where its
    default is (``nohup`` ignores it: such a run outlives its terminal, as asked); the earlier
    handlers come back when the block ends. Off the main thread nothing is installed (signal
    handlers can only be set there).

    SIGHUP's default, left in place before R89, ended a command whose terminal closed (a dropped
    SSH session) at once, wherever it was: ``driver forget`` between putting the new gallery in
    place and zeroing the old version left the forgotten driver's name and templates on disk, as
    SIGTERM's default did before R44.

    Inside another ``stop_signals`` block (its :class:`Stops` handles SIGTERM) this one is that
    block's :class:`Stops`: nothing is installed, and a :meth:`Stops.held` block in it holds
    every stop the outer one took over. A new Stops took only SIGTERM there (SIGINT and SIGHUP
    were no longer at their defaults), so a command run whole in the block could not hold its
    ``--json-out`` write against Ctrl-C or SIGHUP; ``driver attention`` and ``eval`` ran their
    photos outside one, ended by either signal's default (R96). Only a Stops whose block is still
    running is reused, and a stop arriving while the handlers are set up or put back is kept
    until they are, then raised (R98): raised midway, it left a Stops installed after its block,
    which every later block of the process (a test's second ``main([...])``) took for an outer
    one, installing nothing, so Ctrl-C and SIGHUP were no longer held."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    outer = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if isinstance(outer, Stops) and outer._in_force:
        yield outer
        return
    previous: dict[int, Any] = {}
    # A stop while the handlers are set up or put back waits until they are (R98): one raised
    # midway left this Stops installed for good, and since R96 every later block in the process
    # took that dead Stops as its outer one and installed nothing. Kept, it is raised in the
    # block (set-up) or once all are back (obeyed: also after a failure, never lost).
    with stops.obeyed():
        try:
            with stops.deferred():
                _install(stops, previous)
            stops.raise_pending()
            stops._in_force = True
            yield stops
        finally:
            stops._in_force = False
            with stops.deferred():
                for signum in sorted(previous, key=lambda s: s == signal.SIGINT):
                    # SIGINT's own handler raises at once: put back last. After a hangup SIGHUP
                    # stays ignored: the terminal is gone, and the shell's second SIGHUP,
                    # arriving after the block, ended the process by its default (exit -1)
                    # where it was to exit 129
                    hung_up = signum == signal.SIGHUP and stops.hung_up
                    signal.signal(signum, signal.SIG_IGN if hung_up else previous[signum])


def _install(stops: Stops, previous: dict[int, Any]) -> None:
    """Make ``stops`` the handler of SIGTERM, of SIGINT where Python's own Ctrl-C handler is and
    of SIGHUP where its default is, each earlier handler noted in ``previous`` before it is
    replaced (so that a stop arriving in between leaves nothing unnoted)."""
    wanted = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        wanted.append(signal.SIGINT)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:
        wanted.append(signal.SIGHUP)
    for signum in wanted:
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, stops.stop)


__all__ = ["HungUp", "StoppedAfterFailure", "Stops", "Terminated", "exit_code", "signal_of",
           "stop_signals", "stopped_by"]
