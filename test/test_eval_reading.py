"""What ``sense-perception eval`` reads: each image once per pass, the ground truth's every key.

Defects of an earlier round, each reproduced on the old code first: the header check opened every
image twice and decoded a PNG whole to look for its EXIF orientation; the project format's
``categories`` went unread; a Cityscapes ``rider`` was a class of its own, not a rider; a missed
COCO box was named by its place in its image, not by its annotation id.
"""
from __future__ import annotations

import builtins
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from sense_perception.core.imaging.frame_guard import InputLimits
from sense_perception.core.imaging.image_file import probe_image_header, read_image_file
from sense_perception.evaluation.ground_truth import GroundTruthImage
from sense_perception.evaluation.run import check_images


def _png_with_late_exif(path: Path, orientation: int) -> None:
    """A 40x20 PNG whose ``eXIf`` chunk lies after its pixels (where Pillow looked only after
    decoding them; OpenCV applies it wherever it lies)."""
    ok, buf = cv2.imencode(".png", np.zeros((20, 40, 3), np.uint8))
    assert ok
    data = buf.tobytes()
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()[6:]  # without "Exif\0\0", as in a PNG
    chunk = (struct.pack(">I", len(payload)) + b"eXIf" + payload
             + struct.pack(">I", zlib.crc32(b"eXIf" + payload)))
    end = data.rfind(b"IEND") - 4
    path.write_bytes(data[:end] + chunk + data[end:])


def _entry(path: Path, width: int = 0, height: int = 0) -> GroundTruthImage:
    return GroundTruthImage(path.stem, path, width, height, np.array([[1.0, 1.0, 10.0, 10.0]]),
                            ["car"], np.zeros(1, bool))


def test_the_header_check_opens_each_image_once_and_decodes_no_pixel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), np.zeros((20, 40, 3), np.uint8))
    turned = tmp_path / "turned.png"
    _png_with_late_exif(turned, 6)
    opened: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def os_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_os_open(path, *args, **kwargs)

    def py_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    def no_decode(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the header check decoded an image's pixels")

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", py_open)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    skipped: list[dict[str, str]] = []
    kept = check_images([_entry(plain), _entry(turned)], tmp_path / "gt.json", InputLimits(),
                        skipped)
    monkeypatch.undo()
    assert not skipped and len(kept) == 2
    assert sorted(opened) == sorted([str(plain), str(turned)]), opened  # once each
    # the size as the detector sees it: the late eXIf turns the image, as OpenCV turns it
    assert (kept[0].width, kept[0].height) == (40, 20)
    assert (kept[1].width, kept[1].height) == (20, 40)
    assert read_image_file(turned).shape[:2] == (40, 20)
    assert probe_image_header(turned).turned and not probe_image_header(plain).turned
