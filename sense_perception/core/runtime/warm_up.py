"""One warm-up inference per model before a node says it is ready (SECURITY.md R72).

The first run of a model can take far longer than any later one: TensorRT builds its engine for
each new input shape (minutes without a ``runtime.trt_cache_dir`` cache), OpenVINO and CUDA
compile kernels and allocate on their first call. On a live node that first run happened on the
first camera frame, inside a batch the inference-stall watch (R69, ``inference_stall_s``) times,
so a node with nothing wrong reported a hung inference (ERROR). The nodes now run these
functions at configure, on blank frames, before they report ready, and say how long it took.

Shapes: on a GPU provider (TensorRT, CUDA) each model is run at the smallest and the largest
input the node will feed it (one image and a batch of every camera; for YuNet, whose input
follows the frame's size, a minimal frame and one of ``face.max_side``), so an engine whose shape
range is widened to the shapes it has seen (TensorRT's) covers those in between. On the CPU
(onnxruntime's CPU provider, OpenVINO, which compiles at load) nothing is built per shape: each
model runs once, on its smallest input, which keeps a configure cheap (0.03-0.22 s per node on
2 shared cores, measured here, a cost the first frame paid before). A camera whose frames give the
detector more tiles than a blank frame of the network's size (``tiling.*``) may still build on
its first frame.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ...errors import ModelError
from ..imaging.frame_guard import MIN_FRAME_PX

#: What to check when a warm-up fails: it is the model's first run on this runtime.
FIX = ("fix: check the model file and runtime.providers (a GPU provider that cannot run it: "
       "list CPUExecutionProvider alone to confirm), then configure the node again")


def on_gpu(providers: Sequence[str]) -> bool:
    """Whether any of these execution providers builds or compiles per input shape (all but
    onnxruntime's CPU provider and OpenVINO on the CPU)."""
    return any(p != "CPUExecutionProvider" and not str(p).startswith("OpenVINO")
               for p in providers)


def _failed(model: str, what: str, exc: BaseException) -> ModelError:
    first = (str(exc).splitlines() or [""])[0][:300]
    return ModelError(f"the warm-up inference of {model} on {what} failed before the node "
                      f"reported ready ({type(exc).__name__}: {first}); {FIX}")


def warm_up_detector(detector: Any, cameras: int) -> float:
    """Run ``detector.detect`` on a blank frame of its network input size, and on a GPU provider
    also on one per camera (the largest batch the node's worker takes together).

    Args:
        detector: an ObjectDetector, MultiModelDetector or DeviceDetector.
        cameras: how many cameras the node reads.

    Returns:
        The seconds it took.

    Raises:
        ModelError: the warm-up raised, naming the model and the fix.
    """
    width, height = _detector_size(detector)
    blank = np.zeros((height, width, 3), np.uint8)
    t0 = time.perf_counter()
    gpu = on_gpu(list(getattr(detector, "providers", {}).values())
                 or [getattr(detector, "provider", "")])
    for count in dict.fromkeys((1, max(1, int(cameras)) if gpu else 1)):
        try:
            detector.detect([blank] * count)
        except Exception as exc:  # noqa: BLE001 - named, and configure fails on it
            raise _failed(getattr(detector, "model_name", "the detector"),
                          f"{count} blank {width}x{height} frame(s)", exc) from exc
    return time.perf_counter() - t0


def _detector_size(detector: Any) -> tuple[int, int]:
    """The (width, height) of the detector's network input (its first member's, for several;
    the wrapped detector's, for one pre-processing on the GPU)."""
    for member in (detector, *getattr(detector, "members", ())):
        for candidate in (member, getattr(member, "detector", None)):
            size = getattr(candidate, "input_size", None)
            if size is not None:
                return max(MIN_FRAME_PX, int(size[0])), max(MIN_FRAME_PX, int(size[1]))
    return 640, 480


def warm_up_driver(identifier: Any) -> float:
    """Run each model of the driver pipeline on blank input: YuNet on a minimal blank frame (on a
    GPU provider also one of ``face.max_side`` a side), the embedder, face mesh and iris models on
    zeros (a blank frame has no face to reach them).

    Returns:
        The seconds it took.

    Raises:
        ModelError: a model's warm-up raised, naming the model and the fix.
    """
    engine = identifier.engine
    others = [engine.embedder.model]
    attention = getattr(identifier, "attention", None)
    if attention is not None:
        others += list(attention.estimator.models)
    gpu = on_gpu([m.provider for m in [engine.detector.model, *others]])
    side = int(getattr(engine.detector, "max_side", 640)) if gpu else MIN_FRAME_PX
    t0 = time.perf_counter()
    for size in dict.fromkeys((MIN_FRAME_PX, side)):
        try:
            engine.detect(np.zeros((size, size, 3), np.uint8))
        except Exception as exc:  # noqa: BLE001 - named, and configure fails on it
            raise _failed("yunet", f"a blank {size}x{size} frame", exc) from exc
    for model in others:
        warm_up_model(model, None if gpu else (1,))
    return time.perf_counter() - t0


def warm_up_model(model: Any, batches: Sequence[int] | None = None) -> None:
    """Run ``model`` (an OnnxModel or OpenVinoModel) on zeros: batch 1, and 2 where its batch
    axis is free (the iris model's two eyes).

    Raises:
        ModelError: naming the model and the fix.
    """
    dynamic = bool(model.inputs) and model.inputs[0].shape[:1] == (None,)
    for batch in batches or ((1, 2) if dynamic else (1,)):
        feeds = {spec.name: np.zeros([batch if i == 0 and d is None else (d or 1)
                                      for i, d in enumerate(spec.shape)], spec.dtype)
                 for spec in model.inputs}
        try:
            model.run(feeds)
        except Exception as exc:  # noqa: BLE001 - named, and configure fails on it
            raise _failed(getattr(model, "name", "a model"), f"a blank input of batch {batch}",
                          exc) from exc


__all__ = ["FIX", "on_gpu", "warm_up_detector", "warm_up_driver", "warm_up_model"]
