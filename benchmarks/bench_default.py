"""default_over_picodet and default_fps_1080p: the cost of the default detector; quality_over_default
and quality_fps_1080p: the cost of the ``quality`` overlay (config/quality.yaml: PicoDet on tiles of
the horizon band too, for far vehicles); original_over_default: the default with the specialist's
original weights (``runtime.openvino_int8: false``) over the default's 8-bit form;
recheck_over_without: the default over the same detector without the nested-box re-check on a crop
(``detector.duplicates.nested_recheck_crops: 0``, the default before 6 December 2026).

The default detector is what a user who changes nothing runs (``build_detector`` with the shipped
defaults): PP-PicoDet-S on the whole frame plus the pedestrian specialist on the horizon band
(OpenVINO where no GPU provider exists). Both it and PicoDet-S alone (``pedestrian_model: none``;
the model alone, no re-check on crops either) run the object_detector node's per-frame path (rgb8
``Image`` -> zero-copy view -> detect -> Detection2DArray) on the same 1920x1080 frames,
interleaved round by round; the ratio is the median of per-round ratios, the frame rate is that
of one camera fed back to back.
"""
from __future__ import annotations

from typing import Any

from .bench_pipeline import Pipeline, ros_messages
from .common import Inputs, load, side_by_side


def run(inputs: Inputs, rounds: int, calls: int) -> dict[str, Any]:
    """Measure the default detector against PicoDet-S alone on the 1080p input frames."""
    from sense_perception.config import bundled_config, load_params
    from sense_perception.core.detection.detector_setup import build_detector

    cpu = {"runtime.providers": ["CPUExecutionProvider"]}
    no_recheck = {"detector.duplicates.nested_recheck_crops": 0}
    default, picodet, without, original, quality = load(lambda: (
        build_detector(cpu, "benchmark"),
        build_detector({**cpu, **no_recheck, "detector.pedestrian_model": "none"}, "benchmark"),
        build_detector({**cpu, **no_recheck}, "benchmark"),
        build_detector({**cpu, "runtime.openvino_int8": False}, "benchmark"),
        build_detector({**load_params(bundled_config("quality"), "object_detector"), **cpu},
                       "config/quality.yaml")), "the detectors' models")
    full_hd = [im for im in inputs.images if im.shape[:2] == (1080, 1920)]
    msgs = ros_messages(full_hd)
    n = len(msgs)
    paths = {"default": Pipeline(default, tracking=False), "picodet": Pipeline(picodet, tracking=False),
             "quality": Pipeline(quality, tracking=False),
             "original": Pipeline(original, tracking=False),
             "without": Pipeline(without, tracking=False)}
    result = side_by_side({name: (lambda i, p=p: p(msgs[i % n], i * 0.1)) for name, p in paths.items()},
                          rounds, calls)
    default_ms = result.median_ms("default")
    return {
        "default_over_picodet": round(result.ratio("default", "picodet"), 4),
        "default_fps_1080p": round(1000.0 / default_ms, 2),
        "quality_over_default": round(result.ratio("quality", "default"), 4),
        "quality_fps_1080p": round(1000.0 / result.median_ms("quality"), 2),
        "original_over_default": round(result.ratio("original", "default"), 4),
        "recheck_over_without": round(result.ratio("default", "without"), 4),
        "detail": {
            "what": ("per frame of one 1920x1080 camera: sensor_msgs/Image rgb8 -> decode_view -> "
                     "detect -> Detection2DArray, with the default detector (PicoDet-S + "
                     "person-detection-0203 on the horizon band) and with PicoDet-S alone "
                     "(detector.pedestrian_model: none), interleaved; ratio = median of per-round "
                     "ratios, frames/s = 1000 / the default's median ms"),
            "models": default.model_name,
            "providers": default.providers,
            "frames": len(full_hd),
            "default_ms": round(default_ms, 3),
            "picodet_ms": round(result.median_ms("picodet"), 3),
            "quality_ms": round(result.median_ms("quality"), 3),
            "original_ms": round(result.median_ms("original"), 3),
            "without_recheck_ms": round(result.median_ms("without"), 3),
            "ratio_iqr": [round(x, 4) for x in result.ratio_spread("default", "picodet")],
            "stage_mean_ms": {name: p.mean_stage_ms() for name, p in paths.items()},
            "timing": result.summary(),
        },
    }
