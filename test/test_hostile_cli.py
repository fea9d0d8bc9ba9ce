"""A careless or hostile user at the command line: odd paths, odd files and odd options.

Each case runs the real `sense-perception` command in a child process (a native crash must fail
the test, not end the test run) on real images, and checks the exit status the README documents
(usage and input errors: 2), a one-line error naming the problem, no traceback and no input
harmed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import PICODET_ONLY, run_on_tmpfs

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
STREET = SHARED / "street" / "pandaset_seq002_front_camera_40.jpg"
FACE = SHARED / "faces" / "obama_1_official_portrait_2012.jpg"
# PicoDet alone (support.PICODET_ONLY): what these cases test is the command's handling of paths,
# files, signals and disks, which is the same whatever the detector.
CONFIG = str(PICODET_ONLY)


def sp(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None
       ) -> subprocess.CompletedProcess:
    """Run `sense-perception ARGS` from ``cwd`` as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "sense_perception.cli.main", *args], cwd=cwd,
                          env=full_env, capture_output=True, timeout=timeout)


def no_traceback(result: subprocess.CompletedProcess) -> str:
    """The command's stderr, after checking that no traceback or crash reached the user."""
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert result.returncode >= 0, f"killed by signal {-result.returncode}: {err}"
    return err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_detect_out_is_the_images_folder_keeps_the_images(tmp_path: Path) -> None:
    """`detect --out photos photos/a.jpg` once replaced a.jpg by its annotated copy."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(STREET, photos / "a.jpg")
    before = digest(photos / "a.jpg")
    result = sp("detect", "--out", "photos", "photos/a.jpg", "--config", CONFIG,
                cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0
    assert digest(photos / "a.jpg") == before
    assert (photos / "a_2.jpg").is_file()  # the annotated copy, beside it
    doc = json.loads((photos / "detections.json").read_text())
    assert [i["path"] for i in doc["images"]] == ["photos/a.jpg"]


def test_detect_file_name_not_utf8(tmp_path: Path) -> None:
    """A photo whose name is not UTF-8 once crashed the process (SIGSEGV in cv2.imwrite)."""
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 name from an old camera card
    shutil.copy(STREET, tmp_path / name)
    result = sp("detect", "--out", "out", name, "--config", CONFIG, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0
    assert (tmp_path / "out" / name).stat().st_size > 0
    assert len(json.loads((tmp_path / "out" / "detections.json").read_text())["images"]) == 1


def test_detect_out_cannot_be_created(tmp_path: Path) -> None:
    """An --out that cannot be made is refused before the model loads, without a traceback."""
    result = sp("detect", "--out", "/proc/sense-perception-out", str(STREET), cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert "--out /proc/sense-perception-out is not writable" in err


@pytest.mark.parametrize("content, problem", [
    (b"\xff\xfe: x\n", "is not UTF-8 text"),
    (b"a: [\n", "is not valid YAML: expected the node content"),
])
def test_config_not_utf8_or_not_yaml(tmp_path: Path, content: bytes, problem: str) -> None:
    """A config that is not UTF-8 once gave a traceback; a YAML error spanned four lines."""
    (tmp_path / "bad.yaml").write_bytes(content)
    result = sp("detect", "--out", "out", "--config", "bad.yaml", str(STREET), cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert problem in err
    assert len(err.strip().splitlines()) == 1, err


LABELLED = SHARED / "street_labelled" / "pandaset_seq002_front"


def _one_image_ground_truth(folder: Path, image_name: str) -> Path:
    """A project-format ground truth of one labelled PandaSet frame, copied as ``image_name``."""
    folder.mkdir(exist_ok=True)
    shutil.copy(LABELLED / "00.jpg", folder / image_name)
    camera = json.loads((LABELLED / "ground_truth.json").read_text())["cameras"]["front_camera/00"]
    path = folder / "gt.json"
    path.write_text(json.dumps({"cameras": {"front/00": {**camera, "image": image_name}}}))
    return path


@pytest.mark.parametrize("name", ["eval.json", "detections.json"])
def test_eval_never_writes_its_results_over_the_ground_truth(tmp_path: Path, name: str) -> None:
    """`eval --out labels labels/eval.json` once replaced the ground truth by the results."""
    gt = _one_image_ground_truth(tmp_path / "labels", "00.jpg")
    gt = gt.rename(gt.with_name(name))
    before = digest(gt)
    result = sp("eval", "--out", "labels", f"labels/{name}", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert f"its {name} would replace the input labels/{name}" in err
    assert digest(gt) == before


def test_eval_never_deletes_an_image_named_like_its_plot(tmp_path: Path) -> None:
    """A labelled image called precision_recall.png in --out was overwritten by the plot, or,
    with --no-curve, deleted as 'an earlier run's curve'."""
    _one_image_ground_truth(tmp_path / "labels", "precision_recall.png")
    image = tmp_path / "labels" / "precision_recall.png"
    before = digest(image)
    result = sp("eval", "--out", "labels", "--no-curve", "labels/gt.json", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert "its precision_recall.png would replace the input" in err
    assert digest(image) == before


def test_eval_project_format_reads_images_from_images_dir(tmp_path: Path) -> None:
    """--images was silently ignored for the project format, and the error then advised passing
    the very --images the user had passed."""
    _one_image_ground_truth(tmp_path / "pictures", "00.jpg")
    (tmp_path / "labels").mkdir()
    (tmp_path / "pictures" / "gt.json").rename(tmp_path / "labels" / "gt.json")
    result = sp("eval", "--out", "out", "--no-curve", "--images", "pictures", "labels/gt.json",
                cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0, result.stderr.decode()
    doc = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert doc["images"] == 1 and doc["classes"]["car"]["gt"] > 0


@pytest.mark.parametrize("images, problem", [("nope", "--images nope does not exist"),
                                              ("gt.json", "--images gt.json is not a directory")])
def test_eval_images_dir_missing(tmp_path: Path, images: str, problem: str) -> None:
    _one_image_ground_truth(tmp_path, "00.jpg")
    result = sp("eval", "--out", "out", "--images", images, "gt.json", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert problem in err


FACES = SHARED / "faces"


def test_non_utf8_file_names_print_under_a_strict_utf8_locale(tmp_path: Path) -> None:
    """Under a strict UTF-8 locale (en_US.UTF-8) printing a non-UTF-8 file name ended detect,
    driver identify and driver attention in a UnicodeEncodeError traceback."""
    name = os.fsdecode(b"portr\xe4t.jpg")
    shutil.copy(FACE, tmp_path / name)
    strict = {"PYTHONIOENCODING": "utf-8:strict",
              "SENSE_PERCEPTION_GALLERY": str(tmp_path / "g" / "gallery.json")}
    for args in (["detect", "--out", "out", name, "--config", CONFIG],
                 ["driver", "identify", name], ["driver", "attention", name]):
        result = sp(*args, cwd=tmp_path, env=strict)
        no_traceback(result)
        assert result.returncode == 0, (args, result.stderr.decode())
        assert "portr\\udce4t.jpg" in result.stdout.decode(), args


def test_identify_skips_an_unreadable_photo_and_goes_on(tmp_path: Path) -> None:
    """One unreadable photo ended `driver identify` and lost the others' results."""
    (tmp_path / "empty.jpg").write_bytes(b"")
    env = {"SENSE_PERCEPTION_GALLERY": str(tmp_path / "g" / "gallery.json")}
    (tmp_path / "g").mkdir(mode=0o700)
    enrol = sp("driver", "enroll", "--consent", "--name", "Obama", "--images", str(FACE),
               cwd=tmp_path, env=env)
    assert enrol.returncode == 0, enrol.stderr.decode()
    other = FACES / "obama_2_congress_2009.jpg"
    result = sp("driver", "identify", "--json", "empty.jpg", str(other), cwd=tmp_path, env=env)
    err = no_traceback(result)
    assert result.returncode == 1
    assert "skipped empty.jpg" in err and "the file is empty" in err
    rows = json.loads(result.stdout)
    assert [(r["image"], r["verdict"]) for r in rows] == [(str(other), "identified")]
    none = sp("driver", "identify", "empty.jpg", cwd=tmp_path, env=env)
    no_traceback(none)
    assert none.returncode == 2


def _pairs(folder: Path, text: bytes) -> None:
    for face in FACES.glob("obama_*.jpg"):
        shutil.copy(face, folder / face.name)
    (folder / "pairs.csv").write_bytes(b"file_x,file_y,same\n" + text)


OBAMA_PAIR = b"obama_1_official_portrait_2012.jpg,obama_2_congress_2009.jpg,1\n"


@pytest.mark.parametrize("rows, problem", [
    (b"caf\xe9.jpg,obama_2_congress_2009.jpg,1\n", "is not UTF-8 text"),
    (b"obama_1_official_portrait_2012.jpg\n", "line 2: needs exactly the 3 fields"),
    (OBAMA_PAIR[:-1] + b",extra\n", "line 2: needs exactly the 3 fields"),
])
def test_driver_eval_malformed_pairs_file(tmp_path: Path, rows: bytes, problem: str) -> None:
    """A Latin-1 pairs CSV gave a traceback; a short row said 'same must be 0 or 1, got None'."""
    _pairs(tmp_path, rows)
    result = sp("driver", "eval", "--pairs", "pairs.csv", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert f"pairs file pairs.csv {problem}" in err or f"pairs.csv {problem}" in err, err


def test_driver_eval_pairs_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pairs.csv")
    result = sp("driver", "eval", "--pairs", "pairs.csv", cwd=tmp_path, timeout=60)
    err = no_traceback(result)
    assert result.returncode == 2
    assert "pairs file pairs.csv is not a regular file" in err


@pytest.mark.parametrize("value", ["nan", "inf", "1.5"])
def test_driver_eval_threshold_outside_cosine_range(tmp_path: Path, value: str) -> None:
    """--thresholds nan / inf were accepted and written into the JSON as NaN / Infinity."""
    _pairs(tmp_path, OBAMA_PAIR)
    result = sp("driver", "eval", "--pairs", "pairs.csv", "--thresholds", "0.3", value,
                cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert f"argument --thresholds: {value} is not within -1..1" in err


def test_driver_eval_skips_an_unreadable_photo_and_scores_the_rest(tmp_path: Path) -> None:
    """One missing photo ended `driver eval` and lost every other pair."""
    _pairs(tmp_path, OBAMA_PAIR + b"obama_1_official_portrait_2012.jpg,gone.jpg,0\n")
    result = sp("driver", "eval", "--pairs", "pairs.csv", "--json", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 1
    assert "skipped" in err and "gone.jpg" in err
    doc = json.loads(result.stdout)
    assert doc["pairs"] == 1 and doc["frr"] == 0.0
    assert [Path(s["image"]).name for s in doc["skipped"]] == ["gone.jpg"]
    (tmp_path / "pairs.csv").write_bytes(b"file_x,file_y,same\ngone.jpg,obama_2_congress_2009.jpg,1\n")
    none = sp("driver", "eval", "--pairs", "pairs.csv", cwd=tmp_path)
    assert "no pair could be scored" in no_traceback(none) and none.returncode == 2


SAMPLE_BAG = ROOT / "sense_perception" / "data" / "sample_bag"


@pytest.mark.parametrize("extra, problem", [
    (["--rate", "nan"], "argument --rate: must be a finite number > 0, got nan"),
    (["--rate", "inf", "--publish"], "argument --rate: must be a finite number > 0, got inf"),
    (["--rate", "2"], "--rate sets the playback speed of --publish; add --publish"),
])
def test_replay_rate_refused_or_not_ignored(tmp_path: Path, extra: list[str], problem: str) -> None:
    """`replay --rate nan` was accepted, and --rate without --publish silently ignored."""
    result = sp("replay", str(SAMPLE_BAG), "--out", "out", *extra, cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert problem in err
    assert not (tmp_path / "out").exists()


def test_enroll_from_an_empty_bag_says_so(tmp_path: Path) -> None:
    """A zero-byte .mcap gave "has no topic '...'; its topics: " with an empty list."""
    (tmp_path / "drive.mcap").write_bytes(b"")
    (tmp_path / "g").mkdir(mode=0o700)
    result = sp("driver", "enroll", "--consent", "--name", "Ann", "--bag", "drive.mcap",
                "--topic", "/camera/cabin/image_raw/compressed", cwd=tmp_path,
                env={"SENSE_PERCEPTION_GALLERY": str(tmp_path / "g" / "gallery.json")})
    err = no_traceback(result)
    assert result.returncode == 2
    assert "bag drive.mcap holds no readable topic at all" in err
    assert not (tmp_path / "g" / "gallery.json").exists()


def test_fleet_video_cabin_without_cabin_is_refused(tmp_path: Path) -> None:
    """`fleet --video-cabin` without --cabin ran, exit 0, and filmed nothing: replay refuses it."""
    result = sp("fleet", str(SAMPLE_BAG), "--out", "out", "--video-cabin", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert "--video-cabin films the camera named by --cabin; add --cabin TOPIC" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, problem", [
    (["--name", "Ann", "--consent-by", " "], "--consent-by is empty; give who consented"),
    (["--name", "\u0301\u0301"], "driver name (--name) '\\u0301\\u0301' has no visible character"),
])
def test_enroll_empty_consent_by_or_invisible_name(tmp_path: Path, extra: list[str],
                                                   problem: str) -> None:
    """An empty --consent-by was silently replaced by the driver's name; a name of combining
    marks only was enrolled and printed as nothing."""
    (tmp_path / "g").mkdir(mode=0o700)
    result = sp("driver", "enroll", "--consent", *extra, "--images", str(FACE), cwd=tmp_path,
                env={"SENSE_PERCEPTION_GALLERY": str(tmp_path / "g" / "gallery.json")})
    err = no_traceback(result)
    assert result.returncode == 2
    assert problem in err
    assert not (tmp_path / "g" / "gallery.json").exists()


@pytest.mark.parametrize("command", ["replay", "fleet"])
def test_video_into_a_non_utf8_folder_is_refused_not_a_crash(tmp_path: Path, command: str) -> None:
    """`replay BAG --out <non-UTF-8 name> --video` died of SIGSEGV in cv2.VideoWriter at the first
    frame, leaving REPLAY_INCOMPLETE.txt; fleet's workers would die the same way."""
    out = os.fsdecode(b"review-\xff")
    result = sp(command, str(SAMPLE_BAG), "--out", out, "--video", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert "is not a valid UTF-8 path" in err and "videos cannot be written there" in err
    assert not (tmp_path / out).exists()


def test_json_out_with_a_non_utf8_name(tmp_path: Path) -> None:
    """`driver attention --json-out <existing file with a non-UTF-8 name>` died of SIGSEGV in
    cv2.haveImageReader (the check that a result never overwrites an image)."""
    result_name, photo_name = os.fsdecode(b"r\xe9sultat.json"), os.fsdecode(b"ph\xf6to.json")
    (tmp_path / result_name).write_text("{}")
    shutil.copy(FACE, tmp_path / photo_name)  # a photo, whatever its name says
    ok = sp("driver", "attention", "--json-out", result_name, str(FACE), cwd=tmp_path)
    no_traceback(ok)
    assert ok.returncode == 0, ok.stderr.decode()
    assert json.loads((tmp_path / result_name).read_text())["images"][0]["yaw_deg"] is not None
    before = digest(tmp_path / photo_name)
    refused = sp("driver", "attention", "--json-out", photo_name, str(FACE), cwd=tmp_path)
    assert "is an image file" in no_traceback(refused) and refused.returncode == 2
    assert digest(tmp_path / photo_name) == before


def test_detect_never_overwrites_a_users_photo_of_the_same_name(tmp_path: Path) -> None:
    """`detect --out pics other/holiday.jpg` replaced the user's own pics/holiday.jpg; a re-run
    replaces only its own earlier annotated copy."""
    (tmp_path / "pics").mkdir()
    (tmp_path / "other").mkdir()
    shutil.copy(FACE, tmp_path / "pics" / "holiday.jpg")
    shutil.copy(STREET, tmp_path / "other" / "holiday.jpg")
    before = digest(tmp_path / "pics" / "holiday.jpg")
    for _ in range(2):
        result = sp("detect", "--out", "pics", "other/holiday.jpg", "--config", CONFIG,
                    cwd=tmp_path)
        no_traceback(result)
        assert result.returncode == 0, result.stderr.decode()
        assert digest(tmp_path / "pics" / "holiday.jpg") == before
        assert sorted(p.name for p in (tmp_path / "pics").glob("*.jpg")) == [
            "holiday.jpg", "holiday_2.jpg"]


def test_eval_ground_truth_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A ground truth saved by a Windows editor (UTF-8 with BOM) was refused with Python's advice
    'decode using utf-8-sig'."""
    gt = _one_image_ground_truth(tmp_path, "00.jpg")
    gt.write_bytes(b"\xef\xbb\xbf" + gt.read_bytes())
    result = sp("eval", "--out", "out", "--no-curve", "gt.json", cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["classes"]["car"]["gt"] > 0


def test_eval_ground_truth_with_a_huge_number(tmp_path: Path) -> None:
    (tmp_path / "gt.json").write_text('{"cameras": {"a": {"image": "x.jpg", "boxes": [], '
                                      '"width": 1' + "0" * 5000 + "}}}")
    result = sp("eval", "--out", "out", "gt.json", cwd=tmp_path)
    err = no_traceback(result)
    assert result.returncode == 2
    assert "a number with thousands of digits" in err and "set_int_max_str_digits" not in err


@pytest.mark.parametrize("source", ["fifo", "/dev/zero", "huge"])
@pytest.mark.parametrize("option", ["--config", "--calibration"])
def test_config_or_calibration_that_is_a_fifo_device_or_huge_is_refused_not_read(
        tmp_path: Path, option: str, source: str) -> None:
    """A FIFO as --config / --calibration waited for a writer for ever, /dev/zero was read until
    memory ran out: both are refused at once, as is a file far bigger than any config."""
    if source == "fifo":
        os.mkfifo(tmp_path / "given")
        given = "given"
    elif source == "huge":
        with open(tmp_path / "given", "wb") as f:  # sparse: costs no disk
            f.truncate(64 << 20)
        given = "given"
    else:
        given = source
    commands = [["detect", str(STREET), "--out", "out"], ["replay", str(ROOT / "sense_perception" /
                                                                      "data" / "sample_bag"),
                                                          "--out", "replayed"]]
    if option == "--config":
        commands += [["health", str(STREET)], ["driver", "attention", str(FACE)]]
    for command in commands:
        result = sp(*command, option, given, cwd=tmp_path, timeout=60)
        err = no_traceback(result)
        assert result.returncode == 2, (command, err)
        what = {"fifo": "a FIFO (named pipe), not a regular file",
                "/dev/zero": "a device, not a regular file",
                "huge": f"{64 << 20} bytes, more than the"}[source]
        assert f"{given}" in err and what in err, (command, err)
    assert not (tmp_path / "replayed" / "bag").exists()


_DETECT_ON_A_FULL_DISK = '''
import contextlib, io, json, os, sys
from pathlib import Path
from sense_perception.cli.main import main
disk, first, second, cpu = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
out, report = disk / "out", {}

def run(name, *argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["detect", *argv, "--out", str(out), "--config", cpu])
    report[name] = {"code": code, "stderr": err.getvalue(),
                    "files": sorted(p.name for p in out.iterdir()),
                    "detections": (out / "detections.json").read_text()}

run("good", first, "--no-annotate")
run("annotated", first, second)  # the annotated copies do not fit on the 64 kB disk
filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # now not even detections.json fits
with contextlib.suppress(OSError):
    while True:
        os.write(filler, b"x" * 512)
os.close(filler)
run("full", first, second, "--no-annotate")
print(json.dumps(report))
'''


def test_detect_on_a_full_disk_keeps_the_earlier_results_and_leaves_no_truncated_file(
        tmp_path: Path) -> None:
    """A full disk under --out crashed detect with a traceback, after truncating the earlier
    detections.json to 0 bytes and leaving cut-off annotated images that looked complete. On a real
    full disk (a 64 kB tmpfs in a private mount namespace) an annotated copy that does not fit is
    named and left out (exit 1), and detections.json that does not fit is a clear error (exit 2)
    that keeps the earlier file whole."""
    second = SHARED / "street" / "comma2k19_highway280_rav4_preview.png"
    report = run_on_tmpfs(tmp_path, _DETECT_ON_A_FULL_DISK, [STREET, second, CONFIG])
    good, annotated, full = report["good"], report["annotated"], report["full"]
    assert good["code"] == 0 and good["files"] == ["detections.json"], good
    # Annotated copies that do not fit: named with the reason, no truncated file left behind.
    assert annotated["code"] == 1 and "Traceback" not in annotated["stderr"], annotated
    assert annotated["stderr"].count("No space left on device") == 2, annotated["stderr"]
    assert annotated["files"] == ["detections.json"], annotated["files"]
    assert len(json.loads(annotated["detections"])["images"]) == 2
    # detections.json that does not fit: exit 2, the problem and the fix, the earlier file whole.
    assert full["code"] == 2 and "Traceback" not in full["stderr"], full
    assert "cannot write" in full["stderr"] and "No space left on device" in full["stderr"]
    assert "fix: free space" in full["stderr"]
    assert full["files"] == ["detections.json"] and full["detections"] == annotated["detections"]


def test_a_fifo_or_device_as_a_result_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    """health --json-out FIFO waited for a reader for ever after judging every image, and so did
    eval with a FIFO under eval.json or detections.json in --out; a result file is never written
    into a FIFO or over a device (/dev/null stays a device): refused at once, exit 2."""
    os.mkfifo(tmp_path / "result.json")
    for command in (["health", str(STREET)], ["driver", "attention", str(FACE)]):
        for target in ("result.json", "/dev/null"):
            result = sp(*command, "--json-out", target, cwd=tmp_path, timeout=60)
            err = no_traceback(result)
            kind = "a FIFO (named pipe)" if target == "result.json" else "a device"
            assert result.returncode == 2, (command, target, err)
            assert f"--json-out {target} is {kind}, not a regular file" in err, err
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"cameras": {"a": {"image": str(STREET), "boxes": [
        {"label": "car", "bbox_xyxy": [1, 1, 50, 50]}]}}}))
    for name in ("eval.json", "detections.json"):
        out = tmp_path / f"out_{name}"
        out.mkdir()
        os.mkfifo(out / name)
        result = sp("eval", str(truth), "--out", str(out), "--no-curve", cwd=tmp_path, timeout=60)
        err = no_traceback(result)
        assert result.returncode == 2 and f"its {name} is a FIFO (named pipe)" in err, err
        assert (out / name).is_fifo()
    assert (tmp_path / "result.json").is_fifo() and Path("/dev/null").is_char_device()


def test_detect_never_waits_on_a_fifo_planted_as_its_hidden_copies_list(tmp_path: Path) -> None:
    """detect read DIR/.detect-annotated.json before any work: a FIFO there held it for ever. It is
    read as a regular file only (a FIFO lists no earlier copies) and replaced by the real list."""
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / ".detect-annotated.json")
    result = sp("detect", str(STREET), "--out", str(out), "--config", CONFIG,
                cwd=tmp_path, timeout=120)
    no_traceback(result)
    assert result.returncode == 0
    assert json.loads((out / ".detect-annotated.json").read_text()) == [STREET.name]
    assert (out / STREET.name).is_file() and (out / "detections.json").is_file()


def test_a_config_value_nesting_aliases_is_refused_at_once(tmp_path: Path) -> None:
    """YAML aliases nest 9**10 strings in a few hundred bytes; a wrong type there made detect
    print the value's full repr in its error: minutes and gigabytes, never an answer. The error
    shows the value abbreviated (the child may use at most 6 GB)."""
    import resource

    items = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    items += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "nested.yaml"
    path.write_text("detector:\n  score_threshold: [" + ", ".join(items) + "]\n")

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    result = subprocess.run([sys.executable, "-m", "sense_perception.cli.main", "detect",
                             str(STREET), "--out", "out", "--config", str(path)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            timeout=60, preexec_fn=limit_memory)
    err = no_traceback(result)
    assert result.returncode == 2, err
    assert "parameter 'detector.score_threshold'" in err and "must be float, got [[" in err, err
    assert len(err) < 2000, err


_RESULTS_ON_A_FULL_DISK = '''
import contextlib, io, json, os, sys
from pathlib import Path
from sense_perception.cli.main import main
disk, image, truth = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
health, out, report = disk / "health.json", disk / "eval", {}

def run(name, argv, files):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    report[name] = {"code": code, "stderr": err.getvalue(), "listing": sorted(
        str(p.relative_to(disk)) for p in disk.rglob("*")),
        "files": {f: (disk / f).read_text() for f in files}}

EVAL = ["eval", truth, "--out", str(out), "--iou", "0.5", "--no-curve", "--pedestrian-model", "none"]
FILES = ["health.json", "eval/eval.json", "eval/detections.json"]
run("health_good", ["health", image, "--json-out", str(health)], ["health.json"])
run("eval_good", EVAL, FILES)
filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # the disk is now full
with contextlib.suppress(OSError):
    while True:
        os.write(filler, b"x" * 512)
os.close(filler)
run("health_full", ["health", *[image] * 40, "--json-out", str(health)], FILES)
run("eval_full", EVAL, FILES)
print(json.dumps(report))
'''


def test_results_on_a_full_disk_keep_the_earlier_files_whole(tmp_path: Path) -> None:
    """health --json-out and eval's eval.json / detections.json were written in place: a full
    disk emptied the earlier results. On a real full disk (a tmpfs in a private mount namespace)
    each command fails with exit 2 naming the disk, and every earlier result keeps every byte,
    with no temp file left."""
    report = run_on_tmpfs(tmp_path, _RESULTS_ON_A_FULL_DISK, [
        STREET, ROOT / "test" / "data" / "hand_labelled" / "ground_truth.json"], "size=256k")
    assert report["health_good"]["code"] == 0 and report["eval_good"]["code"] in (0, 1)
    before = report["eval_good"]["files"]
    assert json.loads(before["health.json"])["images"] and json.loads(before["eval/eval.json"])["classes"]
    for name in ("health_full", "eval_full"):
        full = report[name]
        assert full["code"] == 2 and "Traceback" not in full["stderr"], full
        assert "No space left on device" in full["stderr"], full["stderr"]
        assert full["files"] == before, name  # every earlier result whole
        assert not [f for f in full["listing"] if f.endswith(".tmp")], full["listing"]


@pytest.mark.parametrize("signame, code, by", [("SIGINT", 130, "Ctrl-C"),
                                                ("SIGTERM", 143, "SIGTERM")])
def test_ctrl_c_during_detect_leaves_results_of_exactly_what_was_processed(
        tmp_path: Path, signame: str, code: int, by: str) -> None:
    """Ctrl-C during `detect` on many images left this run's annotated copies beside the earlier
    run's detections.json: the outputs of two runs mixed, and what was done was lost. On SIGINT
    (sent by a real signal once the first new copy is on disk) detect writes detections.json of
    exactly the images it finished, marked ``"interrupted": true`` with the others under
    ``not_processed``, lists its copies, leaves no temp file and exits 130. SIGTERM (a service
    manager, `timeout`, `kill`) ended detect at once with the same mix: it now stops the same
    way and exits 143."""
    import signal
    import time

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("old_a", "old_b"):
        shutil.copy(STREET, inputs / f"{name}.jpg")
    out = tmp_path / "out"
    earlier = sp("detect", str(inputs / "old_a.jpg"), str(inputs / "old_b.jpg"), "--out", str(out),
                 "--config", CONFIG, cwd=tmp_path)
    assert earlier.returncode == 0, no_traceback(earlier)
    paths = []
    for i in range(60):
        paths.append(str(inputs / f"img_{i:02d}.jpg"))
        shutil.copy(STREET, paths[-1])
    proc = subprocess.Popen([sys.executable, "-m", "sense_perception.cli.main", "detect", *paths,
                             "--out", str(out), "--config", CONFIG, "--batch-size", "1"],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not any(out.glob("img_*.jpg")):  # the first annotated copy of this run
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no annotated copy written in 240 s"
            time.sleep(0.02)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.decode(errors="replace")
    assert proc.returncode == code and "Traceback" not in err, err
    doc = json.loads((out / "detections.json").read_text())
    processed = [image["path"] for image in doc["images"]]
    assert doc["interrupted"] is True
    assert processed + doc["not_processed"] == paths  # every image is in one list, in order
    assert processed and doc["not_processed"], doc  # stopped after the first, before the last
    # The annotated copies of this run are exactly those of the images in detections.json.
    assert {p.name for p in out.glob("img_*.jpg")} == {Path(p).name for p in processed}
    assert json.loads((out / ".detect-annotated.json").read_text()) == sorted(
        ["old_a.jpg", "old_b.jpg", *(Path(p).name for p in processed)])
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert f"interrupted: {out / 'detections.json'} holds the {len(processed)} image(s) " \
           f"processed before {by}" in " ".join(err.split())


#: Runs the real `detect` with the real writers, a signal sent to itself at an exact moment:
#: right after the first annotated copy's rename (before detect has recorded it) and, with
#: "twice", again while the results are written; with a signal's name instead, that signal
#: while detect, stopped, works out which images it did not process (before the results' write).
_SIGNAL_AT = """
import os, signal, sys
from sense_perception import fileio
from sense_perception.cli import detect
from sense_perception.cli.main import main

sig, twice = getattr(signal, sys.argv[1]), sys.argv[2] == "twice"
write, write_json, not_handled = fileio.atomic_write, fileio.write_result_json, detect._not_handled

def copy_then_signal(path, *args, **kwargs):
    write(path, *args, **kwargs)
    if path.name.startswith("img_"):
        fileio.atomic_write = write
        os.kill(os.getpid(), sig)  # the copy is on disk; its record is not yet written

def result_then_signal(path, *args, **kwargs):
    write_json(path, *args, **kwargs)
    fileio.write_result_json = write_json
    os.kill(os.getpid(), sig)  # the manifest is written, detections.json not yet

def second_stop_in_the_cleanup(*args):
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))  # pressed again as the stop is handled
    return not_handled(*args)

fileio.atomic_write = copy_then_signal
if twice:
    fileio.write_result_json = result_then_signal
if sys.argv[2].startswith("SIG"):
    detect._not_handled = second_stop_in_the_cleanup
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("signame, twice, code, by", [
    ("SIGINT", "once", 130, "Ctrl-C"), ("SIGTERM", "twice", 143, "SIGTERM"),
    # R99: a second stop while the first is handled, outside the results' held write
    ("SIGTERM", "SIGINT", 143, "SIGTERM"), ("SIGINT", "SIGINT", 130, "Ctrl-C")])
def test_a_stop_just_after_an_annotated_copy_is_written_still_records_that_image(
        tmp_path: Path, signame: str, twice: str, code: int, by: str) -> None:
    """A stop landing after an annotated copy's rename but before detect recorded the image left
    the copy on disk with ``"images": []`` in detections.json and the copy missing from the
    manifest (seen once in the test above under load). The copy and its record now land
    together: the stop waits for the record, so the image is listed. A second stop while the
    results are written waited for nothing: SIGTERM killed detect between the manifest and
    detections.json, leaving no detections.json beside a manifest naming this run's copy.

    R99: a second stop (Ctrl-C pressed twice, Ctrl-C after a SIGTERM) while detect worked out
    what it had not processed, before its held write, was raised there: no detections.json and
    no manifest entry for the copy on disk, exit 130 whatever the first stop was. Only the first
    stop counts now: the results are written and the exit status is the first's."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = []
    for i in range(3):
        paths.append(str(inputs / f"img_{i}.jpg"))
        shutil.copy(STREET, paths[-1])
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT, signame, twice, "detect", *paths, "--out", str(out),
         "--config", CONFIG, "--batch-size", "1"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        timeout=300)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == code and "Traceback" not in err, (result.returncode, err)
    doc = json.loads((out / "detections.json").read_text())
    assert doc["interrupted"] is True
    assert [image["path"] for image in doc["images"]] == paths[:1], doc  # the copy's image
    assert doc["not_processed"] == paths[1:]
    assert sorted(p.name for p in out.glob("img_*")) == ["img_0.jpg"]
    assert json.loads((out / ".detect-annotated.json").read_text()) == ["img_0.jpg"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert f"holds the 1 image(s) processed before {by}" in " ".join(err.split())


def _stop_here(signum: int) -> None:
    """Send ``signum`` to this process; the handler runs at the next bytecode."""
    import time

    os.kill(os.getpid(), signum)
    time.sleep(0.01)


@pytest.mark.parametrize("case", ["stop_during_the_failed_write", "write_failing_after_a_stop",
                                  "image_failing_with_a_stop_kept"])
def test_a_stop_kept_by_detect_is_obeyed_and_the_failure_named(
        tmp_path: Path, monkeypatch, capsys, case: str) -> None:
    """R61: ``detect``'s held blocks (an image's copy and record; the results) lost a stop or a
    failure as the gallery commands did before R55: SIGTERM while detections.json was written,
    whose write then failed (a full disk), exited 2 (the stop lost); a write failing after a
    Ctrl-C had ended the loop exited 2 too; a failure inside an image's block with a stop kept
    ended in a traceback. Each is the stop's 130 / 143 now, the failure named on stderr."""
    import errno
    import signal

    from sense_perception import fileio
    from sense_perception.cli import detect
    from sense_perception.cli.main import main
    from sense_perception.core.detection import detector_setup
    from sense_perception.core.types import Detections

    class Detector:  # no model: what is tested is detect's handling of stops and failures
        model_name, family, provider, preprocess_device = "fake", "fake", "cpu", "cpu"
        batch_dynamic, min_score, label_names = False, 0.5, ["car"]

        def detect(self, images: list) -> list:
            return [Detections() for _ in images]

    monkeypatch.setattr(detector_setup, "build_detector", lambda *a, **k: Detector())

    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"img_{i}.jpg"))
        shutil.copy(STREET, paths[-1])
    out = tmp_path / "out"
    write_image = fileio.write_image

    def full_disk(path: Path, *args: object, **kwargs: object) -> None:
        if case == "stop_during_the_failed_write":
            _stop_here(signal.SIGTERM)  # kept: the results are being written
        raise OSError(errno.ENOSPC, "No space left on device")

    def copy_then_stop(path: Path, image: object) -> None:
        write_image(path, image)
        monkeypatch.setattr(fileio, "write_image", write_image)
        _stop_here(signal.SIGINT)  # kept for the image's record, then ends the loop

    def failing_record(*args: object) -> object:
        _stop_here(signal.SIGTERM)
        raise RuntimeError("the record cannot be made")

    if case == "image_failing_with_a_stop_kept":
        monkeypatch.setattr(detect, "_record", failing_record)
    else:
        monkeypatch.setattr(fileio, "write_result_json", full_disk)
    if case == "write_failing_after_a_stop":
        monkeypatch.setattr(fileio, "write_image", copy_then_stop)
    code = main(["detect", *paths, "--out", str(out), "--config", CONFIG,
                 "--batch-size", "1"])
    err = " ".join(capsys.readouterr().err.split())
    if case == "image_failing_with_a_stop_kept":
        assert code == 143, err
        assert "RuntimeError: the record cannot be made" in err, err
        doc = json.loads((out / "detections.json").read_text())
        assert doc["interrupted"] is True and doc["images"] == [], doc
        assert doc["not_processed"] == paths
    else:
        assert code == (143 if case == "stop_during_the_failed_write" else 130), err
        assert f"cannot write {out}" in err and "No space left on device" in err, err
        by = "SIGTERM" if case == "stop_during_the_failed_write" else "Ctrl-C"
        assert f"stopped ({by}) after it" in err, err
        assert "holds the" not in err  # no detections.json was written: none is claimed
        assert not (out / "detections.json").exists()


def test_a_detect_manifest_nested_too_deeply_names_no_earlier_copy(tmp_path):
    """detect's hidden list of the annotated copies it wrote in ``--out``, found as nested
    brackets a few kB deep (Python's JSON parser gives up with a RecursionError), ended detect in
    a traceback, exit 1; it is read as unreadable now, so no file there counts as detect's to
    replace (R89)."""
    from sense_perception.cli.detect import MANIFEST, _earlier_outputs

    (tmp_path / MANIFEST).write_text("[" * 5000 + "]" * 5000)
    assert _earlier_outputs(tmp_path) == set()


#: Runs the real `replay` on the sample bag, sending itself the first stop (argv[1]) as the first
#: frame is decoded and a second one (argv[2], or "none") while summary.json is written.
_REPLAY_STOPPED = """
import os, signal, sys
from sense_perception.replay import engine
from sense_perception.cli.main import main

first, second = sys.argv[1], sys.argv[2]
decode, write_summary = engine.Replayer._decode, engine.write_summary

def decode_then_stop(self, *args):
    engine.Replayer._decode = decode
    os.kill(os.getpid(), getattr(signal, first))  # the reading ends here: the rest not read
    return decode(self, *args)

def summary_then_stop(*args, **kwargs):
    if second != "none":
        os.kill(os.getpid(), getattr(signal, second))  # again, while the summary is written
    return write_summary(*args, **kwargs)

engine.Replayer._decode = decode_then_stop
engine.write_summary = summary_then_stop
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("first, second, code, by", [
    ("SIGTERM", "none", 143, "SIGTERM"), ("SIGHUP", "none", 129, "SIGHUP"),
    ("SIGTERM", "SIGINT", 143, "SIGTERM"), ("SIGINT", "SIGTERM", 130, "Ctrl-C")])
def test_a_stopped_replay_exits_as_the_first_stop_with_its_summary_marked(
        tmp_path: Path, first: str, second: str, code: int, by: str) -> None:
    """R99: `replay` stopped while it read the bag exited 1 (done, something skipped), where
    every other command exits 128 + the signal (143 SIGTERM, 129 SIGHUP, 130 Ctrl-C): a service
    manager or script could not tell a stopped replay from one that skipped a corrupt frame. And a
    second stop while its summary was written replaced the first (SIGTERM then Ctrl-C exited
    130). It exits as the first stop now, its outputs closed, summary.json written with the frames
    not read as one `skipped` entry naming that stop, and says what was kept."""
    from replay_helpers import SAMPLE_BAG

    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", _REPLAY_STOPPED, first, second, "replay", str(SAMPLE_BAG),
         "--out", str(out), "--config", CONFIG],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        timeout=300)
    err = " ".join(result.stderr.decode(errors="replace").split())
    assert result.returncode == code and "Traceback" not in err, (result.returncode, err)
    summary = json.loads((out / "summary.json").read_text())
    assert any(f"replay interrupted ({by}) before the end of the bag" in str(entry)
               for entry in summary["skipped"]), summary["skipped"]
    assert not (out / "REPLAY_INCOMPLETE.txt").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert f"hold what was replayed before {by}" in err, err
