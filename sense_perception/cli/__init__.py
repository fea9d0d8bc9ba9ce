"""The ``sense-perception`` command line; one module per sub-command (see main.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import BUNDLED_CONFIGS, resolve_config
from ..errors import ConfigError
from ..face.safe_text import shown

__all__ = ["CONFIG_HELP", "config_file", "shown"]

CONFIG_HELP = (f"or a bundled one by name: {', '.join(BUNDLED_CONFIGS)} (default: the built-in "
               "defaults, which perception lists)")


def config_file(value: str) -> Path:
    """argparse type of ``--config``: a bundled config name (``carla``) or the path of a YAML file."""
    try:
        return resolve_config(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc

