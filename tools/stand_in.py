"""What the stand-in makers (make_far_proxy.py, make_night_proxy.py) share: each reads a labelled
set, writes every frame changed, and writes the ground truth of the new frames beside them."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, run as a script
from sense_perception.core.imaging.image_file import read_image_file  # noqa: E402
from sense_perception.errors import ImageDecodeError  # noqa: E402
from sense_perception.fileio import write_image, write_result_json  # noqa: E402
from sense_perception.outpaths import OutputPathError, check_own_folder, overlap  # noqa: E402

#: (frame, its ground-truth camera entry) -> (the new frame, the new entry without "image")
FrameChange = Callable[[np.ndarray, dict[str, Any]], tuple[np.ndarray, dict[str, Any]]]
#: Hidden file by which a stand-in marks its output folder: only such a folder is written again.
MARK = ".sense-perception-stand-in"


def check_out(ground_truth: Path, out: Path) -> None:
    """Refuse an ``out`` that must not receive a stand-in of ``ground_truth``.

    The frames are written as ``<camera key>.jpg`` and the labels as ``ground_truth.json``: an
    ``out`` that is the labelled set's own folder (or holds it, or lies in it) had its
    ground_truth.json replaced by the stand-in's, the labels lost. ``out`` must be missing,
    empty, or an earlier stand-in's folder (holding :data:`MARK`).

    Raises:
        OutputPathError: naming the folder, the reason and the fix.
    """
    how = overlap(out, ground_truth.parent)
    if how:
        raise OutputPathError(
            f"{out} {how} the labelled set's folder {ground_truth.parent}; its ground_truth.json "
            "and frames would be replaced: give another output folder")
    check_own_folder(out, MARK, "its ground_truth.json and frames could be replaced")


def frame_name(key: str, taken: set[str]) -> str:
    """The file name of a camera's new frame: its key with ``/`` as ``_``, made unique. Keys
    ``front/00`` and ``front_00`` both wrote ``front_00.jpg``: the second frame replaced the
    first, and the first camera's boxes were scored on the other's frame."""
    stem = key.replace("/", "_")
    name, n = f"{stem}.jpg", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.jpg"
    return name


def make_stand_in(ground_truth: Path, out: Path, change: FrameChange, note: str) -> int:
    """Write every frame of ``ground_truth`` (project format) through ``change`` to ``out`` as
    JPEG quality 92, and their ground truth with ``note``; returns the number of frames.

    An ``out`` that :func:`check_out` refuses, or a frame that cannot be written, ends the tool
    with an error and exit status 2 (a frame left out would silently shrink the labelled set)."""
    try:
        check_out(ground_truth, out)
    except OutputPathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    doc = json.loads(ground_truth.read_text())
    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).touch()
    cameras = {}
    for key, cam in doc["cameras"].items():
        try:  # bounded: a FIFO among the frames is refused, never waited on
            image = read_image_file(ground_truth.parent / cam["image"])
        except ImageDecodeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        frame, entry = change(image, cam)
        name = frame_name(key, {c["image"] for c in cameras.values()})
        try:
            write_image(out / name, frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        except OSError as exc:
            print(f"error: cannot write {out / name}: {exc.strerror or exc}", file=sys.stderr)
            raise SystemExit(2) from None
        cameras[key] = {"image": name, **{k: v for k, v in entry.items() if k != "image"}}
    # the classes the source labels, as it says them (eval scores them boxes or not); none where
    # it says none: an empty list would declare that it labels nothing
    head = {"note": note, **({"categories": doc["categories"]} if "categories" in doc else {})}
    write_result_json(out / "ground_truth.json", {**head, "cameras": cameras}, indent=None)
    return len(cameras)
