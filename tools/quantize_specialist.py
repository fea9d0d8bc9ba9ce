#!/usr/bin/env python3
"""Make the 8-bit form of the pedestrian specialist (person-detection-0203) that OpenVINO runs.

Post-training quantisation with NNCF (OpenVINO's own quantiser): the activations' ranges are
measured on real inputs of the network, exactly as the default detector feeds it (the horizon
band of 1080p road frames at 1280x384), and the convolutions' weights and inputs become 8-bit
integers. Nothing is trained and no label is read. The result runs on OpenVINO's CPU plugin with
its integer kernels (AVX-512 VNNI / AMX where the CPU has them, AVX2 elsewhere).

The inputs come from the frames given: by default every second developer-set frame, and every
fourth frame of its night and far stand-ins, so dark, noisy and small-object inputs set the
ranges too:

    python tools/make_far_proxy.py ../shared/data/street_labelled/pandaset_seq002_front/ground_truth.json /tmp/far
    python tools/make_night_proxy.py ../shared/data/street_labelled/pandaset_seq002_front/ground_truth.json /tmp/night
    pip install nncf==3.4.0   # without it the tool stops at once (exit 2), naming this
    python tools/quantize_specialist.py ../shared/data/street_labelled/pandaset_seq002_front:2 /tmp/far:4 /tmp/night:4

It writes ``sense_perception/models/person_detection_0203_int8.{xml,bin}`` (or ``--out``) and
prints their sha256, which go into ``core/runtime/model_registry.py``. docs/performance.md and
docs/detection-quality.md give what the 8-bit form costs and finds against the original.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAME = "person_detection_0203"
#: NNCF, the quantiser: not a dependency of the package.
NNCF_INSTALL = "pip install nncf==3.4.0"


def openvino() -> Any:
    """The ``openvino`` module through the package's one loader
    (:func:`~sense_perception.core.runtime.openvino_session.import_openvino`: without
    OpenVINO's conversion tools, so without its telemetry)."""
    sys.path.insert(0, str(ROOT))
    from sense_perception.core.runtime.openvino_session import import_openvino

    try:
        return import_openvino()
    except ImportError as exc:  # a dependency of the package: a broken install
        _refuse(f"OpenVINO cannot be imported ({exc}); reinstall the package (pip install .)")


def check_nncf() -> None:
    """Refuse (exit 2) to start without NNCF, before minutes of recording inputs: ``import nncf``
    in :func:`quantize` failed in a traceback after them. OpenVINO is loaded first, through the
    package's loader, so that NNCF's own ``import openvino`` finds it loaded."""
    openvino()
    try:
        import nncf  # noqa: F401
    except ImportError as exc:
        _refuse(f"NNCF cannot be imported ({exc}); install it: {NNCF_INSTALL}")


def band_inputs(folders: list[tuple[Path, int]]) -> list[np.ndarray]:
    """The specialist's network inputs on every ``step``-th JPEG of each folder, recorded from the
    default detector itself, so they are exactly what it feeds the network."""
    sys.path.insert(0, str(ROOT))
    from sense_perception.config import load_params
    from sense_perception.core.detection.detector_setup import build_detector

    params = load_params(None, "object_detector")
    params["runtime.openvino_int8"] = False  # ranges measured on the original weights
    detector = build_detector(params, "default")
    specialist = next(m for m in detector.members if m.model_name == NAME)
    model, seen = specialist._model, []
    run = model.run

    def record(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        seen.extend(v.copy() for v in feeds.values())
        return run(feeds)

    model.run = record
    for folder, step in folders:
        for path in sorted(folder.glob("*.jpg"))[::step]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SystemExit(f"cannot read {path}")
            detector.detect([image])
    return seen


def quantize(inputs: list[np.ndarray], out: Path) -> Path:
    """Quantise the bundled IR on ``inputs`` and save it as ``out`` (.xml beside its .bin)."""
    ov = openvino()  # before NNCF imports it
    import nncf

    source = ROOT / "sense_perception" / "models" / f"{NAME}.xml"
    model = ov.Core().read_model(str(source))
    port = model.inputs[0].get_any_name()
    own = model.inputs[0].get_partial_shape()  # the IR's own 864x480, which it is saved at again
    model.reshape({port: list(inputs[0].shape)})
    dataset = nncf.Dataset(inputs, lambda x: {port: x})
    quantized = nncf.quantize(model, dataset, subset_size=len(inputs),
                              preset=nncf.QuantizationPreset.PERFORMANCE)
    quantized.reshape({port: own})  # 8-bit steps are per channel, so any input size still works
    return save(quantized, out)


def check_out(out: Path) -> None:
    """Refuse (exit 2) an ``--out`` that is not an ``.xml`` name, or whose ``.xml`` or ``.bin``
    is the original IR being quantised: it was written over (OpenVINO maps the original's .bin
    while it writes), and the bundled model was lost until a reinstall. Creates ``--out``'s
    folder (as ``ov.save_model`` did): :func:`save` writes into a temporary folder inside it,
    which for a missing folder failed in a traceback after the minutes of quantising."""
    sys.path.insert(0, str(ROOT))
    from sense_perception.outpaths import overlap, same_file

    source = ROOT / "sense_perception" / "models" / f"{NAME}.xml"
    if out.suffix != ".xml":
        _refuse(f"--out {out}: give an .xml name (its .bin goes beside it)")
    for mine, original in ((out, source), (out.with_suffix(".bin"), source.with_suffix(".bin"))):
        if overlap(mine, original) == "is" or same_file(mine, original):
            _refuse(f"--out {out} would write over the original model {original} it "
                    "quantises; give another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _refuse(f"--out {out}: its folder cannot be created ({exc.strerror or exc}); give an "
                "--out in a folder you can write to")


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def save(model: object, out: Path) -> Path:
    """Save ``model`` as ``out`` (.xml) and its .bin beside it, both written in full into a
    temporary folder beside ``out`` before either replaces a file: a full disk or a stop while
    saving keeps the earlier files whole (``ov.save_model`` wrote them in place: a cut-off .bin
    replaced the good 8-bit model) and leaves no temporary folder."""
    import os
    import tempfile

    ov = openvino()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as folder:
        xml = Path(folder) / out.name
        ov.save_model(model, str(xml), compress_to_fp16=True)
        os.replace(xml.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(xml, out)
    return out


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _folder(text: str) -> tuple[Path, int]:
    path, _, step = text.partition(":")
    return Path(path), int(step or 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=_folder,
                        help="FOLDER[:STEP]: the JPEG frames of FOLDER, every STEP-th (default 1)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "sense_perception" / "models" / f"{NAME}_int8.xml",
                        help="the IR to write (its .bin goes beside it)")
    args = parser.parse_args(argv)
    check_out(args.out)  # before minutes of recording and quantising
    check_nncf()
    inputs = band_inputs(args.folders)
    if not inputs:
        raise SystemExit("no frame found: give folders of .jpg frames")
    print(f"{len(inputs)} network inputs of shape {inputs[0].shape}")
    xml = quantize(inputs, args.out)
    for path in (xml, xml.with_suffix(".bin")):
        print(f"{path}: sha256 {sha256(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
