"""Outputs that a node's remap rules move where they must not go (ROS-free).

A remap rule (``--ros-args -r FROM:=TO``, a launch file's ``remappings``, ``run``'s global rules)
changes the topic a publisher or a subscription takes, not the parameter that named it: the
settings' checks of the names as given (:func:`~.frame_outputs.taken_topics`, R20) never saw
Autoware's ROIs remapped onto the camera image the node reads (a loop of the node's own output
into its input, two message types on one topic, which the ROS graph refuses or mixes) or onto
another camera's image. :func:`check_remapped_outputs` compares the names as the node resolves
them; the node calls it at configure, before any model loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ...errors import ConfigError
from .frame_outputs import IMAGE
from .topics import is_debug_topic, looks_like_image

#: The fix every refusal names.
REMAP_FIX = ("fix: remove the remap rule (--ros-args -r FROM:=TO, a launch file's remappings) or "
             "remap the output to a topic of its own")


@dataclass(frozen=True)
class Endpoint:
    """A topic the node publishes or subscribes to.

    Attributes:
        topic: the name as the settings give it (before the remap rules).
        msgtype: its ROS message type.
        what: what it is, for the message ("the rois output of camera '/a/image_raw'").
        output: the node publishes it (else it subscribes to it).
    """

    topic: str
    msgtype: str
    what: str
    output: bool


def check_remapped_outputs(endpoints: Sequence[Endpoint], resolve: Callable[[str], str],
                           expand: Callable[[str], str],
                           foreign: Mapping[str, str] | None = None) -> None:
    """Refuse an endpoint that the remap rules move onto another one with an output involved,
    or an output they move onto an image topic or a topic of another node.

    An image output (the drawn detections) may go to an image name in a ``debug`` namespace
    (:func:`is_debug_topic`: ``/x/debug/image``): a debug image is no camera's. It was refused
    as "a camera image topic" though no camera publishes there (R57); another message type
    there still is (a viewer of that name expects images).

    Args:
        endpoints: the node's publishers and subscriptions.
        resolve: a name -> the name the node takes (expanded and remapped).
        expand: a name -> the name expanded only (no remap rule applied).
        foreign: topics other nodes use (the cabin camera, driver_monitor's outputs, /tf) ->
            what they are.

    Raises:
        ConfigError: naming the remap (the name given and where it goes), what it clashes with
            and the fix. Clashes between names as given are the settings' to refuse (R20).
    """
    seen: list[tuple[Endpoint, str, bool]] = []
    for endpoint in endpoints:
        resolved = resolve(endpoint.topic)
        moved = resolved != expand(endpoint.topic)
        for other, other_resolved, other_moved in seen:
            if resolved != other_resolved or not (moved or other_moved):
                continue
            if endpoint.output or other.output or endpoint.msgtype != other.msgtype:
                raise ConfigError(
                    f"the node's remap rules put {_named(endpoint, resolved, moved)} and "
                    f"{_named(other, other_resolved, other_moved)} on one topic ({_clash(endpoint, other)}); "
                    + REMAP_FIX)
        seen.append((endpoint, resolved, moved))
        if not (endpoint.output and moved):
            continue
        user = (foreign or {}).get(resolved.rstrip("/"))
        if user is not None:
            raise ConfigError(f"the node's remap rules put {_named(endpoint, resolved, moved)}, "
                              f"which is {user}; " + REMAP_FIX)
        if looks_like_image(resolved) and not (endpoint.msgtype == IMAGE and is_debug_topic(resolved)):
            clash = ("the drawn detections would mix with the camera's frames"
                     if endpoint.msgtype == IMAGE else
                     f"a {endpoint.msgtype} there clashes with the camera's images")
            raise ConfigError(f"the node's remap rules put {_named(endpoint, resolved, moved)}, "
                              f"a camera image topic: {clash}; " + REMAP_FIX)


def _named(endpoint: Endpoint, resolved: str, moved: bool) -> str:
    where = f"'{endpoint.topic}' remapped to '{resolved}'" if moved else f"'{resolved}'"
    return f"{endpoint.what} ({where})"


def _clash(a: Endpoint, b: Endpoint) -> str:
    if a.output != b.output:
        return "the node would read its own output"
    if a.msgtype != b.msgtype:
        return f"two message types, {a.msgtype} and {b.msgtype}"
    return "two outputs would mix their messages"


__all__ = ["Endpoint", "REMAP_FIX", "check_remapped_outputs"]
