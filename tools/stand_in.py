"""What the stand-in makers (make_far_proxy.py, make_night_proxy.py) share: each reads a labelled
set, writes every frame changed, and writes the ground truth of the new frames beside them."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

#: (frame, its ground-truth camera entry) -> (the new frame, the new entry without "image")
FrameChange = Callable[[np.ndarray, dict[str, Any]], tuple[np.ndarray, dict[str, Any]]]


def make_stand_in(ground_truth: Path, out: Path, change: FrameChange, note: str) -> int:
    """Write every frame of ``ground_truth`` (project format) through ``change`` to ``out`` as
    JPEG quality 92, and their ground truth with ``note``; returns the number of frames."""
    doc = json.loads(ground_truth.read_text())
    out.mkdir(parents=True, exist_ok=True)
    cameras = {}
    for key, cam in doc["cameras"].items():
        image = cv2.imread(str(ground_truth.parent / cam["image"]), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {ground_truth.parent / cam['image']}")
        frame, entry = change(image, cam)
        name = key.replace("/", "_") + ".jpg"
        cv2.imwrite(str(out / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        cameras[key] = {"image": name, **{k: v for k, v in entry.items() if k != "image"}}
    (out / "ground_truth.json").write_text(json.dumps(
        {"note": note, "categories": doc.get("categories", []), "cameras": cameras}) + "\n")
    return len(cameras)
