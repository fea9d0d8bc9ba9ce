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
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
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
        """Log ``message`` as :meth:`RcutilsLogger.log` does (the same filters, kept per calling
        line), with the message and the caller's source file redacted: ``/rosout``'s Log also
        carries the file (``/home/alice/ros2_ws/install/...`` for a workspace in the home folder).
        Mirrors rclpy's own body (Jazzy), which computes the caller and calls rcutils in one."""
        if not self.is_enabled_for(severity):
            return False
        severity = LoggingSeverity(severity)
        name = kwargs.pop("name", self.name)
        detected_filters = rcutils_logger.get_filters_from_kwargs(**kwargs)
        caller_id = rcutils_logger.CallerId()
        context = self.contexts.get(caller_id)
        if context is None:
            context = {"name": name, "severity": severity}
            for detected in detected_filters:
                if detected in rcutils_logger.supported_filters:
                    rcutils_logger.supported_filters[detected].initialize_context(context, **kwargs)
            context["filters"] = detected_filters
            self.contexts[caller_id] = context
        elif (severity != context["severity"] or name != context["name"]
              or detected_filters != context["filters"]):
            raise ValueError("a log call's severity, name and filters cannot change between calls")
        for detected in context["filters"]:
            if not rcutils_logger.supported_filters[detected].should_log(context):
                return False
        text = str(message)
        try:
            safe, source = self._redact(text), self._redact(caller_id.file_path)
        except Exception:  # noqa: BLE001  a line is never lost to its redaction
            safe, source = text, caller_id.file_path
        _rclpy.rclpy_logging_rcutils_log(severity, name, safe, caller_id.function_name, source,
                                        caller_id.line_number)
        if safe != text:  # the full line, locally only
            LOCAL.log(_LEVELS.get(severity, logging.WARNING), "[%s] %s", name, text)
        return True


__all__ = ["DomainLogger", "LOCAL"]
