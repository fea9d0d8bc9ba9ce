"""Configuration: the ROS 2 parameter YAML the nodes use, read without ROS for the CLI and replay.

Files have the usual ROS 2 layout::

    object_detector:
      ros__parameters:
        score_threshold: 0.35
        tiling:
          mode: horizon_bands

or the plain form, the settings without the node wrapper (``detector: {score_threshold: 0.5}``),
which configures every node that reads them. A first line ``# base: perception.yaml`` makes a
file an overlay (config/carla.yaml and config/awsim.yaml are). :func:`load_params` reads all of
them for every command, the launch files and ``sense-perception run``.

Nested keys flatten to dotted names (``tiling.mode``), as ROS 2 parameters do. Each component
declares a dataclass of its settings (field metadata: ``description``, ``range``);
:func:`node_schema` lists every parameter of a node from them, :func:`check_names` refuses names
no node reads, and :func:`section_from_params` fills a dataclass, rejecting wrong types with a
:class:`ConfigError` that names the key and the file.
"""
from __future__ import annotations

import contextvars
import dataclasses
import difflib
import math
import re
import reprlib
import sys
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .core.output.topics import private_as_relative
from .bounded_yaml import MAX_YAML_BYTES, YamlLimitError, parse_bounded, yaml_problem
from .errors import ConfigError
from .fileio import NotRegularFileError, read_regular_file

T = TypeVar("T")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys, as ROS 2 does with nested parameters."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _nest(tree: dict[Any, Any], source: str | Path) -> dict[Any, Any]:
    """``tree`` with its dotted keys written out as nested mappings (``detector.score_threshold: 1``
    -> ``detector: {score_threshold: 1}``), so that each setting has one place in the file and an
    overlay's dotted key replaces its base's nested one.

    Raises:
        ConfigError: a setting given twice in the file (dotted and nested: the second silently
            won), or a name that is both a value and a group of settings.
    """
    out: dict[Any, Any] = {}
    for key, value in tree.items():
        _insert(out, _parts(key), value, (), source)
    return out


def _parts(key: Any) -> list[Any]:
    return key.split(".") if isinstance(key, str) else [key]


def _insert(node: dict[Any, Any], parts: list[Any], value: Any, path: tuple[Any, ...],
            source: str | Path) -> None:
    """Put ``value`` at ``parts`` under ``node`` (at ``path`` of the file), refusing a second value."""
    for i, part in enumerate(parts):
        path = (*path, part)
        last = i == len(parts) - 1
        if last and not isinstance(value, dict):
            if part in node:
                raise _given_twice(path, source)
            node[part] = value
            return
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise _given_twice(path, source)
        node = child
    for key, item in value.items():
        _insert(node, _parts(key), item, path, source)


def _given_twice(path: tuple[Any, ...], source: str | Path) -> ConfigError:
    return ConfigError(f"config file {source}: '{'.'.join(map(str, path))}' is given twice (as a "
                       "dotted name and nested, or as a value and as a group of settings); keep one")


#: Parameter files shipped in config/ (and installed to share/sense_perception/config/), by name.
BUNDLED_CONFIGS = ("perception", "carla", "awsim", "autoware", "quality")


def bundled_config(name: str) -> Path:
    """Path of the bundled parameter file ``name`` (``carla`` -> ``config/carla.yaml``).

    Looked up in the ROS 2 package's share directory (ament index), then the pip install's
    ``<prefix>/share/sense_perception/config``, then the source tree.

    Raises:
        ConfigError: ``name`` is not bundled, or its file is in none of those places.
    """
    if name not in BUNDLED_CONFIGS:
        raise ConfigError(f"no bundled config named {name!r}; bundled: {', '.join(BUNDLED_CONFIGS)} "
                          "(or give the path of a YAML file)")
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("sense_perception")) / "config")
    except Exception:  # noqa: BLE001  not a ROS install (or the package is not in its index)
        pass
    candidates += [Path(sys.prefix) / "share" / "sense_perception" / "config",
                   Path(__file__).resolve().parents[1] / "config"]
    for folder in candidates:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    raise ConfigError(f"bundled config {name}.yaml not found in {', '.join(map(str, candidates))}; "
                      "reinstall the package or give the path of a YAML file")


def resolve_config(value: str | Path) -> Path:
    """A ``--config`` / ``config:=`` value as a file: a bundled name (``carla`` or ``carla.yaml``,
    as a ``# base:`` line names it) or a path.

    A name wins only when no file of that name exists in the working directory, so a path that
    happens to be called ``carla`` still works.

    Raises:
        ConfigError: an unknown bare name that is no existing file either.
    """
    text = str(value)
    if not text.strip():  # Path("") is the working directory
        raise ConfigError(f"config {text!r} is empty; give the path of a YAML file or a bundled "
                          f"config ({', '.join(BUNDLED_CONFIGS)})")
    path = Path(text)
    # `carla` or `carla.yaml`, as a `# base:` line takes it (`config:=carla.yaml` was a missing file)
    stem = text[:-len(".yaml")] if text.endswith(".yaml") else text
    if stem in BUNDLED_CONFIGS and not path.exists():
        return bundled_config(stem)
    if not path.exists() and "/" not in text and not path.suffix:
        raise ConfigError(f"config {text!r} is neither a file nor a bundled config "
                          f"({', '.join(BUNDLED_CONFIGS)})")
    return path


#: A first line ``# base: NAME`` makes a file an overlay: NAME (a bundled config such as
#: ``perception``, or a path relative to the file) is read first and the file's keys replace its.
BASE_DIRECTIVE = re.compile(r"#\s*base:\s*(\S+)\s*$")

#: How a wrong value is shown in an error: abbreviated, since YAML aliases can nest a list of
#: lists that a full repr would take hours (and gigabytes) to print.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring = 2, 4, 4, 60

#: A parameter file is a few kB (config/perception.yaml, every parameter with its comment: 34 kB);
#: a bigger one is refused rather than parsed (PyYAML reads about 170 kB/s of short keys).
MAX_CONFIG_BYTES = MAX_YAML_BYTES
#: Most parameters (mapping entries, counted through YAML aliases) and mapping levels a file may
#: expand to: a node has about 300. Aliases can make a few hundred bytes flatten to millions.
MAX_CONFIG_ENTRIES = 10_000
MAX_CONFIG_DEPTH = 32
#: Most ``# base:`` files one overlay may stand on (the bundled overlays stand on one).
MAX_CONFIG_BASES = 16


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing a key given twice in one mapping (YAML forbids it; PyYAML
    kept the last value, silently dropping the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' may repeat what it merges
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # unhashable: PyYAML's own error names it
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"found duplicate key {key!r} (first at line {first.line + 1}); "
                    "keep one", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _limit_message(exc: YamlLimitError, name_of: str) -> str:
    """The config loader's words for a file over a :mod:`.bounded_yaml` bound."""
    if exc.kind == "entries":
        return (f"{name_of} expands to more than {MAX_CONFIG_ENTRIES} parameters (YAML aliases "
                "repeating mappings?); a node has a few hundred: give each setting once")
    if exc.kind == "recursion":
        return f"{name_of}: YAML nested too deeply (thousands of levels); a parameter file needs a few"
    return (f"{name_of}: mappings nested too deeply (more than {MAX_CONFIG_DEPTH} levels); a "
            "parameter file needs a few")


def read_config(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML document of ``path`` with its ``# base:`` file (if any) merged under it, dotted
    keys written out as nested mappings.

    Raises:
        ConfigError: the file (or its base) cannot be read, is not YAML or not a mapping, gives a
            key twice, expands to too many parameters or levels, or the bases form a cycle.
    """
    path = Path(path)
    # Named as the base of the overlay that names it, so the user knows which '# base:' to fix.
    name_of = f"config file {path}" + (f" (the '# base:' of {_seen[-1]})" if _seen else "")
    try:  # a FIFO or /dev/zero given as --config is refused, never waited on or read without end
        # utf-8-sig: a byte order mark (Windows editors write one) hid a '# base:' first line.
        text = read_regular_file(path, MAX_CONFIG_BYTES).decode("utf-8-sig")
    except NotRegularFileError as exc:
        raise ConfigError(f"{name_of} cannot be read: {exc}; give a YAML parameter file") from None
    except OSError as exc:
        raise ConfigError(f"{name_of} cannot be read: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name_of} is not UTF-8 text (byte {exc.start}: "
                          f"{exc.object[exc.start:exc.start + 1]!r}); give a YAML parameter "
                          "file") from exc
    try:  # mappings counted through aliases before anything walks the document whole
        doc = parse_bounded(text, _UniqueKeyLoader, MAX_CONFIG_ENTRIES, MAX_CONFIG_DEPTH) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name_of} is not valid YAML: {yaml_problem(exc)}") from exc
    except YamlLimitError as exc:
        raise ConfigError(_limit_message(exc, name_of)) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{name_of}: the top level must be a mapping (node names to "
                          "ros__parameters, or the settings themselves: detector: {...})")
    doc = _nest(doc, path)
    lines = text.lstrip().splitlines()
    later = next((n for n, line in enumerate(lines[1:], 2) if BASE_DIRECTIVE.match(line.strip())),
                 None)
    if later is not None:  # a comment there, so the base was silently not read
        raise ConfigError(f"{name_of}: a '# base:' line is read only as the file's first line (it "
                          f"is line {later} of the text); move it there")
    match = BASE_DIRECTIVE.match(lines[0]) if lines else None
    if not match:
        return doc
    name = match.group(1)
    # a bundled set-up by name, `carla` or `carla.yaml` (as the bundled overlays write it), unless
    # a file of that name lies beside the overlay
    stem = name[:-len(".yaml")] if name.endswith(".yaml") else name
    base = (bundled_config(stem) if stem in BUNDLED_CONFIGS and not (path.parent / name).exists()
            else path.parent / name)
    if base.resolve() in _seen or base.resolve() == path.resolve():
        raise ConfigError(f"config file {path}: '# base: {name}' leads back to itself")
    if len(_seen) >= MAX_CONFIG_BASES:  # each base is read within the one before it
        raise ConfigError(f"config file {path}: '# base: {name}' is more than {MAX_CONFIG_BASES} "
                          "overlays deep; let an overlay name the complete file it changes")
    return _overlay(read_config(base, (*_seen, path.resolve())), doc)


def _overlay(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """The overlay ``over`` merged over its ``# base:`` document ``base``.

    A parameter the overlay gives under ``/**`` (both nodes) replaces the base's value in every
    section, the base's node sections too: merged key by key, the base's ``object_detector``
    value still won over the overlay's ``/**`` one (a node's own section wins over ``/**``), so
    ``/**: use_sim_time: false`` over ``# base: carla`` left both nodes on simulation time, and
    the overlay's value went unused without a word.
    """
    # `/object_detector` and `object_detector` are one node (`ros2 param dump` writes the first,
    # the bundled files the second): an overlay's section goes over its base's of either spelling.
    # Kept apart, every setting both gave was refused as "given in both sections" of the overlay.
    over = {_twin(key) if key != "/**" and _twin(key) in base and key not in base
            and _twin(key) not in over else key: section for key, section in over.items()}
    shared = over.get("/**")
    params = shared.get("ros__parameters") if isinstance(shared, dict) else None
    if isinstance(params, dict) and params:
        names = set(flatten(params))
        base = {key: _without(section, names) if key != "/**" and _is_node_section(section)
                and isinstance(section["ros__parameters"], dict) else section
                for key, section in base.items()}
    return _merge(base, over)


def _twin(key: Any) -> Any:
    """The other spelling of a node section's name: ``/object_detector`` <-> ``object_detector``."""
    if not isinstance(key, str):
        return key
    return key[1:] if key.startswith("/") else f"/{key}"


def _without(section: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """A node section (``ros__parameters`` nested) without the parameters ``names`` (dotted)."""
    flat = flatten(section["ros__parameters"])
    kept = {name: value for name, value in flat.items() if name not in names}
    if len(kept) == len(flat):
        return section
    return {**section, "ros__parameters": _nest(kept, "")}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` deep-merged over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _is_node_section(value: Any) -> bool:
    return isinstance(value, dict) and "ros__parameters" in value


def load_params(path: str | Path | None, node_name: str, kind: str | None = None,
                check: bool = True, hand_over: bool = True) -> dict[str, Any]:
    """The flattened parameters of node ``node_name`` in a config file: the one loader of every
    command, the launch files and ``sense-perception run``.

    Two forms are read. The ROS 2 form (``object_detector: ros__parameters: {...}``) gives the
    node's own section merged over ``/**``. The plain form (no node sections: ``detector:
    {score_threshold: 0.5}``) holds the settings themselves; each node takes the keys it reads,
    so one plain file configures both nodes. A ``# base: NAME`` first line makes the file an
    overlay on NAME (see :func:`read_config`).

    Args:
        path: the config file; None gives an empty dict (the built-in defaults).
        node_name: the section to read (``--node-name`` of detect and eval).
        kind: which node's parameters these are (``object_detector`` or ``driver_monitor``);
            default ``node_name``.
        check: refuse unknown sections and names (see :func:`check_names`; names are checked
            only for the known node kinds); off only for tests that need a raw read.
        hand_over: give each node the other node's cameras of the file (below); off for
            ``run`` with both nodes, which hands them as the nodes take them, at each configure.

    Raises:
        ConfigError: unreadable file, a misplaced or unknown section, or an unknown parameter
            name (with the closest valid one).

    object_detector's ``cabin_camera_topic``, when the file does not give it, is the file's
    driver_monitor ``camera_topic``: the camera the detector must never take; driver_monitor's
    ``exterior_camera_topics`` the file's object_detector ``camera_topics``: the cameras face
    identification must never run on. A private name handed over is the other node's
    (:func:`~sense_perception.core.output.topics.private_as_relative`: driver_monitor's
    ``~/image_raw`` is ``driver_monitor/image_raw`` to object_detector), as rclpy resolves it.
    """
    if path is None:
        return {}
    kind = kind or node_name
    doc = read_config(path)  # read once: the cabin camera below comes from the same document
    params = _node_params(doc, path, node_name, kind, check)
    if kind == "object_detector" and "cabin_camera_topic" not in params and hand_over:
        # The cabin camera is named once, on driver_monitor; object_detector must never take it.
        cabin = _node_params(doc, path, "driver_monitor", "driver_monitor", False).get("camera_topic")
        if isinstance(cabin, str) and cabin:
            # as object_detector resolves driver_monitor's topic: `~/x` is driver_monitor's (R81)
            params["cabin_camera_topic"] = private_as_relative(cabin, "driver_monitor")
    if kind == "driver_monitor" and "exterior_camera_topics" not in params and hand_over:
        # ... and driver_monitor never identifies faces on a camera the file calls exterior (R40)
        exterior = _node_params(doc, path, "object_detector", "object_detector",
                                False).get("camera_topics")
        if isinstance(exterior, (list, tuple)) and exterior and \
                all(isinstance(t, str) for t in exterior):
            params["exterior_camera_topics"] = [private_as_relative(t, "object_detector")
                                                for t in exterior]
    return params


def _node_params(doc: dict[str, Any], path: str | Path, node_name: str, kind: str,
                 check: bool) -> dict[str, Any]:
    """:func:`load_params` of one node section of ``doc`` (the file ``path`` read), as it gives it."""
    checked = check and kind in NODE_KINDS
    if not any(k == "/**" or _is_node_section(v) for k, v in doc.items()):  # the plain form
        for name in NODE_KINDS:
            if name in doc or f"/{name}" in doc:
                raise ConfigError(f"'{name}' in {path} has no ros__parameters: write "
                                  f"{name}: ros__parameters: <its settings> (the ROS 2 form), or "
                                  "drop the node names (the plain form: detector: {...} at the top)")
        return _shared_params(flatten(doc), kind, str(path), checked)
    params: dict[str, Any] = {}
    own: dict[str, str] = {}  # node_name's parameters: the section that gave each
    valid = {"/**", *NODE_KINDS, node_name, *(f"/{n}" for n in (*NODE_KINDS, node_name))}
    for key, section in doc.items():
        if check and key not in valid:
            raise ConfigError(_misplaced_section(key, section, valid, path))
        if key not in valid:
            continue
        if not _is_node_section(section) or not isinstance(section["ros__parameters"], dict):
            raise ConfigError(f"config file {path}: '{key}' must contain a 'ros__parameters' "
                              "mapping")
        beside = [k for k in section if k != "ros__parameters"]
        if check and beside:  # ROS reads only ros__parameters: the rest was dropped unread
            raise ConfigError(f"'{beside[0]}' in section '{key}' of {path} is outside "
                              "ros__parameters; move it under ros__parameters")
        flat = flatten(section["ros__parameters"])
        name = key if key == "/**" else key.lstrip("/")
        if name == "/**":
            params = {**_shared_params(flat, kind, str(path), checked), **params}
        elif name == node_name:
            # object_detector and /object_detector are one node: a setting in both had the
            # later section's value, the other's silently dropped.
            twice = next((k for k in flat if k in own), None)
            if twice is not None:
                raise ConfigError(f"parameter '{twice}' is given in both '{own[twice]}' and "
                                  f"'{key}' sections of {path} (one node); keep one")
            own.update(dict.fromkeys(flat, key))
            params.update(flat)
        elif check and name in NODE_KINDS:  # the other node's section: not read, but checked
            check_names(flat, name, str(path))
    if checked:
        check_names(params, kind, str(path))
    return params


def _misplaced_section(key: str, value: Any, valid: set[str], path: str | Path) -> str:
    """Why top-level ``key`` of a ROS 2 form config is refused, and the fix."""
    if _is_node_section(value):
        names = sorted(v for v in valid if not v.startswith("/") or v == "/**")
        return (f"unknown node section '{key}' in {path}; "
                f"{did_you_mean(key, names)}valid: {', '.join(names)}")
    owners = [kind for kind in NODE_KINDS
              if any(n == key or n.startswith(f"{key}.") for n in node_schema(kind))]
    where = " and ".join(f"{kind}: ros__parameters:" for kind in owners or NODE_KINDS)
    return (f"'{key}' in {path} is outside the node sections: move it under {where}, or drop "
            "the node sections and write the whole file in the plain form (detector: {...} at "
            "the top)")


def _shared_params(flat: dict[str, Any], kind: str, source: str, checked: bool) -> dict[str, Any]:
    """The keys of a plain-form document or a ``/**`` section that node ``kind`` reads; the other
    node's keys are left to it, and a key no node reads is refused."""
    if not checked:
        return flat
    mine = node_schema(kind)
    others = {name for other in NODE_KINDS if other != kind for name in node_schema(other)}
    unknown = [k for k in flat if k not in mine and k not in others and not is_ros_param(k)]
    if unknown:
        check_names(unknown, kind, source, also=others)
    return {k: v for k, v in flat.items() if k in mine or is_ros_param(k)}


def did_you_mean(name: str, valid: Iterable[str], prefix: str = "") -> str:
    """``"did you mean <prefix>X? "`` for the valid name X closest to a misspelt ``name``, or ``""``.

    Names are compared without their shared ``prefix``, which would make every name look close.
    """
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f"did you mean {prefix}{close[0]}? " if close else ""


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(hint)[:1] or (Any,)
            items = [v if item is Any else _coerce(key, v, item, source) for v in value]
            return list(items) if origin is list else tuple(items)
    else:
        return value
    raise ConfigError(f"parameter '{key}' in {source} must be {getattr(hint, '__name__', hint)}, "
                      f"got {_SHOWN.repr(value)}")


def numeric_range(bounds: Any) -> tuple[float | None, float | None] | None:
    """``(low, high)`` of a ``setting(range=...)`` that is a numeric range, else None."""
    if isinstance(bounds, tuple) and len(bounds) == 2 and all(
            b is None or (isinstance(b, (int, float)) and not isinstance(b, bool)) for b in bounds):
        return bounds
    return None


def number_problem(value: Any, hint: Any, bounds: Any) -> str | None:
    """What is wrong with ``value`` for a parameter of type ``hint`` and ``setting(range=...)``
    ``bounds`` (``"must be within [0.0, 1.0], got nan"``), or None: the one rule
    :func:`check_number` (the loader) and :func:`check_settings` (a settings class's
    ``__post_init__``) apply."""
    if hint in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        span = numeric_range(bounds)
        if span is None:
            return None if math.isfinite(value) else f"must be a finite number, got {value}"
        low, high = span
        if math.isnan(value) or (low is not None and value < low) or (
                high is not None and value > high):
            shown = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            return f"must be within {shown}, got {value}"
    elif typing.get_origin(hint) in (list, tuple) and isinstance(value, (list, tuple)):
        if any(isinstance(v, float) and not math.isfinite(v) for v in value):
            return f"must hold finite numbers, got {_SHOWN.repr(list(value))}"
    return None


def check_number(key: str, value: Any, hint: Any, bounds: Any, source: str) -> None:
    """Refuse a number parameter ``key`` may not hold: outside its declared range (what ROS
    enforces on a node, and ``ros2 param describe`` shows), NaN (which every comparison lets
    through, silently switching a check off), or, where no range says it may be, infinite.

    Raises:
        ConfigError: naming the parameter, the source, the rule and the value.
    """
    problem = number_problem(value, hint, bounds)
    if problem is not None:
        raise ConfigError(f"parameter '{key}' in {source} {problem}")


def check_value(kind: str, name: str, value: Any, source: str) -> None:
    """Refuse one value for parameter ``name`` of node ``kind`` that its settings would refuse on
    their own: a wrong type (:func:`section_from_params`' rule), a number outside
    :func:`check_number`'s, or a string that is none of its declared choices. Rules between parameters are left to the node's configure. A name the
    node does not have passes (ROS refuses those itself).

    Raises:
        ConfigError: naming the parameter, ``source`` and what it must be.
    """
    item = node_schema(kind).get(name)
    if item is not None:
        value = _coerce(name, value, item.hint, source)
        check_number(name, value, item.hint, item.range, source)
        choices = item.range if item.hint is str and isinstance(item.range, tuple) else None
        # only what no spelling could make one of the choices: the component reads the rest
        if choices and isinstance(value, str) and value.strip().lower() not in {
                str(c).lower() for c in choices}:
            raise ConfigError(f"parameter '{name}' in {source} must be one of "
                              f"{', '.join(repr(c) for c in choices)}, got {value!r}")


def section_from_params(cls: type[T], params: dict[str, Any], prefix: str = "",
                        source: str = "config", strict: bool = True) -> T:
    """Build dataclass ``cls`` from the flattened ``params`` whose keys start with ``prefix``.

    Args:
        cls: dataclass type whose fields are the settings.
        params: flattened parameters, e.g. from :func:`load_params`.
        prefix: key prefix of this section, e.g. ``"tiling."``; "" for top-level keys.
        source: where the params came from, for error messages.
        strict: reject keys under ``prefix`` that ``cls`` does not declare (typos).

    Raises:
        ConfigError: a key is unknown or a value has the wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    names = set(fields)
    values: dict[str, Any] = {}
    for key, value in params.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name in names:
            values[name] = _coerce(key, value, hints[name], source)
            if not _finite(values[name]):  # before the class's own checks, which NaN passes
                check_number(key, values[name], hints[name], fields[name].metadata.get("range"),
                             source)
        elif strict and "." not in name:
            raise ConfigError(f"unknown parameter '{key}' in {source}; "
                              f"{did_you_mean(name, names, prefix)}valid: "
                              f"{', '.join(prefix + n for n in sorted(names))}")
    token = _BUILDING.set((cls, prefix, source))  # check_settings names the parameter as here
    try:
        settings = cls(**values)  # type: ignore[call-arg]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid settings in {source}: {exc}") from exc
    finally:
        _BUILDING.reset(token)
    # The declared ranges, where the class's own checks (with their own words) leave one out; a
    # class with a validate() (the nodes' own settings) checks them there, when its caller asks.
    if not callable(getattr(cls, "validate", None)):
        check_ranges(cls, values, source, prefix)
    return settings


def check_ranges(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> None:
    """Each of ``values`` (field name -> value) within the range its field of dataclass ``cls``
    declares (:func:`check_number`); the parameter is named ``prefix`` + the field's name.

    Raises:
        ConfigError: naming the first parameter out of its range, the source and the value.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in values.items():
        check_number(prefix + name, value, hints[name], fields[name].metadata.get("range"), source)


#: (settings class, prefix, source) while :func:`section_from_params` builds one: its
#: ``__post_init__``'s :func:`check_settings` then words a refusal as the loader does.
_BUILDING: contextvars.ContextVar[tuple[type, str, str] | None] = contextvars.ContextVar(
    "sense_perception_settings_building", default=None)


_NUMBERS: dict[type, tuple[tuple[str, Any, Any], ...]] = {}


def _numbers_of(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(name, type, declared range) of each field of dataclass ``cls`` :func:`number_problem`
    judges (numbers and lists), read once per class."""
    if cls not in _NUMBERS:
        hints = typing.get_type_hints(cls)
        _NUMBERS[cls] = tuple(
            (f.name, hints[f.name], f.metadata.get("range")) for f in dataclasses.fields(cls)
            if hints[f.name] in (int, float) or typing.get_origin(hints[f.name]) in (list, tuple))
    return _NUMBERS[cls]


def check_settings(settings: Any) -> None:
    """Refuse a settings dataclass holding a number its config key would be refused with: out of
    its declared range, NaN, or infinite where no range allows it (:func:`number_problem`, the
    loader's own rule). Each settings class calls it from ``__post_init__``, so settings built in
    Python (the replay engine, fleet workers, tests) hold to what a YAML config must: they took
    NaN, which passes every comparison and silently switches a check off (R75).

    Raises:
        ConfigError: built by :func:`section_from_params`, in its words (the parameter's key and
            the source).
        ValueError: built directly, naming the class and the field (a dataclass's own error).
    """
    cls = type(settings)
    building = _BUILDING.get()
    for name, hint, bounds in _numbers_of(cls):
        problem = number_problem(getattr(settings, name), hint, bounds)
        if problem is None:
            continue
        if building is not None and building[0] is cls:
            raise ConfigError(f"parameter '{building[1]}{name}' in {building[2]} {problem}")
        raise ValueError(f"{cls.__name__}.{name} {problem} (the rule a config file's value of "
                         "it is held to)")


def _finite(value: Any) -> bool:
    """No NaN or infinity in a number or a list of numbers."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return not any(isinstance(v, float) and not math.isfinite(v) for v in items)


# -- the parameters of each node: names, defaults, descriptions and ranges ----------------------

#: The nodes whose parameters a config holds.
NODE_KINDS = ("object_detector", "driver_monitor")
#: Parameters rclpy declares on every node: allowed in a config beside the perception settings.
ROS_PARAMS = frozenset({"use_sim_time", "start_type_description_service"})
ROS_PARAM_PREFIXES = ("qos_overrides.",)


def is_ros_param(name: str) -> bool:
    """A parameter rclpy declares itself (use_sim_time, qos_overrides.*), not a perception setting."""
    return name in ROS_PARAMS or name.startswith(ROS_PARAM_PREFIXES)


def setting(default: Any, description: str = "", range: Any = None,  # noqa: A002
            constraint: str = "") -> Any:
    """A settings dataclass field with what ``ros2 param describe`` shows.

    Args:
        default: the default value (a list is copied for each instance).
        description: one line; "" takes the class docstring's ``Attributes:`` entry.
        range: ``(low, high)`` inclusive for a number (None for an open end), a tuple of the
            allowed strings, or a short text for anything else.
        constraint: what the class's own checks refuse within ``range``, which ROS 2's
            inclusive one-span ranges cannot hold (``0 (off) or at least 1``, an end left out,
            a rule between settings): ``additional_constraints`` shows it after the range.
    """
    metadata = {k: v for k, v in (("description", description), ("range", range),
                                  ("constraint", constraint)) if v}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One parameter of a node: its dotted name and what its dataclass field says about it."""

    name: str
    default: Any
    hint: Any
    description: str
    range: Any = None
    constraint: str = ""

    @property
    def numeric(self) -> bool:
        """An int or float parameter (ROS 2 can hold a range for it)."""
        return self.hint in (int, float)


def _attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` entries of a Google-style class docstring, joined to one line each;
    a subclass's entries over its bases' (a subclass that changes a default keeps the base's
    descriptions)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        docs.update(_own_attribute_docs(base))
    return docs


def _own_attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` entries of ``cls``'s own docstring."""
    import inspect

    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__dict__.get("__doc__") or "").splitlines()
    if "Attributes:" not in [line.strip() for line in lines]:
        return docs
    start = [line.strip() for line in lines].index("Attributes:") + 1
    indent, name = None, None
    for line in lines[start:]:
        if not line.strip():
            name = None
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        match = re.match(r"(\w+)(?: \([^)]*\))?: (.*)", line.strip())
        if depth == indent and match:
            name = match.group(1)
            docs[name] = match.group(2).strip()
        elif name and depth > indent:
            docs[name] += " " + line.strip()
    return docs


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default


def _settings_of(cls: type, prefix: str, instance: Any = None) -> dict[str, Setting]:
    """The parameters of dataclass ``cls`` under ``prefix``; a nested dataclass adds its own,
    with the defaults of the nested ``instance`` its field's default holds."""
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls)
    out: dict[str, Setting] = {}
    for f in dataclasses.fields(cls):
        default = getattr(instance, f.name) if instance is not None else _default(f)
        if dataclasses.is_dataclass(default):
            out.update(_settings_of(type(default), f"{prefix}{f.name}.", default))
            continue
        description = f.metadata.get("description") or docs.get(f.name, "")
        out[prefix + f.name] = Setting(prefix + f.name, default, hints[f.name], description,
                                       f.metadata.get("range"), f.metadata.get("constraint", ""))
    return out


def node_sections(kind: str) -> list[tuple[str, type]]:
    """(prefix, settings dataclass) of every parameter group node ``kind`` reads."""
    from .core.autoware.rois import AutowareConfig
    from .core.detection.detector import DetectorConfig
    from .core.detection.tiling import TilingConfig
    from .core.health.camera_settings import CabinCameraHealthSettings, CameraHealthSettings
    from .core.imaging.frame_guard import InputLimits
    from .core.runtime.session import RuntimeConfig
    from .core.tracking.ground_motion import VelocityConfig
    from .core.tracking.tracker import TrackingConfig
    from .face.settings import DriverMonitorSettings
    from .ros.settings import DriverMonitorNodeSettings, ObjectDetectorSettings

    if kind == "object_detector":
        return [("", ObjectDetectorSettings), ("input.", InputLimits), ("detector.", DetectorConfig),
                ("tiling.", TilingConfig), ("tracking.", TrackingConfig),
                ("tracking.velocity.", VelocityConfig), ("runtime.", RuntimeConfig), ("autoware.", AutowareConfig),
                ("camera_health.", CameraHealthSettings)]
    if kind == "driver_monitor":
        # DriverMonitorSettings holds camera_role and the face.*, identity.*, gallery.*,
        # attention.* and runtime.* groups.
        return [("", DriverMonitorNodeSettings), ("", DriverMonitorSettings),
                ("input.", InputLimits), ("camera_health.", CabinCameraHealthSettings)]
    raise ConfigError(f"no node named {kind!r}; nodes: {', '.join(NODE_KINDS)}")


_SCHEMAS: dict[str, dict[str, Setting]] = {}


def node_schema(kind: str) -> dict[str, Setting]:
    """Every parameter of node ``kind`` (``object_detector``, ``driver_monitor``) by dotted name."""
    if kind not in _SCHEMAS:
        schema: dict[str, Setting] = {}
        for prefix, cls in node_sections(kind):
            schema.update(_settings_of(cls, prefix))
        _SCHEMAS[kind] = schema
    return _SCHEMAS[kind]


#: What ``detect`` and ``eval`` apply of object_detector's parameters to image files: the detector
#: (its models, thresholds, duplicates, low light, tiling, runtime), the input limits, the
#: positions' pitch uncertainty and the bound of the models' load (``warm_up_timeout_s``, R87).
#: Ignore regions belong to camera topics, tracking, camera health and Autoware to streams, the
#: rest to the node.
FILE_SETTINGS = ("detector.", "runtime.", "tiling.", "input.", "mount_pitch_sd",
                 "warm_up_timeout_s")
STREAM_ONLY_SETTINGS = ("detector.ignore_regions.",)


def settings_not_for_files(params: dict[str, Any], kind: str = "object_detector") -> list[str]:
    """The parameters of ``params`` that image files cannot use (:data:`FILE_SETTINGS`) and that
    are set to something other than their default: what ``detect`` and ``eval`` must say they do
    not apply, rather than ignore in silence."""
    schema = node_schema(kind)

    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, (list, tuple)) else value

    return sorted(name for name, value in params.items()
                  if (name.startswith(STREAM_ONLY_SETTINGS) or not name.startswith(FILE_SETTINGS))
                  and (name not in schema or plain(value) != plain(schema[name].default)))


def files_note(params: dict[str, Any], kind: str = "object_detector") -> list[str]:
    """The note ``detect`` and ``eval`` print about :func:`settings_not_for_files` ([] or one
    line)."""
    names = settings_not_for_files(params, kind)
    if not names:
        return []
    return [f"not applied to image files (they belong to camera topics and streams: the nodes and "
            f"replay use them): {', '.join(names)}"]


def check_names(params: Iterable[str], kind: str, source: str,
                also: Iterable[str] = ()) -> None:
    """Refuse parameter names node ``kind`` does not read: typos, misspelt sections, replaced names.

    Args:
        params: the parameter names (flattened, dotted).
        kind: ``object_detector`` or ``driver_monitor``.
        source: where the parameters came from, for the message.
        also: further names to accept (the other node's, for a plain-form file).

    Raises:
        ConfigError: naming each refused parameter, with the closest valid name ("did you
            mean") and the valid names of its group.
    """
    from .ros.settings import REPLACED_PARAMS

    schema = node_schema(kind)
    valid = set(schema) | set(also)
    unknown = [k for k in params if k not in valid and not is_ros_param(k)]
    if not unknown:
        return
    # A few are named in full; thousands (a file of typos) would take minutes and megabytes.
    more = len(unknown) - _NAMED
    unknown = unknown[:_NAMED]
    groups = sorted({n.rsplit(".", 1)[0] + "." for n in valid if "." in n}, key=len, reverse=True)
    top = sorted(n for n in valid if "." not in n)
    heads = sorted({n.split(".", 1)[0] for n in valid if "." in n})
    replaced = [f"'{k}' was replaced by {REPLACED_PARAMS[k]}" for k in unknown if k in REPLACED_PARAMS]
    loose, problems = [], []
    for key in (k for k in unknown if k not in REPLACED_PARAMS):
        group = next((g for g in groups if key.startswith(g)), "")
        if not group:  # a top-level name or a misspelt group: hint at the closest
            loose.append(key)
            continue
        names = sorted(n[len(group):] for n in valid if n.startswith(group)
                       and "." not in n[len(group):])
        problems.append(f"unknown parameter '{key}' in {source}; "
                        f"{did_you_mean(key[len(group):], names, group)}valid: "
                        f"{', '.join(group + n for n in names)}")
    if replaced or loose:
        named = []
        for key in loose:
            if "." in key:
                head, rest = key.split(".", 1)
                hint = did_you_mean(head, heads).replace("? ", f".{rest}? ")
            else:
                hint = did_you_mean(key, top)
            named.append(f"{key} ({hint.strip()})" if hint else key)
        found = replaced + ([f"unknown parameter(s) {', '.join(named)}"] if named else [])
        problems.insert(0, f"{'; '.join(found)} in {source}; valid: {', '.join(top)} and the "
                           f"dotted settings {', '.join(h + '.*' for h in heads)}")
    if more > 0:
        problems.append(f"and {more} more unknown parameters")
    raise ConfigError("; ".join(problems))


#: How many unknown parameter names an error names, each with its fix.
_NAMED = 5
