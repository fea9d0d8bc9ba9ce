"""Where a replay's results go: the output bag and, with ``--publish``, a live ROS 2 graph."""
from __future__ import annotations

from typing import Any, Iterable

from ..core.output.frame_outputs import Message
from .writer import LATCHED_QOS, OutputBag


class ResultSink:
    """Writes the messages of a frame (:func:`~sense_perception.core.output.frame_outputs.frame_messages`)
    into the output bag, and publishes them too when a live publisher is given.

    Args:
        bag: the output bag.
        publisher: a :class:`~.publish.LivePublisher`, or None.
    """

    def __init__(self, bag: OutputBag, publisher: Any = None) -> None:
        self.bag = bag
        self.publisher = publisher

    def write(self, timestamp: int, messages: Iterable[Message]) -> None:
        """Write each message at bag time ``timestamp`` (ns); latched rows as transient-local."""
        for m in messages:
            self.emit(m.topic, m.msgtype, timestamp, m.message, LATCHED_QOS if m.output.latched else ())

    def emit(self, topic: str, msgtype: str, timestamp: int, message: dict[str, Any],
             qos: Any = ()) -> None:
        """Serialise one message dict and write (and publish) it."""
        obj = self.bag.convert(msgtype, message)
        raw = self.bag.typestore.serialize_cdr(obj, msgtype)
        self.bag.write_raw(topic, msgtype, timestamp, raw, qos or ())
        if self.publisher is not None:
            self.publisher.publish(topic, msgtype, raw, qos or ())
