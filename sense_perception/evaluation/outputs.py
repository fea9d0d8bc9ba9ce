"""What ``sense-perception eval`` may replace in its ``--out``, and how it writes its results.

``eval`` writes three files of fixed names (``eval.json``, ``detections.json``,
``precision_recall.png``) into a folder that may hold other things: ``detect`` writes a
``detections.json`` too, and a user may keep a plot of that name there. A hidden marker,
:data:`EVAL_MARKER`, written with the first results, says that eval wrote the three names in this
folder: eval replaces (or, without a curve, removes) them only where that marker is, and refuses,
before the model loads, a folder where one of them exists without it; ``detect`` refuses a
folder with that marker (:func:`check_not_eval_results`). The three files are
replaced together (:func:`~sense_perception.fileio.replace_together`): a full disk keeps the
earlier run's set whole, never a new ``detections.json`` beside an old ``eval.json``. Only a
``kill -9`` or a power cut between two of the renames can mix two runs' files: :data:`EVAL_INCOMPLETE`
is on disk before the first rename and gone after the last, so such a set says so, and the next
eval into the folder names it and replaces the set whole (R80).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .positions import DETECTIONS_FILE
from .report import EVAL_FILE, PLOT_FILE

EVAL_MARKER = ".sense-perception-eval"
RESULT_FILES = (EVAL_FILE, DETECTIONS_FILE, PLOT_FILE)
_MARKER_TEXT = (b"Written by `sense-perception eval`: a later eval into this folder replaces "
                b"eval.json, detections.json and precision_recall.png here. Remove this file to "
                b"keep eval from touching them.\n")


EVAL_INCOMPLETE = "EVAL_INCOMPLETE.txt"
_INCOMPLETE_TEXT = (b"sense-perception eval was stopped (kill -9, a crash or a power cut) while it "
                    b"replaced eval.json, detections.json and precision_recall.png in this folder: "
                    b"they may come from two runs and do not describe one another. Run the eval "
                    b"again into this folder: it replaces them as one set and removes this file.\n")


def incomplete_note(out: Path) -> str | None:
    """What to say when ``out`` holds :data:`EVAL_INCOMPLETE` (an eval killed between the renames
    of its results), else None."""
    marker = Path(out) / EVAL_INCOMPLETE
    if not (marker.is_file() and not marker.is_symlink() and written_by_eval(out)):
        return None
    return (f"--out {out} holds {EVAL_INCOMPLETE}: an earlier eval was stopped while it replaced "
            f"its results, so {', '.join(RESULT_FILES)} there may come from two runs; this run "
            "replaces them as one set")


def written_by_eval(out: Path) -> bool:
    """True when ``out`` holds eval's marker (a regular file, not a link)."""
    marker = Path(out) / EVAL_MARKER
    return marker.is_file() and not marker.is_symlink()


def check_own_results(out: Path) -> None:
    """Refuse an ``out`` where eval would replace or remove a result file it did not write.

    Raises:
        ConfigError: naming the files, where they may come from, and the fix.
    """
    out = Path(out)
    if written_by_eval(out):
        return
    theirs = [n for n in RESULT_FILES if (out / n).exists() or (out / n).is_symlink()]
    if theirs:
        raise ConfigError(
            f"--out {out} holds {', '.join(theirs)} that sense-perception eval did not write (no "
            f"{EVAL_MARKER} there: another command's results, `detect`'s detections.json for "
            "example, or your own files), and eval replaces only its own results; move them "
            "away or choose another --out")


def check_not_eval_results(out: Path, command: str) -> None:
    """Refuse ``out`` to ``command`` (another command writing a ``detections.json``) when it holds
    an eval run's results (eval's marker): the mirror of :func:`check_own_results`.

    Raises:
        ConfigError: naming the folder, the marker and the fix.
    """
    out = Path(out)
    if written_by_eval(out):
        raise ConfigError(
            f"--out {out} holds the results of sense-perception eval ({EVAL_MARKER} there) and "
            f"{command} would overwrite its {DETECTIONS_FILE}; choose another --out (or move "
            f"eval's {', '.join(RESULT_FILES)} and {EVAL_MARKER} away)")


def write_results(out: Path, evaluation: dict[str, Any], detections: dict[str, Any],
                  plot: bytes | None) -> None:
    """Write eval.json, detections.json and the plot (removing an earlier run's plot when this
    run has none) as one set, after the marker.

    Raises:
        OSError: something could not be written; the earlier results are then all as they were.
    """
    from ..fileio import atomic_write, replace_together

    out = Path(out)
    if not written_by_eval(out):
        atomic_write(out / EVAL_MARKER, _MARKER_TEXT, private=False)
    for name in RESULT_FILES:  # temp files a killed run left (replace_together's names)
        for left in out.glob(f".{name}.*.tmp"):
            if left.is_file() and not left.is_symlink():
                left.unlink(missing_ok=True)
    # EVAL_INCOMPLETE.txt from before the first rename to after the last: a kill -9 or power
    # cut between them left a mixed set that nothing told from a whole one (R80)
    replace_together({out / DETECTIONS_FILE: _json(detections, 1),
                      out / EVAL_FILE: _json(evaluation, 2),
                      out / PLOT_FILE: plot}, private=False,
                     marker=(out / EVAL_INCOMPLETE, _INCOMPLETE_TEXT))


def _json(document: Any, indent: int) -> bytes:
    return (json.dumps(document, indent=indent) + "\n").encode()
