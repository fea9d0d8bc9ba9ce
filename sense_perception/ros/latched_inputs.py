"""Latched (transient-local) publishers of an input the nodes read volatile: CameraInfo.

A CameraInfo subscription is volatile (best effort, keep last 1): it matches every publisher, but
receives nothing published before it matched. A CameraInfo published once with TRANSIENT_LOCAL
durability before the node started (some drivers latch it; ``ros2 topic pub --once
--qos-durability transient_local``) was therefore never received: "no CameraInfo yet" for ever.
A transient-local subscription alone would not do: it does not match a volatile publisher (the
requested durability is higher than the offered one), the usual per-frame CameraInfo.

So the volatile subscription stays, and :class:`LatchedInputs` adds a transient-local one to a
topic as soon as one of its publishers offers TRANSIENT_LOCAL (``get_publishers_info_by_topic``
gives each publisher's QoS; polled at set-up and from a timer, as publishers are discovered
later). Only then: a transient-local subscription beside volatile publishers makes them log an
incompatible-QoS warning, so none is made where no publisher latches. A message of a latched
publisher that arrives on both subscriptions is read twice; the readers keep a CameraInfo equal
to the one they hold as it is.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..durations import duration

POLL_S = 1.0  # how often topics without a latched publisher yet are looked at again


def latched_profile(publishers: list[Any]) -> QoSProfile | None:
    """The transient-local profile that matches the latched ones of ``publishers`` (rclpy
    ``TopicEndpointInfo``); None when none offers TRANSIENT_LOCAL. Reliable where every latched
    publisher is reliable (a best-effort reader may miss the history), best effort otherwise (it
    matches both)."""
    latched = [p for p in publishers
               if p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL]
    if not latched:
        return None
    reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in latched)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)


class LatchedInputs:
    """Transient-local subscriptions for the topics of ``readers`` whose publishers latch.

    Args:
        node: the rclpy node.
        msg_type: the topics' message class.
        readers: topic -> the callback of its volatile subscription (the same one is used).
    """

    def __init__(self, node: Any, msg_type: type, readers: Mapping[str, Callable[[Any], None]]) -> None:
        self._node = node
        self._msg_type = msg_type
        self._readers = dict(readers)
        self.subscriptions: dict[str, Any] = {}
        # topic -> why its publishers could not be looked at (or its latched subscription made);
        # shown in /diagnostics (:meth:`diagnostic_values`, :meth:`warnings`) until a poll works
        self.errors: dict[str, str] = {}
        self._timer: Any = None

    def start(self) -> None:
        """Look at the publishers now, then every :data:`POLL_S` seconds (steady clock) while a
        topic has no latched subscription (a topic that has one is not looked at again)."""
        from rclpy.clock import Clock, ClockType

        self.poll()
        if self._readers.keys() - self.subscriptions.keys():
            self._timer = self._node.create_timer(POLL_S, self.poll,
                                                  clock=Clock(clock_type=ClockType.STEADY_TIME))

    def poll(self) -> None:
        """Subscribe transient-local to each topic that has a latched publisher and no such
        subscription yet. A graph query (or the subscription) that fails is kept in
        :attr:`errors`, logged when it starts or changes, and retried at the next poll: it never
        ends the node (a timer callback that raised ended the executor's spin)."""
        for topic, callback in self._readers.items():
            if topic in self.subscriptions:
                continue
            try:
                profile = latched_profile(self._node.get_publishers_info_by_topic(topic))
                if profile is not None:
                    self.subscriptions[topic] = self._node.create_subscription(
                        self._msg_type, topic, callback, profile,
                        # a volatile publisher beside the latched one is read by the volatile
                        # subscription
                        event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))
            except Exception as exc:  # noqa: BLE001 - a graph query must not end the node
                self._failed(topic, f"{type(exc).__name__}: {exc}"[:300])
                continue
            if self.errors.pop(topic, None) is not None:
                self._node.get_logger().info(f"{topic}: its publishers can be looked at again")
            if topic in self.subscriptions:
                self._node.get_logger().info(f"{topic}: a publisher latches it (transient "
                                             "local); read from it too, what it published "
                                             "before included")

    def _failed(self, topic: str, error: str) -> None:
        """Keep ``error`` for ``topic`` (shown in /diagnostics); log it once, not every poll."""
        if self.errors.get(topic) != error:
            self._node.get_logger().warning(
                f"{topic}: its publishers could not be looked at for one that latches it "
                f"({error}); retried every {duration(POLL_S)}, and a CameraInfo published once before "
                "it works is not received; the volatile subscription goes on")
        self.errors[topic] = error

    def diagnostic_values(self) -> dict[str, str]:
        """``latched_lookup_error[<topic>]``: the last failure of each topic still failing."""
        return {f"latched_lookup_error[{topic}]": error
                for topic, error in list(self.errors.items())}

    def warnings(self) -> list[str]:
        """One line per topic whose publishers cannot be looked at (the node's status at least
        WARN): a CameraInfo its driver latched before the node started is not read meanwhile."""
        return [f"{topic}: cannot look for a latched publisher ({error}); retried every "
                f"{duration(POLL_S)}" for topic, error in list(self.errors.items())]

    def close(self) -> None:
        """Destroy the timer and the latched subscriptions."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        for sub in self.subscriptions.values():
            self._node.destroy_subscription(sub)
        self.subscriptions = {}
