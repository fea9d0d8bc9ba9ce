"""Configuration: the ROS 2 parameter YAML the nodes use, read without ROS for the CLI and replay.

Files have the usual ROS 2 layout::

    object_detector:
      ros__parameters:
        score_threshold: 0.35
        tiling:
          mode: horizon_bands

Nested keys flatten to dotted names (``tiling.mode``), as ROS 2 parameters do. Each component
declares a dataclass of its settings; :func:`section_from_params` fills it, rejecting unknown keys
and wrong types with a :class:`ConfigError` that names the key and the file.
"""
from __future__ import annotations

import dataclasses
import difflib
import sys
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

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


#: Parameter files shipped in config/ (and installed to share/sense_perception/config/), by name.
BUNDLED_CONFIGS = ("perception", "carla", "awsim", "autoware")


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
    """A ``--config`` / ``config:=`` value as a file: a bundled name (``carla``) or a path.

    A name wins only when no file of that name exists in the working directory, so a path that
    happens to be called ``carla`` still works.

    Raises:
        ConfigError: an unknown bare name that is no existing file either.
    """
    text = str(value)
    path = Path(text)
    if text in BUNDLED_CONFIGS and not path.exists():
        return bundled_config(text)
    if not path.exists() and "/" not in text and not path.suffix:
        raise ConfigError(f"config {text!r} is neither a file nor a bundled config "
                          f"({', '.join(BUNDLED_CONFIGS)})")
    return path


def load_params(path: str | Path | None, node_name: str) -> dict[str, Any]:
    """Read the flattened parameters of ``node_name`` (merged over ``/**``) from a ROS 2 YAML file.

    Returns an empty dict when ``path`` is None.
    """
    if path is None:
        return {}
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path}: top level must map node names to ros__parameters")
    params: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}"):
        section = doc.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters", {}), dict):
            raise ConfigError(f"config file {path}: '{key}' must contain a 'ros__parameters' mapping")
        params.update(flatten(section.get("ros__parameters") or {}))
    return params


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
                      f"got {value!r}")


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
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in params.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name in names:
            values[name] = _coerce(key, value, hints[name], source)
        elif strict and "." not in name:
            raise ConfigError(f"unknown parameter '{key}' in {source}; "
                              f"{did_you_mean(name, names, prefix)}valid: "
                              f"{', '.join(prefix + n for n in sorted(names))}")
    try:
        return cls(**values)  # type: ignore[call-arg]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid settings in {source}: {exc}") from exc
