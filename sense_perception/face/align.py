"""Face alignment: a similarity transform of YuNet's 5 landmarks onto the 112x112 ArcFace template.

SFace was trained on faces aligned this way; any other crop lowers its accuracy.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import SensePerceptionError

ALIGNED_SIZE = 112
#: Standard ArcFace 112x112 positions of right eye, left eye, nose tip, right and left mouth corner.
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], np.float64)


def similarity_transforms(landmarks: np.ndarray, template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """Least-squares similarity transforms (Umeyama, no reflection) mapping landmarks onto the template.

    Args:
        landmarks: (N, 5, 2) source points.
        template: (5, 2) destination points.

    Returns:
        (N, 2, 3) float64 affine matrices for ``cv2.warpAffine``.
    """
    src = np.asarray(landmarks, np.float64).reshape(-1, template.shape[0], 2)
    src_mean = src.mean(axis=1, keepdims=True)
    dst_mean = template.mean(axis=0)
    src_c = src - src_mean
    dst_c = template - dst_mean
    cov = np.einsum("pi,npj->nij", dst_c, src_c) / template.shape[0]  # (N, 2, 2) dst x src
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((src.shape[0], 2))
    d[np.linalg.det(u) * np.linalg.det(vt) < 0, 1] = -1.0  # forbid a mirror image
    rot = u @ (d[:, :, None] * vt)
    var = (src_c ** 2).sum(axis=(1, 2)) / template.shape[0]
    if np.any(var <= 1e-12):
        raise SensePerceptionError("landmarks are degenerate (all five at one point); cannot align")
    scale = (sig * d).sum(axis=1) / var
    rs = rot * scale[:, None, None]
    trans = dst_mean - np.einsum("nij,nj->ni", rs, src_mean[:, 0, :])
    return np.concatenate([rs, trans[:, :, None]], axis=2)


def align_faces(image_bgr: np.ndarray, landmarks: np.ndarray,
                out: np.ndarray | None = None) -> np.ndarray:
    """Warp each face to a 112x112 BGR crop aligned for SFace.

    Args:
        image_bgr: source image.
        landmarks: (N, 5, 2) YuNet landmarks in that image's pixels.
        out: optional (>=N, 112, 112, 3) uint8 buffer to fill, so callers can reuse one allocation.

    Returns:
        (N, 112, 112, 3) uint8 aligned crops (a view of ``out`` when given).
    """
    mats = similarity_transforms(landmarks)
    n = mats.shape[0]
    if out is None or out.shape[0] < n:
        out = np.empty((n, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
    for i in range(n):  # one warp per face: OpenCV has no batched warpAffine
        cv2.warpAffine(image_bgr, mats[i], (ALIGNED_SIZE, ALIGNED_SIZE), dst=out[i],
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out[:n]
