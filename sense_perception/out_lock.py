"""One run at a time per output folder: an ``flock`` on the folder itself.

Nothing is written for it (no lock file to go stale): the kernel lets go when the process ends,
``kill -9`` included, so the next run is never blocked by a run that is gone. ``detect`` and
``replay`` hold their ``--out`` so for the whole run: two runs into one folder replaced each
other's results (SECURITY.md R35, R40).
"""
from __future__ import annotations

import os
from pathlib import Path


class FolderLock:
    """An exclusive, non-blocking ``flock`` on a folder, held until :meth:`release` (or the
    process ends).

    Args:
        command: the command taking it, named in the refusal (``detect``, ``replay``).
        lost: what a second run would cost, named in the refusal.
        error: the exception type the refusal raises (the command's own, for its exit status).
    """

    def __init__(self, command: str, lost: str, error: type[Exception]) -> None:
        self.command, self.lost, self.error = command, lost, error
        self._fd: int | None = None

    def acquire(self, out: Path) -> None:
        """Lock ``out`` (an existing folder); a folder that cannot be opened for it (no read
        permission) or a file system without locks is not locked, and not refused.

        Raises:
            ``error``: another run holds ``out``, naming the folder, the cost and the fix.
        """
        import fcntl

        if self._fd is not None:
            return
        try:  # a folder others may write but not list (mode -wx) cannot be opened to lock it
            fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return  # as on a file system without locks: not refused (it was a traceback)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self.error(f"another {self.command} is writing into --out {out}; {self.lost}: "
                             "wait for it to end, or choose another --out") from None
        except OSError:
            os.close(fd)  # a file system without locks (some network mounts): not refused
            return
        self._fd = fd

    def release(self) -> None:
        """Let go (also done by the kernel when the process ends)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
