"""`sense-perception driver`: enrol a consenting driver, list, forget, restore, identify, evaluate,
and measure head pose and eye openness on photos (``attention``).

Still images (``--images``, ``identify``, ``eval``, ``attention``) use the largest face of each
image; a bag uses the driver-seat region of the cabin camera, as the driver_monitor node does. Only
that one face is ever embedded.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from ..errors import BagError, ConfigError, GalleryError, ImageDecodeError
from ..face.safe_text import printable
from . import CONFIG_HELP, config_file

NODE_NAME = "driver_monitor"
T = TypeVar("T")
DEFAULT_TABLE = (0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70)

_CONSENT_HELP = (
    "Enrolment stores face templates of a person, which is biometric data. It needs that person's "
    "informed, explicit consent: show them the text below, and pass --consent only once they have "
    "agreed. They can withdraw it at any time with `sense-perception driver forget ID`."
)


# -- shared helpers -------------------------------------------------------------------------------

def _settings(args: argparse.Namespace) -> Any:
    from ..config import load_params
    from ..face.settings import DriverMonitorSettings

    params = load_params(getattr(args, "config", None), NODE_NAME)
    settings = DriverMonitorSettings.from_params(params, str(getattr(args, "config", None) or "defaults"))
    g = settings.gallery
    if getattr(args, "gallery", None):
        g.path = str(args.gallery)
    if getattr(args, "key_file", None):
        g.key_file = str(args.key_file)
    if getattr(args, "keep_images", False):
        g.keep_images = True
    return settings


def _check_cabin_photos(args: argparse.Namespace, settings: Any, what: str) -> None:
    """Refuse photos judged with a ``--config`` whose driver_monitor section names a camera role
    other than ``cabin``: it says the face pipeline it sets up looks outside the car, where face
    recognition is never run (P7). Photos come from no camera, and these commands ran all the
    same, the setting silently ignored (R88).

    Raises:
        PrivacyError: naming the setting, its file and the fix.
    """
    from ..face.privacy import IDENTITY_ROLE, check_identity_allowed

    config = getattr(args, "config", None)
    check_identity_allowed(
        settings.camera_role, f"{NODE_NAME}.camera_role in {config}", what,
        f"these photos are judged as the in-cabin camera's; give a --config whose "
        f"{NODE_NAME} section has camera_role: {IDENTITY_ROLE} (the default), or none; nothing "
        "was read")


def _input_limits(args: argparse.Namespace) -> Any:
    """The driver_monitor's ``input.*`` limits from ``--config`` (the defaults without one)."""
    from ..config import load_params
    from ..core.imaging.frame_guard import InputLimits

    config = getattr(args, "config", None)
    return InputLimits.from_params(load_params(config, NODE_NAME), str(config or "defaults"))


def _read_image(path: str | Path, args: argparse.Namespace) -> np.ndarray:
    """A photo read within the driver_monitor's ``input.*`` limits (header checked first), and
    one the face detector can take (at least 8x8 px); every error names the file."""
    from ..core.imaging.image_file import read_image_file
    from ..face.yunet import check_image

    return check_image(read_image_file(path, _input_limits(args)), str(path))


def _store(settings: Any) -> Any:
    from ..face.gallery import GalleryStore

    return GalleryStore.from_config(settings.gallery)


def _still_engine(settings: Any) -> Any:
    """A FaceEngine that takes the largest face anywhere in a still photo."""
    from dataclasses import replace

    from ..face.pipeline import FaceEngine

    return FaceEngine(replace(settings.face, driver_region=[0.0, 0.0, 1.0, 1.0]),
                      settings.runtime.options())


def _load(args: argparse.Namespace, job: Callable[[], T], command: str) -> T:
    """Build the face models (``job``) bounded by the ``--config``'s driver_monitor
    ``warm_up_timeout_s``, as ``detect`` and ``replay`` load theirs
    (:func:`~sense_perception.model_load.load_models`): an onnxruntime session creation that
    never returned held ``command`` for ever, with nothing said (R90).

    SIGTERM and SIGHUP stop the wait as Ctrl-C does (:func:`~sense_perception.stops.stop_signals`,
    exit 143 / 129 / 130, the load left running named as it ends): ``identify``, ``attention``
    and ``eval`` loaded outside any such block, so either signal during a load ended the process
    at once by its default (R94). Inside a command's own block (each has one now) it is that
    block's (R96).

    Raises:
        ModelError: the load raised, or a step of it has not returned in time (named, with the fix).
    """
    from ..config import load_params
    from ..model_load import load_models
    from ..stops import stop_signals

    config = getattr(args, "config", None)
    params = load_params(config, NODE_NAME)
    with stop_signals():
        return load_models(job, "the face models", params, str(config or "defaults"), command,
                           NODE_NAME)


# -- enroll ---------------------------------------------------------------------------------------

def _bag_frames(bag_path: str, topic: str, stride: int, skipped: Any,
                limits: Any = None) -> Iterator[tuple[str, np.ndarray]]:
    """Decoded frames of ``topic`` in a rosbag2, every ``stride``-th one, each within ``limits``
    (the driver_monitor's ``input.*`` settings, as the node decodes the same camera's frames).

    Reads with the replay's damage-tolerant reader: a corrupt or undecodable frame, or a damaged
    part of the bag, is recorded in ``skipped`` (a :class:`~sense_perception.replay.skips.SkipLog`)
    and passed over, so one bad frame does not end an enrolment.
    """
    from ..core.imaging.frame_guard import safe_decode
    from ..replay.reader import open_bag

    with open_bag(bag_path) as bag:
        meta = bag.topics.get(topic)
        if meta is None and not bag.topics:
            raise BagError(f"bag {bag_path} holds no readable topic at all (empty, or damaged "
                           "before its first record); check that it is the recording you meant")
        if meta is None:
            raise BagError(f"bag {bag_path} has no topic '{topic}'; its topics: "
                           f"{', '.join(sorted(bag.topics))}")
        if not meta.is_image:
            raise BagError(f"topic '{topic}' in {bag_path} carries {meta.msgtype}, not "
                           "sensor_msgs/Image or CompressedImage; image topics: "
                           f"{', '.join(bag.image_topics()) or 'none'}")
        for n, message in enumerate(bag.messages([topic])):
            if n % stride:
                continue
            msg = bag.deserialize_or_skip(message, skipped)
            if msg is None:
                continue
            image, error = safe_decode(msg, limits)
            if error is not None:
                skipped.add_undecodable(topic, error)
                continue
            assert isinstance(image, np.ndarray)  # without zero_copy, a decoded frame is an array
            yield f"{topic}@{message.timestamp}", image
        for entry in bag.skipped.entries():
            skipped.add(entry["topic"], entry["reason"], entry["count"])


def _enrol_templates(args: argparse.Namespace, settings: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embeddings, aligned crops and source labels of the faces to enrol."""
    embs, crops, labels = [], [], []
    if args.images:
        engine = _load(args, partial(_still_engine, settings), "driver enroll")
        for path in args.images:
            image = _read_image(path, args)
            faces = engine.detect(image)
            if len(faces) != 1:
                raise GalleryError(
                    f"{path} shows {len(faces)} faces; enrolment needs exactly one face per image so "
                    "that nobody else is enrolled by mistake; crop the photo to the driver")
            emb, aligned = engine.embed(image, faces.landmarks[:1])
            embs.append(emb[0])
            crops.append(aligned[0].copy())
            labels.append(str(path))
    else:
        from ..face.pipeline import FaceEngine

        from ..replay.skips import SkipLog

        engine = _load(args, partial(FaceEngine, settings.face, settings.runtime.options()),
                       "driver enroll")
        skipped = SkipLog()
        for label, image in _bag_frames(args.bag, args.topic, args.stride, skipped,
                                        _input_limits(args)):
            try:
                _, _, emb, aligned = engine.driver_embedding(image)
            except ImageDecodeError as exc:  # a 1x1 frame: skipped and counted, the rest goes on
                skipped.add(args.topic, f"invalid frame {image.shape[1]}x{image.shape[0]}: {exc}")
                continue
            if emb is not None and aligned is not None:  # both or neither
                embs.append(emb)
                crops.append(aligned.copy())
                labels.append(label)
            if len(embs) >= settings.gallery.max_templates:
                break
        for entry in skipped.entries():
            print(f"warning: skipped {entry['count']} frame(s) of {printable(entry['topic'])}: "
                  f"{printable(entry['reason'])}", file=sys.stderr)
        if not embs:
            raise GalleryError(f"no driver face found on {args.topic} in {args.bag} (driver region "
                               f"{list(engine.region)}; {skipped.total()} frame(s) skipped); "
                               "check face.driver_side / face.driver_region")
    return np.stack(embs), np.stack(crops), labels


def _check_one_person(embs: np.ndarray, labels: Sequence[str], threshold: float) -> None:
    """Refuse an enrolment whose faces are not all the same person.

    Each face is compared with the mean of all the others (leave one out), so one stray face
    (a passenger in a bag frame, a wrong photo) stands out even among many good ones.
    """
    if embs.shape[0] < 2:
        return
    others = embs.sum(axis=0, keepdims=True) - embs
    others /= np.maximum(np.linalg.norm(others, axis=1, keepdims=True), 1e-12)
    sims = np.einsum("ij,ij->i", embs, others)
    odd = np.flatnonzero(sims < threshold)
    if odd.size:
        names = ", ".join(f"{labels[i]} ({sims[i]:.2f})" for i in odd[:5])
        raise GalleryError(f"these faces do not look like the same person as the others: {names} "
                           f"(< {threshold:.2f}); enrol one person at a time")
    split = _two_people(embs, threshold)
    if split is not None:
        first, second, similarity = split

        def some(group: np.ndarray) -> str:
            more = f" and {len(group) - 3} more" if len(group) > 3 else ""
            return ", ".join(labels[i] for i in group[:3]) + more

        raise GalleryError(f"these faces look like two people: {some(first)}; and {some(second)} "
                           f"(the two groups' similarity {similarity:.2f} < {threshold:.2f}); "
                           "enrol one person at a time (from a bag: --topic frames where only "
                           "the consenting driver sits in the driver's seat)")


def _two_people(embs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Two groups of faces that are two people, else None (R70).

    The leave-one-out check of :func:`_check_one_person` finds one stray face, not a second
    person with as many faces as the first: each face's own person outweighs the other in the
    mean of the others (two photos each of two people, or a bag over a change of driver, passed
    and enrolled the second person under the first one's consent). Here the faces are split in
    two about their least similar pair (two rounds of 2-means on the cosine) and the two groups'
    mean faces are compared with the match threshold: one person's groups match each other,
    two people's do not.
    """
    if embs.shape[0] < 3:
        return None  # two faces: the leave-one-out check compared them
    sims = embs @ embs.T
    i, j = np.unravel_index(int(np.argmin(sims)), sims.shape)
    if sims[i, j] >= threshold:
        return None  # every pair matches: one person
    centres = embs[[i, j]]
    for _ in range(2):
        second = (embs @ centres[1]) > (embs @ centres[0])
        if second.all() or not second.any():
            return None
        centres = np.stack([embs[~second].sum(axis=0), embs[second].sum(axis=0)])
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    similarity = float(centres[0] @ centres[1])
    if similarity >= threshold:
        return None
    return np.flatnonzero(~second), np.flatnonzero(second), similarity


#: Longest line read as a name from stdin, in bytes (the gallery takes up to 200 characters).
_NAME_LINE_MAX = 1024
_NAME_ON_COMMAND_LINE = (
    "note: a name given on the command line ({options}) can be read by every local user while "
    "the command runs (/proc/PID/cmdline, ps) and stays in your shell history; give `-` instead "
    "to read it from stdin (one line), or leave --name out at a terminal to be asked")


def _read_names(args: argparse.Namespace) -> None:
    """Put the names given as ``-`` in ``args``, read from stdin, one line each (``--name``
    first, then ``--consent-by``); ask for a left-out ``--name`` when stdin is a terminal; note
    on stderr a name given on the command line, where other local users can read it (R49).

    Raises:
        GalleryError: no name given and none can be asked for, or stdin ends before a name,
            holds an empty or over-long line; the error never holds the name itself.
    """
    given = [option for option, value in (("--name", args.name), ("--consent-by", args.consent_by))
             if value and value != "-"]  # "": refused below, no name to expose
    if given:
        print(_NAME_ON_COMMAND_LINE.format(options=", ".join(given)), file=sys.stderr)
    stdin = sys.stdin
    tty = stdin is not None and stdin.isatty()
    if args.name is None:
        if not tty:
            raise GalleryError(
                "no driver name: give it on stdin with --name - (one line: `sense-perception "
                "driver enroll --name - ... < name.txt`), or run the command at a terminal to be "
                "asked; nothing was enrolled")
        args.name = "-"
    for attr, option, what in (("name", "--name", "driver's display name"),
                               ("consent_by", "--consent-by", "name of who consented")):
        if getattr(args, attr) == "-":
            setattr(args, attr, _read_name_line(stdin, tty, option, what))


def _read_name_line(stdin: Any, tty: bool, option: str, what: str) -> str:
    """One line of stdin, stripped, as UTF-8 (an undecodable byte becomes a lone surrogate, which
    :func:`_check_names` refuses as it does on the command line); a prompt on stderr at a
    terminal."""
    if stdin is None:
        raise GalleryError(f"{option} -: there is no stdin to read the {what} from; give it "
                           "on stdin (one line); nothing was enrolled")
    if tty:
        print(f"{what}: ", end="", file=sys.stderr, flush=True)
    raw = getattr(stdin, "buffer", None)
    # the line's end ("\n" or "\r\n") is not the name's: a name of _NAME_LINE_MAX bytes fits
    most = _NAME_LINE_MAX + 2
    line = (raw.readline(most).decode("utf-8", "surrogateescape") if raw is not None
            else stdin.readline(most))
    if not line:
        raise GalleryError(f"{option} -: stdin ended before the {what}; give it as one line "
                           "on stdin; nothing was enrolled")
    text = line.rstrip("\r\n")
    if len(text.encode("utf-8", "surrogateescape")) > _NAME_LINE_MAX:
        raise GalleryError(f"{option} -: the line read from stdin is longer than {_NAME_LINE_MAX} "
                           f"bytes; the {what} must be one short line; nothing was enrolled")
    name = text.strip()
    if not name:
        raise GalleryError(f"{option} -: the line read from stdin is empty; give the {what} "
                           "on it; nothing was enrolled")
    return name


def _check_names(args: argparse.Namespace) -> None:
    """Refuse a name that would forge or hide terminal output, before any model loads."""
    import unicodedata

    from ..face.safe_text import unsafe_text_error

    if args.consent_by is not None and not args.consent_by.strip():
        raise GalleryError("--consent-by is empty; give who consented, or leave --consent-by out "
                           "when the driver consented; nothing was enrolled")
    for text, what in ((args.name, "driver name (--name)"),
                       (args.consent_by, "who consented (--consent-by)")):
        error = unsafe_text_error(text, what) if text else None
        if error:
            raise GalleryError(error)
        # Only combining marks (or spaces) print as nothing, or glue onto the column before.
        if text and text.strip() and not any(unicodedata.category(c)[0] in "LNPS" for c in text):
            raise GalleryError(f"{what} {ascii(text)} has no visible character (only combining marks "
                               "or spaces); nothing was enrolled; fix: type the name itself")


def cmd_enroll(args: argparse.Namespace) -> int:
    from ..face.gallery import CONSENT_TEXT, CONSENT_TEXT_VERSION
    if not args.consent:
        print(f"refused: --consent is required.\n{_CONSENT_HELP}\n\nConsent text (version "
              f"{CONSENT_TEXT_VERSION}):\n  {CONSENT_TEXT}", file=sys.stderr)
        return 2
    settings = _settings(args)
    if args.bag:  # camera frames: identity only where the config says the camera is the cabin's
        from ..face.privacy import check_identity_allowed, check_identity_topic

        # named as for photos (R90: it named neither the setting nor its file, nor the fix)
        check_identity_allowed(
            settings.camera_role, f"{NODE_NAME}.camera_role in {getattr(args, 'config', None)}",
            fix=f"enrol from the in-cabin camera's bag with a --config whose {NODE_NAME} section "
                "has camera_role: cabin (the default), or none; nothing was read")
        check_identity_topic(args.topic, getattr(args, "config", None), "--topic",
                             "give --topic the in-cabin camera's topic, or remove it from "
                             "camera_topics if it is one")
    else:  # photos: the templates are the cabin camera's driver's, as identify judges them (R90)
        _check_cabin_photos(args, settings, "face enrolment")
    _read_names(args)  # `-`: from stdin, out of /proc/PID/cmdline and shell history (R49)
    _check_names(args)
    store = _store(settings)
    from ..stops import stop_signals

    # SIGTERM unwinds as Ctrl-C does while frames are read: a file-compressed bag's unpacked copy
    # (the cabin camera's frames: the driver's face) is removed; SIGTERM's default left it in
    # TMPDIR (R40). Exit status 143 / 130. The gallery's change itself runs whole (R44).
    with stop_signals() as stops:
        embs, crops, labels = _enrol_templates(args, settings)
        store.changing = stops.deferred
        with stops.obeyed():  # a stop kept for the change is obeyed, even if the change fails
            _enrol(args, settings, store, embs, crops, labels)
    return 0


def _enrol(args: argparse.Namespace, settings: Any, store: Any, embs: np.ndarray,
           crops: np.ndarray, labels: list[str]) -> None:
    """Check the faces are one person, warn of one already enrolled, enrol; print the record."""
    from ..face.gallery import ConsentRecord
    from ..face.identify import TemplateIndex

    threshold = settings.identity.match_threshold
    _check_one_person(embs, labels, threshold)
    existing = TemplateIndex(store.drivers())
    if len(existing):
        match = existing.match(embs)
        best = int(np.argmax(match.score))
        if match.score[best] >= threshold:
            j = int(match.index[best])
            print(f"warning: this face matches already enrolled '{printable(existing.names[j])}' "
                  f"({printable(existing.ids[j])}, score {match.score[best]:.2f})", file=sys.stderr)
    record = store.enroll(args.name, embs, ConsentRecord.now(args.consent_by or args.name),
                          images=list(crops) if settings.gallery.keep_images else None)
    print(f"enrolled {record.id} '{printable(record.name)}' with {len(record.templates)} "
          f"template(s), {len(record.images)} kept image(s); consent "
          f"v{printable(record.consent.text_version)} by {printable(record.consent.who)} at "
          f"{printable(record.consent.when)}; gallery {store.path}")


# -- list / forget / keygen ------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    drivers = store.drivers()
    if args.json:
        print(json.dumps([{
            "id": d.id, "name": d.name, "created": d.created, "templates": len(d.templates),
            "images": len(d.images), "consent": {"who": d.consent.who, "when": d.consent.when,
                                                 "text_version": d.consent.text_version},
        } for d in drivers], indent=2))
        return 0
    if not drivers:
        print(f"no enrolled drivers in {store.path}")
        return 0
    print(f"{'ID':<13} {'NAME':<24} {'CREATED':<26} {'TPL':>3} {'IMG':>3}  CONSENT")
    # Every field comes from the file: escaped, so no name can forge a row or hide text (a
    # gallery written before names were checked, or by hand). JSON escapes them by itself.
    for d in drivers:
        print(f"{printable(d.id):<13} {printable(d.name[:24]):<24} {printable(d.created):<26} "
              f"{len(d.templates):>3} {len(d.images):>3}  v{printable(d.consent.text_version)} by "
              f"{printable(d.consent.who)} at {printable(d.consent.when)}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from ..stops import stop_signals

    store = _store(_settings(args))
    # Ctrl-C or SIGTERM while the gallery is rewritten waits for the change to end (R44): one
    # after the new gallery was in place left the old version, the driver's name and templates,
    # unzeroed on disk, and the command said nothing. Then it stops (exit 130 / 143).
    with stop_signals() as stops, stops.obeyed():  # even if the change fails: exit 130 / 143
        store.changing = stops.deferred
        record = store.forget(args.id)
        print(f"forgot {printable(record.id)} '{printable(record.name)}': {len(record.templates)} "
              f"template(s), consent record and {len(record.images)} kept image(s) erased from "
              f"{store.path}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from ..stops import stop_signals

    store = _store(_settings(args))
    with stop_signals() as stops, stops.obeyed():  # the change runs whole, as forget's (R44)
        store.changing = stops.deferred
        drivers = store.restore()
        print(f"restored {store.path} from its last good copy {store.backup_path}: "
              f"{len(drivers)} driver(s)")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from ..face.gallery import generate_key_file
    from ..stops import stop_signals

    # Ctrl-C or SIGTERM between linking the key and removing its temp name waits for the removal
    # (R49): SIGTERM's default ended the process there and left the temp, a second name of the
    # key, until the next keygen of that name. Then it stops (exit 130 / 143).
    with stop_signals() as stops, stops.obeyed():
        path = generate_key_file(args.out, changing=stops.deferred)
        print(f"wrote a new 256-bit gallery key to {path} (mode 0600); keep a backup: without it "
              "the encrypted gallery cannot be read")
    return 0


# -- identify -------------------------------------------------------------------------------------

def cmd_identify(args: argparse.Namespace) -> int:
    """Exit status: 0 every photo read, 1 some skipped (named on stderr), 2 none could be read or
    a bad argument; 143 / 129 / 130 stopped by SIGTERM / SIGHUP / Ctrl-C, as ``enroll`` (R94:
    either signal's default ended it at once, in its load or among its photos)."""
    from ..stops import stop_signals

    with stop_signals():  # it writes nothing: no block need be held
        return _identify(args)


def _identify(args: argparse.Namespace) -> int:
    """``driver identify``'s work (:func:`cmd_identify`)."""
    from ..errors import SensePerceptionError
    from ..face.identify import TemplateIndex

    settings = _settings(args)
    _check_cabin_photos(args, settings, "face identification")  # before the gallery is read
    index = TemplateIndex(_store(settings).drivers())
    engine = _load(args, partial(_still_engine, settings), "driver identify")
    threshold = settings.identity.match_threshold
    results = []
    skipped: list[str] = []
    for path in args.images:
        try:
            image = _read_image(path, args)
            faces, _, emb, _ = engine.driver_embedding(image)
        except SensePerceptionError as exc:  # one bad photo must not cost the others theirs
            skipped.append(str(path))
            print(f"warning: skipped {printable(path)}: {printable(exc)}", file=sys.stderr)
            continue
        row: dict[str, Any] = {"image": str(path), "faces": len(faces), "driver_id": None,
                               "name": None, "score": None, "verdict": "no_face"}
        if emb is not None:
            m = index.match(emb[None])
            score = float(m.score[0])
            row["score"] = round(score, 4) if len(index) else None
            if len(index) and score >= threshold:
                j = int(m.index[0])
                row.update(driver_id=index.ids[j], name=index.names[j], verdict="identified")
            else:
                row["verdict"] = "unknown"
        results.append(row)
        if not args.json:
            detail = {"identified": f"{printable(row['name'])} ({printable(row['driver_id'])}) "
                                    f"score {row['score']}",
                      # an empty gallery has no best score: "best score None" said nothing
                      "unknown": (f"unknown (best score {row['score']}, threshold {threshold:.2f})"
                                  if row["score"] is not None else
                                  "unknown (nobody is enrolled in the gallery: "
                                  "`sense-perception driver enroll` adds a consenting driver)"),
                      "no_face": "no face found"}[row["verdict"]]
            print(f"{printable(path)}: {detail}")
    if args.json:
        print(json.dumps(results, indent=2))
    if skipped:
        print(f"warning: {len(skipped)} of {len(args.images)} image(s) skipped: "
              f"{printable(', '.join(skipped))}", file=sys.stderr)
        return 2 if not results else 1
    return 0


# -- attention ------------------------------------------------------------------------------------

ATTENTION_CONVENTIONS = (
    "Angles in degrees, relative to a face looking straight into the camera: yaw > 0 when the face "
    "turns towards the image's left (the person turns to their right), pitch > 0 chin up, roll > 0 "
    "when the head tilts counter-clockwise in the image. They come from the 468-point face mesh "
    "fitted to MediaPipe's canonical face with solvePnP, with the default intrinsics fx = fy = "
    "image width and the principal point at the image centre (a face far from the centre of a "
    "cropped photo therefore reads as turned, as a camera there would see it). Eye openness is the "
    "eye aspect ratio (EAR: lid distance over corner distance) of each eye (the person's right and "
    "left): about 0.2-0.4 when open, falling as the lids close; people differ, so the "
    "driver_monitor node judges it against the driver's own open-eye baseline.")


def _attention_row(path: str, faces: Any, measurement: Any) -> dict[str, Any]:
    """One image's JSON row; ``measurement`` None when no face was found."""
    row: dict[str, Any] = {"image": str(path), "faces": len(faces), "yaw_deg": None,
                           "pitch_deg": None, "roll_deg": None, "eye_aspect_ratio": None,
                           "reason": measurement.reason if measurement else "no face found"}
    if measurement is None:
        return row
    pose, eyes = measurement.pose, measurement.eyes
    if pose is not None:
        row.update(yaw_deg=round(pose.yaw, 2), pitch_deg=round(pose.pitch, 2),
                   roll_deg=round(pose.roll, 2))
    if eyes is not None:
        row["eye_aspect_ratio"] = {eye: round(eyes.ear[eye], 4) for eye in ("right", "left")}
    return row


def _is_attention_result(document: Any) -> bool:
    """True for a JSON document ``driver attention`` writes."""
    return (isinstance(document, dict) and {"conventions", "images"} <= set(document)
            <= {"conventions", "images", "skipped"})


def _is_eval_result(document: Any) -> bool:
    """True for a JSON document ``driver eval`` writes (the FAR/FRR table)."""
    return (isinstance(document, dict) and {"pairs", "threshold", "far", "frr", "table"}
            <= set(document) <= {"pairs", "failed_detections", "threshold", "far", "frr",
                                 "table", "skipped"})


def _json_out(args: argparse.Namespace, inputs: Sequence[str | Path], command: str,
              is_own: Callable[[Any], bool]) -> Path | None:
    """``--json-out FILE`` checked before any work: never an input, an image or unwritable, nor
    one of the files :func:`_kept_files` names, nor a JSON file that is no earlier result of the
    same command (another command's results, a ground truth: R73)."""
    from ..outpaths import OwnResult, check_result_file

    if not getattr(args, "json_out", None):
        return None
    path = Path(args.json_out)
    check_result_file(path, [*map(Path, inputs), *_kept_files(args)], "--json-out",
                      own=OwnResult(command, is_own))
    return path


def _kept_files(args: argparse.Namespace) -> list[Path]:
    """The files a result must never replace beside the photos: ``--config``, the gallery
    (``--gallery``, the config's ``gallery.path`` or the defaults, plain and encrypted), its
    last good copy and the key file (``--key-file``, ``gallery.key_file``).

    ``driver eval --json-out ~/.local/share/sense_perception/gallery.json`` replaced every
    enrolled driver with the FAR/FRR table (and the same name for the key file lost the
    encrypted gallery for good); ``--json-out`` naming ``--config`` replaced the config.
    """
    from ..face.gallery import default_gallery_path, sidecar

    settings = _settings(args)
    galleries = [Path(p).expanduser() for p in (settings.gallery.path,) if p] or [
        default_gallery_path(False), default_gallery_path(True)]
    kept = [p for g in galleries for p in (g, sidecar(g, ".bak"))]
    if settings.gallery.key_file:
        kept.append(Path(settings.gallery.key_file).expanduser())
    if getattr(args, "config", None):
        kept.append(Path(args.config))
    return kept


def _write_json(path: Path, doc: Any) -> None:
    """Write ``--json-out`` through a temp file renamed over it: a full disk or a kill leaves an
    earlier result whole, never truncated (a link is written through to the file it names).
    SIGTERM stops as Ctrl-C does, and a stop while the file is replaced waits for it (exit 143 /
    130 after it): SIGTERM's default ended the process there, its temp file left (R73)."""
    from ..fileio import write_result_json
    from ..outpaths import OutputPathError
    from ..stops import stop_signals

    with stop_signals() as stops, stops.held():
        try:
            write_result_json(Path(os.path.realpath(path)), doc, indent=2)
        except OSError as exc:
            raise OutputPathError(f"--json-out {path} cannot be written: {exc.strerror or exc}; "
                                  "the earlier file there is kept (the results are printed "
                                  "above); fix: free space on that disk or give another path"
                                  ) from None


def _measure_photo(path: str, args: argparse.Namespace, engine: Any,
                   estimator: Any) -> dict[str, Any]:
    """The attention row of one photo.

    Raises:
        SensePerceptionError: the photo cannot be read or is not a usable image (named).
    """
    image = _read_image(path, args)
    faces = engine.detect(image)
    index = engine.select(faces, image.shape)
    measurement = (estimator.measure(image, faces.boxes[index], faces.landmarks[index])
                   if index >= 0 else None)
    return _attention_row(path, faces, measurement)


def cmd_attention(args: argparse.Namespace) -> int:
    """Exit status: 0 every photo read, 1 some skipped (named on stderr and under "skipped" in
    the JSON), 2 none could be read or a bad argument; 143 / 129 / 130 stopped by SIGTERM /
    SIGHUP / Ctrl-C, at any point, a ``--json-out`` write in progress finished first (R96: either
    signal's default ended it at once among its photos)."""
    from ..stops import stop_signals

    with stop_signals():  # _write_json's held block is this block's: it holds all three stops
        return _attention(args)


def _attention(args: argparse.Namespace) -> int:
    """``driver attention``'s work (:func:`cmd_attention`)."""
    from ..errors import SensePerceptionError
    from ..face.attention.estimator import AttentionEstimator

    json_out = _json_out(args, args.images, "driver attention", _is_attention_result)
    settings = _settings(args)
    _check_cabin_photos(args, settings, "driver attention")  # before any model loads
    engine, estimator = _load(args, lambda: (_still_engine(settings), AttentionEstimator(
        settings.attention, settings.attention_options())), "driver attention")
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for path in args.images:
        try:
            row = _measure_photo(path, args, engine, estimator)
        except SensePerceptionError as exc:  # one bad photo must not cost the others theirs
            skipped.append({"image": str(path), "reason": str(exc)})
            print(f"warning: skipped {printable(path)}: {printable(exc)}", file=sys.stderr)
            continue
        rows.append(row)
        if args.json:
            continue
        if row["yaw_deg"] is None:
            print(f"{printable(path)}: {printable(row['reason'])}")
            continue
        ear = row["eye_aspect_ratio"]
        print(f"{printable(path)}: yaw {row['yaw_deg']:+.1f}  pitch {row['pitch_deg']:+.1f}  roll "
              f"{row['roll_deg']:+.1f} deg; eye openness (EAR) right {ear['right']:.3f} left "
              f"{ear['left']:.3f}")
    doc = {"conventions": ATTENTION_CONVENTIONS, "images": rows, "skipped": skipped}
    if args.json:
        print(json.dumps(doc, indent=2))
    if json_out is not None:
        _write_json(json_out, doc)
        print(f"wrote {printable(json_out)}", file=sys.stderr if args.json else sys.stdout)
    if skipped:
        print(f"warning: {len(skipped)} of {len(args.images)} image(s) skipped: "
              f"{printable(', '.join(s['image'] for s in skipped))}", file=sys.stderr)
        return 2 if not rows else 1
    return 0


# -- eval -----------------------------------------------------------------------------------------

def read_pairs(path: str | Path) -> list[tuple[str, str, int]]:
    """Read a pairs CSV with columns file_x, file_y, same (1 same person, 0 different).

    Raises:
        ConfigError: the file is not a readable regular UTF-8 CSV of that form, naming the line.
    """
    import stat

    try:
        # O_NONBLOCK: a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"pairs file {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"pairs file {path} is not a regular file (a directory, FIFO or "
                              "device); give a CSV file")
        with os.fdopen(fd, newline="", encoding="utf-8") as f:
            fd = -1
            reader = csv.DictReader(f)
            missing = {"file_x", "file_y", "same"} - set(reader.fieldnames or [])
            if missing:
                raise ConfigError(f"pairs file {path} lacks column(s) {sorted(missing)}; the header "
                                  "must be file_x,file_y,same")
            pairs = []
            for line, row in enumerate(reader, start=2):
                if None in row.values() or None in row:
                    raise ConfigError(f"pairs file {path} line {line}: needs exactly the 3 fields "
                                      "file_x,file_y,same")
                same = str(row["same"]).strip()
                if same not in ("0", "1"):
                    raise ConfigError(f"pairs file {path} line {line}: same must be 0 or 1, got "
                                      f"{row['same']!r}")
                pairs.append((row["file_x"].strip(), row["file_y"].strip(), int(same)))
    except OSError as exc:
        raise ConfigError(f"pairs file {path} cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"pairs file {path} is not UTF-8 text (byte {exc.start}); save it as "
                          "UTF-8") from exc
    except csv.Error as exc:
        raise ConfigError(f"pairs file {path} is not a readable CSV: {exc}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
    if not pairs:
        raise ConfigError(f"pairs file {path} has no pairs")
    return pairs


def rates(scores: np.ndarray, same: np.ndarray, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """False-accept and false-reject rates at each threshold (score >= threshold accepts)."""
    t = np.asarray(thresholds, np.float64)[:, None]
    accept = scores[None, :] >= t
    genuine, impostor = same == 1, same == 0
    far = (accept & impostor).sum(1) / max(int(impostor.sum()), 1)
    frr = (~accept & genuine).sum(1) / max(int(genuine.sum()), 1)
    return far, frr


def evaluate(pairs: Sequence[tuple[str, str, int]], root: Path, engine: Any, threshold: float,
             table: Sequence[float] = DEFAULT_TABLE, augment: bool = False,
             limits: Any = None) -> dict[str, Any]:
    """Score every pair and return the eval JSON document (see ``driver eval --help``).

    Each photo is read within ``limits`` (an :class:`~..core.imaging.frame_guard.InputLimits`,
    the config's ``input.*``; None: the defaults) and must be at least 8x8 px; any other is
    skipped and named with its pairs."""
    from ..core.imaging.image_file import read_image_file
    from ..face.augment import AUGMENTATIONS, augment as make_variants
    from ..face.yunet import check_image

    images: dict[str, np.ndarray] = {}
    skipped: list[dict[str, str]] = []
    for name in sorted({p for pair in pairs for p in pair[:2]}):
        try:
            # under 8x8 px is skipped and named here too: the detector's own refusal ended the
            # whole eval (exit 2) with "image: image 4x4 is too small", naming no file (R49)
            images[name] = check_image(read_image_file(root / name, limits), str(root / name))
        except ImageDecodeError as exc:  # one bad photo must not cost the other pairs theirs
            skipped.append({"image": str(root / name), "reason": str(exc)})
    pairs = [(x, y, s) for x, y, s in pairs if x in images and y in images]
    if not pairs:
        raise ConfigError(f"no pair could be scored: {len(skipped)} photo(s) cannot be read, "
                          f"first {skipped[0]['reason']}; check the paths (relative to --root "
                          f"{root})")
    all_pairs = list(pairs)
    if augment:
        for name in sorted(images):
            for aug, variant in make_variants(images[name]).items():
                images[f"{name}#{aug}"] = variant
                all_pairs.append((name, f"{name}#{aug}", 1))  # same photo, altered: a positive
        all_pairs += [(f"{x}#{aug}", y, s) for x, y, s in pairs for aug in AUGMENTATIONS]
    embedding: dict[str, np.ndarray] = {}  # the images whose driver face was found
    for name, image in images.items():
        _, _, emb, _ = engine.driver_embedding(image)
        if emb is not None:
            embedding[name] = emb
    ok = [(x, y, s) for x, y, s in all_pairs if x in embedding and y in embedding]
    scores = np.array([float(embedding[x] @ embedding[y]) for x, y, _ in ok])
    same = np.array([s for _, _, s in ok], np.int64)
    far, frr = rates(scores, same, table)
    far0, frr0 = rates(scores, same, [threshold])
    return {
        "pairs": len(all_pairs),
        "failed_detections": len(all_pairs) - len(ok),
        "threshold": float(threshold),
        "far": float(far0[0]),
        "frr": float(frr0[0]),
        "table": [{"threshold": float(t), "far": float(a), "frr": float(r)}
                  for t, a, r in zip(table, far, frr, strict=True)],
        "skipped": skipped,
    }


def cmd_eval(args: argparse.Namespace) -> int:
    """Exit status: 0 every photo read, 1 some skipped, 2 a bad argument; 143 / 129 / 130
    stopped by SIGTERM / SIGHUP / Ctrl-C at any point, as :func:`cmd_attention` (R96)."""
    from ..stops import stop_signals

    with stop_signals():
        return _eval(args)


def _eval(args: argparse.Namespace) -> int:
    """``driver eval``'s work (:func:`cmd_eval`)."""
    settings = _settings(args)
    # it embeds and matches faces as identify does, with the config's face pipeline (R90)
    _check_cabin_photos(args, settings, "face identification (driver eval)")
    pairs = read_pairs(args.pairs)
    root = Path(args.root) if args.root else Path(args.pairs).resolve().parent
    json_out = _json_out(args, [args.pairs, *{root / p for pair in pairs for p in pair[:2]}],
                         "driver eval", _is_eval_result)
    threshold = settings.identity.match_threshold
    table = sorted(set(args.thresholds or DEFAULT_TABLE))
    # The config's input.* limits, as every other command that reads photos takes them: eval
    # read them with the defaults whatever --config said (R49).
    limits = _input_limits(args)
    engine = _load(args, partial(_still_engine, settings), "driver eval")
    doc = evaluate(pairs, root, engine, threshold, table, args.augment, limits)
    status = _print_eval(doc, args, threshold)
    if json_out is not None:  # last: a full disk never loses minutes of scoring unseen
        _write_json(json_out, doc)
    return status


def _print_eval(doc: dict[str, Any], args: argparse.Namespace, threshold: float) -> int:
    """Print ``driver eval``'s result (JSON or the table) and its warnings; the exit status."""
    for entry in doc["skipped"]:
        print(f"warning: skipped {printable(entry['image'])} and its pairs: "
              f"{printable(entry['reason'])}",
              file=sys.stderr)
    status = 1 if doc["skipped"] else 0
    if args.json:
        print(json.dumps(doc, indent=2))
        return status
    print(f"{doc['pairs']} pairs ({'with' if args.augment else 'no'} augmentation), "
          f"{doc['failed_detections']} with a face not found (left out of the rates)")
    print(f"{'threshold':>9}  {'FAR':>7}  {'FRR':>7}")
    for row in doc["table"]:
        mark = "  <- shipped" if math.isclose(row["threshold"], threshold) else ""
        print(f"{row['threshold']:>9.2f}  {row['far']:>7.3f}  {row['frr']:>7.3f}{mark}")
    print(f"shipped threshold {threshold:.2f}: FAR {doc['far']:.3f}, FRR {doc['frr']:.3f}")
    return status


# -- parser ---------------------------------------------------------------------------------------

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `driver` and its sub-commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--gallery", metavar="PATH",
                        help="gallery file (default: $SENSE_PERCEPTION_GALLERY or "
                             "~/.local/share/sense_perception/gallery.json[.enc])")
    common.add_argument("--key-file", metavar="FILE",
                        help="AES-256 key file (mode 0600) to encrypt the gallery at rest; or set "
                             "$SENSE_PERCEPTION_GALLERY_KEY (hex or base64)")
    common.add_argument("--config", metavar="YAML", type=config_file,
                        help=f"ROS 2 parameter file (or the plain form), {CONFIG_HELP}; reads the "
                             "driver_monitor node's face.*, "
                             "identity.*, gallery.*, input.* and runtime.* settings")

    parser = subparsers.add_parser(
        "driver", help="the consenting driver's gallery and identification (enroll, list, "
                       "forget, identify, eval, keygen, restore) and attention on photos",
        description="Driver identity from the in-cabin camera. Face templates stay in a local "
                    "gallery (mode 0600, optionally AES-GCM encrypted); nobody is enrolled without "
                    "--consent, unknown faces are never enrolled, and `forget` erases a driver "
                    "completely.")
    sub = parser.add_subparsers(dest="driver_command", metavar="ACTION")
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])

    from ..face.gallery import CONSENT_TEXT, CONSENT_TEXT_VERSION

    p = sub.add_parser("enroll", parents=[common], help="enrol a driver who has consented",
                       description=f"Enrol a driver from photos or a cabin-camera bag. "
                                   f"{_CONSENT_HELP}",
                       epilog=f"Consent text (version {CONSENT_TEXT_VERSION}): {CONSENT_TEXT}")
    p.add_argument("--name", metavar="NAME",
                   help="display name of the driver; `-` reads it from stdin (one line), keeping "
                        "it out of the command line, which every local user can read while the "
                        "command runs (/proc/PID/cmdline, ps), and out of shell history; left out "
                        "at a terminal, it is asked for")
    p.add_argument("--consent", action="store_true",
                   help="confirm the driver has read and accepted the consent text (required)")
    p.add_argument("--consent-by", metavar="WHO",
                   help="who gave consent, if not the driver named by --name; `-` reads it from "
                        "stdin (the line after the driver's name when --name is `-` too)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", metavar="FILE",
                     help="photos, each showing only the driver's face")
    src.add_argument("--bag", metavar="BAG", help="rosbag2 (directory, .mcap or .db3) from the cabin camera")
    p.add_argument("--topic", help="the cabin camera's image topic in --bag (sensor_msgs/Image or "
                                   "CompressedImage; required with --bag)")
    p.add_argument("--stride", type=int, default=None, metavar="N",
                   help="use every N-th bag frame (default 5)")
    p.add_argument("--keep-images", action="store_true",
                   help="also store the aligned 112x112 face crops beside the gallery (off by "
                        "default: no face image is written)")
    p.set_defaults(func=_require_topic(p, cmd_enroll))

    p = sub.add_parser("list", parents=[common], help="list enrolled drivers",
                       description="List the gallery's drivers: id (for `forget`), name, when "
                                   "enrolled, templates, kept face crops and the consent record "
                                   "(who, when, consent text version).")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("forget", parents=[common],
                       help="erase a driver: templates, consent record and kept images",
                       description="Erase a driver from the gallery and its last good copy "
                                   "(<gallery>.bak): templates, consent record and kept face "
                                   "crops. A running driver_monitor node re-reads the changed "
                                   "gallery (checked every second).")
    p.add_argument("id", help="driver id from `driver list`")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("restore", parents=[common],
                       help="put the gallery's last good copy (<gallery>.bak) back after corruption",
                       description="Replace a corrupt or missing gallery with the last good copy "
                                   "kept beside it (<gallery>.bak, rewritten on every enrol and "
                                   "forget). Refused when the gallery is readable.")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("identify", parents=[common], help="identify the largest face in photos",
                       description="Identify the largest face in each photo against the gallery. "
                                   "A photo that cannot be read is skipped and named; the others "
                                   "go on. Exit status: 0 every photo read, 1 some skipped, 2 "
                                   "none read or a bad argument.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="photos (jpg, png, bmp, tiff, webp ...); the largest face of each is identified")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_identify)

    config_only = argparse.ArgumentParser(add_help=False)
    config_only.add_argument("--config", metavar="YAML", type=config_file,
                             help=f"ROS 2 parameter file (or the plain form), {CONFIG_HELP}; reads "
                                  "the driver_monitor node's face.*, "
                                  "attention.*, input.* and runtime.* settings")
    p = sub.add_parser(
        "attention", parents=[config_only],
        help="head pose (yaw, pitch, roll) and each eye's openness of the largest face in photos",
        description="Measure the head pose and eye openness of the largest face in each photo, "
                    "as the driver_monitor node does for the driver (no identity, no gallery). "
                    + ATTENTION_CONVENTIONS,
        epilog="JSON (--json, --json-out FILE): {conventions, images: [{image, faces, yaw_deg, "
               "pitch_deg, roll_deg, eye_aspect_ratio: {right, left}, reason}], skipped: [{image, "
               "reason}]}; the angles are null and reason says why when no face was measured. A "
               "photo that cannot be read is skipped, named and counted; the others go on. Exit "
               "status: 0 every photo read, 1 some skipped, 2 none read or a bad argument.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="photos (jpg, png, bmp, tiff, webp ...); the largest face of each is measured")
    p.add_argument("--json", action="store_true",
                   help="print the results as JSON on stdout instead of the text lines")
    p.add_argument("--json-out", metavar="FILE",
                   help="also write the results as JSON to FILE (never an input or an image file)")
    p.set_defaults(func=cmd_attention)

    p = sub.add_parser(
        "eval", parents=[common], help="false-accept / false-reject rates on labelled photo pairs",
        description="Score photo pairs and print FAR/FRR at several thresholds and at the shipped "
                    "identity.match_threshold. JSON output: {pairs, failed_detections, threshold, "
                    "far, frr, table: [{threshold, far, frr}], skipped: [{image, reason}]}; pairs "
                    "whose face is not found are counted in failed_detections and left out of the "
                    "rates; a photo that cannot be read is skipped and named with its pairs. Exit "
                    "status: 0 every photo read, 1 some skipped, 2 no pair scored or a bad "
                    "argument.")
    p.add_argument("--pairs", required=True, metavar="CSV", help="CSV with columns file_x,file_y,same")
    p.add_argument("--root", metavar="DIR", help="directory the CSV paths are relative to "
                                                 "(default: the CSV's directory)")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON on stdout instead of the table")
    p.add_argument("--json-out", metavar="FILE",
                   help="also write the result as JSON to FILE (never an input or an image file)")
    p.add_argument("--augment", action="store_true",
                   help="add pairs of altered copies (flip, crop, exposure, scale, blur, JPEG, "
                        "rotation, grey) of the same photos; easier than real pairs")
    p.add_argument("--thresholds", type=_threshold, nargs="+", metavar="T",
                   help="thresholds of the table, each within -1..1 (cosine similarity; "
                        "default: 0.20 to 0.70 in steps of 0.05)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("keygen", help="create a random gallery encryption key file (mode 0600)",
                       description="Write a new random 256-bit AES key, as hex, to FILE (mode "
                                   "0600; never over an existing file). Give it to the other "
                                   "driver commands as --key-file FILE (or gallery.key_file in "
                                   "the config) to keep the gallery encrypted at rest; keep a "
                                   "backup: without it the encrypted gallery cannot be read.")
    p.add_argument("--out", required=True, metavar="FILE", help="key file to create (never overwritten)")
    p.set_defaults(func=cmd_keygen)
    return parser


def _threshold(text: str) -> float:
    """A ``--thresholds`` value: a cosine similarity, so a finite number within -1..1 (NaN or
    Infinity would also make the JSON output invalid)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not -1.0 <= value <= 1.0:  # nan fails this too
        raise argparse.ArgumentTypeError(f"{text} is not within -1..1 (a cosine similarity)")
    return value


def _require_topic(parser: argparse.ArgumentParser, func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        if args.bag and not args.topic:
            parser.error("--bag needs --topic (the cabin camera's image topic)")
        if not args.bag and (args.topic or args.stride is not None):
            # a setting is never silently ignored: with --images they would have no effect
            parser.error("--topic and --stride choose the frames of --bag; with --images they do "
                         "nothing: drop them, or enrol from --bag")
        if args.stride is None:
            args.stride = 5
        if args.stride < 1:
            parser.error("--stride must be >= 1")
        return func(args)
    return run
