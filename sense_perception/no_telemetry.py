"""Keep the runtimes' telemetry off: nothing about the car leaves the vehicle through a library.

onnxruntime 1.32 and later (official wheels, Linux included) start Microsoft's 1DS telemetry when
they are imported, unless ``ORT_DISABLE_TELEMETRY=1`` is set by then: it writes a persistent
device id and an offline event store under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``
(over 1 MB in six hours of test runs on a machine that cannot reach Microsoft) and uploads
process, session and model events (the OS, the Python executable's path) when it can. This module is
imported first by the package (``sense_perception/__init__.py``), before anything imports
onnxruntime, and sets the variable unless the user set it (``ORT_DISABLE_TELEMETRY=0`` keeps it
on). OpenVINO's telemetry is avoided where OpenVINO is imported
(:func:`sense_perception.core.runtime.openvino_session.import_openvino`).
"""
from __future__ import annotations

import os
import sys

ORT_VARIABLE = "ORT_DISABLE_TELEMETRY"


def keep_telemetry_off() -> None:
    """Set ``ORT_DISABLE_TELEMETRY=1`` unless given (empty counts as not given: onnxruntime
    reads it as telemetry on); if onnxruntime was imported before this
    package (too late for the variable), turn its telemetry events off through its API."""
    if not os.environ.get(ORT_VARIABLE, "").strip():  # unset or empty: onnxruntime's is on
        os.environ[ORT_VARIABLE] = "1"
    ort = sys.modules.get("onnxruntime")
    if ort is not None and os.environ[ORT_VARIABLE] == "1":
        disable = getattr(ort, "disable_telemetry_events", None)
        if callable(disable):
            disable()


keep_telemetry_off()
