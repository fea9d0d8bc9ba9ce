"""Where a replay's results go: the output bag and, with ``--publish``, a live ROS 2 graph."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..core.output.frame_outputs import DIAGNOSTIC_ARRAY, Message
from ..face.domain_text import home_paths, redact_status
from .writer import LATCHED_QOS, OutputBag, OutputWriteError


class ResultSink:
    """Writes the messages of a frame (:func:`~sense_perception.core.output.frame_outputs.frame_messages`)
    into the output bag, and publishes them too when a live publisher is given.

    Args:
        bag: the output bag.
        publisher: a :class:`~.publish.LivePublisher`, or None.
        on_error: gets the output topic and the exception of a message of a frame that could not
            be written (converted, serialised); None: raised. The frame's other messages and
            later frames are written all the same: one message's fault ended the whole replay,
            its summary unwritten.
    """

    def __init__(self, bag: OutputBag, publisher: Any = None,
                 on_error: Callable[[str, Exception], None] | None = None) -> None:
        self.bag = bag
        self.publisher = publisher
        self.on_error = on_error

    def write(self, timestamp: int, messages: Iterable[Message]) -> None:
        """Write each message at bag time ``timestamp`` (ns); latched rows as transient-local.

        Raises:
            OutputWriteError: the bag file cannot be written (a full disk: later writes fail
                too, the replay ends, SECURITY.md R5); any error without ``on_error``.
        """
        for m in messages:
            try:
                self.emit(m.topic, m.msgtype, timestamp, m.message,
                          LATCHED_QOS if m.output.latched else ())
            except OutputWriteError:
                raise
            except Exception as exc:  # noqa: BLE001 - named by on_error, the rest goes on
                if self.on_error is None:
                    raise
                self.on_error(m.topic, exc)

    def emit(self, topic: str, msgtype: str, timestamp: int, message: dict[str, Any],
             qos: Any = ()) -> None:
        """Serialise one message dict and write (and publish) it."""
        obj = self.bag.convert(msgtype, message)
        raw = self.bag.typestore.serialize_cdr(obj, msgtype)
        self.bag.write_raw(topic, msgtype, timestamp, raw, qos or ())
        if self.publisher is not None:
            if msgtype == DIAGNOSTIC_ARRAY:  # every participant of the domain reads it (R97)
                raw = self._for_domain(msgtype, message, raw)
            self.publisher.publish(topic, msgtype, raw, qos or ())

    def _for_domain(self, msgtype: str, message: dict[str, Any], raw: Any) -> Any:
        """``raw`` as the DDS domain gets it: the statuses' messages and values with the home
        folder labelled ``~`` (a provider's fallback reason names a path under it, as the node's
        /diagnostics never does: :meth:`~..ros.node_common.PerceptionNode._status_for_domain`);
        the output bag keeps the full text."""
        paths = home_paths()
        domain = {**message, "status": [redact_status(s, paths) for s in message.get("status", [])]}
        if domain == message:
            return raw
        return self.bag.typestore.serialize_cdr(self.bag.convert(msgtype, domain), msgtype)
