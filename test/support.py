"""Small helpers shared by several test modules."""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class RawImage:
    """A plain dataclass with the fields of sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


def load_eval_recall() -> ModuleType:
    """tools/eval_recall.py (a script, not a package module) loaded as a module."""
    if "eval_recall" in sys.modules:
        return sys.modules["eval_recall"]
    spec = importlib.util.spec_from_file_location("eval_recall", REPO / "tools" / "eval_recall.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_recall"] = module
    spec.loader.exec_module(module)
    return module
