"""MediaPipe's 468-point face mesh on the driver's face, in source-image pixels.

Crops follow MediaPipe's face-landmark ROIs, squares 1.5 times the face, rotated so that the eyes
are level:

* from the detector: YuNet's box (its longer side), rotated by the line through YuNet's two eye
  landmarks. YuNet's landmarks barely follow a tilted head (a face rolled by 25 degrees gives an
  eye line of about 5), so the mesh of that crop only serves to place
* the crop from a mesh: the mesh's extent in the frame of its eye line (outer eye corners 33 and
  263), which is how MediaPipe tracks a face from one video frame to the next.

A face without a usable previous mesh gets both passes; in a video stream the previous frame's mesh
places the crop (:meth:`FaceMesh.run` ``previous``), so one pass is the rule. The network's points
(crop pixels) are mapped back through the crop's transform.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...core.runtime.model_registry import get_model
from ...core.runtime.session import OnnxModel, RuntimeOptions
from ..driver_select import same_face
from .crops import CropTransform, fill_rgb_blob

MESH_POINTS = 468
#: Side of the crop over the face's extent (MediaPipe's scale_x / scale_y of both ROIs).
BOX_SCALE = 1.5
#: Outer corners of the right (image-left) and left eye: the roll of a crop from a mesh.
EYE_LINE = (33, 263)


@dataclass
class Mesh:
    """The face mesh of one face.

    Attributes:
        points: (468, 3) float64: x, y in source-image pixels, z (relative depth, same scale as x,
            smaller = nearer the camera); the canonical face model's vertex order.
        presence: the network's face-presence probability in [0, 1].
        crop: the crop transform the network saw.
        box: the detector box (x1, y1, x2, y2) of the face in that frame.
    """

    points: np.ndarray
    presence: float
    crop: CropTransform
    box: np.ndarray | None = None


class FaceMesh:
    """The face landmark network with its reused input buffers.

    Args:
        options: onnxruntime providers and threads.
    """

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        spec = get_model("face_mesh")
        self.model = OnnxModel(spec.verified_path(), options, name="face_mesh")
        self.input_name = self.model.inputs[0].name
        self.size = spec.input.width if spec.input else 192
        self._crop = np.empty((self.size, self.size, 3), np.uint8)
        self._blob = np.empty((1, 3, self.size, self.size), np.float32)
        # Outputs by shape: 1404 values = 468 x (x, y, z), and the one presence logit.
        sizes = [int(np.prod([d or 1 for d in o.shape])) for o in self.model.outputs]
        self._points_out = sizes.index(MESH_POINTS * 3)
        self._score_out = sizes.index(1)

    def crop_for(self, box: np.ndarray, landmarks: np.ndarray) -> CropTransform:
        """MediaPipe's ROI from a detection: YuNet ``box`` (x1, y1, x2, y2) and its 5 landmarks."""
        box = np.asarray(box, np.float64)
        eyes = np.asarray(landmarks, np.float64)[:2]  # right eye (image left), left eye
        dx, dy = eyes[1] - eyes[0]
        side = BOX_SCALE * max(box[2] - box[0], box[3] - box[1])
        return CropTransform.around((box[:2] + box[2:]) / 2.0, side, math.atan2(dy, dx), self.size)

    def crop_from_mesh(self, points: np.ndarray) -> CropTransform:
        """MediaPipe's ROI from a mesh: rotated by the outer eye corners, 1.5 times its extent."""
        dx, dy = points[EYE_LINE[1], :2] - points[EYE_LINE[0], :2]
        angle = math.atan2(dy, dx)
        c, s = math.cos(angle), math.sin(angle)
        to_face = np.array([[c, s], [-s, c]])  # image -> the frame of the eye line
        local = points[:, :2] @ to_face.T
        lo, hi = local.min(axis=0), local.max(axis=0)
        centre = ((lo + hi) / 2.0) @ to_face  # back to the image
        return CropTransform.around(centre, BOX_SCALE * float(np.max(hi - lo)), angle, self.size)

    @staticmethod
    def tracks(previous: Mesh, box: np.ndarray) -> bool:
        """True when this frame's detector ``box`` shows the face of ``previous``, moved little."""
        return previous.box is not None and same_face(previous.box, box)

    def run_crop(self, image_bgr: np.ndarray, crop: CropTransform) -> Mesh:
        """The mesh of the face in ``crop`` of ``image_bgr``."""
        crop.warp(image_bgr, out=self._crop)
        fill_rgb_blob(self._crop, self._blob[0])
        outputs = self.model.run({self.input_name: self._blob})
        raw = np.asarray(outputs[self._points_out], np.float64).reshape(MESH_POINTS, 3)
        points = np.empty_like(raw)
        points[:, :2] = crop.to_image(raw[:, :2])
        # z is in crop pixels; scale it like x and y so that it stays comparable to them.
        points[:, 2] = raw[:, 2] * math.hypot(*crop.A[:, 0])
        logit = float(np.asarray(outputs[self._score_out]).reshape(-1)[0])
        logit = min(max(logit, -50.0), 50.0)  # exp() must not overflow on a garbage crop
        return Mesh(points, 1.0 / (1.0 + math.exp(-logit)), crop)

    def run(self, image_bgr: np.ndarray, box: np.ndarray, landmarks: np.ndarray,
            previous: Mesh | None = None) -> Mesh:
        """The mesh of the face with YuNet ``box`` and ``landmarks`` (5, 2) in ``image_bgr``.

        Args:
            previous: the same face's mesh in the previous frame of a stream; when the box shows
                it moved little, its ROI places the crop and one pass suffices.
        """
        if previous is not None and self.tracks(previous, box):
            mesh = self.run_crop(image_bgr, self.crop_from_mesh(previous.points))
        else:
            first = self.run_crop(image_bgr, self.crop_for(box, landmarks))
            mesh = self.run_crop(image_bgr, self.crop_from_mesh(first.points))
        mesh.box = np.array(box, np.float64)
        return mesh
