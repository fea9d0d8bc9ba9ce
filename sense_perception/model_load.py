"""A command's model load, bounded as a node's configure is (SECURITY.md R87).

The nodes load their models through
:func:`~sense_perception.core.runtime.warm_up.load_bounded` (R85); ``detect``, ``replay``, ``eval``
and the fleet's workers loaded theirs on the calling thread, unbounded, so an onnxruntime session
creation or an OpenVINO compile that never returned (a provider's engine build, a deadlocked GPU
driver) held the command for ever, with nothing said, and Ctrl-C could not end a wait inside C
code. They load through the same function now, under the same ``warm_up_timeout_s`` the config
gives the node whose parameters they read, and fail naming the model, the time waited and the
fix, before writing anything; Ctrl-C ends the wait at once (the waiting thread is in Python).
The ``driver`` commands and ``benchmarks/run.py`` load theirs through it too (R90).
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from .core.runtime.warm_up import Waiter, load_bounded

T = TypeVar("T")


def load_models(job: Callable[[], T], models: str, params: dict[str, Any], source: str,
                command: str, node: str = "object_detector", gave_up: str = "",
                setting: str = "", where: str = " in --config") -> T:
    """Run ``job`` (building ``models``) bounded by the ``warm_up_timeout_s`` of ``params``.

    Args:
        job: builds and returns the models; touches nothing else (one returning after the wait
            gave up changes nothing).
        models: what it builds, for the error (``the detector's models``).
        params: the flattened parameters of ``node`` (from ``source``).
        command: the command that waits (``detect``), for the error and the thread's name.
        gave_up: what giving up means (default: ``so <command> stopped before writing anything``).
        setting, where: the bound's name and where it is given, for the fix (default
            ``<node>'s warm_up_timeout_s`` ``in --config``; the benchmarks' is an option).

    Raises:
        ConfigError: a wrong ``warm_up_timeout_s``.
        ModelError: the load raised (its own error) or a step of it has not returned after
            ``warm_up_timeout_s``, naming the model, what it was doing, the time waited and the
            fix.
    """
    from .ros.settings import warm_up_timeout

    waiter = Waiter(setting=setting or f"{node}'s warm_up_timeout_s", where=where,
                    gave_up=gave_up or f"so {command} stopped before writing anything",
                    again=f"run {command} again")
    # one word: the note of the loads left running names each by its thread's first word
    return load_bounded(job, models, warm_up_timeout(params, source),
                        name=f"{command.replace(' ', '-')}-load", waiter=waiter)


__all__ = ["load_models"]
