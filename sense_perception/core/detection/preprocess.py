"""Image -> network input: resize (stretch or letterbox), normalise into a preallocated NCHW blob.

Each image is resized once with ``cv2.resize(..., dst=...)`` straight into a reused uint8 canvas,
then written into the float32 blob through one look-up table per channel (``x * gain + offset``,
which folds the 1/255 scale, the mean and the std together), reading the planes in the network's
channel order. No per-frame allocation besides what onnxruntime does.

Images are BGR arrays or :class:`~sense_perception.core.imaging.image_decode.ImageView` s in another
channel order (an rgb8 message buffer, say): the resize reads them as they are and the channel
order is only resolved on the small resized canvas, by which plane each look-up table reads.
Resizing works per channel, so this gives the blob of the BGR image: bit for bit for 3-channel
orders (the same kernel on the same values); a 4-channel view goes through OpenCV's 4-channel
kernel, which on some CPUs rounds a few pixels of a frame one grey level differently.

The returned per-image transforms map network-input pixels back to source pixels exactly:
``x_src = (x_net - dx) / sx`` with the per-axis scale actually applied by the resize (for an
ImageView with ``full_size``, a reduced-scale decode, the source is the full image).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...errors import ConfigError
from ..imaging.image_decode import ImageView
from ..runtime.model_registry import InputSpec

INTERPOLATIONS = {
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
}
RESIZE_MODES = ("stretch", "letterbox", "letterbox_center")
#: Largest network input value (absolute) the normalisation may give: far beyond what any detector
#: is trained on (about -3..3, 0..1 or 0..255), far within float32.
MAX_NETWORK_INPUT = 1e6


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything the network expects of its input image.

    Attributes:
        width, height: network input size in pixels.
        color: channel order the network wants, "rgb" or "bgr" (images arrive as BGR).
        resize: "stretch" (plain resize, aspect ratio not kept), "letterbox" (aspect kept, image at
            the top-left, rest padded) or "letterbox_center" (aspect kept, image centred).
        pad_value: 0..255 value of the letterbox padding, before normalisation.
        scale: factor applied to 0..255 pixel values before mean/std.
        mean, std: per-channel normalisation, in the network's channel order.
        interpolation: cv2 resize filter, one of :data:`INTERPOLATIONS`.
    """

    width: int
    height: int
    color: str = "rgb"
    resize: str = "stretch"
    pad_value: float = 114.0
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"network input size must be positive, got "
                              f"{self.width}x{self.height}")
        if self.color not in ("rgb", "bgr"):
            raise ConfigError(f"detector.color_order must be 'rgb' or 'bgr', got {self.color!r}")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"detector.resize must be one of {', '.join(RESIZE_MODES)}, "
                              f"got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"detector.interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                              f"got {self.interpolation!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"detector.mean and detector.std need 3 values each, got "
                              f"{list(self.mean)} and {list(self.std)}")
        if any(s == 0 for s in self.std):
            raise ConfigError(f"detector.std must not contain 0, got {list(self.std)}")
        # The network input of pixel values 0 and 255 (and everything between): a pixel_scale of
        # 1e300 or a std of 1e-300 (no range keeps them out) overflowed float32 to inf, the network
        # answered NaN and found nothing, with only a numpy warning to say so.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ends = np.abs((np.array([[0.0], [255.0]]) * self.scale - np.asarray(self.mean, np.float64))
                          / np.asarray(self.std, np.float64))
        worst = float(np.nan_to_num(ends, nan=np.inf).max())
        if not worst <= MAX_NETWORK_INPUT:
            raise ConfigError(f"detector.pixel_scale {self.scale:g}, detector.mean "
                              f"{list(self.mean)} and detector.std {list(self.std)} give network "
                              f"inputs up to {worst:g}, beyond {MAX_NETWORK_INPUT:g}; fix: a pixel_scale like 1/255 or 1, a "
                              "mean and std in the same units as the scaled pixels (or 0 and [] "
                              "for the model's own)")

    @classmethod
    def from_input_spec(cls, spec: InputSpec, interpolation: str = "linear") -> PreprocessSpec:
        """Build from a model registry :class:`InputSpec`."""
        return cls(spec.width, spec.height, spec.color, spec.resize, spec.pad_value, spec.scale,
                   spec.mean, spec.std, interpolation)


class Preprocessor:
    """Turns lists of BGR uint8 images (or :class:`ImageView` s) into a float32 NCHW blob plus
    back-mapping transforms."""

    def __init__(self, spec: PreprocessSpec, max_batch: int = 1) -> None:
        self.spec = spec
        self.max_batch = max(1, int(max_batch))
        h, w = spec.height, spec.width
        self._canvas = np.empty((h, w, 3), np.uint8)
        self._blob = np.empty((self.max_batch, 3, h, w), np.float32)
        std = np.asarray(spec.std, np.float64)
        offset = -np.asarray(spec.mean, np.float64) / std
        self._interp = INTERPOLATIONS[spec.interpolation]
        # Per network channel, a 256-entry table of normalised values, x * scale / std - mean / std:
        # cv2.LUT writes each plane of the blob in one pass, where numpy's multiply-then-add made
        # three passes over the whole blob.
        levels = np.arange(256, dtype=np.float64)
        self._luts = [(levels * (spec.scale / std[c]) + offset[c]).astype(np.float32).reshape(1, -1)
                      for c in range(3)]
        # Canvas and planes per source channel count (3 or 4), made on first use.
        self._canvases = {3: self._canvas}
        self._planes = {3: [np.empty((h, w), np.uint8) for _ in range(3)]}
        self._source_channels: dict[str, tuple[int, ...]] = {}

    def _source_channel(self, order: str) -> tuple[int, ...]:
        """Which plane of an ``order`` image each network channel reads (BGR images: 2, 1, 0)."""
        found = self._source_channels.get(order)
        if found is None:
            found = tuple(order.index(ch) for ch in self.spec.color)
            self._source_channels[order] = found
        return found

    def _buffers(self, channels: int) -> tuple[np.ndarray, list[np.ndarray]]:
        if channels not in self._canvases:
            h, w = self.spec.height, self.spec.width
            self._canvases[channels] = np.empty((h, w, channels), np.uint8)
            self._planes[channels] = [np.empty((h, w), np.uint8) for _ in range(channels)]
        return self._canvases[channels], self._planes[channels]

    def geometry(self, width: int, height: int, full_size: tuple[int, int] | None = None
                 ) -> tuple[int, int, np.ndarray]:
        """Resized size and transform ``[sx, sy, dx, dy]`` for a ``width`` x ``height`` image.

        ``full_size``: (width, height) of the full image when this one is a reduced-scale decode
        of it (an ImageView's ``full_size``); the transform then maps to the full image's pixels.
        """
        spec = self.spec
        if spec.resize == "stretch":
            nw, nh = spec.width, spec.height
            dx = dy = 0
        else:
            r = min(spec.width / width, spec.height / height)
            # Floor as YOLOX does, but let 415.99999 of the limiting side be 416: no pad sliver.
            nw = min(spec.width, max(1, int(width * r + 1e-6)))
            nh = min(spec.height, max(1, int(height * r + 1e-6)))
            if spec.resize == "letterbox_center":
                dx, dy = (spec.width - nw) // 2, (spec.height - nh) // 2
            else:
                dx = dy = 0
        # The scale actually applied per axis (not the nominal r): exact back-mapping.
        src_w, src_h = full_size or (width, height)
        return nw, nh, np.array([nw / src_w, nh / src_h, dx, dy], np.float64)

    def __call__(self, images: list[np.ndarray | ImageView]) -> tuple[np.ndarray, np.ndarray]:
        """Fill the blob with ``images`` (at most ``max_batch``): BGR arrays or ImageViews.

        Returns:
            (blob, transforms): a (N, 3, H, W) float32 view of the internal buffer, valid until the
            next call, and (N, 4) float64 transforms ``[sx, sy, dx, dy]``.
        """
        n = len(images)
        if n > self.max_batch:
            raise ValueError(f"{n} images for a preprocessor of max_batch {self.max_batch}")
        transforms = np.empty((n, 4), np.float64)
        for i, image in enumerate(images):
            full_size = None
            if isinstance(image, ImageView):
                image, order, full_size = image
            else:
                order = "bgr"
            canvas, plane_buffers = self._buffers(len(order))
            height, width = image.shape[:2]
            nw, nh, transforms[i] = self.geometry(width, height, full_size)
            dx, dy = int(transforms[i, 2]), int(transforms[i, 3])
            if (nw, nh) != (self.spec.width, self.spec.height):
                canvas[...] = int(round(self.spec.pad_value))
            cv2.resize(image, (nw, nh), dst=canvas[dy:dy + nh, dx:dx + nw],
                       interpolation=self._interp)
            planes = cv2.split(canvas, plane_buffers)
            for c, source in enumerate(self._source_channel(order)):
                dst = self._blob[i, c]
                written = cv2.LUT(planes[source], self._luts[c], dst=dst)
                if written is not dst:  # OpenCV allocated instead of writing in place
                    dst[...] = written
        return self._blob[:n], transforms


def boxes_to_source(boxes: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Map (N, 4) xyxy boxes from network-input pixels to source pixels, in place; returns them."""
    sx, sy, dx, dy = transform
    boxes[:, 0::2] -= dx
    boxes[:, 1::2] -= dy
    boxes[:, 0::2] /= sx
    boxes[:, 1::2] /= sy
    return boxes
