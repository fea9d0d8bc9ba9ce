"""The console result tables are printed on: as wide as they need when the output is a file.

rich lays a table out in 80 columns when its output is no terminal (a pipe, a log, CI) and
``COLUMNS`` is not set: eval's table then printed ``pedestr…``, ``positiv…``, ``precisi…``.
Tables are never stretched to the width, so a wide one costs nothing.
"""
from __future__ import annotations

import os
import sys

from rich.console import Console

# Wide enough for every table the commands print (eval's widest needs about 110 columns).
FILE_WIDTH = 200


def result_console() -> Console:
    """A rich Console on standard output: the terminal's width on a terminal (or ``COLUMNS``),
    :data:`FILE_WIDTH` columns when the output goes to a file or a pipe."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return Console()
    return Console(width=FILE_WIDTH)
