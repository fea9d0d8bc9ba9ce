"""The pipeline-specific key/values of a ``/diagnostics`` status, shared by the nodes and the replay
(ROS-free), so a live graph and a replayed bag carry the same keys.

Each status is :meth:`~sense_perception.core.health.stats.HealthStats.report` of the pipeline's
counters with these values first: :func:`detector_values` for object_detector, :func:`driver_values`
for driver_monitor.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ...face.results import attention_values, state_name
from .messages import OK, WARN

if TYPE_CHECKING:
    from ..detection.interface import Detector


def detector_values(detector: Detector | None, trackers: Any = None) -> dict[str, Any]:
    """The object detector's model, providers, pre-processing device, batching and tracking."""
    d = detector
    if d is None:
        return {}
    extra = {"model": d.model_name, "provider": d.provider,
             "preprocess": d.preprocess_device, "labels": len(d.label_names),
             "batching": "on" if d.batch_dynamic else "off",
             "tracking": "on" if trackers is not None else "off"}
    if len(d.providers) > 1:  # several models: each one's provider
        extra.update({f"provider[{model}]": p for model, p in d.providers.items()})
    members = getattr(d, "members", [d])  # a MultiModelDetector's models, or the one
    int8 = [m.model_name for m in members if getattr(m, "int8", False)]
    if int8:  # runtime.openvino_int8: which models run 8-bit weights
        extra["int8"] = ", ".join(int8)
    if d.fallback_reasons:
        extra["provider_fallback"] = " | ".join(d.fallback_reasons)
    return extra


def detector_hardware_id(detector: Detector | None) -> str:
    """What the object_detector status is about: the detector's execution provider."""
    return detector.provider if detector is not None else ""


def driver_models(identifier: Any) -> list[Any]:
    """Every model of the driver pipeline (face detector, embedder, attention models)."""
    engine = getattr(identifier, "engine", None)
    attention = getattr(identifier, "attention", None)
    models = [m.model for m in (getattr(engine, "detector", None), getattr(engine, "embedder", None))
              if m is not None and hasattr(m, "model")]
    return models + (attention.estimator.models if attention is not None else [])


def driver_hardware_id(identifier: Any) -> str:
    """What the driver_monitor status is about: its first model's execution provider."""
    models = driver_models(identifier)
    return models[0].provider if models else ""


def driver_last(result: Any) -> dict[str, Any]:
    """The driver state of the latest frame, as :func:`driver_values` shows it.

    No display name: diagnostics are broadcast; the pseudonymous id is enough.
    """
    return {"driver_state": state_name(result), "driver_id": result.driver_id or "",
            "driver_score": f"{result.score:.3f}" if math.isfinite(result.score) else "n/a",
            "driver_reason": result.reason, "faces": len(result.faces.boxes)}


def driver_values(identifier: Any, last: dict[str, Any] | None,
                  last_attention: Any = None) -> dict[str, Any]:
    """The driver pipeline's gallery size, providers, latest driver state and attention.

    Args:
        identifier: the :class:`~sense_perception.face.pipeline.DriverIdentifier`.
        last: :func:`driver_last` of the latest frame; None before the first.
        last_attention: the latest frame's attention result; None before the first.
    """
    if identifier is None:
        return {}
    extra: dict[str, Any] = {"enrolled_drivers": len(identifier.index)}
    if identifier.gallery_error:  # a failed re-read: identity goes on with the old gallery
        extra["gallery_error"] = identifier.gallery_error
    for model in driver_models(identifier):
        extra[f"provider[{model.name}]"] = model.provider
        if model.fallback_reasons:
            extra[f"provider_fallback[{model.name}]"] = " | ".join(model.fallback_reasons)
    extra.update(last or {"driver_state": "waiting for the first frame"})
    attention = identifier.attention
    if attention is not None:
        if last_attention is not None:
            extra.update(attention_values(last_attention))
        else:
            extra["attention_state"] = "waiting for the first frame"
        if attention.intrinsics is not None:  # a CameraInfo may arrive between frames
            extra["intrinsics"] = attention.intrinsics.source
        if attention.camera_info_error:
            extra["camera_info_error"] = attention.camera_info_error
    return extra


def camera_values(health: Any) -> dict[str, Any]:
    """``camera_faults``: the node's cameras in ERROR with their conditions ("none"); {} without
    camera health (a :class:`~sense_perception.core.health.camera_health.CameraHealthBank`)."""
    if health is None:
        return {}
    return {"camera_faults": health.fault_text() or "none"}


def name_camera_faults(status: dict[str, Any], health: Any) -> dict[str, Any]:
    """A node's status that also names its cameras in ERROR: at least WARN (its outputs keep
    flowing, but a camera cannot be trusted), the cameras and conditions in the message.
    ``health``: the bank, or its :meth:`fault_text` already taken (``CameraHealthBank.report``)."""
    if isinstance(health, str):
        faults = health
    else:
        faults = health.fault_text() if health is not None else ""
    if faults:
        # an OK status's message is "ok": "ok; camera fault: ..." read as fine to a log grep
        before = [] if int(status["level"]) == OK else [status["message"]]
        status["level"] = max(int(status["level"]), WARN)
        status["message"] = "; ".join(before + [f"camera fault: {faults}"])
    return status


def driver_warnings(identifier: Any) -> list[str]:
    """What makes driver_monitor's status at least WARN although its frames go on: a failed
    gallery re-read (identity runs on the drivers loaded before) and a refused CameraInfo (head
    pose keeps the previous or default intrinsics)."""
    if identifier is None:
        return []
    warnings = []
    if identifier.gallery_error:
        warnings.append("gallery re-read failed, identity goes on with the drivers loaded before: "
                        f"{identifier.gallery_error}")
    attention = identifier.attention
    if attention is not None and attention.camera_info_error:
        warnings.append("CameraInfo refused, head pose keeps the previous or default intrinsics: "
                        f"{attention.camera_info_error}")
    return warnings


__all__ = ["camera_values", "name_camera_faults", "detector_hardware_id", "detector_values",
           "driver_hardware_id", "driver_last", "driver_models", "driver_values", "driver_warnings"]
