"""Privacy guard: face identity runs only on the in-cabin camera, where the driver consented."""
from __future__ import annotations

from ..errors import PrivacyError

#: The only camera role on which faces may be matched against the gallery.
IDENTITY_ROLE = "cabin"
#: Roles this package knows; every one but ``cabin`` looks outside the car (detection only).
KNOWN_ROLES = ("cabin", "front", "rear", "left", "right", "surround", "exterior")


def check_identity_allowed(camera_role: str) -> None:
    """Raise PrivacyError unless ``camera_role`` is ``cabin``.

    Pedestrians, cyclists and other drivers seen by exterior cameras never consented to face
    recognition, so identity is refused there; face *detection* (e.g. for blurring) stays allowed.
    """
    role = str(camera_role).strip().lower()
    if role == IDENTITY_ROLE:
        return
    kind = "an exterior camera" if role in KNOWN_ROLES else "not the in-cabin camera"
    raise PrivacyError(
        f"face identification refused on camera_role '{camera_role}': it is {kind}, and people "
        f"seen there (pedestrians, other drivers) have not consented to face recognition. Identity "
        f"runs only with camera_role '{IDENTITY_ROLE}' pointed at the enrolled, consenting driver; "
        f"use face detection only on other cameras")
