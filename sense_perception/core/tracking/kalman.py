"""Constant-velocity Kalman filter over image boxes, for all tracks of a camera at once.

State per track is ``(cx, cy, w, h, vcx, vcy, vw, vh)``: box centre and size in source pixels and
their velocities in pixels per *nominal frame* (``1 / frame_rate`` seconds). The measurement is
``(cx, cy, w, h)``. Noise is proportional to the box size, as in ByteTrack/BoT-SORT, so a distant
car and a close one are filtered with the same relative confidence; the width/height form (rather
than ByteTrack's aspect ratio) follows BoT-SORT, which tracks boxes whose aspect changes (turning
cars, pedestrians walking) better.

Every function works on stacked arrays: ``mean`` is (N, 8) and ``cov`` is (N, 8, 8); predict works
in place on caller-owned buffers so a tracker allocates them once.
"""
from __future__ import annotations

import numpy as np

# ByteTrack's tuned weights, relative to the box size, per frame.
STD_WEIGHT_POSITION = 1.0 / 20.0
STD_WEIGHT_VELOCITY = 1.0 / 160.0


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 -> (N, 4) float64 cx, cy, w, h."""
    boxes = np.asarray(boxes, np.float64)
    out = np.empty_like(boxes)
    out[:, :2] = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    return out


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) cx, cy, w, h -> (N, 4) x1, y1, x2, y2; sizes clipped at 1 px so IoU stays defined."""
    half = np.maximum(boxes[:, 2:4], 1.0) * 0.5
    return np.concatenate((boxes[:, :2] - half, boxes[:, :2] + half), axis=1)


def _size_std(wh: np.ndarray, weight: float) -> np.ndarray:
    """Per-track standard deviations (N, 4) for (cx, cy, w, h) scaled by the box size."""
    return np.tile(np.maximum(wh, 1.0), 2) * weight


def initiate(boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start tracks at the given boxes with zero velocity.

    Args:
        boxes_xyxy: (N, 4) detection boxes.

    Returns:
        ``(mean, cov)``: (N, 8) and (N, 8, 8) float64.
    """
    z = xyxy_to_cxcywh(boxes_xyxy)
    n = z.shape[0]
    mean = np.zeros((n, 8), np.float64)
    mean[:, :4] = z
    # Position is known to the detector's accuracy; velocity is unknown, hence the wide prior.
    std = np.concatenate((_size_std(z[:, 2:], 2 * STD_WEIGHT_POSITION),
                          _size_std(z[:, 2:], 10 * STD_WEIGHT_VELOCITY)), axis=1)
    cov = np.zeros((n, 8, 8), np.float64)
    cov.reshape(n, 64)[:, ::9] = std * std
    return mean, cov


def transition(dt: float) -> np.ndarray:
    """The (8, 8) motion matrix for a step of ``dt`` nominal frames."""
    f = np.eye(8)
    f[range(4), range(4, 8)] = dt
    return f


def predict_(mean: np.ndarray, cov: np.ndarray, dt: float, scratch: np.ndarray) -> None:
    """Advance all tracks by ``dt`` nominal frames, in place.

    Args:
        mean: (N, 8) state means, updated in place.
        cov: (N, 8, 8) contiguous covariances, updated in place.
        dt: step in nominal frames (seconds x frame rate); 0 leaves the state unchanged.
        scratch: (>= N, 8, 8) buffer the caller owns, so no per-frame allocation.
    """
    n = mean.shape[0]
    if n == 0 or dt <= 0.0:
        return
    f = transition(dt)
    mean[:, :4] += dt * mean[:, 4:]
    tmp = scratch[:n]
    np.matmul(f, cov, out=tmp)
    np.matmul(tmp, f.T, out=cov)
    # Process noise grows with the time elapsed: a camera that dropped frames is less certain.
    std = np.concatenate((_size_std(mean[:, 2:4], STD_WEIGHT_POSITION),
                          _size_std(mean[:, 2:4], STD_WEIGHT_VELOCITY)), axis=1)
    cov.reshape(n, 64)[:, ::9] += dt * std * std


def update(mean: np.ndarray, cov: np.ndarray,
           boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct tracks with their matched detections.

    Args:
        mean: (M, 8) predicted means of the matched tracks.
        cov: (M, 8, 8) predicted covariances of the matched tracks.
        boxes_xyxy: (M, 4) the detections matched to them, row for row.

    Returns:
        ``(mean, cov)`` after the measurement update (new arrays).
    """
    if mean.shape[0] == 0:
        return mean, cov
    z = xyxy_to_cxcywh(boxes_xyxy)
    r = _size_std(mean[:, 2:4], STD_WEIGHT_POSITION) ** 2
    s = cov[:, :4, :4].copy()  # H P H^T with H selecting the first four state entries
    s.reshape(-1, 16)[:, ::5] += r
    pht = cov[:, :, :4]  # P H^T, (M, 8, 4)
    # K = P H^T S^-1, solved rather than inverted; S is symmetric so K^T = S^-1 (P H^T)^T.
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = z - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
