"""`sense-perception driver ...` end to end on real photos and a real rosbag2."""
from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from sense_perception.cli.main import main
from sense_perception.face.gallery import GalleryStore
from support import driver_cli, private_fold_cache  # noqa: F401  (an autouse fixture)

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
PAIRS = Path(__file__).resolve().parent / "data" / "face_pairs.csv"
OBAMA_1 = str(FACES / "obama_1_official_portrait_2012.jpg")
OBAMA_2 = str(FACES / "obama_2_congress_2009.jpg")
BIDEN_1 = str(FACES / "biden_1_official_vp_portrait_2013.jpg")
COLLINS = str(FACES / "eileen_collins_nasa_astronaut.png")


cli = driver_cli


def test_enrol_without_consent_is_refused_and_explains(tmp_path: Path, capsys) -> None:
    gallery = tmp_path / "g.json"
    code, out, err = cli(capsys, "enroll", "--name", "Barack", "--images", OBAMA_1,
                         "--gallery", str(gallery))
    assert code == 2
    assert "--consent is required" in err and "biometric" in err and "forget" in err
    assert not gallery.exists()


def test_enrol_from_photos_refuses_the_bag_options_it_would_ignore(tmp_path: Path, capsys) -> None:
    gallery = tmp_path / "g.json"
    for extra in (["--topic", "/cabin/image"], ["--stride", "2"]):
        with pytest.raises(SystemExit) as stop:  # a usage error, as argparse reports it
            main(["driver", "enroll", "--name", "Barack", "--consent", "--images", OBAMA_1, *extra,
                  "--gallery", str(gallery)])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and extra[0] in err and "--bag" in err, err
    assert not gallery.exists()


def test_enrol_list_identify_forget(tmp_path: Path, capsys) -> None:
    gallery = str(tmp_path / "g.json")
    code, out, _ = cli(capsys, "enroll", "--name", "Barack", "--consent", "--images", OBAMA_1,
                       "--gallery", gallery)
    assert code == 0 and "enrolled drv-" in out
    assert stat.S_IMODE(os.stat(gallery).st_mode) == 0o600

    code, out, _ = cli(capsys, "list", "--json", "--gallery", gallery)
    [entry] = json.loads(out)
    assert entry["name"] == "Barack" and entry["templates"] == 1 and entry["images"] == 0
    assert entry["consent"]["who"] == "Barack" and entry["consent"]["text_version"] == "1"

    code, out, _ = cli(capsys, "identify", OBAMA_2, BIDEN_1, COLLINS, "--json", "--gallery", gallery)
    rows = {Path(r["image"]).name: r for r in json.loads(out)}
    assert rows["obama_2_congress_2009.jpg"]["verdict"] == "identified"
    assert rows["obama_2_congress_2009.jpg"]["driver_id"] == entry["id"]
    assert rows["biden_1_official_vp_portrait_2013.jpg"]["verdict"] == "unknown"
    assert rows["eileen_collins_nasa_astronaut.png"]["verdict"] == "unknown"

    code, out, _ = cli(capsys, "forget", entry["id"], "--gallery", gallery)
    assert code == 0 and "forgot" in out
    assert entry["id"] not in Path(gallery).read_text()
    code, out, err = cli(capsys, "forget", entry["id"], "--gallery", gallery)
    assert code == 2 and "no enrolled driver" in err


def test_enrol_refuses_a_photo_with_several_faces(tmp_path: Path, capsys) -> None:
    a, b = cv2.imread(OBAMA_2), cv2.imread(COLLINS)
    group = np.hstack([cv2.resize(a, (300, 575)), cv2.resize(b, (575, 575))])
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), group)
    code, _, err = cli(capsys, "enroll", "--name", "X", "--consent", "--images", str(path),
                       "--gallery", str(tmp_path / "g.json"))
    assert code == 2 and "shows 2 faces" in err


def test_enrol_refuses_photos_of_different_people(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "enroll", "--name", "X", "--consent", "--images", OBAMA_1, BIDEN_1,
                       "--gallery", str(tmp_path / "g.json"))
    assert code == 2 and "same person" in err
    assert not (tmp_path / "g.json").exists()


def test_encrypted_gallery_with_kept_images_and_key_file(tmp_path: Path, capsys) -> None:
    key = tmp_path / "gallery.key"
    assert cli(capsys, "keygen", "--out", str(key))[0] == 0
    gallery = tmp_path / "g.json.enc"
    code, out, _ = cli(capsys, "enroll", "--name", "Barack", "--consent", "--keep-images",
                       "--images", OBAMA_1, OBAMA_2, "--gallery", str(gallery), "--key-file", str(key))
    assert code == 0 and "2 template(s), 2 kept image(s)" in out
    assert b"Barack" not in gallery.read_bytes()
    images = sorted(Path(str(gallery) + ".images").iterdir())
    assert len(images) == 2 and all(p.name.endswith(".png.enc") for p in images)
    code, _, err = cli(capsys, "list", "--gallery", str(gallery))
    assert code == 2 and "is encrypted" in err
    code, out, _ = cli(capsys, "list", "--json", "--gallery", str(gallery), "--key-file", str(key))
    [entry] = json.loads(out)
    assert cli(capsys, "forget", entry["id"], "--gallery", str(gallery), "--key-file", str(key))[0] == 0
    assert not Path(str(gallery) + ".images").exists()


def test_without_its_key_the_default_encrypted_gallery_is_named_not_bypassed(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    # the default gallery is gallery.json.enc with a key and gallery.json without: a forgotten
    # --key-file made `list` say "no drivers" and `enroll` start a plain gallery beside the
    # encrypted one, the consenting driver's templates unencrypted on the vehicle
    for name in ("SENSE_PERCEPTION_GALLERY", "SENSE_PERCEPTION_GALLERY_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    key = tmp_path / "gallery.key"
    assert cli(capsys, "keygen", "--out", str(key))[0] == 0
    assert cli(capsys, "enroll", "--name", "Barack", "--consent", "--images", OBAMA_1,
               "--key-file", str(key))[0] == 0
    folder = tmp_path / "data" / "sense_perception"
    assert (folder / "gallery.json.enc").is_file()
    for argv in (("enroll", "--name", "Barack", "--consent", "--images", OBAMA_2), ("list",)):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and "is encrypted and no key was given" in err and "--key-file" in err
    assert not (folder / "gallery.json").exists()
    # a plain gallery named on purpose is the user's choice
    plain = tmp_path / "plain.json"
    assert cli(capsys, "enroll", "--name", "Barack", "--consent", "--images", OBAMA_2,
               "--gallery", str(plain))[0] == 0 and plain.is_file()


def test_with_a_key_a_plain_default_gallery_left_beside_it_is_named_not_hidden(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    # a gallery enrolled before `keygen` stayed as plain gallery.json beside the new
    # gallery.json.enc: every command given the key used the encrypted one only, `list` said "no
    # enrolled drivers", the plain templates stayed unencrypted where no `forget` reached them
    for name in ("SENSE_PERCEPTION_GALLERY", "SENSE_PERCEPTION_GALLERY_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = tmp_path / "data" / "sense_perception"
    assert cli(capsys, "enroll", "--name", "Barack", "--consent", "--images", OBAMA_1)[0] == 0
    key = tmp_path / "gallery.key"
    assert cli(capsys, "keygen", "--out", str(key))[0] == 0
    for argv in (("list",), ("enroll", "--name", "Barack", "--consent", "--images", OBAMA_2)):
        code, _, err = cli(capsys, *argv, "--key-file", str(key))
        text = " ".join(err.split())
        assert code == 2 and f"{folder / 'gallery.json'}" in text and "not encrypted" in text
        assert "`driver forget ID`" in text and f"--gallery {folder / 'gallery.json.enc'}" in text
    assert not (folder / "gallery.json.enc").exists()
    # named on purpose, the encrypted gallery is used beside it
    assert cli(capsys, "list", "--key-file", str(key), "--gallery",
               str(folder / "gallery.json.enc"))[0] == 0
    # once the plain gallery is erased and deleted, the key's default works
    code, out, _ = cli(capsys, "list", "--json")
    assert cli(capsys, "forget", json.loads(out)[0]["id"])[0] == 0
    for name in ("gallery.json", "gallery.json.bak"):
        (folder / name).unlink()
    assert cli(capsys, "list", "--key-file", str(key))[0] == 0


def _write_bag(path: Path, frames: list[np.ndarray | bytes], topic: str) -> None:
    """A rosbag2 of JPEG CompressedImages (a ``bytes`` entry is written as the data as it is)."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    Img, Header, Time = (store.types[n] for n in ("sensor_msgs/msg/CompressedImage",
                                                  "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    String = store.types["std_msgs/msg/String"]
    with Writer(path, version=9) as writer:
        conn = writer.add_connection(topic, Img.__msgtype__, typestore=store)
        other = writer.add_connection("/rosout_text", String.__msgtype__, typestore=store)
        writer.write(other, 0, store.serialize_cdr(String("not an image"), String.__msgtype__))
        for i, frame in enumerate(frames):
            raw = frame if isinstance(frame, bytes) else cv2.imencode(".jpg", frame)[1].tobytes()
            msg = Img(Header(Time(i, 0), "cabin_camera"), "jpeg", np.frombuffer(raw, np.uint8))
            writer.write(conn, i * 10**9, store.serialize_cdr(msg, Img.__msgtype__))


def test_enrol_from_a_rosbag2_of_the_cabin_camera(tmp_path: Path, capsys) -> None:
    frame = cv2.imread(OBAMA_2)
    bag = tmp_path / "cabin_bag"
    _write_bag(bag, [frame, cv2.flip(frame, 1), frame, frame], "/cabin/image/compressed")
    gallery = tmp_path / "g.json"
    code, _, err = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag),
                       "--topic", "/cabin/nope", "--gallery", str(gallery))
    assert code == 2 and "no topic '/cabin/nope'" in err and "/cabin/image/compressed" in err
    code, out, _ = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag),
                       "--topic", "/cabin/image/compressed", "--stride", "1", "--gallery", str(gallery))
    assert code == 0, out
    [driver] = GalleryStore(gallery).drivers()
    assert driver.templates.shape == (4, 128)
    code, out, _ = cli(capsys, "identify", OBAMA_1, "--json", "--gallery", str(gallery))
    assert json.loads(out)[0]["driver_id"] == driver.id


def test_enrol_refuses_two_people_with_several_faces_each(tmp_path: Path, capsys) -> None:
    """A cabin bag over a change of driver (or two photos each of two people): the check compared
    each face with the mean of all the others, in which its own person outweighed the other one,
    so both people were enrolled as one driver, the second without consent, and identified as
    them from then on (R70). Refused now, naming the two groups; nothing is written."""
    obama, biden = cv2.imread(OBAMA_2), cv2.imread(BIDEN_1)
    dim = {"alpha": 0.8, "beta": 0}  # consecutive frames of one person: alike, not identical
    bag = tmp_path / "cabin_bag"
    _write_bag(bag, [obama, cv2.convertScaleAbs(obama, **dim), obama,
                     biden, cv2.convertScaleAbs(biden, **dim), biden], "/cabin/image/compressed")
    gallery = tmp_path / "g.json"
    code, _, err = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag),
                       "--topic", "/cabin/image/compressed", "--stride", "1", "--gallery", str(gallery))
    assert code == 2 and "these faces look like two people: /cabin/image/compressed@0" in err, err
    code, _, err = cli(capsys, "enroll", "--name", "X", "--consent", "--images", OBAMA_1, OBAMA_1,
                       BIDEN_1, BIDEN_1, "--gallery", str(gallery))
    assert code == 2 and f"two people: {OBAMA_1}, {OBAMA_1}; and {BIDEN_1}, {BIDEN_1}" in err, err
    assert not gallery.exists()


def test_identify_against_an_empty_gallery_says_nobody_is_enrolled(tmp_path: Path,
                                                                     capsys) -> None:
    """A fresh gallery has no best score to print: the line said `best score None` (R60)."""
    gallery = str(tmp_path / "g.json")
    code, out, _ = cli(capsys, "identify", OBAMA_1, "--gallery", gallery)
    assert code == 0
    assert "None" not in out and "nobody is enrolled in the gallery" in out, out
    code, out, _ = cli(capsys, "identify", OBAMA_1, "--json", "--gallery", gallery)
    [row] = json.loads(out)
    assert row["verdict"] == "unknown" and row["score"] is None


def test_enrol_from_a_bag_skips_a_corrupt_frame_and_names_a_wrong_topic(tmp_path: Path,
                                                                         capsys) -> None:
    frame = cv2.imread(OBAMA_2)
    good = cv2.imencode(".jpg", frame)[1].tobytes()
    bag = tmp_path / "cabin_bag"
    # the second frame is cut short, as a recording interrupted mid-write leaves it
    _write_bag(bag, [frame, good[: len(good) // 3], frame, cv2.flip(frame, 1)], "/cabin/image")
    gallery = tmp_path / "g.json"
    code, _, err = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag),
                       "--topic", "/rosout_text", "--gallery", str(gallery))
    assert code == 2 and "std_msgs/msg/String" in err and "/cabin/image" in err
    code, out, err = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag),
                         "--topic", "/cabin/image", "--stride", "1", "--gallery", str(gallery))
    assert code == 0, out + err
    assert "skipped 1 frame(s) of /cabin/image: undecodable image" in err and "truncated" in err
    [driver] = GalleryStore(gallery).drivers()
    assert driver.templates.shape == (3, 128)


def test_enrol_from_a_bag_reads_its_frames_within_the_configs_input_settings(tmp_path: Path,
                                                                          capsys) -> None:
    """`driver enroll --bag` decoded the bag's frames with the default ``input.*`` settings,
    whatever ``--config`` said (its --help says it reads them; photos did): a frame beyond the
    config's ``input.max_width`` was enrolled."""
    frame = cv2.imread(OBAMA_2)  # 626 px wide
    bag = tmp_path / "cabin_bag"
    _write_bag(bag, [frame, cv2.flip(frame, 1)], "/cabin/image")
    config = tmp_path / "narrow.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    input:\n      max_width: 600\n")
    gallery = tmp_path / "g.json"
    code, out, err = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag),
                         "--topic", "/cabin/image", "--stride", "1", "--gallery", str(gallery),
                         "--config", str(config))
    assert code != 0, out + err
    assert "skipped 2 frame(s) of /cabin/image" in err and "input.max_width=600" in err, err
    assert not gallery.exists() or not GalleryStore(gallery).drivers()


def test_eval_json_schema_and_rates_on_real_pairs(tmp_path: Path, capsys) -> None:
    out_json = tmp_path / "eval.json"
    code, out, _ = cli(capsys, "eval", "--pairs", str(PAIRS), "--root", str(FACES),
                       "--json-out", str(out_json))
    assert code == 0 and "shipped" in out
    doc = json.loads(out_json.read_text())
    assert set(doc) == {"pairs", "failed_detections", "threshold", "far", "frr", "table",
                        "skipped"}
    assert doc["skipped"] == []
    assert isinstance(doc["pairs"], int) and isinstance(doc["failed_detections"], int)
    assert all(isinstance(doc[k], float) for k in ("threshold", "far", "frr"))
    assert doc["pairs"] == 15 and doc["failed_detections"] == 0
    for row in doc["table"]:
        assert set(row) == {"threshold", "far", "frr"} and all(isinstance(v, float) for v in row.values())
        assert 0.0 <= row["far"] <= 1.0 and 0.0 <= row["frr"] <= 1.0
    fars = [r["far"] for r in doc["table"]]
    frrs = [r["frr"] for r in doc["table"]]
    assert fars == sorted(fars, reverse=True) and frrs == sorted(frrs)  # monotone in the threshold
    assert doc["far"] == 0.0 and doc["frr"] == 0.0  # the shipped threshold separates these pairs


def test_eval_rejects_a_malformed_pairs_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "pairs.csv"
    bad.write_text("a,b,c\nx,y,1\n")
    code, _, err = cli(capsys, "eval", "--pairs", str(bad))
    assert code == 2 and "file_x,file_y,same" in err
    bad.write_text("file_x,file_y,same\nx.jpg,y.jpg,yes\n")
    code, _, err = cli(capsys, "eval", "--pairs", str(bad))
    assert code == 2 and "line 2" in err


def test_eval_reads_photos_within_the_configs_input_limits(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """`driver eval` read its photos with the default input limits whatever --config's input.*
    said (every other command that reads photos takes them): a photo beyond them was decoded and
    scored. It is now skipped and named like any unreadable photo (exit 1), and so is one under
    8x8 px (the detector's refusal of it ended the whole eval, naming no file)."""
    import sense_perception.cli.driver as driver_cli

    class Engine:  # no model: this is about reading the photos
        def driver_embedding(self, image: np.ndarray) -> tuple[None, None, np.ndarray, None]:
            return None, None, np.ones(128, np.float32) / np.sqrt(128), None

    monkeypatch.setattr(driver_cli, "_still_engine", lambda settings: Engine())
    cv2.imwrite(str(tmp_path / "small.png"), np.full((32, 32, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "wide.png"), np.full((32, 100, 3), 128, np.uint8))
    pairs = tmp_path / "pairs.csv"
    cv2.imwrite(str(tmp_path / "tiny.png"), np.full((4, 4, 3), 128, np.uint8))
    pairs.write_text("file_x,file_y,same\nsmall.png,small.png,1\nsmall.png,wide.png,0\n"
                     "tiny.png,small.png,0\n")
    config = tmp_path / "limits.yaml"
    config.write_text("input: {max_width: 64}\n")
    code, out, err = cli(capsys, "eval", "--pairs", str(pairs), "--config", str(config), "--json")
    doc = json.loads(out)
    assert code == 1, err
    assert [entry["image"] for entry in doc["skipped"]] == [str(tmp_path / "tiny.png"),
                                                            str(tmp_path / "wide.png")]
    assert "too small" in doc["skipped"][0]["reason"]  # 4x4 px: named, not the end of the eval
    assert "max_width" in doc["skipped"][1]["reason"] and doc["pairs"] == 1, doc
    assert "wide.png" in err and "tiny.png" in err


def test_enrol_with_the_name_on_stdin_keeps_it_out_of_the_command_line(tmp_path: Path) -> None:
    """`driver enroll --name "Jane Doe"` put the driver's name in /proc/PID/cmdline, which every
    local user can read while the command runs, and in shell history. `--name -` reads it from
    stdin: the running process's command line never holds it, nothing under the gallery's folder
    is named after it, no exposure note is printed, and the gallery lists the driver by it."""
    import subprocess
    import sys
    import time

    name = "Jane Q. Doe"
    gallery = tmp_path / "g" / "gallery.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sense_perception.cli.main", "driver", "enroll", "--name", "-",
         "--consent", "--keep-images", "--images", OBAMA_1, "--gallery", str(gallery)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1])
    # As another local user sees it; it waits for its name on stdin, so it is running. Read again
    # until the exec has replaced the forked parent's (or a still-empty) command line.
    cmdline = b""
    for _ in range(500):
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        if b"sense_perception.cli.main" in cmdline:
            break
        time.sleep(0.01)
    out, err = proc.communicate(f"{name}\n".encode(), timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"--name\0-\0" in cmdline and name.encode() not in cmdline
    assert name.encode() not in err and b"note:" not in err
    assert [d.name for d in GalleryStore(gallery).drivers()] == [name]
    assert not [p for p in gallery.parent.rglob("*") if "Jane" in p.name or "Doe" in p.name]


class _Terminal(io.TextIOWrapper):
    """A stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_enrol_asks_for_a_left_out_name_at_a_terminal_and_notes_one_on_the_command_line(
        capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --name the command asks for it on stderr when stdin is a terminal and refuses
    (naming `--name -`) when it is not; a name given on the command line is still taken, with a
    note that other local users can read it; stdin ending early or an empty line is refused. Each
    run here stops at the empty --consent-by, before any model loads."""
    base = ["enroll", "--consent", "--images", OBAMA_1, "--consent-by", ""]

    def stdin(text: bytes, terminal: bool = False) -> None:
        monkeypatch.setattr("sys.stdin", (_Terminal if terminal else io.TextIOWrapper)(
            io.BytesIO(text)))

    stdin(b"Jane Doe\n", terminal=True)
    code, _, err = cli(capsys, *base)
    assert code == 2 and err.startswith("driver's display name: ") and "--consent-by is empty" in err
    assert "Jane" not in err and "note:" not in err
    stdin(b"Jane Doe\n")
    code, _, err = cli(capsys, *base)
    assert code == 2 and "no driver name: give it on stdin with --name -" in err
    code, _, err = cli(capsys, *base, "--name", "Jane Doe")
    assert code == 2 and "note: a name given on the command line (--name)" in err
    assert "/proc/PID/cmdline" in err and "--consent-by is empty" in err
    for text, problem in ((b"", "stdin ended before the driver's display name"),
                          (b" \n", "the line read from stdin is empty"),
                          (b"x" * 2000 + b"\n", "the line read from stdin is longer than 1024 bytes"),
                          (b"x" * 1025 + b"\n", "the line read from stdin is longer than 1024 bytes")):
        stdin(text)
        code, _, err = cli(capsys, *base, "--name", "-")
        assert code == 2 and f"--name -: {problem}" in err and "nothing was enrolled" in err, err


def test_a_name_line_of_the_full_1024_bytes_is_read_whatever_its_line_end() -> None:
    """The limit is the name's, not its line end's: a name of exactly 1024 bytes followed by
    "\n" or "\r\n" was refused as "longer than 1024 bytes" (the end counted), while the same
    name at the end of stdin was taken. The name on the line after it (--consent-by -) is read
    whole too."""
    from sense_perception.cli.driver import _read_name_line

    name = "é" * 511 + "xy"  # 1024 bytes
    for rest in (b"\nJo\n", b"\r\nJo\n", b""):
        stdin = io.TextIOWrapper(io.BytesIO(name.encode() + rest))
        assert _read_name_line(stdin, False, "--name", "driver's display name") == name
        if rest:
            assert _read_name_line(stdin, False, "--consent-by", "who consented") == "Jo"


def test_help_explains_the_commands(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["driver", "--help"])
    out = capsys.readouterr().out
    for word in ("enroll", "list", "forget", "identify", "eval", "consent"):
        assert word in out


@pytest.mark.parametrize("command", ["identify", "attention"])
def test_photos_are_refused_with_a_config_that_names_an_exterior_camera_role(
        tmp_path: Path, capsys, command: str) -> None:
    """R88: `driver identify` and `driver attention` of photos ran whatever the --config's
    driver_monitor.camera_role said (`front`: the face pipeline pointed outside the car, where no
    face is ever recognised), the setting silently ignored, while `enroll --bag` and the replay
    refuse it. Refused now, naming the setting, its file and the fix, before any photo, model or
    gallery is read; the default role (cabin) still runs."""
    gallery = tmp_path / "g" / "gallery.json"
    assert cli(capsys, "enroll", "--name", "Barack", "--consent", "--gallery", str(gallery),
               "--images", OBAMA_1)[0] == 0
    config = tmp_path / "front.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_role: front\n")
    before = gallery.read_bytes()
    where = ["--gallery", str(gallery)] if command == "identify" else []  # attention reads none
    code, out, err = cli(capsys, command, "--config", str(config), *where, OBAMA_2)
    what = "face identification" if command == "identify" else "driver attention"
    assert code == 2 and not out, (code, out, err)
    assert f"{what} refused on camera_role 'front' (driver_monitor.camera_role in {config})" in err
    assert "camera_role: cabin" in err and "Barack" not in err, err
    assert gallery.read_bytes() == before
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_role: cabin\n")
    code, out, err = cli(capsys, command, "--config", str(config), *where, OBAMA_2)
    assert code == 0 and out, err


@pytest.mark.parametrize("command", ["enroll", "eval"])
def test_enrolment_and_eval_of_photos_are_refused_with_an_exterior_camera_role(
        tmp_path: Path, capsys, command: str) -> None:
    """R90: `driver enroll --images` and `driver eval` ran whatever the --config's
    driver_monitor.camera_role said (R88 refused identify and attention only): a config saying
    the face pipeline looks outside the car, with face templates made and matched all the same.
    Refused as identify is, naming the setting, its file and the fix, before any photo is read
    or any template stored; the cabin role still runs."""
    gallery = tmp_path / "g" / "gallery.json"
    config = tmp_path / "front.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_role: front\n")
    args = {"enroll": ["--name", "Barack", "--consent", "--gallery", str(gallery), "--images",
                       OBAMA_1],
            "eval": ["--pairs", str(PAIRS), "--root", str(FACES), "--json"]}[command]
    code, out, err = cli(capsys, command, "--config", str(config), *args)
    what = "face enrolment" if command == "enroll" else "face identification (driver eval)"
    assert code == 2 and not out, (code, out, err)
    assert f"{what} refused on camera_role 'front' (driver_monitor.camera_role in {config})" in err
    assert "camera_role: cabin" in err, err
    assert not gallery.parent.exists()  # nothing stored
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_role: cabin\n")
    code, out, err = cli(capsys, command, "--config", str(config), *args)
    assert code == 0 and out, err
    assert gallery.is_file() == (command == "enroll")


def test_enrol_from_a_bag_is_refused_when_the_camera_is_not_the_cabin(tmp_path: Path,
                                                                       capsys) -> None:
    """`replay --cabin` refuses identity when the config's camera_role is not cabin; enrolling
    from a bag with that config embedded faces of the camera all the same (SECURITY.md P7)."""
    frame = cv2.imread(OBAMA_2)
    bag = tmp_path / "front_bag"
    _write_bag(bag, [frame, frame], "/front/image/compressed")
    config = tmp_path / "front.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_role: front\n")
    gallery = tmp_path / "g" / "gallery.json"
    code, _, err = cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag),
                       "--topic", "/front/image/compressed", "--stride", "1", "--config",
                       str(config), "--gallery", str(gallery))
    assert code == 2 and "face identification refused on camera_role 'front'" in err, err
    # R90: named as for photos: the setting, its file and the fix
    assert f"(driver_monitor.camera_role in {config})" in err and "camera_role: cabin" in err, err
    assert not gallery.parent.exists()  # nothing read, nothing written
    # The same bag with the cabin role (the default) is enrolled.
    assert cli(capsys, "enroll", "--name", "Barack", "--consent", "--bag", str(bag), "--topic",
               "/front/image/compressed", "--stride", "1", "--gallery", str(gallery))[0] == 0
