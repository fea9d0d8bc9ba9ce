"""Suite-wide set-up of the tests (the ROS graph's own fixtures are in test/ros/conftest.py)."""
from __future__ import annotations

import signal
import warnings

import pytest
from support import LeftoverSignalState, restore_signal_state, signal_state


def pytest_configure(config: pytest.Config) -> None:
    """SIGHUP at its default, as in a terminal, whatever ignore the runner handed down.

    A runner that ignores SIGHUP (``nohup``, some CI services) passes the ignore to this process
    and to every command the tests start, and the commands keep an ignored SIGHUP ignored, as
    ``nohup`` asks (R89, R91): the tests of the stop a closed terminal's SIGHUP makes then got no
    stop at all (exit 0 where 129 was asserted), in-process and in the commands they start. The
    tests of ``nohup`` itself set the ignore they test."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


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
