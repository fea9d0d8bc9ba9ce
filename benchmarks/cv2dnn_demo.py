"""The common OpenCV-DNN demo pipeline for PP-PicoDet, as found in many tutorials and repositories.

Written the way such demos are: ``cv2.dnn.readNetFromONNX`` on the ONNX file, per frame a resize,
normalisation in numpy and ``cv2.dnn.blobFromImage``, ``net.forward`` over the output layers, then
post-processing in Python loops (per level, per kept anchor, per class for NMS). It is the
baseline of ``speedup_vs_cv2dnn`` and shares no code with sense_perception.core, so that agreeing
detections also cross-check the detector.

To compare detections, the demo uses the detector's pre-processing (stretch to 416x416 with the
detector's resize filter, bilinear by default; RGB, ImageNet mean/std), its thresholds (score >=
0.35, cars >= 0.3, per-class NMS at IoU 0.5, top 100) and its COCO -> driving label mapping.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

COCO_TO_DRIVING = {"person": "pedestrian", "bicycle": "bicycle", "car": "car",
                   "motorcycle": "motorcycle", "bus": "bus", "truck": "truck",
                   "traffic light": "traffic_light", "stop sign": "stop_sign"}


class PicoDetCv2Demo:
    """PicoDet on ``cv2.dnn``, tutorial style.

    Args:
        model_path: the PicoDet ONNX file (the very file the detector loads).
        coco_names: the 80 COCO class names in model order.
    """

    def __init__(self, model_path: Path, coco_names: list[str], size: int = 416,
                 score_threshold: float = 0.35, nms_iou: float = 0.5, max_det: int = 100,
                 interpolation: int = cv2.INTER_LINEAR,
                 label_thresholds: dict[str, float] | None = None) -> None:
        self.net = cv2.dnn.readNetFromONNX(str(model_path))
        self.out_names = list(self.net.getUnconnectedOutLayersNames())
        self.names = coco_names
        self.size = size
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_det = max_det
        self.interpolation = interpolation
        # Per driving label, the detector's own threshold (detector.class_thresholds).
        self.label_thresholds = label_thresholds or {}
        self.mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 1, 3)
        self.std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 1, 3)
        self.strides = [8, 16, 32, 64]
        self.reg_max = 7

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        img = cv2.resize(image, (self.size, self.size), interpolation=self.interpolation)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        img = (img - self.mean) / self.std
        return cv2.dnn.blobFromImage(img)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Boxes (N, 4) xyxy in source pixels, scores (N,), label names."""
        h, w = image.shape[:2]
        self.net.setInput(self.preprocess(image))
        outs = self.net.forward(self.out_names)
        # Outputs come as score and box maps per level; pair them by their anchor count.
        by_cells: dict[int, list[np.ndarray]] = {}
        for out in outs:
            by_cells.setdefault(out.shape[1], []).append(out)
        boxes, scores, class_ids = [], [], []
        for stride in self.strides:
            cols = math.ceil(self.size / stride)
            pair = by_cells[cols * math.ceil(self.size / stride)]
            cls_score, bbox_pred = sorted(pair, key=lambda o: o.shape[2] != len(self.names))
            cls_score, bbox_pred = cls_score[0], bbox_pred[0]
            best = cls_score.max(axis=1)
            lowest = min([self.score_threshold, *self.label_thresholds.values()])
            for idx in np.where(best >= lowest)[0]:
                class_id = int(np.argmax(cls_score[idx]))
                name = self.names[class_id]
                if name not in COCO_TO_DRIVING or best[idx] < self.label_thresholds.get(
                        COCO_TO_DRIVING[name], self.score_threshold):
                    continue
                cx = (idx % cols + 0.5) * stride
                cy = (idx // cols + 0.5) * stride
                dist = []
                for side in range(4):
                    bins = self.reg_max + 1
                    logits = bbox_pred[idx, side * bins:(side + 1) * bins]
                    e = np.exp(logits - logits.max())
                    dist.append(float((e / e.sum()) @ np.arange(self.reg_max + 1)) * stride)
                x1 = max(0.0, min((cx - dist[0]) * w / self.size, w))
                y1 = max(0.0, min((cy - dist[1]) * h / self.size, h))
                x2 = max(0.0, min((cx + dist[2]) * w / self.size, w))
                y2 = max(0.0, min((cy + dist[3]) * h / self.size, h))
                if x2 <= x1 or y2 <= y1:
                    continue
                boxes.append([x1, y1, x2 - x1, y2 - y1])
                scores.append(float(best[idx]))
                class_ids.append(class_id)
        keep_all = []
        for class_id in sorted(set(class_ids)):
            idxs = [i for i, c in enumerate(class_ids) if c == class_id]
            # Candidates are already thresholded (inclusive); NMSBoxes' own test is strict.
            kept = cv2.dnn.NMSBoxes([boxes[i] for i in idxs], [scores[i] for i in idxs],
                                    0.0, self.nms_iou)
            keep_all.extend(idxs[int(k)] for k in np.asarray(kept).reshape(-1))
        keep_all.sort(key=lambda i: -scores[i])
        keep_all = keep_all[:self.max_det]
        out_boxes = np.array([[boxes[i][0], boxes[i][1], boxes[i][0] + boxes[i][2],
                               boxes[i][1] + boxes[i][3]] for i in keep_all], np.float32)
        return (out_boxes.reshape(-1, 4), np.array([scores[i] for i in keep_all], np.float32),
                [COCO_TO_DRIVING[self.names[class_ids[i]]] for i in keep_all])
