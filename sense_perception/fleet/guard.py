"""Keep a fleet run's --out apart from its inputs, so that writing outputs never touches a recording.

Paths are compared as written and with every link resolved (:mod:`sense_perception.outpaths`,
shared with ``replay``), so a link cannot smuggle an input into --out or --out into an input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import FleetError
from ..outpaths import (OwnResult, check_apart, check_not_in_an_output, check_writable_dir,
                        earlier_result_problem)
from .outputs import FLEET_SUMMARY
from .report import is_fleet_summary


def check_out_apart(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an ``out`` that is an input, holds one, or lies inside one.

    Inside an input it would be searched for bags (its outputs hold a ``bag/`` each) and it
    would write into a recording's folder; holding one, the bag's output folder could replace
    the recording.

    Raises:
        FleetError: naming the input and the fix.
    """
    check_apart(out, inputs, error=FleetError)


def check_bags_apart(out: Path, bags: Sequence[Path]) -> None:
    """Refuse an ``out`` that holds a bag found through a link, or lies inside one.

    :func:`check_out_apart` sees the inputs as given; a link inside an input can still lead to
    ``out`` or into it.

    Raises:
        FleetError: naming the bag and the fix.
    """
    check_apart(out, bags, error=FleetError)


def check_out_not_in_an_output(out: Path) -> None:
    """Refuse an ``out`` that is, or lies inside, the output folder of one bag of a fleet run (or
    a fleet work folder) or of a ``replay`` (:func:`~sense_perception.outpaths.check_not_in_an_output`,
    which ``replay`` shares).

    Raises:
        FleetError: naming the folder, whose output it is, and the fix.
    """
    check_not_in_an_output(out, error=FleetError)


def make_out(out: Path) -> Path:
    """Create ``out`` (and its parents) and prove a file can be made in it; returns it resolved.

    Raises:
        FleetError: it cannot be created or written, or a folder sits where the run's
            summary goes; naming why and the fix.
    """
    check_writable_dir(out, error=FleetError)
    summary = out / FLEET_SUMMARY
    if summary.exists() and not summary.is_file():
        raise FleetError(f"{summary} exists and is not a file, so the run's summary could not be "
                         "written there; move it away, or choose another --out")
    # R80: the run's summary replaced whatever file of that name --out held (a user's own, or
    # another tool's JSON): only an earlier run's summary is replaced.
    problem = earlier_result_problem(summary, OwnResult("fleet", is_fleet_summary))
    if problem:
        raise FleetError(f"{summary} {problem}; a fleet run writes its summary there and replaces "
                         "only an earlier run's: move that file away, or choose another --out")
    return out.resolve()
