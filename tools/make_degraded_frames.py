#!/usr/bin/env python3
"""Write seeded degraded copies of real frames, for looking at what camera health judges.

Every degradation of :mod:`sense_perception.evaluation.degrade` (soiling, water drops, defocus,
fog, exposure x0.1 and x4, black, white) and every scene proxy of the no-alarm cases (night with
street lights, tunnel) is applied to each image; ``manifest.json`` lists each output with its
source, degradation, the condition it must raise (none for a scene) and the seed. The same seed
gives the same pixels.

    python tools/make_degraded_frames.py ../shared/data/street/*.jpg --out /tmp/degraded --seed 1
    sense-perception health /tmp/degraded/*.png --json-out /tmp/degraded/health.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from sense_perception.evaluation import degrade  # noqa: E402

SCENES = {"night": degrade.night, "tunnel": degrade.tunnel}


def make(images: list[Path], out: Path, seed: int) -> list[dict[str, object]]:
    """Write the degraded copies of ``images`` to ``out``; the manifest entries."""
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, object]] = []
    for index, path in enumerate(images):
        image = cv2.imread(str(path))
        if image is None:
            print(f"error: {path} is not a readable image; skipped", file=sys.stderr)
            continue
        makers = {**degrade.DEGRADATIONS, **SCENES}
        for name, fn in makers.items():
            rng = np.random.default_rng([seed, index])  # one stream per image: order-independent
            target = out / f"{path.stem}__{name}.png"
            cv2.imwrite(str(target), fn(image, rng))
            entries.append({"file": target.name, "source": str(path), "degradation": name,
                            "condition": degrade.EXPECTED.get(name), "seed": [seed, index]})
    (out / "manifest.json").write_text(json.dumps(entries, indent=1) + "\n")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="clean frames")
    parser.add_argument("--out", type=Path, required=True, help="folder for the copies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    entries = make(args.images, args.out, args.seed)
    print(f"wrote {len(entries)} frames and manifest.json to {args.out}")
    return 0 if entries else 1


if __name__ == "__main__":
    sys.exit(main())
