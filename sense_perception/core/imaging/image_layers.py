"""What an image file holds beyond the one opaque picture a camera frame is: transparent parts
and further frames (pages of a TIFF, frames of an animated GIF, WebP or PNG).

:func:`~.image_file.read_image_file` gives the first frame's colour, as OpenCV decodes it: the
alpha channel is dropped, so a transparent part is judged as whatever colour is stored under it
(black, as editors and most exporters store it: a dark, flat area with a soft edge where the
cut-out was feathered, which camera health reads as a covered lens or an under-exposed frame).
``health`` asks these questions of a file before it judges its pixels (SECURITY.md R64).
Only the header is read for a file that cannot carry transparency (JPEG, and every file whose
header declares no alpha channel and no transparent colour); the others are decoded once more,
by Pillow, within the ``input.*`` limits :func:`~.image_file.read_image_file` checked.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from ...errors import ImageDecodeError
from .frame_guard import InputLimits

__all__ = ["ImageLayers", "image_layers", "layer_notes", "refuse_transparent"]


class ImageLayers:
    """``transparent``: the share (0-1) of the first frame's pixels that are not fully opaque;
    ``frames``: how many frames (pages) the file holds, 1 for a still image."""

    __slots__ = ("transparent", "frames")

    def __init__(self, transparent: float, frames: int) -> None:
        self.transparent = transparent
        self.frames = frames


def image_layers(path: str | Path, limits: InputLimits | None = None) -> ImageLayers:
    """Transparency and frame count of an image file (see the module's docstring).

    A file Pillow cannot open (a format only OpenCV reads) is taken as one opaque frame: its
    reader could not be asked, and :func:`~.image_file.read_image_file` has read its pixels.

    Raises:
        ImageDecodeError: as :func:`~.image_file.read_image_file`, for a file that cannot be read
            within ``limits``.
    """
    from PIL import Image, UnidentifiedImageError

    from .image_decode import _JPEG_MAGIC
    from .image_file import _read_bytes

    data = _read_bytes(path, limits or InputLimits())
    if data.startswith(_JPEG_MAGIC):  # no alpha, one frame
        return ImageLayers(0.0, 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                frames = int(getattr(image, "n_frames", 1) or 1)
                if not image.has_transparency_data:
                    return ImageLayers(0.0, frames)
                alpha = np.asarray(image.convert("RGBA").getchannel("A"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError,
            Image.DecompressionBombError):
        return ImageLayers(0.0, 1)
    return ImageLayers(float(np.count_nonzero(alpha < 255)) / max(alpha.size, 1), frames)


def refuse_transparent(path: str | Path, layers: ImageLayers) -> None:
    """Refuse an image with transparent parts for a camera judgement.

    Raises:
        ImageDecodeError: field ``file``, naming the share and the fix.
    """
    if layers.transparent > 0:
        share = layers.transparent * 100
        raise ImageDecodeError(
            "file", f"cannot judge {path}: {share:.2f} % of it is transparent (its alpha channel or transparent colour); "
                    "a camera frame has no transparent part, and it would be judged as the colour "
                    "stored under it (black as a rule: a dark, flat area read as a covered lens or "
                    "an under-exposed frame). Give the photo without transparency (flatten it onto "
                    "its background or save it as JPEG)")


def layer_notes(path: str | Path, limits: InputLimits | None = None) -> list[str]:
    """What ``detect`` tells the user about an image it detects on (its first frame, the
    transparent parts as the colour stored under them): nothing for a still, opaque photo. A
    file that cannot be read again gives no note (its pixels were read)."""
    try:
        layers = image_layers(path, limits)
    except ImageDecodeError:
        return []
    notes = []
    if layers.frames > 1:
        notes.append(f"{path} holds {layers.frames} frames (pages or an animation): only the "
                     "first is detected")
    if layers.transparent > 0:
        notes.append(f"{layers.transparent * 100:.2f} % of {path} is transparent: it is "
                     "detected as the colour stored under it (black as a rule), as OpenCV reads it")
    return notes
