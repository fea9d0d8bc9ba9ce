"""`driver attention` / `driver eval` outputs and bad inputs (issue 20, items 4, 14, 15).

``--json`` means the same in every `driver` command: print JSON on stdout. A file is written only
with ``--json-out FILE``, never over an input or an image. One unreadable photo or one 1x1 bag
frame is skipped, counted and named; the rest goes on.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sense_perception.face.gallery import GalleryStore
from support import driver_cli, private_fold_cache  # noqa: F401  (an autouse fixture)

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
PAIRS = Path(__file__).resolve().parent / "data" / "face_pairs.csv"
OBAMA_2 = FACES / "obama_2_congress_2009.jpg"
COLLINS = FACES / "eileen_collins_nasa_astronaut.png"


cli = driver_cli


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    victim, other = tmp_path / "victim.jpg", tmp_path / "other.png"
    shutil.copy(OBAMA_2, victim)
    shutil.copy(COLLINS, other)
    return victim, other


def test_json_is_a_flag_that_never_overwrites_a_photo(photos, capsys) -> None:
    victim, other = photos
    before = victim.read_bytes(), other.read_bytes()
    code, out, err = cli(capsys, "attention", "--json", victim, other)
    assert code == 0, err
    assert (victim.read_bytes(), other.read_bytes()) == before  # the photos are untouched
    doc = json.loads(out)  # stdout is the JSON alone
    assert [row["image"] for row in doc["images"]] == [str(victim), str(other)]
    assert doc["images"][0]["yaw_deg"] > 5.0 and doc["skipped"] == []


@pytest.mark.parametrize("target", ["image_suffix", "an_input", "hard_link", "an_image_by_content",
                                    "link_to_an_image", "unwritable"])
def test_json_out_is_refused_before_any_work(photos, tmp_path, capsys, target) -> None:
    victim, other = photos
    disguised = tmp_path / "face.data"  # an input without an image suffix (OpenCV reads content)
    shutil.copy(OBAMA_2, disguised)
    before = {p: p.read_bytes() for p in (victim, other, disguised)}
    if target == "image_suffix":
        out, reason = tmp_path / "result.png", "has an image suffix (.png)"
    elif target == "an_input":
        out, reason = disguised, f"is the input {disguised}"
    elif target == "hard_link":
        out = tmp_path / "result.json"
        out.hardlink_to(disguised)
        reason = f"is the input {disguised}"
    elif target == "an_image_by_content":  # a photo that is not among the inputs
        out, reason = tmp_path / "holiday.json", "is an image file"
        shutil.copy(COLLINS, out)
        before[out] = out.read_bytes()
    elif target == "link_to_an_image":
        photo = tmp_path / "holiday.jpg"
        shutil.copy(COLLINS, photo)
        before[photo] = photo.read_bytes()
        out, reason = tmp_path / "result.json", f"is a link to the image {photo}"
        out.symlink_to(photo)
    else:
        blocker = tmp_path / "a_file"
        blocker.write_text("x")
        out, reason = blocker / "result.json", f"directory {blocker} does not exist"
    code, stdout, err = cli(capsys, "attention", victim, other, disguised, "--json-out", out)
    assert code == 2 and f"--json-out {out}" in err and reason in err, err
    assert "Traceback" not in err and stdout == ""  # refused before any photo was measured
    assert {p: p.read_bytes() for p in before} == before


def test_one_bad_photo_is_skipped_named_and_counted(photos, tmp_path, capsys) -> None:
    victim, other = photos
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(victim.read_bytes()[:200])  # a copy cut short
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((1, 1, 3), 128, np.uint8))
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "attention.json"
    code, stdout, err = cli(capsys, "attention", broken, victim, tiny, missing, other,
                            "--json-out", out)
    assert code == 1, err  # something was skipped; the rest was measured
    assert f"warning: skipped {broken}: " in err and "not a decodable image" in err
    assert f"warning: skipped {tiny}: " in err and "1x1" in err
    assert f"warning: skipped {missing}: " in err and "no such file" in err
    assert f"3 of 5 image(s) skipped: {broken}, {tiny}, {missing}" in err
    assert "Traceback" not in err
    assert f"{victim}: yaw" in stdout and f"{other}: yaw" in stdout
    doc = json.loads(out.read_text())
    assert [r["image"] for r in doc["images"]] == [str(victim), str(other)]
    assert [s["image"] for s in doc["skipped"]] == [str(broken), str(tiny), str(missing)]
    assert all(s["reason"] for s in doc["skipped"])
    # nothing readable at all: nothing was measured
    code, _, err = cli(capsys, "attention", broken, tiny)
    assert code == 2 and "2 of 2 image(s) skipped" in err


def test_eval_json_prints_and_json_out_writes(tmp_path, capsys) -> None:
    code, out, err = cli(capsys, "eval", "--pairs", PAIRS, "--root", FACES, "--json")
    assert code == 0, err
    printed = json.loads(out)
    assert printed["pairs"] == 15 and "table" in printed
    code, _, err = cli(capsys, "eval", "--pairs", PAIRS, "--root", FACES, "--json-out", PAIRS)
    assert code == 2 and f"is the input {PAIRS}" in err
    code, _, err = cli(capsys, "eval", "--pairs", PAIRS, "--root", FACES, "--json-out",
                       FACES / "obama_2_congress_2009.jpg")
    assert code == 2 and "image suffix" in err
    assert cv2.imread(str(OBAMA_2)) is not None  # still a photo


def _write_bag(path: Path, frames: list[np.ndarray], topic: str) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    Img, Header, Time = (store.types[n] for n in ("sensor_msgs/msg/CompressedImage",
                                                  "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    with Writer(path, version=9) as writer:
        conn = writer.add_connection(topic, Img.__msgtype__, typestore=store)
        for i, frame in enumerate(frames):
            raw = cv2.imencode(".jpg", frame)[1].tobytes()
            msg = Img(Header(Time(i, 0), "cabin_camera"), "jpeg", np.frombuffer(raw, np.uint8))
            writer.write(conn, i * 10**9, store.serialize_cdr(msg, Img.__msgtype__))


def test_enrol_from_a_bag_skips_a_one_pixel_frame(tmp_path, capsys) -> None:
    frame = cv2.imread(str(OBAMA_2))
    bag = tmp_path / "cabin_bag"
    _write_bag(bag, [frame, np.zeros((1, 1, 3), np.uint8), frame, cv2.flip(frame, 1)],
               "/cabin/image/compressed")
    gallery = tmp_path / "g.json"
    code, out, err = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", bag,
                         "--topic", "/cabin/image/compressed", "--stride", "1", "--gallery", gallery)
    assert code == 0, out + err
    assert "skipped 1 frame(s) of /cabin/image/compressed: invalid frame 1x1" in err
    [driver] = GalleryStore(gallery).drivers()
    assert driver.templates.shape == (3, 128)  # the other frames were all used


_JSON_OUT_ON_A_FULL_DISK = '''
import contextlib, io, json, os, sys
from pathlib import Path
from sense_perception.cli.main import main
disk, first, second = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
target, report = disk / "attention.json", {}

def run(name, *photos):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["driver", "attention", *photos, "--json-out", str(target)])
    report[name] = {"code": code, "stderr": err.getvalue(), "files": sorted(os.listdir(disk)),
                    "json": target.read_text()}

run("good", first)
filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # the disk is now full
with contextlib.suppress(OSError):
    while True:
        os.write(filler, b"x" * 512)
os.close(filler)
run("full", *[first, second] * 6)  # a longer result than the disk had room for before
print(json.dumps(report))
'''


def test_json_out_on_a_full_disk_keeps_the_earlier_file_whole(tmp_path: Path) -> None:
    """--json-out on a full disk truncated the earlier result to 0 bytes before failing. On a real
    full disk (a tmpfs in a private mount namespace) the error names the problem and the fix
    (exit 2) and the earlier file keeps every byte; no temp file is left."""
    from support import run_on_tmpfs

    report = run_on_tmpfs(tmp_path, _JSON_OUT_ON_A_FULL_DISK, [OBAMA_2, COLLINS])
    good, full = report["good"], report["full"]
    assert good["code"] == 0 and len(json.loads(good["json"])["images"]) == 1, good
    assert full["code"] == 2 and "Traceback" not in full["stderr"], full
    assert full["json"] == good["json"] and full["files"] == ["attention.json", "filler"], full
    assert "cannot be written: No space left on device" in full["stderr"], full["stderr"]
    assert "fix: free space" in full["stderr"]


@pytest.mark.parametrize("target", ["gallery", "gallery_bak", "key_file", "config", "a_note"])
def test_json_out_never_replaces_the_gallery_its_key_or_the_config(photos, tmp_path, capsys,
                                                                   monkeypatch, target) -> None:
    # `driver eval --json-out <gallery>` replaced every enrolled driver with the FAR/FRR table,
    # and the key file's name lost the encrypted gallery for good; refused before any work.
    victim, _ = photos
    gallery = tmp_path / "drivers" / "gallery.json"
    gallery.parent.mkdir()
    gallery.write_text('{"version": 2, "drivers": []}\n')
    backup = gallery.with_name("gallery.json.bak")
    backup.write_text('{"version": 2, "drivers": []}\n')
    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY", str(gallery))
    key, config, note = tmp_path / "k.key", tmp_path / "dm.json", tmp_path / "notes.txt"
    key.write_text("ab" * 32 + "\n")
    config.write_text('{"driver_monitor": {"ros__parameters": {}}}\n')
    note.write_text("id,name\n")
    before = {p: p.read_bytes() for p in (gallery, backup, key, config, note)}
    out = {"gallery": gallery, "gallery_bak": backup, "key_file": key, "config": config,
           "a_note": note}[target]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"file_x,file_y,same\n{victim.name},{victim.name},1\n")
    for argv in (["attention", victim, "--config", config],
                 ["eval", "--pairs", pairs, "--key-file", key, "--config", config]):
        code, stdout, err = cli(capsys, *argv, "--json-out", out)
        assert code == 2 and f"--json-out {out}" in err and "Traceback" not in err, err
        assert stdout == ""  # refused before any photo was measured
    assert {p: p.read_bytes() for p in before} == before


def test_a_json_out_that_cannot_be_written_never_loses_the_scores(photos, tmp_path, capsys,
                                                                  monkeypatch) -> None:
    # `driver eval` wrote --json-out before printing: a full disk at the end lost the whole
    # FAR/FRR table (minutes of scoring) unseen. Now it is printed first, then the error.
    import sense_perception.fileio as fileio

    def full_disk(*_args, **_kwargs) -> None:
        raise OSError(28, "No space left on device")

    victim, other = photos
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"file_x,file_y,same\n{victim.name},{other.name},0\n")
    monkeypatch.setattr(fileio, "write_result_json", full_disk)
    code, out, err = cli(capsys, "eval", "--pairs", pairs, "--json-out", tmp_path / "e.json")
    assert code == 2 and "No space left on device" in err and "printed above" in err, err
    assert "shipped threshold" in out and "FAR" in out
    assert not (tmp_path / "e.json").exists()
