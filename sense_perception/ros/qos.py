"""QoS profiles of the nodes and the incompatible-QoS event hooks that count into the health stats.

Inputs use the sensor-data profile by default (best effort, keep last, small depth; REP-2003): a
best-effort subscription receives from reliable and best-effort cameras alike, while a reliable one
receives nothing from a best-effort camera, the most common cause of "the node publishes nothing".
Outputs are reliable so any subscriber matches; LabelInfo is transient-local so late joiners get it.
"""
from __future__ import annotations

from typing import Callable

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_policy_name_from_kind)

from ..errors import ConfigError

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def profile(reliability: str, depth: int, transient_local: bool = False, what: str = "qos") -> QoSProfile:
    """A keep-last profile.

    Args:
        reliability: ``best_effort`` or ``reliable``.
        depth: history depth (>= 1).
        transient_local: keep the last ``depth`` messages for late-joining subscribers.
        what: parameter name for error messages.

    Raises:
        ConfigError: unknown reliability or a depth below 1.
    """
    if reliability not in RELIABILITY:
        raise ConfigError(f"parameter '{what}_reliability' is {reliability!r}; valid: "
                          f"{', '.join(RELIABILITY)}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"parameter '{what}_depth' must be an integer >= 1, got {depth!r}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=RELIABILITY[reliability],
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE)


def label_info_profile() -> QoSProfile:
    """Reliable, transient-local, depth 1: the class list reaches subscribers that join later."""
    return profile("reliable", 1, transient_local=True)


def describe(profile_: QoSProfile) -> str:
    """Short text of a profile for logs and diagnostics, e.g. ``best_effort/volatile/depth=1``."""
    return (f"{profile_.reliability.name.lower()}/{profile_.durability.name.lower()}/"
            f"depth={profile_.depth}")


def subscription_events(topic: str, on_event: Callable[[str], None]) -> SubscriptionEventCallbacks:
    """Event callbacks reporting a publisher whose QoS cannot reach this subscription."""
    def incompatible(info) -> None:
        on_event(f"{topic}: a publisher offers incompatible QoS "
                 f"({qos_policy_name_from_kind(info.last_policy_kind)}); total {info.total_count}")
    return SubscriptionEventCallbacks(incompatible_qos=incompatible)


def publisher_events(topic: str, on_event: Callable[[str], None]) -> PublisherEventCallbacks:
    """Event callbacks reporting a subscription whose requested QoS this publisher cannot meet."""
    def incompatible(info) -> None:
        on_event(f"{topic}: a subscription requests incompatible QoS "
                 f"({qos_policy_name_from_kind(info.last_policy_kind)}); total {info.total_count}")
    return PublisherEventCallbacks(incompatible_qos=incompatible)
