"""The ``sense-perception`` command line; one module per sub-command (see main.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import BUNDLED_CONFIGS, resolve_config
from ..errors import ConfigError

CONFIG_HELP = f"or a bundled one by name: {', '.join(BUNDLED_CONFIGS)}"


def config_file(value: str) -> Path:
    """argparse type of ``--config``: a bundled config name (``carla``) or the path of a YAML file."""
    try:
        return resolve_config(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def shown(value: object) -> str:
    """``value`` as text for a rich console: markup escaped (a path holding ``[/x]`` raised
    rich's MarkupError, a traceback after the work was done) and line breaks, escape sequences
    and bidi controls escaped (a file name must not forge or hide an output line)."""
    from rich.markup import escape

    from ..face.safe_text import printable

    return escape(printable(value))
