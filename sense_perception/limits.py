"""Limits on settings that more than one package declares: one number each, imported by the
ONNX Runtime sessions (``runtime.*``) and the driver's attention networks (``attention.*``) alike,
so neither package reaches into the other for it."""
from __future__ import annotations

#: Most threads per operator a setting may ask for: 2**62 reached onnxruntime as a multi-line
#: pybind11 error naming no parameter.
MAX_THREADS = 256

__all__ = ["MAX_THREADS"]
