#!/usr/bin/env python3
"""Camera health on degradations that are not ours: albumentations' weather and lens transforms.

The evaluation (``sense_perception.evaluation.camera_health_eval``) judges degraded copies from
this project's own generator (``evaluation/degrade.py``), which was written beside the rules it
tests. This cross-check applies another, published generator that nobody tuned against:
albumentations 2.0.8 (MIT; fog, spatter, defocus, glass blur, rain, snow, sun flare, shadows,
sensor noise, JPEG, gamma, motion blur) to the same real frames, and counts what the one-frame
rules raise (no hysteresis; every second PandaSet frame and the other street frames of each
subset of :func:`camera_health_eval.split`). Its transforms take sizes in pixels, chosen for
images a few hundred pixels wide, so every frame is first scaled to 640x360; the clean row
checks that scale alone raises nothing. Each frame gets its own seed (``1000 * i + 7``).

albumentations is not a dependency of the package; the ``crosscheck`` extra installs it::

    .venv/bin/pip install -e '.[crosscheck]'
    .venv/bin/python tools/camera_health_crosscheck.py

It prints a Markdown table (docs/camera-health.md, "A generator that is not ours").
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from sense_perception.core.health.camera_settings import CameraHealthSettings  # noqa: E402
from sense_perception.evaluation import camera_health_eval as ev  # noqa: E402

SIZE = (640, 360)


def transforms() -> list[tuple[str, str, Any]]:
    """(name, what it must raise: a condition, ``any``, ``none`` or ``-`` for no expectation,
    the transform); ``None`` as the transform is the clean, scaled frame."""
    import albumentations as A  # the crosscheck extra: see the module's docstring

    return [
        ("clean (scaled to 640x360)", "none", None),
        ("RandomFog, fog_coef 0.5-1", "low_visibility", A.RandomFog(fog_coef_range=(0.5, 1.0), p=1)),
        ("Defocus, radius 6-12 px", "low_visibility", A.Defocus(radius=(6, 12), p=1)),
        ("GlassBlur, sigma 1.5", "low_visibility", A.GlassBlur(sigma=1.5, max_delta=4, p=1)),
        ("Spatter, mud", "any", A.Spatter(mode="mud", p=1)),
        ("Spatter, rain", "any", A.Spatter(mode="rain", p=1)),
        ("RandomRain, drizzle", "-", A.RandomRain(rain_type="drizzle", p=1)),
        ("RandomRain, heavy", "-", A.RandomRain(rain_type="heavy", p=1)),
        ("RandomRain, torrential", "-", A.RandomRain(rain_type="torrential", p=1)),
        ("MotionBlur, 7-15 px", "-", A.MotionBlur(blur_limit=(7, 15), p=1)),
        ("RandomSnow, bleach", "none", A.RandomSnow(p=1)),
        ("RandomSnow, texture", "none", A.RandomSnow(method="texture", p=1)),
        ("RandomSunFlare, overlay", "none", A.RandomSunFlare(src_radius=200, p=1)),
        ("RandomSunFlare, physics_based", "none",
         A.RandomSunFlare(src_radius=200, method="physics_based", p=1)),
        ("RandomShadow", "none", A.RandomShadow(p=1)),
        ("ISONoise, intensity 0.3-0.8", "none", A.ISONoise(intensity=(0.3, 0.8), p=1)),
        ("ImageCompression, JPEG quality 10-30", "none",
         A.ImageCompression(quality_range=(10, 30), p=1)),
        ("RandomGamma, 60-160", "none", A.RandomGamma(gamma_limit=(60, 160), p=1)),
    ]


def _cell(raised: list[list[str]], want: str) -> str:
    """The share of frames that raised what ``want`` asks for, and every condition counted."""
    counts: dict[str, int] = {}
    for conditions in raised:
        for c in conditions:
            counts[c] = counts.get(c, 0) + 1
    # a condition: the frames that raised it; otherwise the frames that raised anything
    hit = sum(1 for c in raised if (want in c if want in ev.degrade.EXPECTED.values() else c))
    seen = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing"
    return f"{100 * hit / len(raised):.0f} % ({seen})"


def main(argv: list[str] | None = None) -> int:
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                            epilog="albumentations comes with the crosscheck extra: "
                                   "pip install -e '.[crosscheck]'").parse_args(argv)
    try:
        import albumentations as A
    except ImportError:
        print("error: albumentations is not installed; it comes with the crosscheck extra: "
              ".venv/bin/pip install -e '.[crosscheck]'", file=sys.stderr)
        return 2

    settings = CameraHealthSettings()
    subsets = ev.split(ev.DATA)
    frames = {s: [cv2.resize(ev.read(p), SIZE, interpolation=cv2.INTER_AREA)
                  for p in subsets[s]["pandaset"][::2] + subsets[s]["street"]]
              for s in ev.SUBSETS}
    print(f"albumentations {A.__version__}; frames: "
          + ", ".join(f"{s} {len(f)}" for s, f in frames.items()))
    print("| transform | must raise | tuning: share (conditions raised) | held-out |")
    print("| --- | --- | --- | --- |")
    for name, want, transform in transforms():
        cells = []
        for s in ev.SUBSETS:
            raised = [ev.judge(f if transform is None else
                               A.Compose([transform], seed=1000 * i + 7)(image=f)["image"], settings)
                      for i, f in enumerate(frames[s])]
            cells.append(_cell(raised, want))
        print(f"| {name} | {want} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
