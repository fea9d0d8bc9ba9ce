"""Parity: each bundled detector against a plain reference run of the same ONNX file.

The reference below is written the straightforward way (Python loops over anchors, float64 maths,
greedy NMS per label) from the published pre/post-processing of each model, sharing no code with
sense_perception.core; it runs the original, unmodified ONNX file with a bare onnxruntime session.
The detector runs its in-memory rewritten, batch-dynamic model. Both must give the same detections,
within the cross-path tolerances of ``support.assert_detections_close``: the rewritten graph (fused
HardSigmoid, dynamic batch) runs other kernels than the original, and float64 post-processing rounds
differently from float32.
"""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from support import assert_detections_close

COCO_TO_AD = {"person": "pedestrian", "bicycle": "bicycle", "car": "car",
              "motorcycle": "motorcycle", "bus": "bus", "truck": "truck",
              "traffic light": "traffic_light", "stop sign": "stop_sign"}


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def finish(raw, width, height, classes, thr_iou, max_det):
    """raw: list of (x1, y1, x2, y2, score, coco_index) in source pixels, unclipped."""
    dets = []
    for x1, y1, x2, y2, score, cls in raw:
        name = COCO_TO_AD.get(classes[cls])
        if name is None:
            continue
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 > x1 and y2 > y1:
            dets.append(((x1, y1, x2, y2), score, name))
    dets.sort(key=lambda d: -d[1])
    kept = []
    for box, score, name in dets:
        if all(k[2] != name or _iou(box, k[0]) <= thr_iou for k in kept):
            kept.append((box, score, name))
    return kept[:max_det]


def picodet(sess, image, classes, thr=0.35, thr_iou=0.5, max_det=100):
    """PaddleDetection PicoDet-S: RGB, bilinear stretch to 416 (one of the filters it was trained
    with, the detector's default), ImageNet mean/std; GFL head."""
    height, width = image.shape[:2]
    size = 416
    rgb = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    x = (rgb.astype(np.float64) / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    blob = x.transpose(2, 0, 1)[None].astype(np.float32)
    outs = sess.run(None, {sess.get_inputs()[0].name: blob})
    raw = []
    for level in range(4):
        scores, reg = outs[level][0], outs[level + 4][0]
        stride = 8 * 2 ** level
        cols = math.ceil(size / stride)
        for i in range(scores.shape[0]):
            cls = int(np.argmax(scores[i]))
            score = float(scores[i, cls])
            if score < thr:
                continue
            cy, cx = divmod(i, cols)
            px, py = (cx + 0.5) * stride, (cy + 0.5) * stride
            d = []
            for side in range(4):
                bins = reg[i, side * 8:(side + 1) * 8].astype(np.float64)
                p = np.exp(bins - bins.max())
                d.append(float((p / p.sum()) @ np.arange(8)) * stride)
            sx, sy = size / width, size / height
            raw.append(((px - d[0]) / sx, (py - d[1]) / sy, (px + d[2]) / sx, (py + d[3]) / sy,
                        score, cls))
    return finish(raw, width, height, classes, thr_iou, max_det)


def yolox(sess, image, classes, thr=0.35, thr_iou=0.5, max_det=100):
    """Megvii YOLOX-Nano: BGR 0..255 letterboxed top-left, pad 114; raw grid outputs."""
    height, width = image.shape[:2]
    size = 416
    r = min(size / height, size / width)
    nw, nh = int(width * r), int(height * r)
    padded = np.full((size, size, 3), 114, np.uint8)
    padded[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = sess.run(None, {sess.get_inputs()[0].name:
                          padded.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
    raw = []
    i = 0
    for stride in (8, 16, 32):
        cells = size // stride
        for gy in range(cells):
            for gx in range(cells):
                row = out[i].astype(np.float64)
                i += 1
                cls = int(np.argmax(row[5:]))
                score = row[4] * row[5 + cls]
                if score < thr:
                    continue
                cx, cy = (row[0] + gx) * stride, (row[1] + gy) * stride
                w, h = math.exp(row[2]) * stride, math.exp(row[3]) * stride
                # Exact per-axis scale of the resize (nw/width), not the nominal r.
                sx, sy = nw / width, nh / height
                raw.append(((cx - w / 2) / sx, (cy - h / 2) / sy, (cx + w / 2) / sx,
                            (cy + h / 2) / sy, float(score), cls))
    return finish(raw, width, height, classes, thr_iou, max_det)


STREET = Path(__file__).resolve().parents[2] / "shared" / "data" / "street"
FRAMES = sorted(STREET.glob("*.jpg")) + sorted(STREET.glob("*.png"))
REFERENCES = {"picodet_s_416": picodet, "yolox_nano": yolox}


@pytest.mark.parametrize("model", sorted(REFERENCES))
def test_detector_matches_reference(model: str) -> None:
    from sense_perception.core.detection.detector import (ClassThresholds, DetectorConfig,
                                                          ObjectDetector)
    from sense_perception.core.runtime.model_registry import MODELS
    from sense_perception.core.runtime.session import RuntimeOptions

    spec = MODELS[model]
    reference_session = session(str(spec.verified_path()))
    classes = spec.labels()
    from sense_perception.core.detection.duplicates import DuplicateSettings

    # One threshold (0.35) for every label on the raw scores, as the reference applies it; no
    # duplicates step (the reference is the model's own decoding and NMS; that step has its own
    # tests).
    no_duplicates = DuplicateSettings(nested_containment=0.0, vehicle_nms_iou=0.0)
    detector = ObjectDetector(DetectorConfig(model=model, score_threshold=0.35,
                                             class_thresholds=ClassThresholds.unset(),
                                             calibrated_scores=False, duplicates=no_duplicates),
                              RuntimeOptions(providers=("CPUExecutionProvider",)))
    images = [cv2.imread(str(p)) for p in FRAMES]
    assert len(images) == 5
    total = 0
    for path, image, dets in zip(FRAMES, images, detector.detect(images), strict=True):
        expected = REFERENCES[model](reference_session, image, classes)
        reference = SimpleNamespace(
            boxes=np.array([b for b, _, _ in expected], np.float64).reshape(-1, 4),
            scores=np.array([s for _, s, _ in expected], np.float64),
            labels=np.array([detector.label_names.index(n) for _, _, n in expected], np.int64))
        assert_detections_close(dets, reference, threshold=0.35, what=path.name)
        total += len(expected)
    assert total >= 40  # the comparison covered many real detections, not an empty case
