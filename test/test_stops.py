"""sense_perception.stops: SIGTERM and SIGHUP unwind like Ctrl-C, with real signals sent to this
process."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from sense_perception.stops import HungUp, Terminated, exit_code, stop_signals, stopped_by


def _signal_self(signum: int) -> None:
    """Send ``signum`` to this process and give Python the moment it needs to run the handler."""
    os.kill(os.getpid(), signum)
    for _ in range(100):  # the handler runs between bytecodes: at once in practice
        time.sleep(0.01)


@pytest.mark.parametrize("signum, kind, code, words", [
    (signal.SIGTERM, Terminated, 143, "SIGTERM"),
    (signal.SIGINT, KeyboardInterrupt, 130, "Ctrl-C"),
    # the terminal closed (a dropped SSH session): its default ended the process at once (R89)
    (signal.SIGHUP, HungUp, 129, "SIGHUP"),
])
def test_a_signal_unwinds_the_block_and_names_its_exit_code(signum, kind, code, words) -> None:
    before, before_hup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    cleaned = False
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            with stop_signals():
                # handled: a default left in place would end this process (SIGHUP's, before R89)
                assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.SIG_IGN)
                try:
                    _signal_self(signum)
                finally:
                    cleaned = True  # a with/finally runs: the default SIGTERM skipped it
        after_hup = signal.getsignal(signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, before_hup)
    assert type(caught.value) is kind and cleaned
    assert exit_code(caught.value) == code and stopped_by(caught.value) == words
    assert signal.getsignal(signal.SIGTERM) is before  # the earlier handler is back
    # after a hangup SIGHUP is ignored from then on (the shell's second one may come late)
    assert after_hup == (signal.SIG_IGN if signum == signal.SIGHUP else before_hup)


def test_an_ignored_sighup_stays_ignored() -> None:
    """``nohup`` ignores SIGHUP so that a run outlives its terminal: stop_signals keeps it so."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        done = []
        with stop_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            _signal_self(signal.SIGHUP)
            done.append("block")  # reached: nothing stopped the run
        assert done == ["block"] and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_stop_inside_held_waits_for_the_block_to_end() -> None:
    done = []
    with pytest.raises(Terminated):
        with stop_signals() as stops:
            with stops.held():
                _signal_self(signal.SIGTERM)
                done.append("block")  # reached: the stop waited
            done.append("after")  # not reached: the stop is raised as the block ends
    assert done == ["block"]


def test_off_the_main_thread_nothing_is_installed() -> None:
    before, seen = signal.getsignal(signal.SIGTERM), []

    def worker() -> None:
        with stop_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]


class _PoolExecutor:
    """rclpy's MultiThreadedExecutor keeps its thread pool in ``_executor``."""

    def __init__(self, workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(workers)


@pytest.fixture
def leave_callbacks(monkeypatch):
    """`run._leave_stuck_callbacks` with a 0.2 s grace and ``os._exit`` faked: yields the list of
    exit codes it asked for."""
    import logging
    import os

    from sense_perception.ros import run

    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(run, "CALLBACK_GRACE_S", 0.2)
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    return exits


def test_run_leaves_a_callback_still_running_after_the_stop_behind(leave_callbacks, capsys):
    """R33: `run`'s MultiThreadedExecutor runs callbacks on a thread pool that Python joins at
    exit: a transition asked for over ROS and still under way at Ctrl-C (models loading, a
    TensorRT engine build) held the process after its nodes were destroyed, silent. The end of
    `run` now lets the idle pool go, waits for a busy callback at most ``CALLBACK_GRACE_S``, then
    names it and ends the process without it (``os._exit``, faked here)."""
    from sense_perception.ros import run

    exits = leave_callbacks
    idle = _PoolExecutor(2)
    idle._executor.submit(lambda: None).result()
    run._leave_stuck_callbacks(idle, 0)  # nothing running: returns, the pool's threads ended
    assert exits == [] and "warning" not in capsys.readouterr().err
    busy, release = _PoolExecutor(2), threading.Event()
    busy._executor.submit(release.wait)  # a configure that does not end
    try:
        with pytest.raises(SystemExit):
            run._leave_stuck_callbacks(busy, 0)
    finally:
        release.set()
        busy._executor.shutdown(wait=True)
    assert exits == [0]
    err = capsys.readouterr().err
    assert "a callback was still running 0.2 s after the stop (threads ThreadPoolExecutor-" in err


def test_run_leaves_a_stuck_callback_behind_after_its_terminal_hung_up(monkeypatch, leave_callbacks):
    """R91: SIGHUP stops `run` and the nodes' own commands now (rclpy left it at its default);
    their terminal is gone then, and the nodes' console scripts write to the raw standard error
    (no wrapper of the CLI's main): the warning naming a callback still running met EIO, the
    OSError raised out of `run` before ``os._exit``, and Python then waited at exit for the
    callback's thread, for ever. The warning is lost with the terminal; the process ends."""
    import sys

    from sense_perception.ros import run

    class HungUpTerminal:
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")  # EIO

        def flush(self) -> None:
            raise OSError(5, "Input/output error")

    exits = leave_callbacks
    busy, release = _PoolExecutor(1), threading.Event()
    busy._executor.submit(release.wait)  # a configure that does not end
    try:
        monkeypatch.setattr(sys, "stderr", HungUpTerminal())
        with pytest.raises(SystemExit):
            run._leave_stuck_callbacks(busy, 0)
    finally:
        monkeypatch.undo()
        release.set()
        busy._executor.shutdown(wait=True)
    assert exits == [0]


def test_a_second_sighup_never_cuts_the_cleanup_short() -> None:
    """A closed terminal's hangup comes twice (the kernel's, then the shell's, passed on to its
    jobs): the second raised again in the cleanup the first began (a bag's unpacked copy half
    removed). It is ignored now; the first one's stop stands (R89)."""
    cleaned, before = [], signal.getsignal(signal.SIGHUP)
    try:
        with pytest.raises(HungUp):
            with stop_signals():
                try:
                    _signal_self(signal.SIGHUP)
                finally:
                    _signal_self(signal.SIGHUP)  # the shell's, while the cleanup runs
                    cleaned.append("whole")
        # or after the block, as the command exits: its default ended the process (exit -1,
        # not 129), and with it what the caller still had to do
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        _signal_self(signal.SIGHUP)
        cleaned.append("exit")
    finally:
        signal.signal(signal.SIGHUP, before)
    assert cleaned == ["whole", "exit"]


def test_run_stops_once_on_sighup_and_leaves_it_ignored_after() -> None:
    """R91: `run` and the nodes' commands (around rclpy, which handles SIGINT and SIGTERM only)
    turn the first SIGHUP into HungUp; the shell's second one, or one once a stop has begun, is
    ignored, and SIGHUP stays ignored when the run ends (the shell's late one ended the exit with
    exit -1); under ``nohup`` it is left ignored throughout. Since R102 they do it with
    ``stop_signals`` (their own SIGTERM and SIGHUP handler let a second Ctrl-C through)."""
    before = signal.getsignal(signal.SIGHUP)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with pytest.raises(HungUp):
            with stop_signals():
                try:
                    _signal_self(signal.SIGHUP)
                finally:
                    _signal_self(signal.SIGHUP)  # the shell's: ignored, the stop goes on
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with pytest.raises(Terminated) as caught:
            with stop_signals():
                try:
                    _signal_self(signal.SIGTERM)
                finally:
                    _signal_self(signal.SIGHUP)  # a stop under way: not cut short
        assert type(caught.value) is Terminated  # the first stop's, not the hangup's
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
        with stop_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            _signal_self(signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM])
def test_a_held_block_in_a_nested_stop_signals_holds_every_stop(signum) -> None:
    """R96: a stop_signals block inside another (``driver attention``'s whole run around its
    ``--json-out`` write) made a new Stops that took only SIGTERM: Ctrl-C or SIGHUP inside its
    held block were the outer handler's, raised at once, the write cut short. The nested block is
    the outer one's Stops now: the stop waits for the held block, raised as it ends, once."""
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with stop_signals() as outer:
                with stop_signals() as inner:
                    assert inner is outer
                    with inner.held():
                        _signal_self(signum)
                        done.append("whole")  # the stop was kept: the block ran to its end
                done.append("after")  # never reached: the held block's end raised the stop
        assert done == ["whole"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        # after a SIGHUP the outer block leaves it ignored (the shell's second one: R91)
        assert signal.getsignal(signal.SIGHUP) == (
            signal.SIG_IGN if signum == signal.SIGHUP else signal.SIG_DFL)
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("first, second, kind", [
    (signal.SIGTERM, signal.SIGINT, Terminated), (signal.SIGINT, signal.SIGTERM, KeyboardInterrupt),
    (signal.SIGINT, signal.SIGINT, KeyboardInterrupt), (signal.SIGHUP, signal.SIGTERM, HungUp)])
def test_a_second_stop_never_cuts_the_cleanup_short_and_the_first_one_stands(
        first, second, kind) -> None:
    """R99: a second Ctrl-C or SIGTERM while the cleanup the first stop began ran (Ctrl-C pressed
    twice; a service manager's SIGTERM after a Ctrl-C) was raised right there, the cleanup cut
    short (only a second SIGHUP was ignored, R89), and the run ended as the second stop. Only the
    first stop counts now: the cleanup runs whole and the stop is the first's."""
    cleaned, before = [], signal.getsignal(signal.SIGHUP)
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            with stop_signals():
                try:
                    _signal_self(first)
                finally:
                    _signal_self(second)  # pressed again while the cleanup runs
                    cleaned.append("whole")
        assert type(stopped.value) is kind
        assert cleaned == ["whole"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize("first, second, code", [
    (signal.SIGTERM, signal.SIGINT, 143), (signal.SIGINT, signal.SIGTERM, 130),
    (signal.SIGHUP, signal.SIGINT, 129), (signal.SIGINT, signal.SIGHUP, 130)])
def test_a_held_block_raises_the_first_stop_it_kept_not_the_last(first, second, code) -> None:
    """R99: a stop arriving while a held block kept another replaced it (SIGTERM, then Ctrl-C
    while detect's results or a gallery change were written, exited 130). The first one is
    raised at the block's end now, as a shell reports the first signal that stopped a job; a
    SIGHUP among them still leaves SIGHUP ignored (the terminal is gone)."""
    done, before = [], signal.getsignal(signal.SIGHUP)
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            with stop_signals() as stops, stops.held():
                _signal_self(first)
                _signal_self(second)
                done.append("whole")
        assert done == ["whole"]
        assert exit_code(stopped.value) == code
        assert signal.getsignal(signal.SIGHUP) == (
            signal.SIG_IGN if signal.SIGHUP in (first, second) else before)
    finally:
        signal.signal(signal.SIGHUP, before)


def _signal_when_installing(monkeypatch, signum: int, installing: int, restoring: bool) -> None:
    """Send ``signum`` to this process just after ``stop_signals`` sets (or, ``restoring``, puts
    back) its handler for ``installing``: the moment a Ctrl-C pressed as a command begins or ends
    meets it. Once only."""
    from sense_perception import stops as stops_module

    real, sent = signal.signal, []

    def setting(sig, handler):
        previous = real(sig, handler)
        ours = getattr(handler, "__self__", None) is not None
        if sig == installing and not sent and ours != restoring:
            sent.append(sig)
            _signal_self(signum)
        return previous

    monkeypatch.setattr(stops_module.signal, "signal", setting)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_the_handlers_are_set_up_leaves_none_installed(monkeypatch, signum) -> None:
    """R98: a stop arriving while stop_signals set its handlers up (a Ctrl-C pressed as a command
    began) was raised before the block's clean-up could run: its Stops stayed SIGTERM's handler
    after the command. Since R96 a stop_signals block finding a Stops there is that Stops, so
    every later block in the process (a test's second ``main([...])``) installed nothing: a
    Ctrl-C or SIGHUP in its held block (a ``--json-out`` write) was raised at once. The stop is
    now kept until the handlers are in place, raised in the block, and they are put back."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    _signal_when_installing(monkeypatch, signum, signal.SIGTERM, restoring=False)
    with pytest.raises(KeyboardInterrupt):
        with stop_signals():
            pass
    monkeypatch.undo()
    assert {s: signal.getsignal(s) for s in before} == before  # nothing left installed
    done = []
    with pytest.raises(KeyboardInterrupt):
        with stop_signals() as stops, stops.held():  # the next command's block holds Ctrl-C
            _signal_self(signal.SIGINT)
            done.append("whole")
    assert done == ["whole"]


def test_a_stop_while_the_handlers_are_put_back_is_raised_and_leaves_none_installed(
        monkeypatch) -> None:
    """R98: a Ctrl-C arriving while the block put its handlers back (SIGTERM's first) was raised
    there by the block's own SIGINT handler, leaving it and SIGHUP's installed for the rest of the
    process; the stop is raised once all three are back."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    _signal_when_installing(monkeypatch, signal.SIGINT, signal.SIGTERM, restoring=True)
    with pytest.raises(KeyboardInterrupt):  # never lost: the block ended as it arrived
        with stop_signals():
            pass
    monkeypatch.undo()
    assert {s: signal.getsignal(s) for s in before} == before


_HUNG_CLEANUP = """
import os, signal, sys, time
from sense_perception.stops import exit_code, stop_signals
late = getattr(signal, sys.argv[1]) if sys.argv[1] != "-" else None
stops = [getattr(signal, name) for name in sys.argv[2:]]
try:
    with stop_signals():
        try:
            os.kill(os.getpid(), stops[0])
        finally:  # the cleanup the first stop began; the later stops arrive while it runs
            for signum in stops[1:]:
                os.kill(os.getpid(), signum)  # pressed again at once: ignored
            if late:
                time.sleep(5.5)  # a cleanup that hangs (a stalled disk)...
                os.kill(os.getpid(), late)  # ...and the user presses again
                time.sleep(60)
            print("cleanup whole", flush=True)
except KeyboardInterrupt as exc:  # as the commands end
    sys.exit(exit_code(exc))
"""


@pytest.mark.parametrize("late, names, code, whole", [
    ("-", ["SIGINT", "SIGINT", "SIGINT"], 130, True),
    ("SIGINT", ["SIGTERM", "SIGINT"], 143, False),
    ("SIGTERM", ["SIGHUP", "SIGHUP"], 129, False)])
def test_a_stop_long_after_the_first_ends_a_hung_cleanup_with_the_first_ones_status(
        late, names, code, whole) -> None:
    """R100: since R99 the stops after the first are ignored so that its cleanup runs whole; a
    cleanup that then hung (or a first stop that Python swallowed in a finalizer) could be ended
    by SIGKILL only. A later stop says the run is still stopping (Ctrl-C pressed thrice at once
    still cuts nothing short); one 5 s or more after the first ends it at once, with the first
    stop's status."""
    import subprocess
    import sys

    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _HUNG_CLEANUP, late, *names],
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == code, proc.stderr
    assert "again: still stopping, keeping the outputs whole; a stop 5 s or more after the first " \
           "ends the process at once" in proc.stderr
    assert ("cleanup whole" in proc.stdout) is whole
    assert ("after the first stop: stopping at once, the cleanup cut short" in proc.stderr) \
        is not whole
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 45  # not the 60 s of the hung cleanup


def test_a_second_stop_while_eval_says_it_stopped_keeps_the_first_ones_status(
        tmp_path, monkeypatch, capsys) -> None:
    """R101: ``eval`` says what a stop did to --out ("eval stopped ... before its results were
    written") after its stop block has ended: a Ctrl-C there (pressed after a SIGTERM) met
    Python's own handler and the run exited 130, not the first stop's 143 (R99). cli.main's block
    covers the command's tail now: the second stop is ignored, the note printed whole."""
    from sense_perception import cli
    from sense_perception.cli import eval as eval_cli
    from sense_perception.cli.main import main

    check_iou, shown = eval_cli._check_iou, cli.shown

    def stopped_first(iou: float) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the first stop, in eval's own block
        check_iou(iou)

    def stopped_again(*args: object) -> str:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the note is printed
        return shown(*args)

    monkeypatch.setattr(eval_cli, "_check_iou", stopped_first)
    monkeypatch.setattr(cli, "shown", stopped_again)
    out = tmp_path / "out"
    found = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["eval", str(tmp_path / "gt.json"), "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert f"eval stopped (SIGTERM) before its results were written: nothing in --out {out} " \
           "was replaced" in err
    # main puts back the handlers it found (whatever an earlier test in this process left)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == found
