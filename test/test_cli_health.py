"""`sense-perception health`: single images judged, JSON written, bad input reported."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sense_perception.cli.main import main
from sense_perception.evaluation import degrade

from support import REPO

DATA = REPO.parent / "shared" / "data"
PANDASET = DATA / "street_labelled" / "pandaset_seq002_front" / "20.jpg"
COMMA = DATA / "street" / "comma2k19_highway280_rav4_preview.png"
FACE = DATA / "faces" / "obama_1_official_portrait_2012.jpg"


@pytest.fixture(scope="module")
def degraded(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("degraded")
    image = cv2.imread(str(PANDASET))
    rng = np.random.default_rng(4)
    out = {}
    for name, make in [("blocked", lambda i: degrade.soil_opaque(i, rng, 0.45)),
                       ("low_visibility", lambda i: degrade.defocus(i, rng)),
                       ("dark", lambda i: degrade.under_exposed(i, rng)),
                       ("bright", lambda i: degrade.over_exposed(i, rng))]:
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), make(image))
        out[name] = str(path)
    return out


def test_clean_images_have_no_condition_and_degraded_ones_theirs(tmp_path, degraded, capsys):
    out = tmp_path / "health.json"
    code = main(["health", str(PANDASET), str(COMMA), *degraded.values(), "--json-out", str(out)])
    assert code == 0
    images = json.loads(out.read_text())["images"]
    assert [i["path"] for i in images] == [str(PANDASET), str(COMMA), *degraded.values()]
    assert images[0]["conditions"] == [] and images[1]["conditions"] == []
    for record, want in zip(images[2:], degraded, strict=True):
        assert want in record["conditions"], record
        assert set(record["conditions"]) <= {"blocked", "low_visibility", "dark", "bright"}
    assert {"mean", "highlight", "clipped", "sharp", "featureless", "flat_dark", "structure",
            "fine"} <= set(images[0]["metrics"])
    text = capsys.readouterr().out
    assert f"{COMMA}  1164x874  ok" in text and "6 images judged, 4 with a condition" in text


def test_cabin_settings_and_a_config_are_read(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_health:\n"
                      "      dark_highlight: 255.0\n      dark_mean: 255.0\n")
    assert main(["health", str(FACE), "--node-name", "driver_monitor"]) == 0
    assert "ok" in capsys.readouterr().out
    # every frame is "dark" when the thresholds say so: the file's values are used
    assert main(["health", str(FACE), "--node-name", "driver_monitor", "--config", str(config)]) == 0
    assert "dark" in capsys.readouterr().out


def test_unreadable_images_are_named_skipped_and_counted(tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "h.json"
    code = main(["health", str(broken), str(COMMA), str(tmp_path / "missing.png"), "--json-out", str(out)])
    assert code == 1
    err = capsys.readouterr()
    assert "broken.jpg" in err.err and "missing.png" in err.err and "Traceback" not in err.err
    assert "1 image judged, 0 with a condition, 2 skipped (unreadable or partly transparent)" in err.out
    document = json.loads(out.read_text())
    assert [i["path"] for i in document["images"]] == [str(COMMA)]
    assert [s["path"] for s in document["skipped"]] == [str(broken), str(tmp_path / "missing.png")]


def test_json_prints_and_json_out_never_overwrites_a_photo(tmp_path, capsys):
    # --json means what it means in every command (issue 20): print JSON; files go to --json-out.
    assert main(["health", str(COMMA), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [i["path"] for i in document["images"]] == [str(COMMA)]
    # the documented shape, whole: `skipped` is there (empty) when nothing was skipped
    assert document["skipped"] == []
    assert set(document["images"][0]) == {"path", "width", "height", "frames", "conditions", "metrics"}
    victim = tmp_path / "victim.png"
    victim.write_bytes(COMMA.read_bytes())
    for target in (victim, tmp_path / "new.jpg", COMMA):  # an image, an image name, an input
        assert main(["health", str(COMMA), "--json-out", str(target)]) == 2
        assert "--json-out" in capsys.readouterr().err
    assert victim.read_bytes() == COMMA.read_bytes() and not (tmp_path / "new.jpg").exists()


def test_bad_options_exit_2_with_the_fix(tmp_path, capsys):
    assert main(["health", str(COMMA), "--json-out", str(tmp_path)]) == 2
    assert "--json-out" in capsys.readouterr().err
    config = tmp_path / "typo.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    camera_health:\n      dark_men: 3.0\n")
    assert main(["health", str(COMMA), "--config", str(config)]) == 2
    assert "did you mean camera_health.dark_mean" in capsys.readouterr().err


def test_json_with_a_file_name_writes_it_as_the_issue_asks(tmp_path, capsys):
    # issue 24: `health IMAGE... --json OUT`; --json still prints, as in every command
    out = tmp_path / "out.json"
    assert main(["health", str(COMMA), str(PANDASET), "--json", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    assert written == printed and [i["path"] for i in written["images"]] == [str(COMMA), str(PANDASET)]
    assert all(set(i) >= {"path", "conditions", "metrics"} for i in written["images"])
    # the same file twice is one; two files are refused before anything is read
    assert main(["health", str(COMMA), "--json", str(out), "--json-out", str(out)]) == 0
    capsys.readouterr()
    other = tmp_path / "other.json"
    assert main(["health", str(COMMA), "--json", str(out), "--json-out", str(other)]) == 2
    assert "name two files" in capsys.readouterr().err and not other.exists()
    # OUT is checked like --json-out: never an input
    assert main(["health", str(COMMA), "--json", str(COMMA)]) == 0  # an image: judged, not OUT
    assert [i["path"] for i in json.loads(capsys.readouterr().out)["images"]] == [str(COMMA)] * 2
    unwritable = tmp_path / "missing-dir" / "x.json"
    assert main(["health", str(COMMA), "--json", str(unwritable)]) == 2
    assert "--json" in capsys.readouterr().err and not unwritable.exists()


def test_a_json_name_where_an_image_belongs_is_refused(tmp_path, capsys):
    out = tmp_path / "out.json"
    assert main(["health", str(out), "--json"]) == 2  # the name given first, --json after it
    err = capsys.readouterr().err
    assert f"--json {out}" in err and f"--json-out {out}" in err and "Traceback" not in err
    assert not out.exists()
    out.write_text("{}")  # an existing JSON file is no image either
    assert main(["health", str(out), str(COMMA)]) == 2
    assert f"--json-out {out}" in capsys.readouterr().err
    assert out.read_text() == "{}"
    with pytest.raises(SystemExit) as stop:  # neither an image nor a .json name: a usage error
        main(["health", str(COMMA), "--json", str(tmp_path / "result.txt")])
    assert stop.value.code == 2 and "neither an image nor a .json" in capsys.readouterr().err


def test_json_before_the_images_still_prints(capsys):
    # --json takes an optional value only for `--json OUT.json`: images after it are judged
    assert main(["health", "--json", str(COMMA), str(PANDASET)]) == 0
    assert [i["path"] for i in json.loads(capsys.readouterr().out)["images"]] == [str(COMMA), str(PANDASET)]
    assert main(["health", str(COMMA), "--json", str(PANDASET)]) == 0
    assert [i["path"] for i in json.loads(capsys.readouterr().out)["images"]] == [str(COMMA), str(PANDASET)]
    assert main(["health", "--json"]) == 2
    assert "no IMAGE given" in capsys.readouterr().err


def test_json_out_never_replaces_the_config_or_a_file_that_is_no_result(tmp_path, capsys):
    # `--config c.yaml --json-out c.yaml` replaced the config with the JSON, and a note, CSV or
    # key typed as --json-out was replaced too: only an earlier result (JSON) or a new name is taken.
    config = tmp_path / "c.json"  # a config in JSON form (YAML reads it): named, not judged by content
    config.write_text('{"object_detector": {"ros__parameters": {"camera_health": {"dark_mean": 40.0}}}}\n')
    note = tmp_path / "notes.txt"
    note.write_text("calibration done on 2026-05-01\n")
    before = {p: p.read_bytes() for p in (config, note)}
    for target, reason in ((config, f"is the input {config}"),
                           (note, "not a JSON result (it begins 'calibration done")):
        assert main(["health", str(COMMA), "--config", str(config), "--json-out", str(target)]) == 2
        err = capsys.readouterr().err
        assert f"--json-out {target}" in err and reason in err and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in before} == before
    earlier = tmp_path / "h.json"
    earlier.write_text('{"images": []}\n')  # an earlier result is replaced as before
    assert main(["health", str(COMMA), "--config", str(config), "--json-out", str(earlier)]) == 0
    assert [i["path"] for i in json.loads(earlier.read_text())["images"]] == [str(COMMA)]


def test_a_json_out_that_cannot_be_written_never_loses_the_printed_json(tmp_path, capsys,
                                                                        monkeypatch):
    # `health --json --json-out` wrote the file before printing: a full disk lost both.
    import sense_perception.fileio as fileio

    def full_disk(*_args, **_kwargs) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "write_result_json", full_disk)
    assert main(["health", str(COMMA), "--json", "--json-out", str(tmp_path / "h.json")]) == 2
    out, err = capsys.readouterr()
    assert [i["path"] for i in json.loads(out)["images"]] == [str(COMMA)]
    assert "No space left on device" in err and "printed above" in err


def test_json_out_never_replaces_a_driver_gallery(tmp_path, capsys):
    # A plain gallery is JSON, so the "not a JSON result" rule let `health --json-out` (or any
    # command's but driver's) replace it: every enrolled driver lost. Refused by its content now.
    from sense_perception.face.gallery import FORMAT

    gallery = tmp_path / "gallery.json"
    gallery.write_text(json.dumps({"format": FORMAT, "schema": 1, "sha256": "0" * 64,
                                   "drivers": []}, indent=1) + "\n")
    before = gallery.read_bytes()
    assert main(["health", str(COMMA), "--json-out", str(gallery)]) == 2
    err = capsys.readouterr().err
    assert f"--json-out {gallery} is a driver gallery" in err and "Traceback" not in err, err
    assert gallery.read_bytes() == before


def test_a_closed_stdout_pipe_still_writes_the_json_out_without_a_traceback(tmp_path):
    # `health ... --json --json-out F | head -1`: the reader goes away before the JSON is printed.
    # The print raised BrokenPipeError: a traceback, exit 1, and F (written after the print) was lost.
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE, at once
    out = tmp_path / "health.json"
    try:
        proc = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "health", str(COMMA),
                               "--json", "--json-out", str(out)], cwd=REPO, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["images"][0]["path"] == str(COMMA)


def _cut_out(image: np.ndarray, radius: int, feather: float) -> np.ndarray:
    """``image`` as an editor exports a cut-out: a feathered transparent disc on the left, the
    colour under it black (premultiplied), BGRA."""
    height, width = image.shape[:2]
    keep = np.ones((height, width), np.float32)
    cv2.circle(keep, (width // 6, height * 3 // 4), radius, 0, -1)
    keep = cv2.GaussianBlur(keep, (0, 0), feather)
    return np.dstack([(image * keep[..., None]).astype(np.uint8), (keep * 255).astype(np.uint8)])


def test_a_transparent_part_is_refused_not_judged_as_a_covered_or_dark_lens(tmp_path, capsys):
    # OpenCV drops the alpha channel and gives the colour stored under it (black): a feathered
    # cut-out read as `blocked`, a dim overcast scene cut out of a transparent sheet as `dark`
    # (R64). A camera frame has no transparent part: such a file is named and skipped.
    image = cv2.resize(cv2.imread(str(PANDASET)), (960, 540), interpolation=cv2.INTER_AREA)
    feathered = tmp_path / "cut out.png"
    cv2.imwrite(str(feathered), _cut_out(image, 250, 20))
    dim = (50 + image.astype(np.float32) / 255 * 45).astype(np.uint8)
    sheet = np.zeros((540, 960, 4), np.uint8)
    sheet[100:400, 150:750, :3] = dim[100:400, 150:750]
    sheet[100:400, 150:750, 3] = 255
    overcast = tmp_path / "overcast.webp"
    cv2.imwrite(str(overcast), sheet, [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless, alpha kept
    opaque = tmp_path / "opaque.png"  # an alpha channel that is all opaque is a photo
    cv2.imwrite(str(opaque), np.dstack([image, np.full((540, 960), 255, np.uint8)]))
    code = main(["health", str(feathered), str(overcast), str(opaque), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    document = json.loads(captured.out)
    assert [i["path"] for i in document["images"]] == [str(opaque)]
    assert document["images"][0]["conditions"] == []
    assert [s["path"] for s in document["skipped"]] == [str(feathered), str(overcast)]
    for skipped in document["skipped"]:
        assert "% of it is transparent" in skipped["error"]
        assert "flatten it onto its background or save it as JPEG" in skipped["error"]
    assert "cut out.png" in captured.err and "overcast.webp" in captured.err
    # the pixels OpenCV gives them, judged as they were before: a covered lens, a dark frame
    for path in (feathered, overcast):
        cv2.imwrite(str(tmp_path / f"{path.stem}_flat.png"), cv2.imread(str(path)))
    assert main(["health", str(tmp_path / "cut out_flat.png"), str(tmp_path / "overcast_flat.png"),
                 "--json"]) == 0
    flat = json.loads(capsys.readouterr().out)["images"]
    assert [i["conditions"] for i in flat] == [["blocked"], ["dark"]]


def test_a_file_of_several_frames_says_only_the_first_is_judged(tmp_path, capsys):
    from PIL import Image

    first = Image.open(PANDASET).resize((480, 270))
    pages = tmp_path / "pages.tiff"
    first.save(pages, save_all=True, append_images=[Image.new("RGB", (480, 270), "white")])
    animation = tmp_path / "clip.gif"
    first.save(animation, save_all=True, append_images=[first.rotate(5)], duration=100)
    assert main(["health", str(pages), str(animation), str(PANDASET)]) == 0
    out = capsys.readouterr().out
    assert out.count("(frame 1 of 2: only the first is judged)") == 2
    assert main(["health", str(pages), str(PANDASET), "--json"]) == 0
    assert [i["frames"] for i in json.loads(capsys.readouterr().out)["images"]] == [2, 1]


def test_json_out_replaces_only_an_earlier_result_of_its_own_command(tmp_path, capsys):
    """Any existing JSON file passed for an earlier result: `health --json-out` replaced eval's
    eval.json in a folder eval marked as its own (its detections.json and plot then described
    numbers no file held), `detect`'s detections.json and a COCO ground truth, and `driver
    attention` / `driver eval --json-out` the same (exit 0, the file gone). An existing JSON file
    is replaced now only when it is that command's own result (or empty), else refused before any
    image is read (exit 2, nothing written), as eval keeps to its marked results (R73)."""
    evals = tmp_path / "eval_out"
    evals.mkdir()
    (evals / ".sense-perception-eval").write_text("eval's marker\n")
    files = {evals / "eval.json": '{"classes": {"car": {"ap": 0.7}}}\n',
             tmp_path / "detections.json": '{"images": [{"path": "a.jpg", "detections": []}], '
                                           '"positions": {}}\n',
             tmp_path / "coco.json": '{"images": [{"id": 1}], "annotations": [], '
                                     '"categories": []}\n',
             tmp_path / "attention.json": '{"conventions": {}, "images": [], "skipped": []}\n'}
    for path, text in files.items():
        path.write_text(text)
    face = ["driver", "attention", str(FACE), "--json-out"]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"file_x,file_y,same\n{FACE},{FACE},1\n")
    cases = [(["health", str(COMMA), "--json-out"], p) for p in files] + \
        [(face, evals / "eval.json"), (["driver", "eval", "--pairs", str(pairs), "--json-out"],
                                       tmp_path / "attention.json")]
    for argv, target in cases:
        assert main([*argv, str(target)]) == 2, argv
        err = " ".join(capsys.readouterr().err.split())
        command = " ".join(argv[:2]) if argv[0] == "driver" else argv[0]
        assert f"--json-out {target} already holds JSON that is not {command}'s own" in err, err
        assert "Traceback" not in err
    assert {p: p.read_text() for p in files} == files
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    earlier = tmp_path / "health.json"  # its own earlier result (and an empty file) is replaced
    for text in ('{"images": [{"path": "x.jpg", "conditions": []}], "skipped": []}\n', "{}"):
        earlier.write_text(text)
        assert main(["health", str(COMMA), "--json-out", str(earlier)]) == 0
        assert [i["path"] for i in json.loads(earlier.read_text())["images"]] == [str(COMMA)]


def test_sigterm_while_json_out_is_written_waits_for_it(tmp_path, capsys, monkeypatch):
    """health, driver attention and driver eval installed no SIGTERM handler: a SIGTERM (a
    service manager, `timeout`) while their --json-out was replaced ended the process there, the
    earlier file kept but the new one's temp file left beside it. A stop there now waits for the
    file (written whole), then exits 143 (130 after Ctrl-C), no temp file left (R73)."""
    import os
    import signal

    import sense_perception.fileio as fileio
    from sense_perception.cli import driver

    class Unhandled(BaseException):
        pass

    def unhandled(signum, frame):
        raise Unhandled("SIGTERM reached no handler of the command: the process would end here")

    real = fileio._write_temp_beside

    def then_sigterm(*args, **kwargs):
        tmp = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return tmp

    out = tmp_path / "h.json"
    out.write_text('{"images": [], "skipped": []}\n')
    table = {"pairs": 1, "failed_detections": 0, "threshold": 0.45, "far": 0.0, "frr": 0.0,
             "table": [], "skipped": []}
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"file_x,file_y,same\n{FACE},{FACE},1\n")
    scores = tmp_path / "scores.json"
    monkeypatch.setattr(driver, "_still_engine", lambda settings: None)  # no models: the write
    monkeypatch.setattr(driver, "evaluate", lambda *args: table)         # is what is tested
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        monkeypatch.setattr(fileio, "_write_temp_beside", then_sigterm)
        code = main(["health", str(COMMA), "--json-out", str(out)])
        assert code == 143 and "Traceback" not in capsys.readouterr().err
        code = main(["driver", "eval", "--pairs", str(pairs), "--json-out", str(scores)])
        assert code == 143 and "Traceback" not in capsys.readouterr().err
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [i["path"] for i in json.loads(out.read_text())["images"]] == [str(COMMA)]
    assert json.loads(scores.read_text()) == table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.json", "pairs.csv", "scores.json"]


def test_a_json_out_nested_too_deeply_is_refused_naming_it_not_a_traceback(tmp_path, capsys):
    """An existing ``--json-out`` file of nested brackets (``[[[[...``, a few kB: Python's JSON
    parser gives up with a RecursionError) ended `health` and `driver attention` in a traceback,
    exit 1, where any other JSON that is no earlier result is refused naming it (R73). It is
    refused so now, exit 2, and left as it was (R89)."""
    deep = tmp_path / "deep.json"
    text = "[" * 5000 + "]" * 5000 + "\n"
    deep.write_text(text)
    for argv in (["health", str(COMMA)], ["driver", "attention", str(FACE)]):
        assert main([*argv, "--json-out", str(deep)]) == 2, argv
        err = " ".join(capsys.readouterr().err.split())
        command = " ".join(argv[:2]) if argv[0] == "driver" else argv[0]
        assert f"--json-out {deep} already holds JSON that is not {command}'s own" in err, err
        assert "it begins '[[[[" in err
    assert deep.read_text() == text


def test_a_json_out_with_a_long_valid_name_is_written(tmp_path, capsys):
    """A ``--json-out`` (or ``detect``'s annotated copy of a photo) whose name is valid but over
    241 bytes long failed with "File name too long": its temp file repeated the whole name, 14
    bytes more. It is written now, and no temp file is left (R89)."""
    for name in ("h" * 250 + ".json", "é" * 125 + ".json"):  # 255 bytes: the most a name may have
        out = tmp_path / name
        assert main(["health", str(COMMA), "--json-out", str(out)]) == 0, capsys.readouterr().err
        assert [i["path"] for i in json.loads(out.read_text())["images"]] == [str(COMMA)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["h" * 250 + ".json", "é" * 125 + ".json"])
