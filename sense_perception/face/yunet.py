"""YuNet face detector on ONNX Runtime: faces with 5 landmarks, in source-image pixels.

The detector runs on a downscaled copy whose long side is at most ``max_side``: YuNet was trained on
faces of moderate size and mislocalises a face that fills a full-resolution frame. The copy is padded
bottom-right to a multiple of 32 (the network's largest stride), as OpenCV's FaceDetectorYN does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..core.runtime.session import OnnxModel, RuntimeOptions
from ..errors import ConfigError, ImageDecodeError
from .model_fold import folded_model

STRIDES = (8, 16, 32)
_DIVISOR = 32
#: Anchor grids kept (one per padded input size, the most recent): a camera whose frame size
#: changes (a cabin camera rescaling, a hostile publisher) would otherwise keep one per size for
#: ever, up to 16384 sizes with ``face.max_side`` 4096 (some 17 GB).
MAX_GRIDS = 8


@dataclass
class Faces:
    """Faces found in one image, in source pixels.

    Attributes:
        boxes: (N, 4) float32 x1, y1, x2, y2.
        scores: (N,) float32 in [0, 1].
        landmarks: (N, 5, 2) float32 x, y of right eye, left eye, nose tip, right and left mouth
            corner (the person's right and left, i.e. image left and right on a frontal face).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, index: np.ndarray) -> "Faces":
        """Subset by a boolean mask or an index array."""
        return Faces(self.boxes[index], self.scores[index], self.landmarks[index])


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check an image is HxWx3 uint8 BGR; raise ImageDecodeError naming what is wrong."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ImageDecodeError(name, f"expected an HxWx3 BGR image, got {shape}; convert grey or "
                                     "BGRA images with cv2.cvtColor first")
    if image.dtype != np.uint8:
        raise ImageDecodeError(name, f"expected uint8 pixels, got {image.dtype}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ImageDecodeError(name, f"image {image.shape[1]}x{image.shape[0]} is too small")
    return image


class YuNetDetector:
    """YuNet (2023mar) face detector.

    Args:
        score_threshold: minimum sqrt(cls * obj) score kept.
        nms_iou: IoU above which the lower-scored of two faces is suppressed.
        max_side: long side of the copy the network sees; larger images are downscaled.
        top_k: most faces kept after NMS (10x as many candidates enter it).
        options: onnxruntime providers and threads.
    """

    def __init__(self, score_threshold: float = 0.7, nms_iou: float = 0.3, max_side: int = 640,
                 top_k: int = 100, options: RuntimeOptions | None = None) -> None:
        if not 0.0 < score_threshold < 1.0:
            raise ConfigError(f"face.score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise ConfigError(f"face.nms_iou must be in (0, 1], got {nms_iou}")
        if not 64 <= max_side <= 4096:
            raise ConfigError(f"face.max_side must be in [64, 4096] pixels, got {max_side}; "
                              "640 suits cabin cameras")
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_side = int(max_side)
        self.top_k = int(top_k)
        self.model = OnnxModel(folded_model("yunet"), options, name="yunet")
        self.input_name = self.model.inputs[0].name
        self._out_index = {name: i for i, name in enumerate(self.model.output_names)}
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._blob: np.ndarray | None = None

    def _grid(self, pad_h: int, pad_w: int) -> tuple[np.ndarray, np.ndarray]:
        """Anchor (col, row) per output row and its stride, cached per padded size."""
        key = (pad_h, pad_w)
        if key not in self._grids:
            cells, strides = [], []
            for s in STRIDES:
                rows, cols = pad_h // s, pad_w // s
                r, c = np.meshgrid(np.arange(rows, dtype=np.float32),
                                   np.arange(cols, dtype=np.float32), indexing="ij")
                cells.append(np.stack([c.ravel(), r.ravel()], axis=1))
                strides.append(np.full((rows * cols, 1), s, np.float32))
            grid = self._grids[key] = (np.concatenate(cells), np.concatenate(strides))
            while len(self._grids) > MAX_GRIDS:
                del self._grids[next(iter(self._grids))]  # the oldest size
            return grid
        return self._grids[key]

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, int, int]:
        """Downscale (long side <= max_side) and pad into the reused input blob; returns it and the
        downscaled height and width."""
        h, w = image.shape[:2]
        if max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        sh, sw = image.shape[:2]
        pad_h, pad_w = -(-sh // _DIVISOR) * _DIVISOR, -(-sw // _DIVISOR) * _DIVISOR
        if self._blob is None or self._blob.shape[2:] != (pad_h, pad_w):
            self._blob = np.zeros((1, 3, pad_h, pad_w), np.float32)  # reused while the size holds
        # YuNet takes BGR 0..255, no normalisation; the padding stays zero.
        self._blob[0, :, :sh, :sw] = image.transpose(2, 0, 1)
        return self._blob, sh, sw

    def detect(self, image_bgr: np.ndarray) -> Faces:
        """Detect faces in a BGR uint8 image; boxes and landmarks in its pixels, best score first."""
        image = check_image(image_bgr)
        h, w = image.shape[:2]
        blob, sh, sw = self._prepare(image)
        faces = self.decode(self.model.run({self.input_name: blob}), blob.shape[2], blob.shape[3])
        if len(faces) and (sh != h or sw != w):
            fx, fy = w / sw, h / sh  # per side: rounding makes the two factors differ slightly
            faces.boxes *= np.array([fx, fy, fx, fy], np.float32)
            faces.landmarks *= np.array([fx, fy], np.float32)
        if len(faces):
            np.clip(faces.boxes[:, 0::2], 0, w, out=faces.boxes[:, 0::2])
            np.clip(faces.boxes[:, 1::2], 0, h, out=faces.boxes[:, 1::2])
        return faces

    def decode(self, outputs: list[np.ndarray], pad_h: int, pad_w: int) -> Faces:
        """Decode the 12 YuNet outputs (cls/obj/bbox/kps per stride) of a padded input, then NMS."""
        def get(kind: str) -> np.ndarray:
            return np.concatenate([outputs[self._out_index[f"{kind}_{s}"]][0] for s in STRIDES])

        cls, obj = np.clip(get("cls"), 0, 1)[:, 0], np.clip(get("obj"), 0, 1)[:, 0]
        scores = np.sqrt(cls * obj)
        keep = np.flatnonzero(scores >= self.score_threshold)
        if keep.size == 0:
            return Faces()
        if keep.size > self.top_k * 10:
            keep = keep[np.argsort(-scores[keep])[: self.top_k * 10]]
        cells, strides = self._grid(pad_h, pad_w)
        cells, strides = cells[keep], strides[keep]
        bbox, kps = get("bbox")[keep], get("kps")[keep]
        centre = (cells + bbox[:, :2]) * strides
        size = np.exp(bbox[:, 2:4]) * strides
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
        landmarks = ((kps.reshape(-1, 5, 2) + cells[:, None, :]) * strides[:, None, :]).astype(np.float32)
        scores = scores[keep].astype(np.float32)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score_threshold, self.nms_iou,
                                top_k=self.top_k)
        idx = np.asarray(kept, np.int64).reshape(-1)
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        return Faces(boxes[idx], scores[idx], landmarks[idx])
