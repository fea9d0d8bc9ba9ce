"""Generic conversion of the core's message-shaped dicts to rosbags message objects.

The core (:mod:`sense_perception.core.output.messages`) builds nested dicts with exactly the fields of the
ROS messages; this module walks the typestore's field definitions to turn them into rosbags
dataclasses, filling every field the dict leaves out with its ROS default (0, "", empty
sequence, zero array, or the default its .msg declares: :data:`DECLARED_DEFAULTS`), as rclpy
message constructors do.

A value the dict does give is checked as strictly as rclpy checks it (and as
:mod:`sense_perception.ros.convert` does for the live nodes), never coerced: an int field takes an
int in its type's range (``sec=1.9`` is refused, not truncated), a float field a number (a float32
one within float32's range), a string field a str (``frame_id=7`` is refused, not turned into
"7"), a bool field a bool, an array its exact length, a bounded sequence or string at most its
bound. So a shaping bug fails in the replay as it would fail in a node, naming the field. The
error messages are the ROS converter's, word for word (test/converter_cases.py holds the cases
both are tested with).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys.store import Typestore

from ..core.output import field_values
from ..core.output.field_values import FieldValueError, int_range
from ..errors import BagError

# rosbags' name of each primitive -> numpy dtype inside arrays and sequences, as rosbags'
# deserialiser produces them (``byte`` is rclpy's octet: one byte, stored signed by rosbags).
_NP_DTYPES = {"bool": np.bool_, "byte": np.int8, "char": np.uint8, "float32": np.float32,
              "float64": np.float64, "int8": np.int8, "int16": np.int16, "int32": np.int32,
              "int64": np.int64, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
              "uint64": np.uint64}
_STRING_TYPES = {"string", "wstring"}
# Integer fields and the values rclpy lets into them (``char`` is a uint8 in ROS 2 messages).
_INT_RANGE = {name: int_range(dtype) for name, dtype in _NP_DTYPES.items()
              if np.issubdtype(dtype, np.integer) and name != "byte"}
# Fields whose .msg definition declares a default other than zero: rosbags' definitions drop
# declared defaults, rclpy's constructors apply them (a left-out orientation is the identity).
DECLARED_DEFAULTS: dict[str, dict[str, Any]] = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}

Converter = Callable[[Any, str], Any]


class _Missing:
    """A field the dict leaves out (it gets the ROS default; an explicit None does not)."""


MISSING = _Missing()


def _scalar(base: str, bound: int = 0) -> Converter:
    """Converter of one primitive field of rosbags type ``base`` (``bound``: a string's maximum
    length, 0 for none)."""
    if base in _STRING_TYPES:
        def string(value: Any, where: str) -> str:
            if value is MISSING:
                return ""
            if not isinstance(value, str):
                raise BagError(f"{where}: expected a str, got {value!r}")
            if bound and len(value) > bound:
                raise BagError(f"{where}: at most {bound} characters, got {len(value)}")
            return value
        return string
    if base == "bool":
        def boolean(value: Any, where: str) -> bool:
            if value is MISSING:
                return False
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            raise BagError(f"{where}: expected a bool, got {value!r}")
        return boolean
    if base == "byte":
        def octet(value: Any, where: str) -> int:
            if value is MISSING:
                return 0
            if isinstance(value, (bytes, bytearray)) and len(value) == 1:
                value = value[0]
            elif isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                    or not 0 <= value < 256:
                raise BagError(f"{where}: expected one byte, got {value!r}")
            return int(value) - 256 if value >= 128 else int(value)  # rosbags stores it signed
        return octet
    if base in _INT_RANGE:
        lo, hi = _INT_RANGE[base]

        def integer(value: Any, where: str) -> int:
            if value is MISSING:
                return 0
            try:
                return field_values.integer(value, base, lo, hi)
            except FieldValueError as exc:
                raise BagError(f"{where}: {exc}") from None
        return integer
    if base in ("float32", "float64"):
        single = base == "float32"

        def real(value: Any, where: str) -> float:
            if value is MISSING:
                return 0.0
            try:
                return field_values.real(value, base, single)
            except FieldValueError as exc:
                raise BagError(f"{where}: {exc}") from None
        return real
    raise BagError(f"primitive type '{base}' is not supported by the message converter")


def _check_len(n: int, length: int | None, bound: int, where: str) -> None:
    if length is not None and n != length:
        raise BagError(f"{where}: needs exactly {length} values, got {n}")
    if bound and n > bound:
        raise BagError(f"{where}: at most {bound} values, got {n}")


def _items(value: Any, where: str) -> list:
    """The elements of a list-like field value; refuses what rclpy would not iterate as one."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise BagError(f"{where}: expected a list, got {type(value).__name__}")
    return list(value)


def _primitive_array(base: str, length: int | None, bound: int = 0) -> Converter:
    """Converter of an array (``length``) or sequence (``bound``: its maximum size, 0 for none)
    of primitives."""
    if base in _STRING_TYPES or base in ("bool", "byte"):
        element = _scalar(base)  # rclpy takes these element by element, from a list
        default: Any = {"bool": False, "byte": 0}.get(base, "")

        def elements(value: Any, where: str) -> list:
            if value is MISSING:
                return [default] * (length or 0)
            items = [element(v, f"{where}[{i}]") for i, v in enumerate(_items(value, where))]
            _check_len(len(items), length, bound, where)
            return items
        return elements if base in _STRING_TYPES else _as_array(elements, _NP_DTYPES[base])
    dtype = np.dtype(_NP_DTYPES[base])

    def numbers(value: Any, where: str) -> np.ndarray:
        if value is MISSING:
            return np.zeros((length or 0,), dtype)
        if isinstance(value, (bytes, bytearray, memoryview)) and base in ("uint8", "char"):
            arr = np.frombuffer(memoryview(value).cast("B"), np.uint8)
        else:
            try:
                arr = field_values.numbers(value, dtype, base)
            except FieldValueError as exc:
                raise BagError(f"{where}: {exc}") from exc.__cause__
        _check_len(arr.size, length, bound, where)
        # A copy: the message must not alias (or be changed through) the caller's buffer.
        return np.array(arr.reshape(-1), dtype=dtype)

    return numbers


def _as_array(convert: Converter, dtype: Any) -> Converter:
    return lambda value, where: np.asarray(convert(value, where), dtype=dtype)


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
                wrong type, range or length; the message names the offending field
                (``vision_msgs/msg/Detection2DArray.detections[3].bbox.size_x``).
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
        short = msgtype.rsplit("/", 1)[-1]
        # Nested converters resolve lazily: a type may be referenced before its plan is built.
        converters = [self._field(desc) for _, desc in fields]
        known = frozenset(names)
        declared = DECLARED_DEFAULTS.get(msgtype, {})

        def convert(value: Any, where: str) -> Any:
            if getattr(value, "__msgtype__", None) == msgtype:
                return value
            if value is None or value is MISSING:
                value = {}
            if not isinstance(value, dict):
                raise BagError(f"{where}: expected a dict for {msgtype}, got {type(value).__name__}")
            for key in value.keys() - known:
                raise BagError(f"{where}: '{key}' is not a field of {short}; fields: "
                               f"{', '.join(names)}")
            return cls(*[conv(value.get(name, declared.get(name, MISSING)), f"{where}.{name}")
                         for name, conv in zip(names, converters, strict=True)])

        return convert

    def _field(self, desc: Any) -> Converter:
        kind, rest = desc
        if kind == Nodetype.BASE:
            return _scalar(rest[0], rest[1])
        if kind == Nodetype.NAME:
            def named(value: Any, where: str, name: str = rest) -> Any:
                return self._named(name)(value, where)
            return named
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_kind, sub_rest), count = rest
            length = count if kind == Nodetype.ARRAY else None
            bound = count if kind == Nodetype.SEQUENCE else 0
            if sub_kind == Nodetype.BASE:
                return _primitive_array(sub_rest[0], length, bound)

            def messages(value: Any, where: str, name: str = sub_rest) -> list:
                items = [None] * (length or 0) if value is MISSING else _items(value, where)
                element = self._named(name)
                out = [element(item, f"{where}[{i}]") for i, item in enumerate(items)]
                _check_len(len(out), length, bound, where)
                return out

            return messages
        raise BagError(f"field kind {kind} is not supported by the message converter")
