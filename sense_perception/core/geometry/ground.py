"""Ground positions of detected road users in base_link from one calibrated camera.

Each box gives up to four estimates of the horizontal distance from the camera to the object's
nearest edge, along the ray through the box's bottom centre, each with its variance:

- ground: the bottom-centre ray meets the road (z = 0). Sharp near the car, weak far away (pitch),
  wrong when the feet are on a kerb, useless when the bottom is cut by the image border or the ray
  does not go down.
- size: the box's vertical extent against the label's height prior (Z ~ f H / h, solved in
  base_link so that a pitched camera is handled): blind to pitch and to the road's height.
- top: when the bottom is cut by the border, the top ray meets the plane z = H of the prior.
- width: when neither vertical edge can be used, the box width against the footprint prior.
- border: when nothing else is left (bottom and a side cut), the near edge lies somewhere before
  the point where the image's bottom row meets the road.

They are fused by inverse variance; when they disagree beyond their variances, the fused variance
is scaled by the reduced chi-square (the Particle Data Group's scale factor), so a raised pavement
shows as uncertainty instead of false confidence. The nearest edge is moved to the object's centre
by half the footprint prior's extent along the ray (a car seen from behind: half its length), with
the footprint assumed aligned with the road (base_link x). All arrays, no per-detection loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .calibration import CameraCalibration
from .priors import DEFAULT_NOISE, PositionNoise, prior_table

# Bits of GroundPositions.method: which estimates a position used.
GROUND, SIZE, TOP, WIDTH, BORDER = 1, 2, 4, 8, 16
METHOD_NAMES = {GROUND: "ground", SIZE: "size", TOP: "top", WIDTH: "width", BORDER: "border"}
_BITS = np.array([GROUND, SIZE, TOP, WIDTH, BORDER], np.int8)  # by cue row (GroundPositions.cues' columns)
_WIDTH_REL_SD = 0.35  # a footprint's visible width depends on heading and occlusion
_MIN_BOX_PX = 1.0  # the size and width cues need a box at least this tall / wide


@dataclass
class GroundPositions:
    """Positions of N detections on the road, base_link.

    Attributes:
        xyz: (N, 3) metres, z = 0 (on the road plane); nan where ``valid`` is false.
        range_m: (N,) hypot(x, y), metres.
        covariance: (N, 2, 2) covariance of (x, y), m^2.
        valid: (N,) a position was estimated (a road-user label with at least one usable cue).
        method: (N,) bits GROUND | SIZE | TOP | WIDTH | BORDER of the cues used.
        cues: (N, 5) each cue's distance from the camera to the object's centre, horizontal,
            metres (ground, size, top, width, border; nan where unused), before fusion.
        jitter: (N, 2, 2) the part of ``covariance`` that changes from frame to frame: the box
            edges' pixel noise only, without what persists over a track (size and footprint
            priors, pitch, the ground's height), m^2. What a filter over a track's positions
            takes as its measurement noise (:mod:`..tracking.ground_motion`).
    """

    xyz: np.ndarray
    range_m: np.ndarray
    covariance: np.ndarray
    valid: np.ndarray
    method: np.ndarray
    cues: np.ndarray
    jitter: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.valid.shape[0])

    @classmethod
    def empty(cls, n: int = 0) -> "GroundPositions":
        """N detections without positions (no calibration, or no road users)."""
        return cls(np.full((n, 3), np.nan), np.full(n, np.nan), np.full((n, 2, 2), np.nan),
                   np.zeros(n, bool), np.zeros(n, np.int8), np.full((n, 5), np.nan),
                   np.full((n, 2, 2), np.nan))


def normalised_rays(calib: CameraCalibration, pixels: np.ndarray) -> np.ndarray:
    """(M, 3) directions in base_link (not unit length) of the rays through (M, 2) pixels."""
    pixels = np.ascontiguousarray(pixels, np.float64).reshape(-1, 1, 2)
    rotation = calib.T_base_link_camera[:3, :3]
    if calib.distortion_model == "none":
        homogeneous = np.concatenate([pixels[:, 0], np.ones((len(pixels), 1))], axis=1)
        return np.linalg.solve(calib.K, homogeneous.T).T @ rotation.T
    xy = cv2.undistortPoints(pixels, calib.K, calib.D).reshape(-1, 2)
    return xy @ rotation[:, :2].T + rotation[:, 2]  # (x, y, 1) rotated, without building it


def _near_distance_above(delta_s: np.ndarray, height: np.ndarray, cam_z: float,
                         extent: np.ndarray) -> np.ndarray:
    """Distance to the near edge of an object of ``height`` whose top is below the camera, so the
    box top is its FAR top edge (``extent`` metres further): the root of
    delta_s * D (D + e) = (H - cam_z) D + cam_z (D + e)."""
    b = delta_s * extent - height
    return (-b + np.sqrt(b * b + 4.0 * delta_s * cam_z * extent)) / (2.0 * delta_s)


def border_margin_px(boxes: np.ndarray, noise: PositionNoise = DEFAULT_NOISE) -> np.ndarray:
    """(N,) how near (pixels) a box edge may lie to what hides the view (the image border, an
    ignore region such as the ego bonnet) and still be that border's rather than the object's:
    one edge's noise (``edge_px`` + ``edge_rel`` of the box height), at least ``border_px``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.maximum(noise.border_px, noise.edge_px + noise.edge_rel * (boxes[:, 3] - boxes[:, 1]))


def estimate_positions(calib: CameraCalibration, boxes: np.ndarray, labels: np.ndarray,
                       label_names: tuple[str, ...], noise: PositionNoise = DEFAULT_NOISE,
                       bottom_hidden: np.ndarray | None = None) -> GroundPositions:
    """Ground positions, ranges and (x, y) covariances of detections.

    Args:
        calib: the camera's calibration (its image size must be the boxes' image's).
        boxes: (N, 4) x1, y1, x2, y2 in the (distorted) image's pixels.
        labels: (N,) indices into ``label_names``.
        label_names: the detector's labels; those without a size prior get no position.
        noise: the noise magnitudes the variances are built from.
        bottom_hidden: (N,) boxes whose bottom edge is cut by something else than the image
            border (an ignore region: the ego bonnet hides their ground contact); None: none.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return GroundPositions.empty(0)
    prior = prior_table(tuple(label_names))[np.asarray(labels, np.int64)]
    known = prior[:, 0] > 0
    H, H_sd, L, W, Lc, Wc, ground_sd = prior[:, 1:].T
    x1, y1, x2, y2 = boxes.T
    fx, fy = calib.focal
    cam = calib.T_base_link_camera[:3, 3]
    cam_z = calib.camera_height
    box_h, box_w = y2 - y1, x2 - x1
    edge = noise.edge_px + noise.edge_rel * box_h  # one edge's noise, pixels
    # An edge within its own noise of the image border may be the border: a detector's box of
    # an object the border cuts ends a few pixels short of it as often as on it (PandaSet's
    # front camera: a car 7.8 m away whose wheels are below the image, its box 3-11 px above the
    # bottom row, was placed at 10.1 m +- 0.9 by that row's ground ray). Such an edge is not the
    # object's: its bottom is no ground contact, its height no measure of its size.
    margin = border_margin_px(boxes, noise)
    cut_bottom = y2 >= calib.height - margin
    if bottom_hidden is not None:
        cut_bottom = cut_bottom | np.asarray(bottom_hidden, bool).reshape(n)
    cut_top = y1 <= margin
    cut_side = (x1 <= margin) | (x2 >= calib.width - margin)
    uc, vc = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    pixels = np.empty((4, n, 2))  # bottom centre, top centre, left middle, right middle
    pixels[0, :, 0] = pixels[1, :, 0] = uc
    pixels[0, :, 1], pixels[1, :, 1] = y2, y1
    pixels[2, :, 0], pixels[3, :, 0] = x1, x2
    pixels[2, :, 1] = pixels[3, :, 1] = vc
    rays = normalised_rays(calib, pixels.reshape(-1, 2)).reshape(4, n, 3)
    horizontal = np.hypot(rays[..., 0], rays[..., 1])
    slope = rays[..., 2] / horizontal  # z per horizontal metre: < 0 below the horizon
    s_bottom, s_top = slope[0], slope[1]
    # The bottom ray's heading in base_link (cos, sin); straight down counts as straight ahead.
    h0 = horizontal[0]
    c = np.divide(rays[0, :, 0], h0, out=np.ones(n), where=h0 > 0)
    s = np.divide(rays[0, :, 1], h0, out=np.zeros(n), where=h0 > 0)
    angle_var = (edge / fy) ** 2 + noise.pitch_rad ** 2

    # Footprints, aligned with the road: along the ray, the body's nearest face lies
    # `body_offset` before its centre, the nearest ground contact (a wheel) `contact_offset`.
    cos_a, sin_a = np.abs(c), np.abs(s)
    body_offset = 0.5 * (L * cos_a + W * sin_a)
    body_var = (noise.footprint_rel * body_offset) ** 2 \
        + (noise.heading_spread * 0.5 * (L - W)) ** 2
    contact_offset = 0.5 * (Lc * cos_a + Wc * sin_a)
    contact_var = (noise.footprint_rel * contact_offset) ** 2 \
        + (noise.heading_spread * 0.5 * (Lc - Wc)) ** 2
    extent = 2.0 * body_offset
    across = L * sin_a + W * cos_a
    with np.errstate(invalid="ignore", divide="ignore"):
        # ground: the bottom ray meets z = 0 at the nearest contact.
        ok_g = known & ~cut_bottom & (s_bottom < -noise.min_slope)
        d_g = cam_z / -s_bottom
        edge_var = (edge / fy) ** 2  # the pixel part of angle_var: changes frame to frame
        px_g = ((cam_z ** 2 + d_g ** 2) / cam_z) ** 2 * edge_var
        var_g = ((cam_z ** 2 + d_g ** 2) / cam_z) ** 2 * angle_var \
            + (d_g / cam_z * ground_sd) ** 2 + contact_var
        d_g = d_g + contact_offset
        # size: the vertical extent between the top and bottom rays is the height prior.
        delta_s = s_top - s_bottom
        # A box under a pixel tall has no measured height (a degenerate box of a custom model:
        # 1e-6 px placed a car 1.5 million km away); the noise model assumes a pixel at least.
        ok_s = known & ~cut_bottom & ~cut_top & (delta_s > 0) & (box_h >= _MIN_BOX_PX)
        d_s = np.where(H >= cam_z, H / delta_s, _near_distance_above(delta_s, H, cam_z, extent))
        rel_s = (H_sd / H) ** 2 + 2.0 * (edge / np.maximum(box_h, 1.0)) ** 2
        var_s = d_s ** 2 * rel_s + body_var
        px_s = d_s ** 2 * 2.0 * (edge / np.maximum(box_h, 1.0)) ** 2
        d_s = d_s + body_offset
        # (bit, usable, centre distance, variance, pixel-noise variance) of each cue computed;
        # the rare cues are computed, and fused, only when some detection needs them.
        cues = [(0, ok_g, d_g, var_g, px_g), (1, ok_s, d_s, var_s, px_s)]
        ok_t = np.zeros(n, bool)
        if (cut_bottom & known).any():  # (the rare cues are computed only when needed)
            # top: bottom cut by the border; the top ray meets z = H (the far top edge when
            # the camera is above the object).
            rise = H - cam_z
            d_t = rise / s_top
            var_t = (H_sd / s_top) ** 2 \
                + ((rise ** 2 + d_t ** 2) / np.abs(rise)) ** 2 * angle_var + body_var
            px_t = ((rise ** 2 + d_t ** 2) / np.abs(rise)) ** 2 * edge_var
            d_t = d_t + np.where(rise < 0, -body_offset, body_offset)
            ok_t = known & cut_bottom & ~cut_top & (np.abs(s_top) > noise.min_slope) \
                & (d_t > body_offset)
            cues.append((2, ok_t, d_t, var_t, px_t))
        if (known & ~(ok_g | ok_s | ok_t)).any():
            # width: the footprint's extent across the ray against the box width.
            width_angle = np.abs(np.arctan2(rays[3, :, 1], rays[3, :, 0])
                                 - np.arctan2(rays[2, :, 1], rays[2, :, 0]))
            ok_w = known & ~(ok_g | ok_s | ok_t) & ~cut_side & (width_angle > 0) \
                & (box_w >= _MIN_BOX_PX)
            d_w = across / width_angle + body_offset  # the near face's distance, then centre
            var_w = (_WIDTH_REL_SD * d_w) ** 2 + body_var
            px_w = d_w ** 2 * 2.0 * (edge / np.maximum(box_w, 1.0)) ** 2
            # border: nothing else (a vehicle filling an image corner). The bottom row's ray
            # meets the road beyond the hidden contact point, so the contact lies between the
            # camera and there: the mean and variance of a uniform distribution on [0, that].
            ok_b = known & ~(ok_g | ok_s | ok_t | ok_w) & cut_bottom \
                & (s_bottom < -noise.min_slope)
            bound = cam_z / -s_bottom
            d_b = 0.5 * bound + contact_offset
            var_b = bound ** 2 / 12.0 + contact_var
            # the border cue has no pixel noise
            cues += [(3, ok_w, d_w, var_w, px_w), (4, ok_b, d_b, var_b, np.zeros(n))]

        # Fuse the cues' centre distances by inverse variance; when they disagree beyond their
        # variances (chi-square per degree of freedom > 1), widen the result by that factor.
        rows = [c[0] for c in cues]
        oks = np.array([c[1] for c in cues])
        ds = np.where(oks, np.array([c[2] for c in cues]), 0.0)
        weight = np.where(oks, 1.0 / np.where(oks, np.array([c[3] for c in cues]), 1.0), 0.0)
        total = weight.sum(0)
        valid = total > 0
        total = np.where(valid, total, np.nan)  # no cue: nan distance and variances
        dist = (ds * weight).sum(0) / total
        chi2 = (weight * np.where(oks, ds - dist, 0.0) ** 2).sum(0)  # 0 with one cue
        var_r = np.maximum(1.0, chi2 / np.maximum(oks.sum(0) - 1, 1)) / total
        # The pixel noise through the same (fixed) weights.
        px = np.where(oks, np.array([c[4] for c in cues]), 0.0)
        px_r = (weight ** 2 * px).sum(0) / total ** 2
        # A box cut at the bottom stands nearer than where its bottom ray meets the road (its
        # contact is below that row, or on it for a box only within noise of the border): the
        # top ray, far from the road, must not place it beyond.
        dist = np.where(cut_bottom & (s_bottom < -noise.min_slope), np.fmin(dist, d_g), dist)
    # Across the ray: the box centre's pixel noise; for an object seen at an angle, its visible
    # side (L |sin a| long) moves the box centre off the object's centre, anywhere over half of
    # it (a uniform spread: length / sqrt(12)); for a box cut at the side, the unseen part.
    lateral_px = edge / np.sqrt(2.0) + np.where(cut_side, 0.5 * box_w, 0.0)
    var_cross = (dist * lateral_px / fx) ** 2 + (0.5 * L * sin_a) ** 2 / 12.0
    px_cross = (dist * edge / np.sqrt(2.0) / fx) ** 2
    xyz = np.zeros((n, 3))
    xyz[:, 0] = cam[0] + dist * c
    xyz[:, 1] = cam[1] + dist * s
    cc, ss, cs = c * c, s * s, c * s
    cov = np.empty((n, 2, 2))
    cov[:, 0, 0] = var_r * cc + var_cross * ss
    cov[:, 1, 1] = var_r * ss + var_cross * cc
    cov[:, 0, 1] = cov[:, 1, 0] = (var_r - var_cross) * cs
    jitter = np.empty((n, 2, 2))
    jitter[:, 0, 0] = px_r * cc + px_cross * ss
    jitter[:, 1, 1] = px_r * ss + px_cross * cc
    jitter[:, 0, 1] = jitter[:, 1, 0] = (px_r - px_cross) * cs
    method = _BITS[rows] @ oks
    invalid = ~valid
    xyz[invalid] = np.nan
    cov[invalid] = np.nan
    jitter[invalid] = np.nan
    used_cues = np.full((n, 5), np.nan)
    used_cues[:, rows] = np.where(oks, ds, np.nan).T
    return GroundPositions(xyz, np.hypot(xyz[:, 0], xyz[:, 1]), cov, valid, method, used_cues,
                           jitter)
