"""GPU figures: the detector on the CUDA and TensorRT providers, and the torch pre-processing path.

Runs only where onnxruntime has the CUDA provider and torch sees a CUDA GPU; elsewhere the result
says plainly that nothing was measured and why. Per provider (TensorRT, then CUDA alone):

* ``detect_ms``: ``ObjectDetector.detect([frame])`` (CPU pre-processing, GPU inference);
* ``device_path_ms``: raw rgb8 message -> :class:`DeviceDetector` (upload, colour conversion,
  resize and normalise in torch on the GPU, input bound through IO binding, no host copy);
* ``raw_session_run_ms`` and ``pipeline_over_raw`` as in the CPU benchmark;
* ``parity``: detections of each GPU path paired with the CPU provider's (count / IoU >= 0.9).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import onnxruntime as ort

from .bench_pipeline import _measure, ros_messages
from .common import Inputs, load, match_detections, side_by_side

PROVIDER_SETS = (("TensorrtExecutionProvider", "CUDAExecutionProvider"), ("CUDAExecutionProvider",))


def unavailable_reason() -> str:
    """Why GPU figures cannot be measured here ("" when they can)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ("onnxruntime on this machine has no CUDAExecutionProvider "
                f"(available: {', '.join(ort.get_available_providers())}); no GPU figures measured")
    try:
        import torch
    except ModuleNotFoundError:
        return "torch is not installed; the GPU pre-processing path cannot run"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU (torch.cuda.is_available() is False)"
    return ""


def parity(reference: Any, candidate: Any, inputs: Inputs) -> dict[str, Any]:
    """Pair the detections of two detect-capable objects on every frame."""
    names_ref = getattr(reference, "detector", reference).label_names
    names_cand = getattr(candidate, "detector", candidate).label_names
    rows = []
    for path, image in zip(inputs.paths, inputs.images, strict=True):
        a = reference.detect([image])[0]
        b = candidate.detect([image])[0]
        rows.append({"image": path.name, **match_detections(
            a.boxes, [names_ref[i] for i in a.labels], b.boxes, [names_cand[i] for i in b.labels])})
    return {"same_detections": all(r["same"] for r in rows), "per_image": rows}


def device_path(detector: Any, inputs: Inputs, device: str, rounds: int,
                calls: int) -> dict[str, Any]:
    """Time and check the torch pre-processing + IO binding path of ``detector`` on ``device``."""
    from sense_perception.core.detection.gpu_preprocess import DeviceDetector

    dev = DeviceDetector(detector, device)
    msgs = ros_messages(inputs.images)
    n = len(msgs)
    result = side_by_side({
        "detect": lambda i: detector.detect([inputs.images[i % n]]),
        "device_path": lambda i: dev.detect([dev.decode(msgs[i % n])]),
    }, rounds, calls)
    return {
        "device": device,
        "detect_ms": round(result.median_ms("detect"), 3),
        "device_path_ms": round(result.median_ms("device_path"), 3),
        "parity_vs_detect": parity(detector, dev, inputs),
    }


def run(cpu_detector: Any, inputs: Inputs, rounds: int, calls: int) -> dict[str, Any]:
    """GPU figures, or ``{"measured": False, "reason": ...}``."""
    reason = unavailable_reason()
    if reason:
        return {"measured": False, "reason": reason}
    import torch

    from sense_perception.core.detection.detector import DetectorConfig, ObjectDetector
    from sense_perception.core.runtime.session import RuntimeOptions

    out: dict[str, Any] = {"measured": True, "gpu": torch.cuda.get_device_name(0), "providers": {}}
    for providers in PROVIDER_SETS:
        key = providers[0]
        detector = load(partial(ObjectDetector, DetectorConfig(model=cpu_detector.model_name),
                                RuntimeOptions(providers=providers)), "the detector's models")
        if detector.provider != key:
            out["providers"][key] = {"measured": False,
                                     "reason": "; ".join(detector.fallback_reasons)}
            continue
        msgs = ros_messages(inputs.images)
        pipeline = _measure(detector, msgs, rounds, calls)
        path = device_path(detector, inputs, "cuda", rounds, calls)
        out["providers"][key] = {
            "measured": True,
            "pipeline_over_raw": pipeline["ratio"],
            "raw_session_run_ms": pipeline["raw_session_run_ms"],
            "pipeline_ms": pipeline["pipeline_ms"],
            "stage_mean_ms": pipeline["stage_mean_ms"],
            **path,
            "parity_vs_cpu_provider": parity(cpu_detector, detector, inputs),
        }
    return out
