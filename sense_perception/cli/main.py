"""`sense-perception` command line: one sub-command per module in this package.

Each sub-command module exposes ``add_parser(subparsers)`` (registers its parser and sets
``func`` to a callable taking the parsed args and returning an exit code).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import SensePerceptionError

if TYPE_CHECKING:
    from ..stops import Stops

# Modules are imported lazily by name so `sense-perception --help` stays fast and a sub-command's
# heavy imports (rclpy for `run`) never load for another.
SUBCOMMANDS = {
    "detect": "sense_perception.cli.detect",
    "driver": "sense_perception.cli.driver",
    "eval": "sense_perception.cli.eval",
    "fleet": "sense_perception.cli.fleet",
    "health": "sense_perception.cli.health",
    "replay": "sense_perception.cli.replay",
    "run": "sense_perception.cli.run",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="sense-perception",
        description="Camera perception for automated cars: object and pedestrian detection, tracking "
                    "and consented in-cabin driver identification on ONNX Runtime.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # sub-command not built yet in this tree
        module.add_parser(sub)
    for command in sub.choices.values():  # `sense-perception replay ... -v` works too
        _add_verbose(command)
    return parser


VERBOSE_HELP = ("-v: also log what model preparation and provider selection did (INFO); -vv: debug "
                "messages. Default: warnings and errors only (`run` logs INFO, like the nodes)")

# Sub-commands that are ROS nodes keep the nodes' INFO logging by default.
INFO_BY_DEFAULT = {"run"}


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # nested sub-commands (driver enroll, ...) get it as well
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)
    if not {"-v", "--verbose"} & set(parser._option_string_actions):
        # Its own dest: a sub-parser's default would otherwise overwrite the top-level count.
        parser.add_argument("-v", "--verbose", dest="sub_verbose", action="count", default=0,
                            help=VERBOSE_HELP)


def log_level(command: str | None, verbosity: int) -> int:
    """Python logging level for ``command`` run with ``verbosity`` times -v."""
    base = 1 if command in INFO_BY_DEFAULT else 0
    return (logging.WARNING, logging.INFO, logging.DEBUG)[min(2, base + verbosity)]


def ros_args_last(argv: list[str]) -> list[str]:
    """``argv`` with ``--`` put before ``--ros-args``: by the ROS convention everything from there on
    belongs to ROS (``run ... --ros-args -p x:=1``), which argparse would otherwise read as options."""
    if "--ros-args" not in argv:
        return argv
    i = argv.index("--ros-args")
    return argv if "--" in argv[:i] else [*argv[:i], "--", *argv[i:]]


def tolerant_output() -> None:
    """Let stdout and stderr print any file name: one that is not valid UTF-8 (read from a disk as
    lone surrogates) would otherwise end a command in a UnicodeEncodeError under a strict UTF-8
    locale. It is shown as ``\\udcff``; where Python already writes such bytes back as they were
    (the C locale's surrogateescape), that is kept."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


class _ClosedPipeTolerant:
    """Standard output (or error) that a reader may close (``... --json | head -1``), or whose
    terminal may hang up (a dropped SSH session: SIGHUP, then every write fails with EIO): once a
    write or flush meets a closed pipe or a hung-up terminal, the rest of the output goes to
    ``/dev/null`` and the command goes on.

    A BrokenPipeError ended the command with a traceback and exit status 1 in the middle of
    printing, so what it writes after printing (``--json-out FILE``, written last) was lost; so
    did the EIO of a hung-up terminal, which also turned a SIGHUP's exit status 129 into 1 (R89).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _closed(self) -> None:
        try:  # the text layer may still hold bytes for the pipe; let them go to /dev/null too
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a test's capture): nothing to redirect
            pass

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError as exc:
            self._gone(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._gone(exc)

    def _gone(self, exc: OSError) -> None:
        """Send the rest to /dev/null when ``exc`` says the reader is gone, else raise it."""
        if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EIO:
            raise exc
        self._closed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sense-perception` console script."""
    from ..core_dumps import no_core_dumps

    # A crash must not write the decrypted gallery or frames to a core file: every command, `run`
    # included (the nodes' console scripts set it in ros.run.run_nodes, as they skip this main).
    no_core_dumps()
    tolerant_output()
    stdout, stderr = sys.stdout, sys.stderr
    if stdout is not None and not isinstance(stdout, _ClosedPipeTolerant):
        sys.stdout = _ClosedPipeTolerant(stdout)  # type: ignore[assignment]
    if stderr is not None and not isinstance(stderr, _ClosedPipeTolerant):
        sys.stderr = _ClosedPipeTolerant(stderr)  # type: ignore[assignment]
    try:
        # argv None: the process's own command line, which ends with the command; still
        # through the wrappers: its note to a hung-up terminal (EIO) raised out of main with the
        # load still running, never reaching os._exit (R91)
        code = _main(argv, leave_loads=argv is None)
    finally:
        for wrapped in (sys.stdout, sys.stderr):
            if wrapped is not stdout and wrapped is not stderr:
                wrapped.flush()  # what is still buffered meets a closed pipe here, not at exit
        sys.stdout, sys.stderr = stdout, stderr
    return code


#: How long a command that gave up on a model load (its bound, Ctrl-C) waits for it to return.
LOAD_GRACE_S = 2.0


def leave_unfinished_loads(code: int, stops: Stops | None = None) -> int:
    """End the process with ``code`` now (``os._exit``) if a model load the command gave up on
    (``warm_up_timeout_s``, Ctrl-C; :func:`~sense_perception.model_load.load_models`) is still
    running :data:`LOAD_GRACE_S` later: one returning from OpenVINO or onnxruntime while Python
    finalized ended the process in ``terminate called without an active exception`` (SIGABRT,
    exit 134, about 1 run in 2 of a ``detect`` whose bound ran out in an OpenVINO compile), the
    error it had printed and its exit status 2 lost (R87). Else the exit status to return.

    A first stop of the command's block ``stops`` that ends this wait (:func:`unfinished_jobs`
    catches it) is obeyed: its 130 / 143 / 129, not ``code``. Lost there, a SIGTERM or SIGHUP
    to a command that had given up on its load exited 2, as if no stop had come (R103)."""
    import time

    from ..core.runtime.warm_up import unfinished_jobs
    from ..stops import exit_now

    before = None if stops is None else stops.first
    stuck = unfinished_jobs(time.monotonic() + LOAD_GRACE_S)
    if stops is not None and before is None and stops.first is not None:
        code = 128 + stops.first  # the stop that ended the wait is the first: the run stops as asked
    if stuck:
        print(f"note: the model load this command gave up on is still running (threads "
              f"{', '.join(stuck)}); the process ends without it", file=sys.stderr)
        exit_now(code)
    return code


#: Sub-commands that handle the stops themselves: ``run`` (rclpy's handlers and the nodes' own,
#: :mod:`sense_perception.ros.run`) is left outside :func:`_main`'s stop block.
OWN_STOPS = {"run"}


def _main(argv: list[str] | None, leave_loads: bool = False) -> int:
    parser = build_parser()
    args = parser.parse_args(ros_args_last(list(sys.argv[1:] if argv is None else argv)))
    verbosity = args.verbose + getattr(args, "sub_verbose", 0)
    logging.basicConfig(level=log_level(args.command, verbosity),
                        format="%(levelname)s %(name)s: %(message)s")
    from contextlib import nullcontext

    from ..stops import exit_code, stop_signals

    # One stop block around the whole command, its tail included (R101): each command's own
    # block is this one (stop_signals reuses it), so a stop after that block ended (as fleet
    # printed its table, eval its "stopped" note, main the error a stop waited for, or in the
    # wait for an abandoned model load) no longer met Python's defaults: a second stop replaced
    # the first's exit status or ended the process by the signal, a first one ended it unhandled.
    # A first stop there is obeyed (its exit status, no traceback), a later one is ignored (R99).
    try:
        with nullcontext() if args.command in OWN_STOPS else stop_signals() as stops:
            code = _dispatch(args, parser)
            if leave_loads:  # its wait ends at a first stop, whose status it then is (R103)
                code = leave_unfinished_loads(code, stops)
    except KeyboardInterrupt as exc:  # a first stop after the command's own handling
        code = exit_code(exc)
        if leave_loads:
            leave_unfinished_loads(code)
    return code


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the sub-command ``args`` names; its exit status (an error or a stop reported). No
    sub-command: the help, exit 2."""
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SensePerceptionError as exc:
        from ..face.safe_text import printable

        print(f"error: {printable(exc)}", file=sys.stderr)  # a file name cannot forge a line
        return 2
    # Ctrl-C (130), or SIGTERM / SIGHUP where the command turns it into one (143 / 129)
    except KeyboardInterrupt as exc:
        from ..stops import StoppedAfterFailure, exit_code, stopped_by

        if isinstance(exc, StoppedAfterFailure):  # the stop waited for work that then failed
            from ..face.safe_text import printable

            failure = exc.failure
            text = str(failure) if isinstance(failure, SensePerceptionError) else \
                f"{type(failure).__name__}: {failure}"
            print(f"error: {printable(text)}; stopped ({stopped_by(exc)}) after it",
                  file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
