"""One fleet run at a time per --out: a lock file, ``DIR/.fleet.lock``, held for the whole run.

The lock is an ``flock`` on the file, which the kernel releases when the holding process ends,
however it ends (kill -9 included). The file also says who holds it (pid, host, start time), so a
second run can name the first, and a run that finds the file but not the lock knows the previous
holder died and says so.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..errors import FleetError

LOG = logging.getLogger(__name__)

LOCK_FILE = ".fleet.lock"


def _holder_text(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unknown run"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')}")


class OutLock:
    """The lock of one fleet run on ``out``; use as a context manager.

    Attributes:
        note: set when a lock left by a run that died was taken over (for the summary).
    """

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_FILE
        self.note: str | None = None
        self._fd: int | None = None

    def acquire(self) -> OutLock:
        """Take the lock.

        Raises:
            FleetError: another run holds it (named), or the file cannot be written.
        """
        for _ in range(5):  # the holder may unlink the file between our open and our flock
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise FleetError(
                    f"another fleet run is writing into --out {self.path.parent} ("
                    f"{_holder_text(holder)}); wait for it to end, or choose another --out. Two "
                    "runs into one folder would replace each other's work") from None
            except OSError as exc:
                os.close(fd)
                raise FleetError(f"cannot lock --out {self.path.parent}: {exc.strerror or exc}; "
                                 "choose a folder on a file system that supports locks") from exc
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise FleetError(f"cannot lock --out {self.path.parent}: its lock file keeps "
                             "changing; is another fleet run starting there?")
        stale = _read(fd)
        if stale:
            self.note = (f"took over the lock of an earlier fleet run into this --out "
                         f"({_holder_text(stale)}) that ended without releasing it (killed?); "
                         "its unfinished work folders are replaced")
            LOG.warning("%s", self.note)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        except OSError as exc:  # a full disk: the run could not write a single output either
            if _same_file(fd, self.path):
                self.path.unlink(missing_ok=True)  # we hold the lock: no run is using the file
            os.close(fd)
            raise FleetError(f"cannot write the lock file {self.path}: {exc.strerror or exc}; "
                             f"nothing was replayed; fix: free space on the disk of --out "
                             f"{self.path.parent}, or choose another --out") from exc
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and let go of the lock (the file first: see :meth:`acquire`)."""
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                self.path.unlink()
        except OSError:
            pass  # the folder went away or became read-only: the kernel lock still ends below
        os.close(self._fd)
        self._fd = None

    def _open(self) -> int:
        try:
            # No link following: a planted link must not make us write someone else's file.
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FleetError(f"--out {self.path.parent} is not writable ({LOCK_FILE}: "
                             f"{exc.strerror or exc}); choose a folder you can write, or fix its "
                             "permissions") from exc

    def __enter__(self) -> OutLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):  # 4 kB of "[[[[": a traceback before R89
        return {}


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
