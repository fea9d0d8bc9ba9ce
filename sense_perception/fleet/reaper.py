"""Ends what a local fleet run's Ray left behind when the run itself was killed (kill -9).

Ray kills its direct children (GCS, raylet) when the driver dies, but the raylet's own children
(the dashboard and runtime-env agents) notice late and then spend up to a minute trying to report
to the dead GCS. This small process, started with the local Ray instance, notes every process
that appears below the fleet process once a second; when the fleet process is gone (its stdin
pipe reaches end of file) it kills those that are still alive. A run that ends normally shuts Ray
down first and then says so on the pipe (:func:`stop`): the reaper then leaves without killing
anything, so processes a caller of :func:`~.runner.run_fleet` runs beside it are never touched.
Once Ray has started, the fleet process names its session folder on the pipe
(:func:`tell_session`): after a kill the reaper removes it too (logs naming the bags, sockets),
once the processes it killed are gone.

Run as ``python -m sense_perception.fleet.reaper PID``; see :func:`start`.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

POLL_S = 1.0
_DONE = b"done\n"  # the run ended normally: nothing to kill
_SESSION = b"session "  # + the local Ray instance's session folder, one line
# The only variables the reaper is started with: what Python needs to start and import this
# package. It read the run's whole environment, a gallery key exported for a --cabin run (its
# workers read it from there) and the Ray instance's token (R83) among them, and is dumpable:
# /proc/PID/environ and a crash reporter's copy held them (R88). It needs neither.
_ENVIRONMENT = ("PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "LD_LIBRARY_PATH", "LANG",
                "LC_ALL", "LC_CTYPE", "TMPDIR", "HOME")


def start() -> subprocess.Popen[bytes] | None:
    """Start the reaper for this process; None where it cannot run (no Linux /proc).

    It gets its own session, so a Ctrl-C in the terminal reaches the fleet run, not it, and only
    the variables of :data:`_ENVIRONMENT` (no gallery key, no Ray token). Returns once it has
    taken note of the processes already there (which it never kills).
    """
    if not os.path.isdir("/proc/self"):
        return None  # it reads the process tree from Linux's /proc
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                env={k: v for k, v in os.environ.items() if k in _ENVIRONMENT})
    except OSError:
        return None
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready" (or nothing, if it failed: then it simply is not there)
    proc.stdout.close()
    return proc


def tell_session(proc: subprocess.Popen[bytes] | None, folder: Path) -> None:
    """Name the local Ray instance's session folder to the reaper: a kill -9 of this process
    then removes it too (see :func:`~.cluster.local_session_dir`)."""
    if proc is None or proc.stdin is None:
        return
    try:
        proc.stdin.write(_SESSION + os.fsencode(folder) + b"\n")
        proc.stdin.flush()
    except OSError:
        pass  # the reaper is gone: the folder stays after a kill -9, as without it


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Let the reaper go without killing anything (call it after ``ray.shutdown``)."""
    if proc is None:
        return
    try:
        if proc.stdin:
            proc.stdin.write(_DONE)
            proc.stdin.close()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid`` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # the name in (...) may hold spaces
    return int(fields[1]), int(fields[19])


def _descendants(parent: int) -> dict[int, int]:
    """Every process below ``parent``: pid -> start time."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat:
                children.setdefault(stat[0], []).append((int(entry), stat[1]))
    found: dict[int, int] = {}
    todo = [parent]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def _watch(parent: int, stdin: IO[bytes]) -> tuple[dict[int, int], Path | None]:
    """Note the processes that appear below ``parent`` until ``stdin`` ends.

    Returns:
        pid -> start time of each, and the session folder the parent named; nothing when the
        parent said :data:`_DONE` (it ended normally).
    """
    before = set(_descendants(parent))  # the caller's own children: never ours to kill
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    seen: dict[int, int] = {}
    me = os.getpid()
    received = b""
    while True:
        for pid, started in _descendants(parent).items():
            if pid != me and pid not in before:
                seen.setdefault(pid, started)
        ready, _, _ = select.select([stdin], [], [], POLL_S)
        if ready:
            chunk = os.read(stdin.fileno(), 4096)
            received += chunk
            if not chunk:
                if received.endswith(_DONE):
                    return {}, None
                named = [line[len(_SESSION):] for line in received.split(b"\n")
                         if line.startswith(_SESSION)]
                return seen, Path(os.fsdecode(named[-1])) if named else None


def _kill(seen: dict[int, int]) -> None:
    for pid, started in seen.items():
        stat = _stat(pid)
        if stat and stat[1] == started:  # not a new process that reused the pid
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    deadline = time.monotonic() + 5  # gone (or a zombie) before their folder is removed
    while time.monotonic() < deadline and any(_running(pid, started)
                                              for pid, started in seen.items()):
        time.sleep(0.1)


def _running(pid: int, started: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0] != b"Z" and int(fields[19]) == started


def _remove_session(folder: Path | None) -> None:
    """Remove the session folder the fleet process named, if it is one (never anything else)."""
    if folder is None or not folder.name.startswith("session_") or folder.name == "session_latest":
        return
    from .cluster import remove_session_dir  # here: cluster imports this module

    remove_session_dir(folder)


def main() -> None:
    """Entry point: ``python -m sense_perception.fleet.reaper PID``."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    seen, session = _watch(int(sys.argv[1]), sys.stdin.buffer)
    if seen or session is not None:
        _kill(seen)
        _remove_session(session)


if __name__ == "__main__":
    main()
