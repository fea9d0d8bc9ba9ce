#!/usr/bin/env python3
"""Write seeded degraded copies of real frames, for looking at what camera health judges.

Every degradation of :mod:`sense_perception.evaluation.degrade` (soiling, water drops, defocus,
fog, exposure x0.1 and x4, black, white) and every scene proxy of the no-alarm cases (night with
street lights, tunnel, snow under an overcast sky, a wet road at night or dusk, dusk) is applied
to each image; ``manifest.json`` lists each output with its source, degradation, the condition
it must raise (none for a scene) and the seed. The same seed gives the same pixels.

    python tools/make_degraded_frames.py ../shared/data/street/*.jpg --out /tmp/degraded --seed 1
    sense-perception health /tmp/degraded/*.png --json-out /tmp/degraded/health.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from sense_perception.core.imaging.image_file import read_image_file  # noqa: E402
from sense_perception.errors import ImageDecodeError  # noqa: E402
from sense_perception.evaluation import degrade  # noqa: E402
from sense_perception.face.safe_text import printable  # noqa: E402
from sense_perception.fileio import write_image, write_result_json  # noqa: E402
from sense_perception.outpaths import OutputPathError, check_own_folder  # noqa: E402

SCENES = {"night": degrade.night, "tunnel": degrade.tunnel, "snow": degrade.snow,
          "wet_road": degrade.wet_road, "dusk": degrade.dusk}


#: Hidden file by which this tool marks its output folder: only such a folder is written again.
MARK = ".sense-perception-degraded"


def make(images: list[Path], out: Path, seed: int) -> list[dict[str, object]]:
    """Write the degraded copies of ``images`` to ``out``; the manifest entries.

    An image that cannot be read (missing, a FIFO or device, corrupt, over the ``input.*``
    limits) is named and skipped, never waited on or decoded past the limits.

    Raises:
        OSError: a copy or the manifest cannot be written (a full disk).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).touch()
    entries: list[dict[str, object]] = []
    for index, path in enumerate(images):
        try:
            image = read_image_file(path)
        except ImageDecodeError as exc:
            print(f"error: {printable(exc)}; skipped", file=sys.stderr)
            continue
        makers = {**degrade.DEGRADATIONS, **SCENES}
        for name, fn in makers.items():
            rng = np.random.default_rng([seed, index])  # one stream per image: order-independent
            target = out / f"{path.stem}__{name}.png"
            write_image(target, fn(image, rng))
            entries.append({"file": target.name, "source": str(path), "degradation": name,
                            "condition": degrade.EXPECTED.get(name), "seed": [seed, index]})
    write_result_json(out / "manifest.json", entries)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="clean frames")
    parser.add_argument("--out", type=Path, required=True, help="folder for the copies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:  # a user's folder had its manifest.json and any NAME__fog.png overwritten
        check_own_folder(args.out, MARK, "its manifest.json and copies could replace them",
                         "--out", args.images)
    except OutputPathError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    try:
        entries = make(args.images, args.out, args.seed)
    except OSError as exc:
        print(f"error: cannot write to {printable(args.out)}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    read = {entry["seed"][1] for entry in entries}
    skipped = len(args.images) - len(read)
    print(f"wrote {len(entries)} frames and manifest.json to {printable(args.out)}"
          + (f"; {skipped} image(s) skipped" if skipped else ""))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
