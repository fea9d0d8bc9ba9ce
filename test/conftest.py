"""Suite-wide set-up of the tests (the ROS graph's own fixtures are in test/ros/conftest.py)."""
from __future__ import annotations

import signal
import warnings

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """SIGHUP at its default, as in a terminal, whatever ignore the runner handed down.

    A runner that ignores SIGHUP (``nohup``, some CI services) passes the ignore to this process
    and to every command the tests start, and the commands keep an ignored SIGHUP ignored, as
    ``nohup`` asks (R89, R91): the tests of the stop a closed terminal's SIGHUP makes then got no
    stop at all (exit 0 where 129 was asserted), in-process and in the commands they start. The
    tests of ``nohup`` itself set the ignore they test."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


#: The signals whose handlers the commands take over in-process (stop_signals, fleet's guard).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LeftoverSignalState(UserWarning):
    """A test left a signal handler or the blocked-signal mask changed (restored after it)."""


def signal_state() -> tuple[dict[int, object], frozenset[int]]:
    """The handlers of :data:`STOP_SIGNALS` and the main thread's blocked signals."""
    return ({s: signal.getsignal(s) for s in STOP_SIGNALS},
            frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, [])))


def restore_signal_state(start: tuple[dict[int, object], frozenset[int]]) -> list[str]:
    """Put the handlers and the mask of ``start`` back; what differed, in words (empty: none)."""
    handlers, mask = start
    left = []
    for signum, handler in handlers.items():
        now = signal.getsignal(signum)
        if now != handler:
            left.append(f"{signal.Signals(signum).name} handler {now!r} (was {handler!r})")
            signal.signal(signum, handler)  # type: ignore[arg-type]
    blocked = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    if blocked != mask:
        left.append(f"blocked signals {sorted(map(int, blocked))} (were {sorted(map(int, mask))})")
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return left


@pytest.fixture(autouse=True)
def _signal_state_restored(request: pytest.FixtureRequest):
    """Each test starts with the handlers and mask the run began with, and a test that leaves
    them changed is named (R96): the in-process stop tests (a signal sent to this process, as in
    test_faults_gallery.py) rely on them, and ``ray.init`` leaves its own SIGTERM handler
    (``sys.exit``) installed after ``ray.shutdown()``, for every later test file."""
    start = signal_state()
    yield
    left = restore_signal_state(start)
    if left:
        warnings.warn(LeftoverSignalState(f"{request.node.nodeid} left {'; '.join(left)}; "
                                          "restored"), stacklevel=2)
