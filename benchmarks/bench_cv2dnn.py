"""speedup_vs_cv2dnn: the detector's throughput over the common OpenCV-DNN demo, same model/images.

Both start from the same decoded BGR frame and end with source-pixel boxes, scores and driving
labels. They run interleaved over the same frame sequence; throughput ratio = demo time / detector
time (median of per-round ratios). Before timing, both run on every frame and their detections are
paired one-to-one (same label, IoU >= 0.9): the result says whether they agree.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from sense_perception.core.detection.duplicates import DuplicateSettings
from sense_perception.core.runtime.model_registry import get_model
from sense_perception.core.runtime.progress import loading
from sense_perception.errors import ModelError

from .common import Inputs, load, match_detections, side_by_side
from .cv2dnn_demo import PicoDetCv2Demo


def _demo(spec: Any, detector: Any, raw: dict[str, float]) -> PicoDetCv2Demo:
    """The demo on the detector's model file, with the detector's raw thresholds."""
    loading(f"{spec.name} in the OpenCV-DNN demo", "cv2.dnn.readNetFromONNX")  # named if it hangs
    return PicoDetCv2Demo(spec.verified_path(), spec.labels(),
                          # The demo thresholds raw scores: the detector's raw equivalents.
                          score_threshold=min(raw.values()), nms_iou=detector.config.nms_iou,
                          max_det=detector.config.max_detections,
                          interpolation=detector._pre._interp, label_thresholds=raw)


def run(detector: Any, inputs: Inputs, rounds: int, calls: int) -> dict[str, Any]:
    """Measure ``speedup_vs_cv2dnn``; the detector must run the bundled picodet_s_416."""
    spec = get_model(detector.model_name)
    raw = {n: detector.raw_threshold(n) for n in detector.label_names}
    try:
        # bounded by --warm-up-timeout as every other load of the benchmarks: readNetFromONNX
        # ran on the calling thread, so one that never returned held the run for ever (R94)
        demo = load(partial(_demo, spec, detector, raw), f"the OpenCV-DNN demo's {spec.name}")
    except ModelError:
        raise  # it hung: the run ends naming it (exit 2), as for the detector's own load
    except Exception as exc:  # cv2.dnn raises cv2.error for graphs it cannot import
        return {"speedup_vs_cv2dnn": None,
                "detail": {"error": f"cv2.dnn.readNetFromONNX cannot load {spec.name}: {exc}"}}
    images = inputs.images
    agreement = []
    # The demo has no duplicates step: agreement is checked on the model's own decoding (the step
    # stays on for the timing, as extra work the detector does).
    kept = detector.config.duplicates
    detector.config.duplicates = DuplicateSettings(nested_containment=0.0, vehicle_nms_iou=0.0)
    try:
        for path, image in zip(inputs.paths, images, strict=True):
            boxes, _, labels = demo.detect(image)
            ours = detector.detect([image])[0]
            names = [detector.label_names[i] for i in ours.labels]
            agreement.append({"image": path.name,
                              **match_detections(boxes, labels, ours.boxes, names)})
    finally:
        detector.config.duplicates = kept
    n = len(images)
    result = side_by_side({"detector": lambda i: detector.detect([images[i % n]]),
                           "cv2dnn_demo": lambda i: demo.detect(images[i % n])}, rounds, calls)
    return {
        "speedup_vs_cv2dnn": round(result.ratio("cv2dnn_demo", "detector"), 4),
        "detail": {
            "what": ("throughput of ObjectDetector.detect([frame]) over the OpenCV-DNN demo "
                     "(cv2.dnn.readNetFromONNX on the same PicoDet file, per-frame resize + numpy "
                     "normalise + blobFromImage, Python post-processing loops, per-class "
                     "NMSBoxes), "
                     "same BGR frames, interleaved, median of per-round ratios"),
            "model": spec.name,
            "ratio_iqr": [round(x, 4) for x in result.ratio_spread("cv2dnn_demo", "detector")],
            "detector_ms": round(result.median_ms("detector"), 3),
            "cv2dnn_demo_ms": round(result.median_ms("cv2dnn_demo"), 3),
            "same_detections": all(a["same"] for a in agreement),
            "agreement": agreement,
            "timing": result.summary(),
        },
    }
