"""Generic conversion of the core's message-shaped dicts to rosbags message objects.

The core (:mod:`sense_perception.core.output.messages`) builds nested dicts with exactly the fields of the
ROS messages; this module walks the typestore's field definitions to turn them into rosbags
dataclasses, filling every field the dict leaves out with its ROS default (0, "", empty
sequence, zero array), as rclpy message constructors do.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys.store import Typestore

from ..errors import BagError

_INT_TYPES = {"byte", "char", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_TYPES = {"float32", "float64"}
_STRING_TYPES = {"string", "wstring"}
# numpy dtype of each primitive inside arrays and sequences, as rosbags' deserialiser produces them
_NP_DTYPES = {"bool": np.bool_, "byte": np.int8, "char": np.uint8, "float32": np.float32,
              "float64": np.float64, "int8": np.int8, "int16": np.int16, "int32": np.int32,
              "int64": np.int64, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
              "uint64": np.uint64}

Converter = Callable[[Any, str], Any]


def _scalar(base: str) -> Converter:
    if base in _INT_TYPES:
        cast: Callable[[Any], Any] = int
    elif base in _FLOAT_TYPES:
        cast = float
    elif base in _STRING_TYPES:
        cast = str
    elif base == "bool":
        cast = bool
    else:
        raise BagError(f"primitive type '{base}' is not supported by the message converter")
    default = cast()

    def convert(value: Any, where: str) -> Any:
        if value is None:
            return default
        try:
            return cast(value)
        except (TypeError, ValueError) as exc:
            raise BagError(f"{where}: {value!r} is not a valid {base}") from exc

    return convert


def _primitive_array(base: str, length: int | None) -> Converter:
    if base in _STRING_TYPES:
        def strings(value: Any, where: str) -> Any:
            items = [str(v) for v in (value or [])]
            if length is not None and len(items) != length:
                if items:
                    raise BagError(f"{where}: needs exactly {length} values, got {len(items)}")
                items = [""] * length
            return items
        return strings
    dtype = _NP_DTYPES[base]

    def numbers(value: Any, where: str) -> Any:
        arr = np.zeros((0,), dtype) if value is None else np.asarray(value, dtype=dtype).reshape(-1)
        if length is not None:
            if arr.size == 0:
                return np.zeros((length,), dtype)
            if arr.size != length:
                raise BagError(f"{where}: needs exactly {length} values, got {arr.size}")
        return arr

    return numbers


class MessageConverter:
    """Build rosbags messages of any type in ``store`` from nested dicts.

    Args:
        store: typestore that knows every type to be converted.
    """

    def __init__(self, store: Typestore) -> None:
        self.store = store
        self._plan = lru_cache(maxsize=None)(self._make_plan)

    def __call__(self, msgtype: str, value: Any) -> Any:
        """Return the rosbags message of ``msgtype`` for the dict ``value`` (or pass a message through).

        Raises:
            BagError: the type is unknown, a key is not a field of the message, or a value has the
                wrong type; the message names the offending field.
        """
        return self._named(msgtype)(value, msgtype)

    def _named(self, msgtype: str) -> Converter:
        return self._plan(msgtype)

    def _make_plan(self, msgtype: str) -> Converter:
        if msgtype not in self.store.fielddefs:
            raise BagError(f"message type '{msgtype}' is not in the typestore; register its definition")
        cls = self.store.types[msgtype]
        fields = self.store.fielddefs[msgtype][1]
        names = [name for name, _ in fields]
        # Nested converters resolve lazily: a type may be referenced before its plan is built.
        converters = [self._field(desc) for _, desc in fields]
        known = frozenset(names)

        def convert(value: Any, where: str) -> Any:
            if getattr(value, "__msgtype__", None) == msgtype:
                return value
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise BagError(f"{where}: expected a mapping for {msgtype}, got {type(value).__name__}")
            if extra := value.keys() - known:
                raise BagError(f"{where}: {sorted(extra)} not fields of {msgtype}; valid: {names}")
            return cls(*[conv(value.get(name), f"{where}.{name}") for name, conv in zip(names, converters)])

        return convert

    def _field(self, desc: Any) -> Converter:
        kind, rest = desc
        if kind == Nodetype.BASE:
            return _scalar(rest[0])
        if kind == Nodetype.NAME:
            return lambda value, where, name=rest: self._named(name)(value, where)
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_kind, sub_rest), count = rest
            length = count if kind == Nodetype.ARRAY else None
            if sub_kind == Nodetype.BASE:
                return _primitive_array(sub_rest[0], length)

            def messages(value: Any, where: str, name: str = sub_rest) -> list:
                items = list(value or [])
                if length is not None and len(items) != length:
                    if items:
                        raise BagError(f"{where}: needs exactly {length} items, got {len(items)}")
                    items = [None] * length
                element = self._named(name)
                return [element(item, f"{where}[{i}]") for i, item in enumerate(items)]

            return messages
        raise BagError(f"field kind {kind} is not supported by the message converter")
