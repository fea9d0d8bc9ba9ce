#!/usr/bin/env python3
"""Make a "far" copy of a labelled set: every frame shrunk to half size in the middle of a grey
canvas of the original size, boxes and ignore regions moved with it.

Every object is then half as tall in a frame of the same size, as if twice as far: the developer
set's pedestrians (50-100 px) become 25-50 px, like the far pedestrians of side and rear cameras,
while the horizon stays at the frame's middle. It is a stand-in for frames this project does not
have (the detector is judged on real frames from other cars too), not a benchmark of its own:
docs/detection-quality.md shows both.

    python tools/make_far_proxy.py ../shared/data/street_labelled/pandaset_seq002_front/ground_truth.json /tmp/far
    sense-perception eval /tmp/far/ground_truth.json --out /tmp/far_eval --iou 0.3
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from stand_in import make_stand_in

GREY = 114  # the letterbox grey of most detectors: no texture for them to fire on


def shrink(ground_truth: Path, out: Path, factor: float = 0.5) -> int:
    """Write the shrunk frames and their ground truth (project format) to ``out``; returns the
    number of frames."""

    check_factor(factor)

    def change(image: np.ndarray, cam: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        height, width = image.shape[:2]
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        canvas = np.full_like(image, GREY)
        dy, dx = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
        canvas[dy:dy + small.shape[0], dx:dx + small.shape[1]] = small
        # The scale the pixels got (whole pixels: 0.3 of 333 px is 100, not 99.9), which the
        # boxes must get too; they were scaled by the factor, up to a pixel off the object.
        sx, sy = small.shape[1] / width, small.shape[0] / height

        def moved(x1: float, y1: float, x2: float, y2: float) -> list[float]:
            return [x1 * sx + dx, y1 * sy + dy, x2 * sx + dx, y2 * sy + dy]

        boxes = [{"label": box["label"], "difficult": bool(box.get("difficult", False)),
                  "bbox_xyxy": moved(*box["bbox_xyxy"])} for box in cam["boxes"]]
        entry: dict[str, Any] = {"width": width, "height": height, "boxes": boxes}
        if cam.get("ignore_regions"):  # were dropped: their detections became false positives
            entry["ignore_regions"] = [{"bbox_xyxy": moved(*r["bbox_xyxy"])}
                                       for r in cam["ignore_regions"]]
        return canvas, entry

    note = (f"'far' proxy of {ground_truth}: each frame shrunk by {factor} into the middle of a "
            "grey canvas of its own size (tools/make_far_proxy.py)")
    return make_stand_in(ground_truth, out, change, note)


def check_factor(factor: float) -> None:
    """Refuse a shrink factor outside (0, 1] (0 or less, nan: no frame; above 1 the frame does
    not fit its canvas); they ended in a traceback of OpenCV or numpy."""
    if not 0.0 < factor <= 1.0:
        print(f"error: --factor {factor} is not a shrink factor: give one within (0, 1] (0.5: "
              "objects half as tall, as if twice as far)", file=sys.stderr)
        raise SystemExit(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ground_truth", type=Path, help="ground truth in the project format")
    parser.add_argument("out", type=Path, help="output folder (frames and ground_truth.json)")
    parser.add_argument("--factor", type=float, default=0.5, help="shrink factor (default 0.5)")
    args = parser.parse_args()
    print(f"wrote {shrink(args.ground_truth, args.out, args.factor)} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
