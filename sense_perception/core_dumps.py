"""No core dump of a process holding face data: the soft ``RLIMIT_CORE`` is set to 0 at start.

A crash of native code (onnxruntime, OpenCV, Fast DDS) or an abort writes the process memory to
a core file wherever the system keeps them (the working directory, systemd-coredump's store, an
apport report) when the core limit allows it, as ``ulimit -c unlimited`` on a developer machine
and systemd's defaults for services and sessions do: the decrypted gallery (names, consent
records, templates), the gallery key's derived keys and camera frames landed there in clear,
beyond the reach of ``driver forget`` and of encryption at rest (SECURITY.md R40). A core limit
of 0 stops the kernel writing one and systemd-coredump storing one; child processes (a local
Ray's workers) inherit it. The hard limit is left as it is.

The limit binds a core *file* only: where ``/proc/sys/kernel/core_pattern`` pipes the dump to a
crash reporter (``|/usr/share/apport/apport ...`` on Ubuntu, ``|.../systemd-coredump``), the
kernel ignores it and streams the whole memory to the reporter, which decides on its own; apport
writes a crash report with the core (``/var/crash/*.crash``, for the upload whoopsie offers)
whatever the limit when the executable belongs to a package, as ``/usr/bin/python3`` does (R74).
The process is therefore also made non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): the kernel then
dumps nothing, to a file or a pipe. It also keeps debuggers of the same user (ptrace) out of the
process memory; a new program (``exec``, a Ray worker) starts dumpable again.
"""
from __future__ import annotations


def no_core_dumps() -> None:
    """Set this process's soft core-file limit to 0 (nothing to do where there is no such limit)
    and make it non-dumpable (:func:`not_dumpable`).

    Raises nothing: a system that refuses the change keeps its limit (and the process runs).
    """
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        if soft != 0:
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    except (OSError, ValueError):
        pass
    not_dumpable()


#: prctl(2) options (linux/prctl.h).
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int = 0) -> int:
    """prctl(2) through the C library; -1 where there is none (not Linux) or it fails."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return -1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0),
                              ctypes.c_ulong(0), ctypes.c_ulong(0)))
    except (OSError, AttributeError):
        return -1


def not_dumpable() -> None:
    """Make this process non-dumpable: no core, not even to a crash reporter a pipe in
    ``core_pattern`` names, which the core limit does not bind (R74). Raises nothing."""
    _prctl(PR_SET_DUMPABLE, 0)


def dumpable() -> int:
    """This process's dumpable flag (1 dumpable, 0 not); -1 where it cannot be read."""
    return _prctl(PR_GET_DUMPABLE)


__all__ = ["dumpable", "no_core_dumps", "not_dumpable"]
