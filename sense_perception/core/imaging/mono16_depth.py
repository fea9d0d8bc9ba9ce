"""Notice a 10- or 12-bit camera whose mono16 frames are read as 16-bit.

Such a sensor publishes its values in the low bits of ``mono16`` (0-1023, 0-4095). Read as 16-bit
(``input.mono16_bits: 16``, the default, the high byte) the frames are all but black: camera health
says ``dark`` and nothing is detected, but nothing said why. The nodes and the replay ask this watch
about the first mono16 frame of each camera and log its warning once, naming the setting.
"""
from __future__ import annotations

import numpy as np

from .image_decode import FULL_DEPTH_BITS, decode_mono16

__all__ = ["Mono16DepthWatch"]

#: A first frame whose values all fit in this many bits reads as (nearly) black at 16 bits.
_SHALLOW_BITS = 12


class Mono16DepthWatch:
    """Looks once per topic at a mono16 Image's values while ``input.mono16_bits`` is 16."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def check(self, topic: str, msg: object, mono16_bits: int) -> str | None:
        """A warning naming ``input.mono16_bits`` when the first readable mono16 frame of
        ``topic`` uses at most its 12 low bits; None otherwise, for any other frame, and for any
        later one. A frame that cannot be decoded is not looked at: the camera was marked before
        its first frame was decoded, so an unreadable first frame (cut short) hid the note for
        good (R61)."""
        if (mono16_bits != FULL_DEPTH_BITS or topic in self._seen
                or getattr(msg, "encoding", None) != "mono16"):
            return None
        try:
            peak = int(np.max(decode_mono16(msg)))
        except Exception:  # noqa: BLE001 - the decoder itself reports a bad frame
            return None
        self._seen.add(topic)
        if peak >= 1 << _SHALLOW_BITS:
            return None
        return (f"{topic}: its first mono16 frame holds values up to {peak} only (of 65535), "
                f"which read as 16-bit (input.mono16_bits: 16, the high byte) are nearly black. A "
                f"camera with a 10- or 12-bit sensor publishes 0-1023 or 0-4095 in mono16: set "
                f"input.mono16_bits to 10 or 12 for it (this frame's values fit in "
                f"{max(peak.bit_length(), 8)} bits)")
