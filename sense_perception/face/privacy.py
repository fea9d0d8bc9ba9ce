"""Privacy guard: face identity runs only on the in-cabin camera, where the driver consented."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..core.output.topics import may_be_camera, same_camera
from ..errors import PrivacyError

#: The only camera role on which faces may be matched against the gallery.
IDENTITY_ROLE = "cabin"
#: Roles this package knows; every one but ``cabin`` looks outside the car (detection only).
KNOWN_ROLES = ("cabin", "front", "rear", "left", "right", "surround", "exterior")


def check_identity_allowed(camera_role: str, setting: str = "", what: str = "face identification",
                           fix: str = "") -> None:
    """Raise PrivacyError unless ``camera_role`` is ``cabin``.

    Pedestrians, cyclists and other drivers seen by exterior cameras never consented to face
    recognition, so identity is refused there; face *detection* (e.g. for blurring) stays allowed.

    Args:
        setting: where the role was set (``driver_monitor.camera_role in FILE``), named in the error.
        what: what is refused (``driver attention`` for the driver's head pose and gaze).
        fix: what to do instead, appended to the message.
    """
    role = str(camera_role).strip().lower()
    if role == IDENTITY_ROLE:
        return
    kind = "an exterior camera" if role in KNOWN_ROLES else "not the in-cabin camera"
    raise PrivacyError(
        f"{what} refused on camera_role '{camera_role}'" + (f" ({setting})" if setting else "")
        + f": it is {kind}, and people seen there (pedestrians, other drivers) have not consented "
        f"to face recognition. Identity runs only with camera_role '{IDENTITY_ROLE}' pointed at "
        f"the enrolled, consenting driver; use face detection only on other cameras"
        + (f"; fix: {fix}" if fix else ""))


def check_cabin_not_exterior(cabin: str, exterior: Iterable[str], named_by: str, listed_in: str,
                             fix: str) -> None:
    """Refuse the cabin camera ``cabin`` among the ``exterior`` camera topics.

    The cabin camera shows the driver: it is never run through the object detector (whose debug
    image, annotations and videos would publish the driver's face) nor treated as an exterior
    camera. One check and one message for every place that takes both lists (``run``'s config,
    ``replay``'s ``--topics`` against the configured cabin camera or ``--cabin``, and
    object_detector's ``camera_topics`` against its ``cabin_camera_topic`` at configure). A
    topic, its image_transport sub-topics (``<base>/compressed``) and the other images of its
    namespace (``<ns>/image_rect_color``: :func:`~..core.output.topics.camera_of`) are one camera.

    Args:
        named_by: what makes ``cabin`` the cabin camera (``driver_monitor.camera_topic in FILE``).
        listed_in: where the exterior cameras were named (``--topics``).
        fix: what to do instead, appended to the message.

    Raises:
        PrivacyError: naming the topic, both places and the fix.
    """
    same = [t for t in exterior if same_camera(t, cabin)]
    if same:
        which = cabin if same[0] == cabin else f"{same[0]} (the same camera as {cabin})"
        raise PrivacyError(f"topic {which} is the cabin camera ({named_by}) and is also listed in "
                           f"{listed_in}: it shows the driver, so it is never run through the "
                           f"object detector as an exterior camera; {fix}")


def check_not_exterior(topic: str, exterior: Iterable[str], named_by: str, listed_in: str,
                       fix: str, unresolved: bool = False) -> None:
    """Refuse face identity on ``topic`` when ``exterior`` (the exterior cameras) holds it, or
    another topic of its camera (R40: driver_monitor's configure): an image_transport sub-topic,
    or another image of its namespace (R70: ``/cam/image_rect_color`` beside ``/cam/image_raw``
    is the same exterior camera, rectified). ``unresolved``: ``exterior`` are names as a config
    gives them and no node's namespace is known (a replay): a relative one is the camera of
    every topic it may resolve to (:func:`~..core.output.topics.may_be_camera`).

    Raises:
        PrivacyError: naming the topic, where it is listed and the fix.
    """
    same = [str(t) for t in exterior
            if (may_be_camera(str(t), topic) if unresolved else same_camera(str(t), topic))]
    if same:
        which = topic if same[0] == topic else f"{topic} (the same camera as {same[0]})"
        if unresolved and not same_camera(same[0], topic):  # R74: a name with no namespace
            which = (f"{topic} (a camera that {same[0]}, a relative name, may be once a node "
                     "resolves it in its namespace)")
            fix = f"{fix}; or name the exterior cameras by their absolute topics"
        raise PrivacyError(f"face identification refused on {named_by} {which}: {listed_in} "
                           "lists it, so it is an exterior camera, and people seen there "
                           "(pedestrians, other drivers) have not consented to face recognition; "
                           f"fix: {fix}")


def check_identity_topic(topic: str, config: str | Path | None, named_by: str, fix: str) -> None:
    """Refuse face identity on ``topic`` when ``config`` lists it (or another topic of the same
    camera, :func:`~..core.output.topics.camera_of`; a relative name as any camera it may resolve
    to) in ``object_detector.camera_topics``: that config says it is an exterior camera,
    whose people never consented to face recognition, whatever ``camera_role`` says of the cabin
    camera. ``config`` None (the built-in defaults, whose camera list is a placeholder) names
    no exterior camera.

    Args:
        topic: the camera the driver pipeline would run on (``--cabin``, ``--topic``).
        config: the ``--config`` path (or bundled name resolved to one), or None.
        named_by: the option that named ``topic``.
        fix: what to do instead, appended to the message.

    Raises:
        PrivacyError: naming the topic, the config and the fix.
    """
    if not config:
        return
    from ..config import load_params

    exterior = load_params(config, "object_detector").get("camera_topics")
    if isinstance(exterior, (list, tuple)):
        check_not_exterior(topic, exterior, named_by, f"object_detector.camera_topics in {config}",
                           fix, unresolved=True)
