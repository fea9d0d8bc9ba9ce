"""A node logger whose lines reach ``/rosout`` without the paths that name a person.

rcutils writes each line of a node's logger to the console, to its log file and to ``/rosout``,
which every participant of the DDS domain may read: a line naming the gallery
(``/home/alice/.local/share/sense_perception/gallery.json``) told them the user's name and where
the driver's templates lie. :class:`DomainLogger` hands rcutils the line with those paths labelled
(:mod:`sense_perception.face.domain_text`) and, when it took something out, gives the full line
to Python logging (``sense_perception.local``: the process's standard error), which never reaches
the domain (R93).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from rclpy.impl import rcutils_logger
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.logging import LoggingSeverity

#: Where the full text of a line whose paths were labelled for /rosout goes (local only).
LOCAL = logging.getLogger("sense_perception.local")

_LEVELS = {LoggingSeverity.DEBUG: logging.DEBUG, LoggingSeverity.INFO: logging.INFO,
           LoggingSeverity.WARN: logging.WARNING, LoggingSeverity.ERROR: logging.ERROR,
           LoggingSeverity.FATAL: logging.CRITICAL}

# rclpy tells log calls apart (throttle_duration_sec, once) by the frame that called it, skipping
# the frames of the files listed here: this wrapper's frame would make every call one caller.
rcutils_logger._internal_callers.append(os.path.realpath(__file__))


class DomainLogger(RcutilsLogger):
    """The node's rcutils logger (same name, so the same ``/rosout`` publisher) whose lines pass
    through ``redact`` first.

    Args:
        name: the node's logger name.
        redact: the text as the domain may read it.
    """

    def __init__(self, name: str, redact: Callable[[str], str]) -> None:
        super().__init__(name)
        self._redact = redact

    def log(self, message: Any, severity: Any, **kwargs: Any) -> bool:
        """Log ``message`` as :meth:`RcutilsLogger.log` does (its filters, kept per calling line:
        this file is one of rclpy's internal callers), its text redacted first. /rosout's Log
        also carries the caller's source file, left as rclpy gives it (docs/driver-monitoring.md)."""
        text = str(message)
        try:
            safe = self._redact(text)
        except Exception:  # noqa: BLE001  a line is never lost to its redaction
            safe = text
        logged = bool(super().log(safe, severity, **kwargs))
        if logged and safe != text:  # the full line, locally only
            LOCAL.log(_LEVELS.get(LoggingSeverity(severity), logging.WARNING), "[%s] %s",
                      kwargs.get("name", self.name), text)
        return logged


__all__ = ["DomainLogger", "LOCAL"]
