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
import json
from pathlib import Path

import cv2
import numpy as np

GREY = 114  # the letterbox grey of most detectors: no texture for them to fire on


def shrink(ground_truth: Path, out: Path, factor: float = 0.5) -> int:
    """Write the shrunk frames and their ground truth (project format) to ``out``; returns the
    number of frames."""
    doc = json.loads(ground_truth.read_text())
    out.mkdir(parents=True, exist_ok=True)
    cameras = {}
    for key, cam in doc["cameras"].items():
        image = cv2.imread(str(ground_truth.parent / cam["image"]), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {ground_truth.parent / cam['image']}")
        height, width = image.shape[:2]
        small = cv2.resize(image, (int(width * factor), int(height * factor)),
                           interpolation=cv2.INTER_AREA)
        canvas = np.full_like(image, GREY)
        dy, dx = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
        canvas[dy:dy + small.shape[0], dx:dx + small.shape[1]] = small
        name = key.replace("/", "_") + ".jpg"
        cv2.imwrite(str(out / name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
        boxes = []
        for box in cam["boxes"]:
            x1, y1, x2, y2 = box["bbox_xyxy"]
            boxes.append({"label": box["label"], "difficult": bool(box.get("difficult", False)),
                          "bbox_xyxy": [x1 * factor + dx, y1 * factor + dy, x2 * factor + dx,
                                        y2 * factor + dy]})
        cameras[key] = {"image": name, "width": width, "height": height, "boxes": boxes}
    note = (f"'far' proxy of {ground_truth}: each frame shrunk by {factor} into the middle of a "
            "grey canvas of its own size (tools/make_far_proxy.py)")
    (out / "ground_truth.json").write_text(json.dumps(
        {"note": note, "categories": doc.get("categories", []), "cameras": cameras}) + "\n")
    return len(cameras)


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
