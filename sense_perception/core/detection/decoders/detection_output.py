"""Models that finish their own post-processing: boxes [N, 5] (x1, y1, x2, y2, score) + labels [N].

Intel Open Model Zoo detectors (person-detection-0203, an ATSS head) end in decoding and NMS, as
exported to OpenVINO IR and converted to ONNX: the box output holds corner coordinates in
network-input pixels and the confidence; the label output the class index per row. Rows past the
last detection are padding (score 0) in the ONNX copy, absent in OpenVINO. A leading batch axis
of 1 is accepted. Other outputs of the graph (intermediate top-k stages) are ignored. NMS has been
done by the model, so it is not repeated.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Candidates, Decoder, OutputFormatError, OutputLayout, trained_input


class DetectionOutputDecoder(Decoder):
    """Decoder for in-model post-processed boxes + labels outputs."""

    family = "detection_output"
    needs_nms = False
    layout_doc = ("detection_output: boxes [N, 5] (x1, y1, x2, y2 in input pixels, score) + "
                  "labels [N], NMS done in the model (OpenVINO Open Model Zoo)")
    # Open Model Zoo: BGR 0..255 (normalisation folded into the graph), plain resize.
    input_defaults = trained_input(color="bgr", resize="stretch", pad_value=114.0, scale=1.0,
                                   mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                   interpolation="linear")
    # The Open Model Zoo's detectors of this layout find one class (persons, vehicles...): they
    # are specialists beside a general model, not general models themselves.
    general_purpose = False

    def __init__(self, layout: OutputLayout) -> None:
        super().__init__(layout)
        shapes = [s[1:] if len(s) == 3 and s[0] == 1 else s for s in layout.shapes]
        boxes = [i for i, s in enumerate(shapes) if len(s) == 2 and s[1] == 5]
        if len(boxes) != 1:
            raise OutputFormatError("needs exactly one [N, 5] boxes output")
        self._boxes_at = boxes[0]
        rows = shapes[self._boxes_at][0]
        labels = [i for i, s in enumerate(shapes) if len(s) == 1 and s[0] == rows
                  and "label" in layout.names[i].lower()]
        if len(labels) != 1:
            raise OutputFormatError(f"needs one [N] output named 'labels' beside the boxes "
                                    f"(N = {rows})")
        self._labels_at = labels[0]
        self._batched = len(layout.shapes[self._boxes_at]) == 3

    def decode(self, outputs: Sequence[np.ndarray], score_threshold: float) -> list[Candidates]:
        boxes = np.asarray(outputs[self._boxes_at])
        labels = np.asarray(outputs[self._labels_at])
        if self._batched:
            boxes, labels = boxes[0], labels[0]
        scores = self.activate(boxes[:, 4].astype(np.float32))
        keep = np.flatnonzero((scores >= score_threshold) & (scores > 0.0))
        class_ids = labels[keep].astype(np.int32)
        valid = (class_ids >= 0) & (class_ids < self.layout.num_classes)
        keep, class_ids = keep[valid], class_ids[valid]
        if keep.size == 0:
            return [Candidates.empty()]
        return [Candidates(boxes[keep, :4].astype(np.float32), scores[keep], class_ids)]
