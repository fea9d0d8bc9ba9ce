"""Post-processing and pre-processing: NMS against a brute-force reference, label mapping, exact
back-mapping of boxes through stretch and letterbox, normalisation values."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sense_perception.core.detection.decoders import Candidates
from sense_perception.core.detection.labels import AD_LABELS, build_label_map
from sense_perception.core.detection.postprocess import clip_boxes, finalize, nms_class_aware
from sense_perception.core.detection.preprocess import (Preprocessor, PreprocessSpec,
                                                        boxes_to_source)
from sense_perception.errors import ConfigError, ModelError


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _greedy(boxes, scores, labels, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept: list[int] = []
    for i in order:
        if all(labels[i] != labels[j] or _iou(boxes[i], boxes[j]) <= thr for j in kept):
            kept.append(i)
    return kept


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60), st.floats(0.1, 0.9))
def test_nms_matches_brute_force(seed: int, n: int, thr: float) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 80, (n, 2))], 1).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / n + 0.01  # distinct: no tie ambiguity
    labels = rng.integers(0, 3, n)
    assert nms_class_aware(boxes, scores, labels, thr).tolist() == _greedy(boxes, scores, labels,
                                                                            thr)


def test_nms_is_class_aware_and_top_k_applies_after_suppression() -> None:
    box = [10, 10, 50, 50]
    boxes = np.array([box, box, box] + [[100 + 3 * i, 0, 102 + 3 * i, 2] for i in range(5)],
                     np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], np.float32)
    labels = np.array([0, 1, 0, 0, 0, 0, 0, 0])
    assert nms_class_aware(boxes, scores, labels, 0.5).tolist() == [0, 1, 3, 4, 5, 6, 7]
    # OpenCV's own top_k would cut before suppression; ours keeps the best survivors.
    assert nms_class_aware(boxes, scores, labels, 0.5, top_k=3).tolist() == [0, 1, 3]
    assert nms_class_aware(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                           np.zeros(0, int), 0.5).size == 0


def test_clip_boxes() -> None:
    boxes = np.array([[-5, -5, 30, 40], [90, 10, 130, 70]], np.float32)
    clip_boxes(boxes, 100, 50)
    assert boxes.tolist() == [[0, 0, 30, 40], [90, 10, 100, 50]]


def test_label_map_coco_to_driving_labels() -> None:
    coco = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
            "traffic light", "stop sign", "potted plant"]
    dropped = build_label_map(coco)
    assert dropped.names == AD_LABELS
    labels, keep = dropped.apply(np.arange(len(coco)))
    assert [AD_LABELS[i] for i in labels[keep]] == ["pedestrian", "bicycle", "car", "motorcycle",
                                                     "bus", "truck", "traffic_light", "stop_sign"]
    kept = build_label_map(coco, keep_other_classes=True)
    assert kept.names[len(AD_LABELS):] == ("airplane", "train", "potted_plant")
    assert (kept.lookup >= 0).all()
    assert build_label_map(["Motorbike", "Pedestrian"]).lookup.tolist() == [3, 0]
    with pytest.raises(ModelError, match="keep_other_classes"):
        build_label_map(["cat", "dog"], source="pets.txt")


def test_finalize_maps_letterbox_back_clips_and_drops() -> None:
    label_map = build_label_map(["person", "car", "dog"])
    cand = Candidates(
        boxes=np.array([[10, 10, 30, 50],      # person
                        [-10, 0, 20, 20],      # car, hangs off the left edge
                        [5, 300, 40, 400],     # car inside the letterbox padding only
                        [0, 0, 10, 10]],       # dog: not a driving label
                       np.float32),
        scores=np.array([0.9, 0.8, 0.7, 0.95], np.float32),
        class_ids=np.array([0, 1, 1, 2], np.int32))
    transform = np.array([0.5, 0.5, 0.0, 0.0])  # 200x100 image letterboxed top-left into 100x100
    dets = finalize(cand, transform, 200, 100, label_map, 0.5, 10)
    assert [AD_LABELS[i] for i in dets.labels] == ["pedestrian", "car"]
    np.testing.assert_allclose(dets.boxes, [[20, 20, 60, 100], [0, 0, 40, 40]])
    assert (dets.track_ids == -1).all()


def _spec(**kw) -> PreprocessSpec:
    return PreprocessSpec(**{"width": 64, "height": 48, **kw})


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "letterbox_center"])
def test_box_back_mapping_is_exact(mode: str) -> None:
    pre = Preprocessor(_spec(resize=mode))
    nw, nh, transform = pre.geometry(200, 90)
    # The resized image spans [dx, dx + nw] x [dy, dy + nh]; it must map to the whole source.
    dx, dy = transform[2], transform[3]
    full = np.array([[dx, dy, dx + nw, dy + nh]], np.float32)
    np.testing.assert_allclose(boxes_to_source(full, transform), [[0, 0, 200, 90]], atol=1e-4)
    if mode == "stretch":
        assert (nw, nh) == (64, 48)
    else:
        assert nw == 64 and nh == int(90 * 64 / 200)
        assert dy == (0 if mode == "letterbox" else (48 - nh) // 2)


def test_normalisation_and_padding_values() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (24, 64, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pre = Preprocessor(_spec(color="rgb", resize="letterbox", mean=mean, std=std, pad_value=114,
                             interpolation="nearest"), max_batch=2)
    blob, transforms = pre([image, image[:, :32]])
    assert blob.shape == (2, 3, 48, 64) and blob.dtype == np.float32
    # 64x24 into 64x48: same width, so nearest resize is the identity; rows 24.. are padding.
    expected = (image[:, :, ::-1] / 255.0 - mean) / std
    np.testing.assert_allclose(blob[0, :, :24].transpose(1, 2, 0), expected, atol=1e-5)
    pad = (114 / 255.0 - np.array(mean)) / std
    np.testing.assert_allclose(blob[0, :, 24:].reshape(3, -1).mean(1), pad, atol=1e-5)
    assert transforms[1].tolist() == [2.0, 2.0, 0.0, 0.0]  # 32x24 scaled by 2 to 64x48
    bgr = Preprocessor(_spec(color="bgr", scale=1.0))([image])[0]
    assert bgr.shape == (1, 3, 48, 64) and bgr[0, 0].max() <= 255


def test_preprocess_spec_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="resize"):
        _spec(resize="crop")
    with pytest.raises(ConfigError, match="interpolation"):
        _spec(interpolation="lanczos9")
    with pytest.raises(ConfigError, match="std"):
        _spec(std=(1.0, 0.0, 1.0))


def test_letterbox_fills_the_limiting_side_exactly() -> None:
    # 562 * (416 / 562) is 415.99999... in floating point; the image must still span all 416 rows.
    pre = Preprocessor(PreprocessSpec(416, 416, resize="letterbox"))
    nw, nh, _ = pre.geometry(100, 562)
    assert (nw, nh) == (74, 416)
