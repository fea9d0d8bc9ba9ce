"""Eye openness: MediaPipe's iris landmark network on each eye, and the eye aspect ratio (EAR).

Each eye is cropped as MediaPipe's iris ROI: a square 2.3 times the distance between the eye's two
corners (from the mesh), centred between them and rotated so that they are level. The network was
trained on the image-left eye (the person's right), so the other eye's crop is mirrored first and
its points mirrored back. Both eyes go through one batched inference when the model allows it.

EAR = mean lid distance over corner distance, from the 16-point eye contour the network returns:
about 0.2 to 0.4 for an open eye, falling towards 0.05 as the lids close. It is scale and rotation
free but differs between people, hence :mod:`.state` compares it with the driver's own baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.runtime.model_prepare import prepare_detector_model
from ...core.runtime.model_registry import get_model
from ...core.runtime.session import RuntimeOptions
from .crops import CropTransform, fill_rgb_blob

#: Side of the eye crop over the distance between the eye's corners (MediaPipe's iris ROI).
EYE_SCALE = 2.3
#: Mesh indices of each eye's corners, in the order that puts the crop's x axis from the image
#: left to the image right on a frontal face: right eye outer -> inner, left eye inner -> outer.
EYE_CORNERS = {"right": (33, 133), "left": (362, 263)}
#: The person's left eye is mirrored for the network (trained on the image-left eye).
MIRRORED = {"right": False, "left": True}
CONTOUR_POINTS = 16  # of the 71 eye-and-brow points: 0 and 8 the corners, 1-7 lower, 9-15 upper lid
_CORNERS = (0, 8)
_LID_PAIRS = np.array([(11, 3), (12, 4), (13, 5)])  # upper/lower lid points across the pupil


@dataclass
class Eyes:
    """Eye measurements of one face (person's right and left eye).

    Attributes:
        ear: {"right": EAR, "left": EAR}.
        contours: {"right": (16, 2), "left": (16, 2)} eye contours in image pixels.
    """

    ear: dict[str, float]
    contours: dict[str, np.ndarray]

    @property
    def mean_ear(self) -> float:
        """The mean EAR of both eyes (closure is judged on both: one squinting eye is no sleep)."""
        return 0.5 * (self.ear["right"] + self.ear["left"])


def eye_aspect_ratio(contour: np.ndarray) -> float:
    """EAR of a (16, 2) eye contour: mean of three lid distances over the corner distance."""
    lids = np.linalg.norm(contour[_LID_PAIRS[:, 0]] - contour[_LID_PAIRS[:, 1]], axis=1)
    width = float(np.linalg.norm(contour[_CORNERS[0]] - contour[_CORNERS[1]]))
    return float(lids.mean() / width) if width > 1e-6 else 0.0


class EyeOpenness:
    """The iris landmark network with its reused buffers.

    Args:
        options: onnxruntime providers and threads.
    """

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        spec = get_model("iris_landmark")
        # The export fixes batch 1; prepare_detector_model makes it dynamic only where a batch
        # of two is verified equal to two single runs.
        prepared = prepare_detector_model(spec.verified_path(), options, "iris_landmark")
        self.model = prepared.model
        self.batched = prepared.batch_dynamic
        self.input_name = self.model.inputs[0].name
        self.size = spec.input.width if spec.input else 64
        self._crops = np.empty((2, self.size, self.size, 3), np.uint8)
        self._blob = np.empty((2, 3, self.size, self.size), np.float32)
        sizes = [int(np.prod([d or 1 for d in o.shape[1:]])) for o in self.model.outputs]
        self._contour_out = sizes.index(71 * 3)

    def crops_for(self, mesh_points: np.ndarray) -> dict[str, CropTransform]:
        """The iris ROI of each eye from the mesh points (468, >=2) in image pixels."""
        out = {}
        for eye, (a, b) in EYE_CORNERS.items():
            p, q = mesh_points[a, :2], mesh_points[b, :2]
            dx, dy = q - p
            out[eye] = CropTransform.around((p + q) / 2.0, EYE_SCALE * float(np.hypot(dx, dy)),
                                            float(np.arctan2(dy, dx)), self.size)
        return out

    def run(self, image_bgr: np.ndarray, mesh_points: np.ndarray) -> Eyes:
        """EAR and contour of both eyes of the face whose mesh is ``mesh_points``."""
        crops = self.crops_for(mesh_points)
        for i, (eye, crop) in enumerate(crops.items()):
            crop.warp(image_bgr, out=self._crops[i])
            fill_rgb_blob(self._crops[i], self._blob[i], flip=MIRRORED[eye])
        if self.batched:
            raw = self.model.run({self.input_name: self._blob})[self._contour_out]
        else:
            raw = np.concatenate([self.model.run({self.input_name: self._blob[i:i + 1]})
                                  [self._contour_out] for i in range(2)])
        points = np.asarray(raw, np.float64).reshape(2, 71, 3)[:, :CONTOUR_POINTS, :2].copy()
        ear, contours = {}, {}
        for i, (eye, crop) in enumerate(crops.items()):
            if MIRRORED[eye]:
                points[i, :, 0] = self.size - points[i, :, 0]
            ear[eye] = eye_aspect_ratio(points[i])  # a square crop keeps ratios: no need to map
            contours[eye] = crop.to_image(points[i])
        return Eyes(ear, contours)
