#!/usr/bin/env python3
"""Make a "far" copy of a labelled set: every frame shrunk to half size in the middle of a grey
canvas of the original size, boxes moved with it.

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
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from stand_in import make_stand_in

GREY = 114  # the letterbox grey of most detectors: no texture for them to fire on


def shrink(ground_truth: Path, out: Path, factor: float = 0.5) -> int:
    """Write the shrunk frames and their ground truth (project format) to ``out``; returns the
    number of frames."""

    def change(image: np.ndarray, cam: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        height, width = image.shape[:2]
        small = cv2.resize(image, (int(width * factor), int(height * factor)),
                           interpolation=cv2.INTER_AREA)
        canvas = np.full_like(image, GREY)
        dy, dx = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
        canvas[dy:dy + small.shape[0], dx:dx + small.shape[1]] = small
        boxes = []
        for box in cam["boxes"]:
            x1, y1, x2, y2 = box["bbox_xyxy"]
            boxes.append({"label": box["label"], "difficult": bool(box.get("difficult", False)),
                          "bbox_xyxy": [x1 * factor + dx, y1 * factor + dy, x2 * factor + dx,
                                        y2 * factor + dy]})
        return canvas, {"width": width, "height": height, "boxes": boxes}

    note = (f"'far' proxy of {ground_truth}: each frame shrunk by {factor} into the middle of a "
            "grey canvas of its own size (tools/make_far_proxy.py)")
    return make_stand_in(ground_truth, out, change, note)


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
