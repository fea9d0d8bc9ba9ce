"""GFL decoder's score pre-filter (box work only for anchors that pass) against the plain order.

The reference takes argmax and score of every anchor, concatenates every level's box map, filters,
then decodes boxes with float64 maths. Random logits over several batches, layouts (PicoDet split
levels, NanoDet-Plus single output), thresholds and activations must give the same candidates.
"""
from __future__ import annotations

import numpy as np
import pytest

from sense_perception.core.detection.decoders import OutputLayout, make_decoder


def _layout(shapes: list[tuple[int, ...]], size: int, classes: int, activation: str) -> OutputLayout:
    return OutputLayout(shapes=tuple(shapes), names=tuple(f"o{i}" for i in range(len(shapes))),
                        input_width=size, input_height=size, num_classes=classes,
                        labels_source="test", model_name="test", score_activation=activation,
                        options={})


def _reference(dec, scores: np.ndarray, reg: np.ndarray, threshold: float, sigmoid: bool):
    """Plain order: class of every anchor, then filter, then boxes. Returns per-image tuples."""
    out = []
    for b in range(scores.shape[0]):
        cls = scores[b].argmax(axis=1)
        best = scores[b, np.arange(len(cls)), cls]
        if sigmoid:
            best = (1.0 / (1.0 + np.exp(-best.astype(np.float32)))).astype(np.float32)
        keep = np.flatnonzero(best >= threshold)
        logits = reg[b, keep].reshape(-1, 4, dec.reg_max + 1).astype(np.float64)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (e * np.arange(dec.reg_max + 1)).sum(axis=2) / e.sum(axis=2)
        dist *= dec._anchor_strides[keep, None]
        points = dec._points[keep]
        boxes = np.concatenate([points - dist[:, :2], points + dist[:, 2:]], axis=1)
        out.append((boxes, best[keep], cls[keep]))
    return out


@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("activation", ["none", "sigmoid"])
def test_prefiltered_decode_equals_plain_order(single: bool, activation: str) -> None:
    rng = np.random.default_rng(7)
    size, classes, bins = 64, 5, 8
    cells = [64, 16, 4, 1]  # strides 8, 16, 32, 64 on 64x64
    batch = 3
    scores = rng.uniform(-4, 4, (batch, sum(cells), classes)).astype(np.float32)
    if activation == "none":
        scores = 1.0 / (1.0 + np.exp(-scores))
    scores[1, 10, :] = scores[1, 10, 0]  # a tie: the first class must win
    reg = rng.normal(0, 3, (batch, sum(cells), 4 * bins)).astype(np.float32)
    if single:
        outputs = [np.concatenate([scores, reg], axis=2)]
    else:
        bounds = np.cumsum([0] + cells)
        outputs = [scores[:, a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        outputs += [reg[:, a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    dec = make_decoder("gfl", _layout([o.shape for o in outputs], size, classes, activation))
    assert dec.single is single
    for threshold in (0.0, 0.5, 0.8, 1.0):
        got = dec.decode(outputs, threshold)
        want = _reference(dec, scores, reg, threshold, activation == "sigmoid")
        assert len(got) == batch
        for cand, (boxes, best, cls) in zip(got, want, strict=True):
            np.testing.assert_array_equal(cand.class_ids, cls)
            np.testing.assert_array_equal(cand.scores, best)
            np.testing.assert_allclose(cand.boxes, boxes, rtol=1e-5, atol=1e-3)
            assert cand.boxes.dtype == np.float32 and cand.class_ids.dtype == np.int32
        if threshold == 0.5:
            assert 0 < sum(len(c.scores) for c in got) < batch * sum(cells)
