"""No core dump of a process holding face data: the soft ``RLIMIT_CORE`` is set to 0 at start.

A crash of native code (onnxruntime, OpenCV, Fast DDS) or an abort writes the process memory to
a core file wherever the system keeps them (the working directory, systemd-coredump's store, an
apport report) when the core limit allows it, as ``ulimit -c unlimited`` on a developer machine
and systemd's defaults for services and sessions do: the decrypted gallery (names, consent
records, templates), the gallery key's derived keys and camera frames landed there in clear,
beyond the reach of ``driver forget`` and of encryption at rest (SECURITY.md R40). A core limit
of 0 stops the kernel writing one and systemd-coredump storing one; child processes (a local
Ray's workers) inherit it. The hard limit is left as it is.
"""
from __future__ import annotations


def no_core_dumps() -> None:
    """Set this process's soft core-file limit to 0 (nothing to do where there is no such limit).

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
        return


__all__ = ["no_core_dumps"]
