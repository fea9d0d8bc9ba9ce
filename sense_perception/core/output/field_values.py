"""What a message field takes, as rclpy checks it: the rules both dict -> message converters apply
(ROS-free).

The nodes' converter (:mod:`sense_perception.ros.convert`, to rclpy messages) and the replay's
(:mod:`sense_perception.replay.to_rosbags`, to rosbags messages) walk different type descriptions,
but a value must pass the same checks in both, so that a shaping bug fails in a replay as it would
in a node, in the same words (test/converter_cases.py). The checks raise :class:`FieldValueError`
without the field's path; each converter adds it and raises its own error.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: rclpy's bound for float32 fields (inf and nan pass).
FLOAT32_MAX = 3.402823466e+38


class FieldValueError(ValueError):
    """A value a field does not take; the message leaves out the field's path."""


def int_range(dtype: Any) -> tuple[int, int]:
    """The values an integer field of numpy ``dtype`` takes."""
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def float32_ok(number: float) -> bool:
    """Whether a float32 field takes ``number`` (any non-finite number passes, as in rclpy)."""
    return not math.isfinite(number) or -FLOAT32_MAX <= number <= FLOAT32_MAX


def integer(value: Any, typename: str, low: int, high: int) -> int:
    """``value`` for an integer field of type ``typename`` (``low`` to ``high``): an int (numpy's
    too), never a bool or a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise FieldValueError(f"expected an int ({typename}), got {value!r}")
    if not low <= value <= high:
        raise FieldValueError(f"{value} is out of range for {typename} [{low}, {high}]")
    return int(value)


def real(value: Any, typename: str, single: bool) -> float:
    """``value`` for a float field of type ``typename`` (``single``: float32, within its range):
    any number but a bool."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise FieldValueError(f"expected a number ({typename}), got {value!r}")
    number = float(value)
    if single and not float32_ok(number):
        raise FieldValueError(f"{value} is out of range for float32")
    return number


def numbers(value: Any, dtype: Any, typename: str) -> np.ndarray:
    """``value`` (a list, a numpy array...) as a flat array of numbers a numeric array field of
    numpy ``dtype`` takes; not yet of that dtype (the converters cast and copy as they need).

    Refused: anything but bools, ints and floats, a nested list (a multi-dimensional array only of
    the field's own dtype), floats for an integer field, an integer out of its range, and a finite
    number beyond float32's range for a float32 field.
    """
    dtype = np.dtype(dtype)
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf" or (arr.ndim > 1 and arr.dtype != dtype):
            raise TypeError(f"dtype {arr.dtype}, shape {arr.shape}")
        if arr.dtype != dtype and np.issubdtype(dtype, np.integer) and arr.size:
            if arr.dtype.kind == "f":
                raise TypeError("floats for an integer field")
            low, high = int_range(dtype)
            if arr.min() < low or arr.max() > high:
                raise ValueError(f"values outside [{low}, {high}]")
        if dtype == np.float32 and arr.dtype != dtype and arr.size:
            finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
            if finite.size and np.abs(finite).max() > FLOAT32_MAX:
                raise ValueError("values outside float32's range")
    except (TypeError, ValueError) as exc:
        raise FieldValueError(f"expected numbers ({typename}), got "
                              f"{type(value).__name__}: {exc}") from exc
    return arr


__all__ = ["FLOAT32_MAX", "FieldValueError", "float32_ok", "int_range", "integer", "numbers", "real"]
