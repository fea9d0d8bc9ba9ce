"""Generic conversion of the core's message-shaped dicts to rclpy message objects.

The core (:mod:`sense_perception.core.output.messages`) builds nested dicts with exactly the fields of the ROS
messages. :func:`to_msg` walks the rclpy message class's own field types (``SLOT_TYPES``, the rosidl
definitions the class was generated from) and builds the message, so one converter serves every type
and a dict that does not fit its type fails here, naming the field, instead of inside the middleware.

Values are coerced to exactly the Python types rclpy's C serialiser expects (Jazzy skips the field
checks unless ``ROS_PYTHON_CHECK_FIELDS=1``): numeric arrays become numpy arrays of the field's dtype,
numeric sequences ``array.array`` with its type code (byte buffers are copied once, not per element).
Fields the dict leaves out keep the message's defaults.
"""
from __future__ import annotations

import array
import importlib
import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rosidl_parser import definition as idl

from ..core.output import field_values
from ..core.output.field_values import FieldValueError, int_range
from ..errors import SensePerceptionError

Converter = Callable[[Any, str], Any]

# rosidl basic type -> (array.array type code, numpy dtype)
_NUMERIC: dict[str, tuple[str, type]] = {
    "float": ("f", np.float32), "double": ("d", np.float64), "long double": ("d", np.float64),
    "int8": ("b", np.int8), "uint8": ("B", np.uint8), "int16": ("h", np.int16),
    "uint16": ("H", np.uint16), "int32": ("i", np.int32), "uint32": ("I", np.uint32),
    "int64": ("q", np.int64), "uint64": ("Q", np.uint64),
}
_INT_RANGE = {name: int_range(dt) for name, (_, dt) in _NUMERIC.items()
              if np.issubdtype(dt, np.integer)}


class MessageConversionError(SensePerceptionError):
    """A dict does not fit the ROS message type it is converted to (names the field path)."""


def to_msg(msg_class: type, value: Any) -> Any:
    """Build an rclpy message of ``msg_class`` from a nested dict (or pass a message through).

    Args:
        msg_class: generated rclpy message class, e.g. ``vision_msgs.msg.Detection2DArray``.
        value: dict with a subset of the message's fields, nested dicts/lists for nested messages.

    Raises:
        MessageConversionError: a key is not a field of the message, or a value has the wrong type
            or range; the message names the field path (``Detection2DArray.detections[3].bbox``).
    """
    return _plan(msg_class)(value, msg_class.__name__)


#: What a ROS 2 interface type name may be: a package (REP 144: lower case, digits, ``_``), its
#: interface kind and a type name (rosidl: upper-case first; ``_`` for the generated action and
#: service-event messages, ``Fibonacci_FeedbackMessage``).
_PACKAGE = re.compile(r"[a-z][a-z0-9_]*\Z")
_KINDS = ("msg", "srv", "action")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")


def msg_class(namespaced: str) -> type:
    """Import a message class by its ROS name, e.g. ``"vision_msgs/msg/Detection2DArray"``.

    The name may come from a bag (``replay --publish`` publishes every topic it holds), so only a
    ROS 2 interface package is ever imported: a name that is not ``pkg/msg/Type`` (``srv``,
    ``action`` too), or whose package is not one rosidl generated, is refused before any import.
    A bag naming ``idlelib/idle/X`` ran IDLE's ``main()`` (an editor window, the replay waiting on
    it), ``antigravity/msg/X`` opened a web browser.

    Raises:
        MessageConversionError: naming the type and what is wrong with it.
    """
    parts = namespaced.split("/")
    if len(parts) == 2:
        parts.insert(1, "msg")
    if len(parts) != 3:
        raise MessageConversionError(f"'{namespaced}' is not a message type name (pkg/msg/Type)")
    package, kind, name = parts
    if not (_PACKAGE.match(package) and kind in _KINDS and _TYPE_NAME.match(name)):
        raise MessageConversionError(
            f"{namespaced!r} is not a ROS 2 message type name (pkg/msg/Type: a package of lower-case "
            "letters, digits and '_', then msg, srv or action, then a type starting upper-case); "
            "nothing was imported for it")
    return _import((package, kind), name)


def _is_interface_package(package: str, kind: str) -> bool:
    """True when ``package`` is a ROS 2 interface package with a ``kind`` sub-package: rosidl puts
    ``<package>_s__rosidl_typesupport_c`` beside it. Looked up without importing anything (the
    spec of a top-level name is found, not executed)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return False
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        root = Path(folder)
        try:
            typesupport = any(child.name.startswith(f"{package}_s__rosidl_typesupport_c")
                              for child in root.iterdir())
        except OSError:
            continue
        if typesupport and (root / kind / "__init__.py").is_file():
            return True
    return False


@lru_cache(maxsize=None)
def _import(namespaces: tuple[str, ...], name: str) -> type:
    module = ".".join(namespaces)
    hint = ("build the ROS environment with `make ros-env` or source a ROS 2 install that has it")
    if not _is_interface_package(*namespaces):
        raise MessageConversionError(
            f"message type {module}.{name} cannot be imported ({namespaces[0]!r} is not an "
            f"installed ROS 2 interface package; nothing was imported for it); {hint}")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise MessageConversionError(
            f"message type {module}.{name} cannot be imported ({exc}); {hint}") from exc
    if not (isinstance(cls, type) and hasattr(cls, "get_fields_and_field_types")):
        raise MessageConversionError(f"{module}.{name} is not a ROS 2 message class")
    return cls


@lru_cache(maxsize=None)
def _plan(cls: type) -> Converter:
    # rosidl's generated classes carry these two, with no common base class to type them by.
    names = list(cls.get_fields_and_field_types())  # type: ignore[attr-defined]
    converters = [_field(t) for t in cls.SLOT_TYPES]  # type: ignore[attr-defined]
    table = dict(zip(names, converters, strict=True))

    def convert(value: Any, where: str) -> Any:
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise MessageConversionError(
                f"{where}: expected a dict for {cls.__module__}.{cls.__name__}, got {type(value).__name__}")
        kwargs = {}
        for key, item in value.items():
            conv = table.get(key)
            if conv is None:
                raise MessageConversionError(
                    f"{where}: '{key}' is not a field of {cls.__name__}; fields: {', '.join(names)}")
            kwargs[key] = conv(item, f"{where}.{key}")
        return cls(**kwargs)

    return convert


def _field(t: Any) -> Converter:
    if isinstance(t, idl.NamespacedType):
        return _nested(t)
    if isinstance(t, idl.AbstractGenericString):
        return _bounded_string(t.maximum_size) if t.has_maximum_size() else _string
    if isinstance(t, idl.BasicType):
        return _scalar(t.typename)
    if isinstance(t, idl.AbstractNestedType):
        return _collection(t)
    raise MessageConversionError(f"field type {t!r} is not supported by the message converter")


def _nested(t: idl.NamespacedType) -> Converter:
    # Resolved on first use: nested classes import lazily and may be referenced recursively.
    def convert(value: Any, where: str) -> Any:
        return _plan(_import(tuple(t.namespaces), t.name))(value, where)
    return convert


def _string(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise MessageConversionError(f"{where}: expected a str, got {value!r}")


def _bounded_string(bound: int) -> Converter:
    def string(value: Any, where: str) -> str:
        text = _string(value, where)
        if len(text) > bound:
            raise MessageConversionError(f"{where}: at most {bound} characters, got {len(text)}")
        return text
    return string


def _scalar(typename: str) -> Converter:
    if typename == "boolean":
        def boolean(value: Any, where: str) -> bool:
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            raise MessageConversionError(f"{where}: expected a bool, got {value!r}")
        return boolean
    if typename in _INT_RANGE:
        lo, hi = _INT_RANGE[typename]

        def integer(value: Any, where: str) -> int:
            try:
                return field_values.integer(value, typename, lo, hi)
            except FieldValueError as exc:
                raise MessageConversionError(f"{where}: {exc}") from None
        return integer
    if typename in _NUMERIC:
        single = typename == "float"

        def real(value: Any, where: str) -> float:
            try:
                return field_values.real(value, typename, single)
            except FieldValueError as exc:
                raise MessageConversionError(f"{where}: {exc}") from None
        return real
    if typename == "octet":
        def octet(value: Any, where: str) -> bytes:
            if isinstance(value, (bytes, bytearray)) and len(value) == 1:
                return bytes(value)
            if isinstance(value, int) and 0 <= value < 256:
                return bytes((value,))
            raise MessageConversionError(f"{where}: expected one byte, got {value!r}")
        return octet
    if typename in ("char", "wchar"):
        def char(value: Any, where: str) -> str:
            if isinstance(value, str) and len(value) == 1:
                return value
            raise MessageConversionError(f"{where}: expected a 1-character str, got {value!r}")
        return char
    raise MessageConversionError(f"basic type '{typename}' is not supported by the message converter")


def _collection(t: idl.AbstractNestedType) -> Converter:
    size = t.size if isinstance(t, idl.Array) else None
    limit = t.maximum_size if isinstance(t, idl.BoundedSequence) else None
    vt = t.value_type

    def check_len(n: int, where: str) -> None:
        if size is not None and n != size:
            raise MessageConversionError(f"{where}: needs exactly {size} values, got {n}")
        if limit is not None and n > limit:
            raise MessageConversionError(f"{where}: at most {limit} values, got {n}")

    if isinstance(vt, idl.BasicType) and vt.typename in _NUMERIC:
        code, dtype = _NUMERIC[vt.typename]

        def numbers(value: Any, where: str) -> Any:
            if isinstance(value, (bytes, bytearray, memoryview)) and code == "B":
                buf = memoryview(value).cast("B")
                check_len(buf.nbytes, where)
                if size is not None:
                    return np.frombuffer(buf, np.uint8).copy()
                out = array.array("B")
                out.frombytes(buf)  # one memcpy, not a per-byte Python loop
                return out
            try:
                arr = field_values.numbers(value, dtype, vt.typename)
            except FieldValueError as exc:
                raise MessageConversionError(f"{where}: {exc}") from exc.__cause__
            arr = np.ascontiguousarray(arr, dtype=dtype).reshape(-1)
            check_len(arr.size, where)
            if size is not None:
                return arr
            out = array.array(code)
            out.frombytes(arr.data.cast("B"))
            return out
        return numbers

    element = _field(vt)

    def items(value: Any, where: str) -> list:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise MessageConversionError(f"{where}: expected a list, got {type(value).__name__}")
        out = [element(v, f"{where}[{i}]") for i, v in enumerate(value)]
        check_len(len(out), where)
        return out
    return items
