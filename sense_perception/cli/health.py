"""`sense-perception health IMAGE... [--json [OUT.json]] [--json-out FILE]`: judge single images for blocked, low visibility,
dark and bright, as the nodes judge each camera frame (but without hysteresis: one image is one
frame). Unreadable images are reported and skipped; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ImageDecodeError
from . import CONFIG_HELP, config_file

NODE_NAME = "object_detector"


class _PrintJson(argparse.Action):
    """``--json [OUT.json]``: print the JSON, as ``--json`` does in every command (issue 20); with
    a ``.json`` file name, also write it there (the issue's ``health IMAGE... --json OUT``, the
    same as ``--json-out OUT``). Only a ``.json`` name is taken as OUT, so a photo is never
    overwritten: any other value is an image and is judged, in its place among the others
    (``health --json a.jpg b.jpg``), and a missing file that is no image name is refused with
    the fix instead of being judged as an unreadable image."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from ..outpaths import IMAGE_SUFFIXES

        if values is not None:
            path = Path(values)
            if path.suffix.lower() == ".json":
                namespace.json_file = path
            elif path.suffix.lower() not in IMAGE_SUFFIXES and not path.exists():
                parser.error(f"--json {values}: neither an image nor a .json file name; --json "
                             "prints the JSON, --json OUT.json (or --json-out FILE) also writes it")
            else:
                # the positionals already read come first (`a.jpg --json b.jpg`)
                before = getattr(namespace, "images", None) is not None
                namespace.json_images = (before, [values])
        setattr(namespace, self.dest, True)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``health`` sub-command."""
    parser = subparsers.add_parser(
        "health", help="judge images for a blocked lens, low visibility, under- or over-exposure",
        description="Judge image files as the nodes judge a camera frame: blocked (part of the "
                    "lens covered), low_visibility (fog, water, defocus), dark, bright. Prints one "
                    "line per image; an empty condition list means a clean image. Single images "
                    "get no hysteresis and no frozen or stream checks, and a semi-transparent "
                    "film that leaves the scene visible is not seen: a node or a replay finds "
                    "one that arrives during the drive against the camera's recent past "
                    "(docs/camera-health.md). "
                    "--json prints the JSON; --json OUT.json or --json-out FILE also writes it. "
                    "Unreadable images are "
                    "reported and skipped; the exit status is then 1.")
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="image files (anything OpenCV reads: jpg, png, bmp, tiff, webp...)")
    # --json means the same in every command: print JSON; a file goes to --json-out or to a
    # .json name after --json (never an input or an image: `health a.jpg --json b.jpg` must not
    # overwrite a photo).
    parser.add_argument("--json", action=_PrintJson, nargs="?", default=False, metavar="OUT.json",
                        help='print {"images": [{"path", "width", "height", "frames", '
                             '"conditions", "metrics"}], "skipped": [{"path", "error"}]} instead of the text '
                             "lines; with a .json file name, also write it there (as "
                             "--json-out)")
    parser.add_argument("--json-out", metavar="FILE", type=Path, default=None,
                        help="also write that JSON to FILE (refused when FILE is an input, an "
                             "image or not writable)")
    parser.add_argument("--config", metavar="FILE", default=None, type=config_file,
                        help="ROS 2 parameter YAML (camera_health.* and input.* keys of the node "
                             f"below), {CONFIG_HELP}")
    parser.add_argument("--node-name", default=NODE_NAME, choices=("object_detector", "driver_monitor"),
                        help="whose camera_health.* settings to use: driver_monitor for cabin "
                             "images (default: %(default)s)")
    parser.set_defaults(func=run)
    return parser


def judge_file(path: str, settings: Any, limits: Any) -> dict[str, Any]:
    """``{"path", "width", "height", "frames", "conditions", "metrics"}`` of one image file:
    its first frame judged (``frames``: how many the file holds, pages of a TIFF or frames of
    an animation).

    Raises:
        ImageDecodeError: the file is missing, too large, not an image, or partly transparent.
    """
    from ..core.health.camera_conditions import frame_metrics, image_conditions, small_copy
    from ..core.imaging.image_file import read_image_file
    from ..core.imaging.image_layers import image_layers, refuse_transparent

    image = read_image_file(path, limits)
    # a transparent part is no part of a camera's view: OpenCV gives the colour stored under it
    # (black as a rule), which read as a covered lens or a dark frame (R64)
    layers = image_layers(path, limits)
    refuse_transparent(path, layers)
    metrics = frame_metrics(small_copy(image, settings.width), None, settings)
    height, width = image.shape[:2]
    return {"path": str(path), "width": width, "height": height, "frames": layers.frames,
            "conditions": image_conditions(metrics, settings),
            "metrics": {k: v for k, v in metrics.as_dict().items() if v is not None}}


def _refuse_json_as_image(images: list[str]) -> None:
    """Refuse an IMAGE argument named ``*.json`` (``health out.json --json``, ``--json`` given
    before the file name it was meant to take): judging it as an image would only report it
    unreadable while the JSON the user asked for is not written anywhere.

    Raises:
        ConfigError: naming the argument and the fix (exit status 2).
    """
    for path in images:
        if Path(path).suffix.lower() == ".json":
            raise ConfigError(f"{path} is given as an IMAGE but is a JSON file name, not an "
                              f"image. To write the result to it put it right after --json "
                              f"(--json {path}) or use --json-out {path}")


def is_health_result(document: Any) -> bool:
    """True for a JSON document ``health`` writes (``{"images": [{..., "conditions"}],
    "skipped": [...]}``): the only JSON file ``--json-out`` replaces (R73)."""
    return (isinstance(document, dict) and "images" in document
            and set(document) <= {"images", "skipped"} and isinstance(document["images"], list)
            and all(isinstance(r, dict) and "conditions" in r for r in document["images"]))


def _json_file(args: argparse.Namespace) -> Path | None:
    """The one file the JSON is written to: ``--json OUT.json`` or ``--json-out FILE``.

    Raises:
        ConfigError: both given, naming different files.
    """
    named = getattr(args, "json_file", None)
    if named is not None and args.json_out is not None and Path(args.json_out) != named:
        raise ConfigError(f"--json {named} and --json-out {args.json_out} name two files; give "
                          "one of them")
    return named if named is not None else args.json_out


def run(args: argparse.Namespace) -> int:
    """Execute ``health``; returns the exit status."""
    import cv2

    from ..config import load_params
    from ..core.health.camera_settings import health_settings_type
    from ..core.imaging.frame_guard import InputLimits
    from ..face.safe_text import printable
    from ..fileio import write_result_json
    from ..outpaths import OwnResult, check_result_file
    from ..stops import stop_signals

    before, taken = getattr(args, "json_images", (True, []))
    args.images = [*args.images, *taken] if before else [*taken, *args.images]
    if not args.images:
        raise ConfigError("no IMAGE given; name one or more image files")
    _refuse_json_as_image(args.images)
    option = "--json" if getattr(args, "json_file", None) is not None else "--json-out"
    args.json_out = _json_file(args)
    if args.json_out is not None:  # before any image is read
        # never the config either: `--config c.yaml --json-out c.yaml` replaced it with the JSON
        check_result_file(args.json_out, [*map(Path, args.images),
                                          *([Path(args.config)] if args.config else [])], option,
                          own=OwnResult("health", is_health_result))
    params = load_params(args.config, args.node_name)
    source = str(args.config or "defaults")
    settings = health_settings_type(args.node_name).from_params(params, source)
    limits = InputLimits.from_params(params, source)
    cv2.setNumThreads(1)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for path in args.images:
        try:
            record = judge_file(path, settings, limits)
        except ImageDecodeError as exc:
            print(f"error: {printable(exc)}", file=sys.stderr)
            skipped.append({"path": str(path), "error": str(exc)})
            continue
        records.append(record)
        if args.json:
            continue
        m = record["metrics"]
        # a name with a line break or an escape sequence must not forge or hide a line
        frames = (f"  (frame 1 of {record['frames']}: only the first is judged)"
                  if record["frames"] > 1 else "")
        print(f"{printable(path)}  {record['width']}x{record['height']}  "
              f"{', '.join(record['conditions']) or 'ok'}  (mean {m['mean']:.0f}, sharp "
              f"{m['sharp']:.2f}, flat {m['flat_dark']:.2f}, clipped {m['clipped']:.2f}){frames}")
    # `skipped` is always there, as documented (and as driver attention and driver eval do): a
    # reader should not have to guess whether an absent list means "none" or "not reported".
    document = {"images": records, "skipped": skipped}
    flagged = sum(bool(r["conditions"]) for r in records)
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        images = f"{len(records)} image{'' if len(records) == 1 else 's'}"
        print(f"{images} judged, {flagged} with a condition"
              + (f", {len(skipped)} skipped (unreadable or partly transparent)"
                 if skipped else ""))
    if args.json_out is not None:  # last: a file that cannot be written never loses the results
        # SIGTERM as Ctrl-C (exit 143 / 130), and a stop while the file is replaced waits for
        # it: SIGTERM's default ended the process there, its temp file left beside OUT (R73).
        with stop_signals() as stops, stops.held():
            try:
                # replaced whole: a full disk keeps an earlier result intact
                write_result_json(args.json_out, document)
            except OSError as exc:
                raise ConfigError(f"cannot write {option} {args.json_out}: "
                                  f"{exc.strerror or exc}; the results are printed above; give "
                                  "a writable file path") from exc
    return 1 if skipped else 0


if __name__ == "__main__":  # pragma: no cover - convenience for python -m
    from .main import main

    sys.exit(main(["health", *sys.argv[1:]]))
