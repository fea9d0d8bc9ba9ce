"""Keep a fleet run's --out apart from its inputs, so that writing outputs never touches a recording.

Paths are compared after resolving them (``..``, links), so a link cannot smuggle an input into
--out or --out into an input.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import FleetError
from .outputs import FLEET_SUMMARY

_FIX = "choose an --out folder outside every input (e.g. next to them, not in them)"


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_apart(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an ``out`` that is an input, holds one, or lies inside one.

    Inside an input it would be searched for bags (its outputs hold a ``bag/`` each) and it
    would write into a recording's folder; holding one, the bag's output folder could replace
    the recording.

    Raises:
        FleetError: naming the input and the fix.
    """
    real_out = _real(out)
    for raw in inputs:
        real_in = _real(Path(raw))
        if real_out == real_in:
            raise FleetError(f"--out {out} is the input {raw}; fleet would write its outputs "
                             f"among the recordings and could replace them: {_FIX}")
        if _inside(real_in, real_out):
            raise FleetError(f"--out {out} contains the input {raw} (as {real_in}); a bag's "
                             f"output folder could replace the recording: {_FIX}")
        if _inside(real_out, real_in):
            raise FleetError(f"--out {out} lies inside the input {raw} (as {real_out}); its "
                             f"outputs would be written among the recordings and found as bags "
                             f"by the next run: {_FIX}")


def check_bags_apart(out: Path, bags: Sequence[Path]) -> None:
    """Refuse an ``out`` that holds a bag found through a link, or lies inside one.

    :func:`check_out_apart` sees the inputs as given; a link inside an input can still lead to
    ``out`` or into it.

    Raises:
        FleetError: naming the bag and the fix.
    """
    real_out = _real(out)
    for bag in bags:
        real_bag = _real(Path(bag))
        if _inside(real_bag, real_out) or _inside(real_out, real_bag):
            raise FleetError(f"--out {out} and the bag {bag} (as {real_bag}) overlap, through a "
                             f"link: fleet would write into the recording: {_FIX}")


def make_out(out: Path) -> Path:
    """Create ``out`` (and its parents) and check this user can write in it; returns it resolved.

    Raises:
        FleetError: it cannot be created or written, naming why and the fix.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise FleetError(f"--out {out}: {exc.filename or out} exists and is not a folder; "
                         "give a directory") from exc
    except OSError as exc:
        raise FleetError(f"cannot create --out {out}: {exc.strerror or exc}; choose a folder "
                         "you can write") from exc
    if not out.is_dir():
        raise FleetError(f"--out {out} is a file; give a directory")
    if not os.access(out, os.W_OK | os.X_OK):
        raise FleetError(f"--out {out} is not writable by this user; choose a folder you can "
                         "write, or fix its permissions")
    summary = out / FLEET_SUMMARY
    if summary.exists() and not summary.is_file():
        raise FleetError(f"{summary} exists and is not a file, so the run's summary could not be "
                         "written there; move it away, or choose another --out")
    return out.resolve()
