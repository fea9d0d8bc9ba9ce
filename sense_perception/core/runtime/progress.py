"""What a bounded model load or warm-up is doing now (SECURITY.md R81, R85).

:func:`~sense_perception.core.runtime.warm_up.run_bounded` runs a node's model load and its
warm-up in a thread of its own and gives up on a step (one model's load, one inference) that has
run ``warm_up_timeout_s``; to name what hung it reads the :class:`WarmUpProgress` of that thread.
The warm-up reports each inference to the progress it is handed; the model loaders (an
onnxruntime session, an OpenVINO compile, a detector's first run at load) deep inside the core
call :func:`loading`, which reports to the progress of the thread that runs them, if any (the
commands load through the same bounded path since R87; a model built outside one, in a test or a
benchmark, reports to nobody).
"""
from __future__ import annotations

import threading
import time
from typing import Callable

#: The progress of the bounded job the current thread runs (set by ``run_bounded``'s thread).
_CURRENT = threading.local()


class WarmUpProgress:
    """What a bounded load or warm-up runs now: the model and what is done with it, since when
    (read by ``run_bounded`` when it gives up on it). One per job: a hung one left behind writes
    only its own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.model = "the first model"
        self.what = "blank input"
        self.load = False
        #: The fix of a load step that is no model's (a file read): None gives the model's fix.
        self.fix: str | None = None
        self.since = clock()

    def step(self, model: str, what: str) -> None:
        """A warm-up inference of ``model`` on ``what`` begins."""
        self.model, self.what, self.load, self.since = model, what, False, self.clock()
        self.fix = None

    def loading(self, model: str, what: str, fix: str | None = None) -> None:
        """A step of loading ``model`` (``what``: an onnxruntime session on its providers, an
        OpenVINO compile, its first run at load) begins; ``fix``: what to do when this step
        hangs, for a step that is no model's (the gallery read), else None (the model's fix)."""
        self.model, self.what, self.load, self.since = model, what, True, self.clock()
        self.fix = fix

    def doing(self) -> str:
        """The current step in words: ``the load of M (W)`` or ``the warm-up inference of M on W``."""
        if self.load:
            return f"the load of {self.model} ({self.what})"
        return f"the warm-up inference of {self.model} on {self.what}"

    def running_s(self) -> float:
        """Seconds the current step has run."""
        return self.clock() - self.since


def current() -> WarmUpProgress | None:
    """The progress the current thread reports to (None outside a bounded job)."""
    return getattr(_CURRENT, "progress", None)


def set_current(progress: WarmUpProgress | None) -> None:
    """Make ``progress`` the one this thread's :func:`loading` calls report to."""
    _CURRENT.progress = progress


def loading(model: str, what: str, fix: str | None = None) -> None:
    """Say that a step of loading ``model`` begins (a no-op outside a bounded job); ``fix``: see
    :meth:`WarmUpProgress.loading`."""
    progress = current()
    if progress is not None:
        progress.loading(model, what, fix)


__all__ = ["WarmUpProgress", "current", "loading", "set_current"]
