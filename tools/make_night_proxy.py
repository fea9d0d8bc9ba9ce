#!/usr/bin/env python3
"""Make a "night" copy of a labelled set: every frame darkened in linear light, with the shot and
read noise of a sensor at high gain and a darker tone curve, boxes unchanged.

A camera at night collects a fraction of the day's light; its auto-exposure raises the gain,
which raises the noise with the signal. Per frame: sRGB -> linear light, times ``--exposure``
(0.02: 1/50 of the light, 5.6 stops less), as ``--full-well`` electrons per full-scale pixel
(Poisson shot noise) plus Gaussian read noise of ``--read-noise`` electrons, amplified by
``--gain`` (1.5), then encoded with gamma ``--gamma`` (2.6: darker mid-tones than sRGB's 2.2) and
written as JPEG quality 92. The developer set's frames (mean luma 100-110 of 255) come out at a
mean luma of about 28, like an urban night street with lights on.

What it cannot show (real night frames judge the detector, not this proxy): headlights, street
lights and their glare and flare; lit and unlit areas side by side (here the whole frame darkens
evenly); motion blur from long exposures; a real sensor's colour noise, ISP denoising and
sharpening; wet, reflecting roads. It is a stand-in for the light level and the noise only.

    python tools/make_night_proxy.py ../shared/data/street_labelled/pandaset_seq002_front/ground_truth.json /tmp/night
    sense-perception eval /tmp/night/ground_truth.json --out /tmp/night_eval --iou 0.3
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from stand_in import make_stand_in


def darken(image: np.ndarray, rng: np.random.Generator, exposure: float = 0.02,
           full_well: float = 2000.0, read_noise: float = 4.0, gain: float = 1.5,
           gamma: float = 2.6) -> np.ndarray:
    """A BGR uint8 frame as the same scene seen at night (see the module docstring)."""
    linear = (image.astype(np.float32) / 255.0) ** 2.2
    electrons = rng.poisson(linear * exposure * full_well).astype(np.float32)
    electrons += rng.normal(0.0, read_noise, image.shape).astype(np.float32)
    signal = np.clip(electrons * gain / full_well, 0.0, 1.0)
    return np.rint(255.0 * signal ** (1.0 / gamma)).astype(np.uint8)


# (setting, lowest value allowed, whether that value is allowed): 0 or less made no frame (a
# division by zero, numpy's "lam < 0") or, for the full well, a frame of noise with exit 0.
LIMITS = {"exposure": (0.0, False), "gain": (0.0, False), "gamma": (0.0, False),
          "full_well": (0.0, False), "read_noise": (0.0, True)}


def check_settings(settings: dict[str, float]) -> None:
    """Refuse a setting that makes no night frame (see :data:`LIMITS`): exit 2 naming it."""
    for name, value in settings.items():
        low, inclusive = LIMITS[name]
        if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
            print(f"error: --{name.replace('_', '-')} {value} makes no night frame: give a "
                  f"finite number {'>=' if inclusive else '>'} {low:g}", file=sys.stderr)
            raise SystemExit(2)


def make(ground_truth: Path, out: Path, seed: int = 0, **settings: float) -> int:
    """Write the night frames and their ground truth (project format, labels unchanged) to
    ``out``; returns the number of frames."""
    check_settings(settings)
    rng = np.random.default_rng(seed)
    note = (f"'night' proxy of {ground_truth}: darkened in linear light, shot and read noise at "
            f"high gain, gamma-shifted ({settings or 'defaults'}, seed {seed}; "
            "tools/make_night_proxy.py)")
    return make_stand_in(ground_truth, out, lambda image, cam: (darken(image, rng, **settings), cam),
                         note)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ground_truth", type=Path, help="ground truth in the project format")
    parser.add_argument("out", type=Path, help="output folder (frames and ground_truth.json)")
    parser.add_argument("--exposure", type=float, default=0.02, help="share of the day's light")
    parser.add_argument("--gain", type=float, default=1.5, help="sensor gain (auto-exposure)")
    parser.add_argument("--gamma", type=float, default=2.6, help="encoding gamma (sRGB: 2.2)")
    parser.add_argument("--full-well", type=float, default=2000.0,
                        help="electrons of a full-scale pixel (shot noise)")
    parser.add_argument("--read-noise", type=float, default=4.0, help="read noise in electrons")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = make(args.ground_truth, args.out, args.seed, exposure=args.exposure, gain=args.gain,
             gamma=args.gamma, full_well=args.full_well, read_noise=args.read_noise)
    print(f"wrote {n} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
