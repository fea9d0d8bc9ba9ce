"""Where the development tools and the less used commands write: a careless or hostile output path
never destroys a user's file, and what they print cannot be forged by a file name.

Each case runs the real tool or command in a child process on real data, as a user would.
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
from support import PICODET_ONLY

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LABELLED = SHARED / "street_labelled" / "pandaset_seq002_front"


def tool(name: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``tools/NAME ARGS`` from ``cwd`` with the project's Python (no PYTHONPATH: a tool run
    as a script must find the package by itself)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_stand_in_never_replaces_the_labelled_sets_own_ground_truth(tmp_path: Path) -> None:
    """`tools/make_far_proxy.py gt.json DIR` with DIR the labelled set's own folder replaced its
    ground_truth.json by the stand-in's (the labels lost, exit 0), and any folder's files of the
    same names were overwritten. The labelled set's folder (or one holding it or inside it) and a
    folder of the user's are refused (exit 2, the reason named) and keep every byte; a new folder
    is written, marked, and can be written again."""
    labelled = tmp_path / "labelled"
    shutil.copytree(LABELLED, labelled)
    for path in [labelled, *labelled.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ground_truth.json").write_text('{"my": "labels"}\n')
    before, mine_before = digests(labelled), digests(mine)
    gt = str(labelled / "ground_truth.json")
    for out, problem in ((labelled, "is the labelled set's folder"),
                         (labelled / "far", "lies inside the labelled set's folder"),
                         (tmp_path, "contains the labelled set's folder"),
                         (mine, "holds files this tool did not write")):
        result = tool("make_far_proxy.py", gt, str(out), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"error: {out} {problem}"), result.stderr
        assert "Traceback" not in result.stderr
    assert digests(labelled) == before and digests(mine) == mine_before
    far = tmp_path / "far"
    for _ in range(2):  # its own folder again: replaced
        result = tool("make_far_proxy.py", gt, str(far), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    names = {p.name for p in far.iterdir()}
    assert ".sense-perception-stand-in" in names and "ground_truth.json" in names
    cameras = json.loads((labelled / "ground_truth.json").read_text())["cameras"]
    assert len([n for n in names if n.endswith(".jpg")]) == len(cameras)
    assert not [n for n in names if n.endswith(".tmp")]


def sp(*args: str, cwd: Path, timeout: float = 300, columns: int = 80
       ) -> subprocess.CompletedProcess:
    """Run `sense-perception ARGS` from ``cwd`` as a user would, on a terminal ``columns`` wide."""
    return subprocess.run([sys.executable, "-m", "sense_perception.cli.main", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns)},
                          capture_output=True, text=True, timeout=timeout)


FORGED = "fake.jpg  1920x1080  ok  (mean 1)"  # what a forged `health` line would say


def hostile_names(folder: Path) -> list[str]:
    """Real photos under names that forge a line, colour the terminal, reverse text, or hold
    rich markup (`[/x]`: a directory `q[` and a file `x].jpg`), and a truncated one under markup."""
    street = SHARED / "street" / "pandaset_seq002_front_camera_00.jpg"
    (folder / "q[").mkdir()
    names = [f"evil\n{FORGED}.jpg", "esc\x1b[2Jcleared.jpg", "bidi\u202egpj.jpg", "q[/x].jpg",
             "[bold]b.jpg"]
    for name in names:
        shutil.copy(street, folder / name)
    (folder / "q[" / "y].jpg").write_bytes(street.read_bytes()[:5000])
    return [*names, "q[/y].jpg"]


def assert_nothing_forged(text: str) -> None:
    """No line of ``text`` starts with the forged text, and no escape or bidi control is raw."""
    assert not [line for line in text.splitlines() if line.startswith(FORGED)], text
    assert "\x1b" not in text and "\u202e" not in text, text
    assert "evil\\nfake" in text and "\\x1b[2J" in text and "\\u202e" in text, text


def test_file_names_cannot_forge_lines_or_end_detect_in_a_traceback(tmp_path: Path) -> None:
    """detect printed its skipped images and its table through rich as markup: a path holding
    `[/x]` raised MarkupError, a traceback that lost every result (no detections.json), and
    eval's last line did the same with such an --out; detect, health, driver attention and every `error:` line printed file names raw, so a name
    with a line break forged a result line and an escape sequence reached the terminal. Names
    are now printed escaped (`\\n`, `\\x1b`, `\\u202e`, markup as text) and the run completes."""
    names = hostile_names(tmp_path)
    cpu = PICODET_ONLY  # what is printed and written is the same whatever the detector
    result = sp("detect", *names, "--out", "out", "--config", str(cpu), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "cannot read q[/y].jpg: not a decodable image (truncated JPEG" in result.stderr
    doc = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [image["path"] for image in doc["images"]] == names[:-1]
    assert "q[/x].jpg" in result.stdout and "[bold]b.jpg" in result.stdout
    assert_nothing_forged(result.stdout + result.stderr)

    result = sp("health", *names, "missing\u202e.jpg", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert_nothing_forged(result.stdout)
    assert "cannot read missing\\u202e.jpg: no such file" in result.stderr
    assert len(result.stdout.splitlines()) == len(names)  # one per judged image and the total

    result = sp("driver", "attention", *names[:3], cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert_nothing_forged(result.stdout)

    gt = ROOT / "test" / "data" / "hand_labelled" / "ground_truth.json"
    result = sp("eval", str(gt), "--out", "q[/eval]", "--config", str(cpu), cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "wrote q[/eval]/eval.json" in result.stdout, result.stdout

    result = sp("health", "--json-out", f"nowhere\n{FORGED}/x.json", names[0], cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: --json-out nowhere\\nfake.jpg"), result.stderr


def test_benchmark_and_camera_health_outputs_are_checked_before_the_long_run(tmp_path: Path) -> None:
    """`benchmarks/run.py --out DIR` (a directory, an image, a FIFO) and the camera-health
    evaluation's `--out` were first touched after the whole run (30 minutes for `make bench`):
    a traceback that lost every figure; `--merge` into an unreadable file did the same, and the
    results were written in place (a full disk left a cut-off results.json). Each is now refused
    at once (exit 2, naming the option and the reason) and the user's files keep every byte."""
    import time

    photo = tmp_path / "photo.jpg"
    shutil.copy(SHARED / "street" / "pandaset_seq002_front_camera_00.jpg", photo)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    broken = tmp_path / "broken.json"
    broken.write_text('{"cut off')
    before = {p: p.read_bytes() for p in (photo, folder / "notes.txt", broken)}
    run_py = str(ROOT / "benchmarks" / "run.py")
    cases = [([run_py, "--quick", "--out", str(folder)], "--out", "is a directory"),
             ([run_py, "--quick", "--out", str(photo)], "--out", "has an image suffix"),
             ([run_py, "--quick", "--out", str(fifo)], "--out", "is a FIFO"),
             ([run_py, "--quick", "--out", str(tmp_path / "r.json"), "--profile", str(folder)],
              "--profile", "is a directory"),
             ([run_py, "--quick", "--only", "gallery", "--merge", "--out", str(broken)],
              "--out", "already holds JSON that is not benchmarks/run.py's own result"),
             (["-m", "sense_perception.evaluation.camera_health_eval", "--out", str(photo)],
              "--out", "is a file, not a directory"),
             (["-m", "sense_perception.evaluation.camera_health_eval", "--out", str(tmp_path)],
              "--out", "is a directory")]
    (tmp_path / "camera_health_eval.json").mkdir()
    for args, option, problem in cases:
        started = time.monotonic()
        result = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and option in result.stderr, result.stderr
        assert problem in result.stderr, result.stderr
        assert time.monotonic() - started < 60  # refused at once, not after the benchmarks
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broken.json", "camera_health_eval.json", "fifo", "folder", "photo.jpg"]


def test_degraded_frames_skip_a_fifo_or_a_bomb_and_never_write_into_a_users_folder(
        tmp_path: Path) -> None:
    """`tools/make_degraded_frames.py` read its inputs with cv2.imread: a FIFO among them hung it
    for ever and a PNG claiming 100000x100000 px ended it in a traceback; its --out could be a
    user's folder (the images' own), whose manifest.json it replaced. Such inputs are now named
    and skipped through the package's bounded reader (exit 1, the others written), and a folder
    the tool did not write is refused (exit 2) keeping every byte."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    photos = tmp_path / "photos"
    photos.mkdir()
    street = photos / "street.jpg"
    shutil.copy(SHARED / "street" / "pandaset_seq002_front_camera_00.jpg", street)
    (photos / "manifest.json").write_text('{"my": "list"}\n')
    bomb = photos / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(
            b"\0" * 10000)) + chunk(b"IEND", b""))
    fifo = photos / "fifo.jpg"
    os.mkfifo(fifo)
    before = {p.name: p.read_bytes() for p in photos.iterdir() if p.is_file()}
    result = tool("make_degraded_frames.py", str(street), "--out", str(photos), cwd=tmp_path,
                  timeout=60)
    assert result.returncode == 2 and "holds files this tool did not write" in result.stderr
    result = tool("make_degraded_frames.py", str(fifo), str(bomb), str(street), "--out", "out",
                  cwd=tmp_path, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot read {fifo}: not a regular file" in result.stderr
    assert f"cannot read {bomb}: the header claims 100000x100000 px" in result.stderr
    assert "input.max_width" in result.stderr and "2 image(s) skipped" in result.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest and {entry["source"] for entry in manifest} == {str(street)}
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        ".sense-perception-degraded", "manifest.json", *(entry["file"] for entry in manifest)}
    assert {p.name: p.read_bytes() for p in photos.iterdir() if p.is_file()} == before


def test_a_bag_whose_topic_or_encoding_holds_markup_is_summarised_not_a_traceback(
        tmp_path: Path) -> None:
    """A crafted bag (adversary 3) whose camera topic holds `[/y]` or whose Image encoding holds
    `[/x]` and an escape sequence ended `replay` in rich's MarkupError traceback after the
    outputs were written: the table of what was replayed and skipped never shown, exit 1 for
    the wrong reason. The summary is printed with the topic and the reason as text (escaped)."""
    sys.path.insert(0, str(ROOT / "test"))
    from replay_helpers import SAMPLE_BAG, copy_bag
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    hostile_topic = "/camera/front[/y]/image_raw/compressed"

    def edit(topic: str, msgtype: str, stamp: int, raw: bytes) -> list:
        if topic == "/camera/windshield/image_raw":
            msg = store.deserialize_cdr(raw, msgtype)
            msg.encoding = "[/x]\x1b[2J"
            raw = bytes(store.serialize_cdr(msg, msgtype))
        if topic == "/camera/front/image_raw/compressed":
            topic = hostile_topic
        return [(topic, msgtype, stamp, raw)]

    bag = copy_bag(SAMPLE_BAG, tmp_path / "bag", edit=edit)
    result = sp("replay", str(bag), "--out", "out", "--config", str(PICODET_ONLY), cwd=tmp_path,
                columns=400)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    out = " ".join(result.stdout.split())
    assert f"3-D positions {hostile_topic}: none" in out, result.stdout
    assert "encoding: '[/x]\\x1b[2J' is not supported" in out, result.stdout
    assert "\x1b" not in result.stdout and "summary: out/summary.json" in result.stdout
    assert "output bag: out/bag/bag.mcap" in result.stdout  # the file to open in Foxglove


def test_score_calibration_fit_never_writes_over_its_ground_truth(tmp_path: Path) -> None:
    """`tools/fit_score_calibration.py gt.json --out gt.json` replaced the ground truth with the
    fitted maps after minutes of fitting (and a directory as --out lost the fit in a traceback).
    An --out that is a ground truth, a directory, an image or a JSON file that is no calibration
    is refused at once (exit 2) and keeps every byte."""
    gt = tmp_path / "ground_truth.json"
    shutil.copy(ROOT / "test" / "data" / "hand_labelled" / "ground_truth.json", gt)
    check = tmp_path / "check.json"
    shutil.copy(gt, check)
    photo = tmp_path / "photo.jpg"
    shutil.copy(SHARED / "street" / "pandaset_seq002_front_camera_00.jpg", photo)
    before = {p: p.read_bytes() for p in (gt, check, photo)}
    for out, problem in ((gt, "is the input"), (check, "is the input"),
                         (tmp_path, "is a directory"), (photo, "has an image suffix")):
        result = tool("fit_score_calibration.py", str(gt), "--check", str(check), "--out",
                      str(out), cwd=tmp_path, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"error: --out {out} {problem}"), result.stderr
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}\n')
    result = tool("fit_score_calibration.py", str(gt), "--out", str(notes), cwd=tmp_path)
    assert result.returncode == 2 and ("already holds JSON that is not "
                                       "tools/fit_score_calibration.py's own result") in result.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert notes.read_text() == '{"my": "notes"}\n'


def test_the_tools_replace_only_an_earlier_result_of_their_own(tmp_path: Path) -> None:
    """R80: `tools/eval_velocity.py --json-out`, `tools/fit_score_calibration.py --out` and
    `benchmarks/run.py --out` / `--merge` / `--profile` replaced any JSON file (a COCO ground
    truth, another command's results; the calibration fit any JSON holding a `models` table,
    its other keys lost), the benchmarks' profile any text file, after minutes of work. Each is
    refused now before any work (exit 2), naming how the file begins and the fix, and keeps
    every byte; each tool's own earlier result (or an empty file) is still replaced."""
    import argparse

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tools"))
    import fit_score_calibration as fsc
    from benchmarks.run import parse_args
    from sense_perception.evaluation.velocity import is_velocity_report

    coco = tmp_path / "coco.json"
    coco.write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}\n')
    zoo = tmp_path / "zoo.json"  # a JSON of the user's with a models table of its own
    zoo.write_text('{"models": {"resnet": {"path": "/data/resnet.onnx"}}, "runs": [1, 2]}\n')
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    before = {p: p.read_bytes() for p in (coco, zoo, notes)}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"cameras": {f"cam/{n}": {"image": f"{n}.png", "boxes": []}
                                          for n in (0, 1)}}))
    said = "already holds JSON that is not {}'s own result (it begins "
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "eval_velocity.py"), str(gt),
                             "--json-out", str(coco)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: --json-out {coco} " + said.format(
        "tools/eval_velocity.py")), result.stderr
    assert "give a new file name, or move that file away first" in result.stderr
    assert "are missing" not in result.stderr  # refused before the sequence is read
    assert is_velocity_report({"iou": 0.5, "bands": [], "frames": 2, "all": {}, "parked": {},
                               "skipped": [], "ground_truth": "gt.json", "config": "defaults"})
    for out in (coco, zoo):
        with pytest.raises(SystemExit) as exit_:
            fsc.earlier_maps(argparse.Namespace(ground_truth=gt, check=None, out=out))
        assert exit_.value.code == 2
    shipped = ROOT / "sense_perception" / "models" / "score_calibration.json"
    kept = fsc.earlier_maps(argparse.Namespace(ground_truth=gt, check=None, out=shipped))
    assert set(kept["models"]) >= {"picodet_s_416"}  # its own file: its models are kept
    for args in (["--quick", "--out", str(coco)],
                 ["--quick", "--only", "gallery", "--merge", "--out", str(coco)],
                 ["--quick", "--out", str(tmp_path / "r.json"), "--profile", str(notes)]):
        with pytest.raises(SystemExit) as exit_:
            parse_args(args)
        assert exit_.value.code == 2
    results = tmp_path / "results.json"  # the suite's own results file, then its own profile
    shutil.copy(ROOT / "benchmarks" / "results.json", results)
    profile = tmp_path / "profile.txt"
    profile.write_text("         1234 function calls (1200 primitive calls) in 0.5 seconds\n")
    assert parse_args(["--quick", "--only", "gallery", "--merge", "--out", str(results),
                       "--profile", str(profile)]).out == results
    assert {p: p.read_bytes() for p in before} == before


def test_a_link_loop_as_the_output_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    """A symbolic link that points at itself (`ln -s loop loop`) given as `--json-out` or as
    `fleet --out` raised pathlib's RuntimeError ('Symlink loop') out of the output checks: a
    traceback. Each command now refuses it (exit 2) naming it, or, as a result file, replaces
    the link with the result (as it does any link: never written through)."""
    street = str(SHARED / "street" / "pandaset_seq002_front_camera_00.jpg")
    sample = str(ROOT / "sense_perception" / "data" / "sample_bag")
    loop = tmp_path / "loop"
    for args in (["fleet", sample, "--out", "loop"], ["replay", sample, "--out", "loop"],
                 ["detect", street, "--out", "loop"]):
        loop.unlink(missing_ok=True)
        loop.symlink_to("loop")
        result = sp(*args, cwd=tmp_path, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert result.stderr.strip() == ("error: --out loop is a link that leads to no folder (a "
                                         "loop or a missing target); give a directory")
    for args in (["health", street, "--json-out", "loop"],
                 ["driver", "attention", street, "--json-out", "loop"]):
        loop.unlink()
        loop.symlink_to("loop")
        result = sp(*args, cwd=tmp_path, timeout=120)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr)
        assert not loop.is_symlink() and json.loads(loop.read_text())["images"]


def test_quantize_specialist_never_writes_over_its_original_nor_leaves_a_cut_off_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tools/quantize_specialist.py --out` naming the original IR wrote the 8-bit model over the
    model it quantises (refused now, exit 2, before any frame is read), and ov.save_model wrote
    the .xml/.bin in place: a full disk left a cut-off .bin where the good 8-bit model was."""
    import importlib.util

    import openvino

    source = ROOT / "sense_perception" / "models" / "person_detection_0203.xml"
    link = tmp_path / "model.xml"
    link.symlink_to(source)
    before = digests(source.parent)
    for out in (source, link, tmp_path / "model.bin"):
        run = tool("quantize_specialist.py", str(tmp_path), "--out", str(out), cwd=tmp_path)
        assert run.returncode == 2 and f"--out {out}" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert digests(source.parent) == before
    spec = importlib.util.spec_from_file_location("quantize_specialist",
                                                  ROOT / "tools" / "quantize_specialist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out" / "int8.xml"
    out.parent.mkdir()
    out.write_text("good xml")
    out.with_suffix(".bin").write_text("good bin")

    def full_disk(model: object, path: str, compress_to_fp16: bool = True) -> None:
        Path(path).write_text("cut")
        Path(path).with_suffix(".bin").write_text("cut")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(openvino, "save_model", full_disk)
    with pytest.raises(OSError):
        module.save(object(), out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["int8.bin", "int8.xml"]
    assert (out.read_text(), out.with_suffix(".bin").read_text()) == ("good xml", "good bin")

    def saved(model: object, path: str, compress_to_fp16: bool = True) -> None:
        Path(path).write_text("new xml")
        Path(path).with_suffix(".bin").write_text("new bin")

    monkeypatch.setattr(openvino, "save_model", saved)
    assert module.save(object(), out) == out
    assert sorted(p.name for p in out.parent.iterdir()) == ["int8.bin", "int8.xml"]
    assert (out.read_text(), out.with_suffix(".bin").read_text()) == ("new xml", "new bin")


def test_quantize_specialist_without_nncf_stops_before_recording_any_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """NNCF is no dependency of the package: without it the tool recorded the network inputs of
    every frame given (minutes) and then failed in a traceback at `import nncf`. It stops at
    once now (exit 2), naming how to install it; OpenVINO comes through the package's loader."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("quantize_specialist",
                                                  ROOT / "tools" / "quantize_specialist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def recorded(folders: object) -> list:
        raise AssertionError("inputs recorded without NNCF")

    monkeypatch.setattr(module, "band_inputs", recorded)
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
    with pytest.raises(SystemExit) as stop:
        module.main([str(tmp_path), "--out", str(tmp_path / "int8.xml")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "NNCF cannot be imported" in err and module.NNCF_INSTALL in err, err
    assert module.openvino() is sys.modules["openvino"]


def test_quantize_specialist_out_in_a_new_folder_is_saved(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out new/int8.xml`: ov.save_model creates the folder, but save() writes into a temporary
    folder inside it first, so a missing folder failed in a traceback after the minutes of
    quantising; check_out (before any work) creates it now."""
    import importlib.util

    import openvino

    spec = importlib.util.spec_from_file_location("quantize_specialist",
                                                  ROOT / "tools" / "quantize_specialist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def saved(model: object, path: str, compress_to_fp16: bool = True) -> None:
        Path(path).write_text("xml")
        Path(path).with_suffix(".bin").write_text("bin")

    monkeypatch.setattr(openvino, "save_model", saved)
    out = tmp_path / "new" / "deeper" / "int8.xml"
    module.check_out(out)
    assert module.save(object(), out) == out
    assert sorted(p.name for p in out.parent.iterdir()) == ["int8.bin", "int8.xml"]
