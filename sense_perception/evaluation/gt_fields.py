"""Typed reading of ground-truth fields: every wrong value is a GroundTruthError naming its place.

A ground-truth file comes from elsewhere (a labelling tool, a converter, a hand edit), so no value
is trusted: ``"abc"`` for a coordinate, ``"false"`` for a flag or ``5`` for a list must stop the
evaluation with the file, the entry and the field, never with a traceback or a quietly wrong score.
"""
from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

from ..core.detection.labels import driving_label, normalise_name
from ..errors import GroundTruthError
from ..fileio import NotRegularFileError, read_regular_file

IGNORE_ALL = "*"  # label of an area where no detection counts (KITTI DontCare)
RIDER = "cyclist"  # KITTI's name of a person on a bicycle or motorcycle, box and cycle together
# Other label sets' names of a rider (normalised): Cityscapes' and BDD100K's ``rider``, and the
# words of converters and hand labels. A rider is an ignore region for pedestrian, bicycle and
# motorcycle detections (scoring.NEIGHBOUR_IGNORE); under its own name it was a class the
# detector lacks, and a pedestrian detection on a Cityscapes rider a false positive.
RIDER_NAMES = frozenset({"rider", "bicyclist", "motorcyclist", "cyclist"})


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: The largest ground-truth file read (COCO's train2017 instances file is 448 MiB): a larger one
#: would take the machine's memory before a single box is checked.
MAX_GROUND_TRUTH_BYTES = 1 << 30


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file (a FIFO or device is refused, not waited on; a file over
    :data:`MAX_GROUND_TRUTH_BYTES` is refused, not read)."""
    try:
        data = read_regular_file(path, MAX_GROUND_TRUTH_BYTES)
    except FileNotFoundError:
        if path.is_symlink():
            raise GroundTruthError(f"ground truth {path} is a link to {os.readlink(path)}, which "
                                   "does not exist; fix the link or remove it") from None
        raise GroundTruthError(f"ground truth {path} does not exist") from None
    except NotRegularFileError as exc:
        fix = ("split it" if exc.errno == errno.EFBIG else
               "give a regular file (remove it if it is not ground truth)")
        raise GroundTruthError(f"{path}: cannot be read: {exc}; {fix}") from None
    except OSError as exc:
        raise GroundTruthError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not content
    except UnicodeDecodeError as exc:
        raise GroundTruthError(f"{path}: not a UTF-8 text file (byte {exc.start} is "
                               f"0x{data[exc.start]:02x}); is it a binary file?") from None


def read_json(path: Path) -> Any:
    """The parsed JSON document of ``path``."""
    text = read_text(path)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):  # json would keep the last silently: a camera lost
            seen: set[str] = set()
            for twice, _ in pairs:  # stops at the first key seen before
                if twice in seen:
                    break
                seen.add(twice)
            raise GroundTruthError(f"{path}: the key {_show(twice)} appears twice in one object; "
                                   "all but the last would be silently lost")
        return obj

    try:
        return json.loads(text, object_pairs_hook=unique)
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's advice would not help a user
            raise GroundTruthError(f"{path}: not readable JSON: a number with thousands of "
                                   "digits; no coordinate or id is that long") from None
        raise GroundTruthError(f"{path}: not readable JSON: {exc}") from None
    except RecursionError:
        raise GroundTruthError(f"{path}: not readable JSON: nested too deeply") from None
    except MemoryError:
        raise GroundTruthError(f"{path}: too large for this machine's memory ({len(text)} "
                               "characters); split it into smaller files") from None


def number(value: Any, where: str) -> float:
    """A finite JSON number (not a bool, string or null)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GroundTruthError(f"{where}: expected a finite number, got {_show(value)}")
    return float(value)


def count(value: Any, where: str) -> int:
    """A non-negative whole number (image width or height; 0 = read it from the image)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
            or not float(value).is_integer():
        raise GroundTruthError(f"{where}: expected a whole number of pixels >= 0, got "
                               f"{_show(value)}")
    return int(value)


def flag(value: Any, where: str) -> bool:
    """``true``/``false`` (or 0/1, as COCO writes iscrowd); the string ``"false"`` is refused,
    since reading it as true would silently drop the box from the score."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise GroundTruthError(f"{where}: expected true or false, got {_show(value)}")


def text(value: Any, where: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise GroundTruthError(f"{where}: expected a non-empty string, got {_show(value)}")
    return value


def sequence(value: Any, where: str, what: str) -> list:
    """A JSON list (``what`` describes its items for the message)."""
    if not isinstance(value, list):
        raise GroundTruthError(f"{where}: expected a list of {what}, got {_show(value)}")
    return value


def mapping(value: Any, where: str, what: str) -> dict:
    """A JSON object (``what`` describes its keys for the message)."""
    if not isinstance(value, dict):
        raise GroundTruthError(f"{where}: expected an object {what}, got {_show(value)}")
    return value


def xyxy(value: Any, where: str) -> list[float]:
    """``[x1, y1, x2, y2]``: four finite numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise GroundTruthError(f"{where}: expected [x1, y1, x2, y2], got {_show(value)}")
    return [number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def xywh(value: Any, where: str) -> list[float]:
    """A COCO ``[x, y, width, height]`` as ``[x1, y1, x2, y2]``."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise GroundTruthError(f"{where}: expected a COCO bbox [x, y, width, height], got "
                               f"{_show(value)}")
    x, y, w, h = (number(v, f"{where}[{i}]") for i, v in enumerate(value))
    if not (w > 0 and h > 0 and x + w > x and y + h > y):  # named here, in COCO's own terms
        raise GroundTruthError(f"{where}: {_show(list(value))} has no area: a COCO bbox is [x, y, "
                               "width, height], width and height above 0")
    return [x, y, x + w, y + h]


def label(value: Any, where: str) -> str:
    """A class name as the detector names it: ``person`` -> ``pedestrian``, ``Car`` -> ``car``,
    ``traffic light`` -> ``traffic_light``; a rider (``rider``, ``bicyclist``, ``motorcyclist``:
    :data:`RIDER_NAMES`) -> ``cyclist``; others normalised the same way."""
    if not isinstance(value, str):
        raise GroundTruthError(f"{where}: expected a class name (a string such as \"pedestrian\"), "
                               f"got {_show(value)}")
    name = driving_label(value) or normalise_name(value)
    if name in RIDER_NAMES:
        name = RIDER
    if not name:
        raise GroundTruthError(f"{where}: the class name is empty")
    if not name.isprintable():  # it is printed in tables: no escape sequences or line breaks
        raise GroundTruthError(f"{where}: the class name {_show(value)} has control characters")
    if IGNORE_ALL in name:
        raise GroundTruthError(f"{where}: {_show(value)} is not a class name ('{IGNORE_ALL}' is "
                               "reserved); mark areas where nothing counts with ignore_regions")
    return name


def entry_key(value: str, where: str) -> str:
    """An entry's key (a camera name), printed in tables and messages: no control characters."""
    if not value.strip() or not value.isprintable():
        raise GroundTruthError(f"{where}: the key {_show(value)} is empty or has control "
                               "characters")
    return value


def identifier(value: Any, where: str) -> int | str:
    """A COCO id: a whole number (or a string, which some converters write)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise GroundTruthError(f"{where}: expected an integer id, got {_show(value)}")
    return value
