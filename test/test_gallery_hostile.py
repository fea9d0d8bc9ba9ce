"""Issue 20: a hostile gallery directory (SECURITY.md adversary 1: links, hard links, FIFOs and
directories planted under the gallery's names) and hostile names, through the real
`sense-perception driver ...` commands on real face photos.

Every case checks what matters to the owner: the file a link points to keeps its bytes, the
command ends (a FIFO is never waited on) with exit status 2 and a message naming the planted file,
and no traceback reaches the user.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import cv2
import pytest
from replay_helpers import CABIN, SAMPLE_BAG

from sense_perception.cli.main import main
from sense_perception.errors import GalleryError
from sense_perception.face import model_fold
from sense_perception.face.gallery import GalleryStore, _digest, load_key
from sense_perception.face.pipeline import DriverIdentifier

ROOT = Path(__file__).resolve().parents[1]
FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
BIDEN_1 = str(FACES / "biden_1_official_vp_portrait_2013.jpg")
COLLINS = str(FACES / "eileen_collins_nasa_astronaut.png")
OBAMA_1, OBAMA_2, OBAMA_3 = (str(FACES / n) for n in (
    "obama_1_official_portrait_2012.jpg", "obama_2_congress_2009.jpg", "obama_3_blue_room_2010.jpg"))
PRECIOUS = b"precious\n"


@pytest.fixture(scope="module")
def fold_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fold_cache")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, fold_cache: Path) -> None:
    monkeypatch.setenv(model_fold.CACHE_ENV, str(fold_cache))
    for var in ("SENSE_PERCEPTION_GALLERY", "SENSE_PERCEPTION_GALLERY_KEY"):
        monkeypatch.delenv(var, raising=False)


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run `sense-perception driver ...` in this process; a hang fails the test after 60 s."""
    with no_hang(60, " ".join(argv)):
        code = main(["driver", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@contextlib.contextmanager
def no_hang(seconds: int, what: str) -> Iterator[None]:
    """Interrupt a blocking call (a FIFO open) with a test failure instead of hanging forever."""
    def expire(signum, frame):
        raise TimeoutError(f"{what} hung for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def seed_gallery(tmp_path_factory: pytest.TempPathFactory, fold_cache: Path) -> Path:
    """A gallery (and its .bak) with Seed (Biden) enrolled by the real command, once."""
    folder = tmp_path_factory.mktemp("seed") / "g"
    folder.mkdir(mode=0o700)
    mp = pytest.MonkeyPatch()
    mp.setenv(model_fold.CACHE_ENV, str(fold_cache))
    mp.delenv("SENSE_PERCEPTION_GALLERY_KEY", raising=False)
    try:
        assert main(["driver", "enroll", "--consent", "--name", "Seed", "--images", BIDEN_1,
                     "--gallery", str(folder / "gallery.json")]) == 0
    finally:
        mp.undo()
    return folder


@pytest.fixture
def gallery(tmp_path: Path, seed_gallery: Path) -> Path:
    """A private copy (mode 0600 files in a 0700 directory) of the seeded gallery."""
    folder = tmp_path / "g"
    folder.mkdir(mode=0o700)
    for name in ("gallery.json", "gallery.json.bak"):
        shutil.copy2(seed_gallery / name, folder / name)
    return folder / "gallery.json"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(PRECIOUS)
    path.chmod(0o600)  # as private as a gallery file: only the link checks can save it
    return path


def seed_id(gallery: Path) -> str:
    [driver] = GalleryStore(gallery).drivers()
    return driver.id


# -- item 1: links are never followed -----------------------------------------------------------------


def test_the_issue_scenario_a_bak_link_is_refused_and_the_victim_keeps_its_bytes(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact reproduction of issue 20, item 1."""
    g = tmp_path / "g"
    g.mkdir(mode=0o700)
    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY", str(g / "gallery.json"))
    assert cli(capsys, "enroll", "--consent", "--name", "Seed", "--images", BIDEN_1)[0] == 0
    victim = tmp_path / "victim.txt"
    victim.write_bytes(PRECIOUS)
    (g / "gallery.json.bak").unlink()
    (g / "gallery.json.bak").symlink_to(victim)
    before = (g / "gallery.json").read_bytes()
    code, out, err = cli(capsys, "enroll", "--consent", "--name", "Eve", "--images", COLLINS)
    assert victim.read_bytes() == PRECIOUS  # was all zero bytes
    assert code == 2 and not out
    assert f"{g / 'gallery.json.bak'} is a symbolic link (to {victim})" in err
    assert "chmod 700" in err
    assert (g / "gallery.json").read_bytes() == before  # nothing was changed
    assert (g / "gallery.json.bak").is_symlink()  # left for the owner to look at


def _plant(kind: str, gallery: Path, victim: Path) -> Path:
    """Plant ``kind`` in the gallery directory; returns the planted name."""
    folder = gallery.parent
    if kind == "bak symlink":
        planted = folder / "gallery.json.bak"
        planted.unlink()
        planted.symlink_to(victim)
    elif kind == "bak hard link":
        planted = folder / "gallery.json.bak"
        planted.unlink()
        os.link(victim, planted)
    elif kind == "temp symlink":
        planted = folder / ".gallery.json.x.tmp"
        planted.symlink_to(victim)
    elif kind == "temp hard link":
        planted = folder / ".gallery.json.x.tmp"
        os.link(victim, planted)
    elif kind == "temp fifo":
        planted = folder / ".gallery.json.x.tmp"
        os.mkfifo(planted, 0o600)
    elif kind == "temp directory":
        planted = folder / ".gallery.json.x.tmp"
        planted.mkdir()
    elif kind == "lock symlink":
        planted = folder / "gallery.json.lock"
        planted.unlink(missing_ok=True)
        planted.symlink_to(victim)
    elif kind == "gallery symlink":
        # The owner keeps the real gallery elsewhere ("another disk") behind a link: the victim
        # is that real gallery, which a change used to zero.
        victim.write_bytes(gallery.read_bytes())
        planted = gallery
        planted.unlink()
        planted.symlink_to(victim)
    else:
        raise AssertionError(kind)
    return planted


#: What the refusal says about each planted thing.
KINDS = {"bak symlink": "is a symbolic link", "bak hard link": "has 2 hard links",
         "temp symlink": "is a symbolic link", "temp hard link": "has 2 hard links",
         "temp fifo": "is a FIFO (named pipe)", "temp directory": "is a directory",
         "lock symlink": "is a symbolic link", "gallery symlink": "is a symbolic link"}


@pytest.mark.parametrize("command", ["enroll", "forget"])
@pytest.mark.parametrize("kind", KINDS)
def test_planted_links_are_refused_by_enroll_and_forget_and_nothing_is_zeroed(
        kind: str, command: str, gallery: Path, victim: Path, capsys) -> None:
    driver_id = seed_id(gallery)
    planted = _plant(kind, gallery, victim)
    content = victim.read_bytes()
    files = {p.name: p.read_bytes() for p in gallery.parent.iterdir()
             if p.is_file() and not p.is_symlink() and p.name != "gallery.json.lock"}
    argv = (["enroll", "--consent", "--name", "Eve", "--images", COLLINS] if command == "enroll"
            else ["forget", driver_id])
    code, out, err = cli(capsys, *argv, "--gallery", str(gallery))
    assert victim.read_bytes() == content  # the file behind the link keeps every byte
    assert code == 2 and not out, err
    assert f"{planted} {KINDS[kind]}" in err
    # nothing in the gallery directory changed either
    assert {p.name: p.read_bytes() for p in gallery.parent.iterdir()
            if p.is_file() and not p.is_symlink() and p.name != "gallery.json.lock"} == files


def test_a_symlinked_gallery_is_refused_by_every_command_with_the_real_path(
        gallery: Path, victim: Path, capsys) -> None:
    _plant("gallery symlink", gallery, victim)
    for argv in (["list"], ["restore"], ["identify", OBAMA_1]):
        code, out, err = cli(capsys, *argv, "--gallery", str(gallery))
        assert code == 2 and f"{gallery} is a symbolic link (to {victim})" in err, argv
        assert f"give the real file's path ({victim}) instead" in err
    assert GalleryStore(victim).drivers()[0].name == "Seed"  # the real file is intact


def test_a_symlinked_or_fifo_key_file_is_refused(tmp_path: Path, gallery: Path, capsys) -> None:
    key = tmp_path / "key.hex"
    assert main(["driver", "keygen", "--out", str(key)]) == 0
    capsys.readouterr()
    link = tmp_path / "key_link"
    link.symlink_to(key)
    code, _, err = cli(capsys, "list", "--gallery", str(gallery), "--key-file", str(link))
    assert code == 2 and f"gallery key file {link} is a symbolic link (to {key})" in err
    fifo = tmp_path / "key_fifo"
    os.mkfifo(fifo, 0o600)
    code, _, err = cli(capsys, "list", "--gallery", str(gallery), "--key-file", str(fifo))
    assert code == 2 and f"gallery key file {fifo} is a FIFO (named pipe)" in err


def test_forged_kept_image_names_and_a_linked_images_folder_never_reach_other_files(
        gallery: Path, victim: Path, capsys) -> None:
    """Names of kept images come from the file, which adversary 1 can forge (without a key the
    checksum is no signature): forget erases only plain names inside the images folder."""
    doc = json.loads(gallery.read_text())
    doc["drivers"][0]["images"] = [f"../../{victim.name}", str(victim), ".."]
    doc["sha256"] = _digest(doc["drivers"])
    gallery.write_text(json.dumps(doc))
    images = gallery.with_name("gallery.json.images")
    images.mkdir(mode=0o700)
    code, out, err = cli(capsys, "forget", seed_id(gallery), "--gallery", str(gallery))
    assert code == 0 and "forgot" in out, err
    assert victim.read_bytes() == PRECIOUS and not images.exists()

    # a kept-images folder that is a link to someone else's folder is refused before any change
    assert cli(capsys, "enroll", "--consent", "--name", "Seed", "--images", BIDEN_1,
               "--gallery", str(gallery))[0] == 0
    other = victim.parent / "other_folder"
    other.mkdir()
    (other / f"{seed_id(gallery)}_000.png").write_bytes(PRECIOUS)
    images.symlink_to(other)
    before = gallery.read_bytes()
    code, _, err = cli(capsys, "forget", seed_id(gallery), "--gallery", str(gallery))
    assert code == 2 and f"kept-images directory {images} is a symbolic link" in err
    assert (other / f"{seed_id(gallery)}_000.png").read_bytes() == PRECIOUS
    assert gallery.read_bytes() == before


# -- item 9: a FIFO never blocks --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gallery.json", "gallery.json.bak", "gallery.json.lock"])
def test_a_fifo_under_a_gallery_name_is_refused_at_once(name: str, gallery: Path, capsys) -> None:
    fifo = gallery.with_name(name)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o600)
    for argv in (["list"], ["forget", "drv-00000000"], ["restore"]):
        code, out, err = cli(capsys, *argv, "--gallery", str(gallery))
        assert code == 2 and f"{fifo} is a FIFO (named pipe), not a regular file" in err, argv
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left alone


def _run(argv: list[str], timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sense_perception.cli.main", *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_fifo_gallery_ends_list_and_replay_cabin_as_separate_processes(
        tmp_path: Path, fold_cache: Path) -> None:
    """The issue's hangs, as a user runs them: `driver list` on a FIFO .bak and `replay --cabin`
    on a FIFO gallery end with exit status 2 and the reason (subprocess.run would time out)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{model_fold.CACHE_ENV: str(fold_cache)})
    folder = tmp_path / "g"
    folder.mkdir(mode=0o700)
    os.mkfifo(folder / "gallery.json.bak", 0o600)
    done = _run(["driver", "list", "--gallery", str(folder / "gallery.json")], 120, env)
    assert done.returncode == 2 and "gallery.json.bak is a FIFO" in done.stderr
    assert "Traceback" not in done.stderr

    os.mkfifo(folder / "gallery.json", 0o600)
    env["SENSE_PERCEPTION_GALLERY"] = str(folder / "gallery.json")
    done = _run(["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "out"), "--cabin", CABIN],
                300, env)
    assert done.returncode == 2, done.stderr
    assert f"gallery {folder / 'gallery.json'} is a FIFO" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_frame_loop_never_blocks_on_the_gallery_and_reports_a_failed_reload(
        tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture) -> None:
    """In a running driver_monitor the 1-s re-read runs between frames: a FIFO swapped in, or a lock
    held by a stuck process, neither blocks the frame nor stops identity and attention; the reason
    is kept in ``gallery_error`` (which the node puts in /diagnostics) until the gallery is
    readable again. The node's configure reads the gallery through the same constructor."""
    gallery = tmp_path / "g" / "gallery.json"
    assert cli(capsys, "enroll", "--consent", "--name", "Barack", "--images", OBAMA_1,
               "--gallery", str(gallery))[0] == 0
    good = gallery.read_bytes()
    params = {"gallery.path": str(gallery), "runtime.intra_op_threads": 1}
    with no_hang(120, "DriverIdentifier"):
        ident = DriverIdentifier.from_params(params, "test")
    frame = cv2.imread(OBAMA_2)
    t = 0.0
    with no_hang(60, "frames before the FIFO"):
        for _ in range(8):
            result = ident.process(frame, t)
            t += 0.2
    assert result.driver_id is not None and ident.gallery_error is None
    barack = result.driver_id

    fifo = gallery.with_name("swap")
    os.mkfifo(fifo, 0o600)
    os.replace(fifo, gallery)  # adversary 1 swaps a FIFO in
    with no_hang(30, "a frame after the FIFO swap"):
        result = ident.process(frame, t + 1.5)
    t += 1.5
    assert "FIFO" in (ident.gallery_error or "") and "still using the 1 driver(s)" in ident.gallery_error
    assert result.driver_id == barack and result.attention is not None  # the frame went on
    with no_hang(30, "a second frame on the FIFO"):
        ident.process(frame, t + 1.5)  # retried, still failing: logged once, not every second
    t += 1.5
    warnings = [r for r in caplog.records if "gallery reload failed" in r.getMessage()]
    assert len(warnings) == 1 and "FIFO" in warnings[0].getMessage()
    # the node's configure builds the same identifier: refused at once, not hung
    with no_hang(60, "configure on a FIFO"), pytest.raises(GalleryError, match="FIFO"):
        DriverIdentifier.from_params(params, "test")

    gallery.unlink()
    gallery.write_bytes(good)
    gallery.chmod(0o600)
    lock = os.open(gallery.with_name("gallery.json.lock"), os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a stuck writer holds the lock
        with no_hang(30, "a frame while the lock is held"):
            result = ident.process(frame, t + 1.5)
        t += 1.5
        assert "locked by another process" in (ident.gallery_error or "")
        assert result.attention is not None
    finally:
        os.close(lock)
    ident.process(frame, t + 1.5)
    assert ident.gallery_error is None and len(ident.index) == 1  # retried and recovered


def test_a_gallery_lock_held_for_ever_ends_the_wait_naming_it(
        tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R33: a process holding the gallery's lock and never letting go (an enrol stopped with
    Ctrl-Z, a hung one, anyone who can open the lock file) made every `driver` command and the
    node's configure (which reads the gallery the same way) wait for ever, printing nothing: the
    node never came up and published no /diagnostics. The wait is bounded now (``LOCK_WAIT_S``,
    30 s; shortened here): exit 2 naming the lock file and how to find its holder, a warning while
    waiting, and the gallery is read at once when the lock is free again."""
    from sense_perception.face import gallery as gallery_module

    monkeypatch.setattr(gallery_module, "LOCK_WAIT_S", 1.5)
    folder = tmp_path / "g"
    folder.mkdir(mode=0o700)
    path = folder / "gallery.json"
    lock = os.open(folder / "gallery.json.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a writer that never ends holds the lock
        code, _, err = cli(capsys, "list", "--gallery", str(path))  # (ends a hang after 60 s)
        assert code == 2, err
        assert f"gallery {path} stayed locked by another process for 1.5 s" in err
        assert f"fuser -v {folder / 'gallery.json.lock'}" in err and "Traceback" not in err
        assert "is locked by another process: waiting up to 1.5 s" in caplog.text
        with no_hang(20, "the configure's read on a held lock"), \
                pytest.raises(GalleryError, match="stayed locked by another process"):
            GalleryStore(path).drivers()
    finally:
        os.close(lock)
    assert GalleryStore(path).drivers() == []


# -- item 8: names that forge or hide output ----------------------------------------------------------

HOSTILE = {
    "newline": ("Eve\ndrv-00000000 Mallory", "U+000A"),
    "ansi": ("\x1b[2J\x1b[HEve", "U+001B"),
    "bidi override": ("Eve\u202eevil", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    "bidi isolate": ("Eve\u2066x", "U+2066"),
    "line separator": ("Eve\u2028x", "U+2028"),
    "zero width space": ("E\u200bve", "U+200B"),
}


@pytest.mark.parametrize("option", ["--name", "--consent-by"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_control_and_bidi_characters_are_refused_at_enrolment(case: str, option: str,
                                                              tmp_path: Path, capsys) -> None:
    text, code_point = HOSTILE[case]
    gallery = tmp_path / "g" / "gallery.json"
    argv = ["enroll", "--consent", "--images", BIDEN_1, "--gallery", str(gallery)]
    argv += ["--name", text] if option == "--name" else ["--name", "Eve", "--consent-by", text]
    code, out, err = cli(capsys, *argv)
    assert code == 2 and not out
    assert code_point in err and option in err and "nothing was enrolled" in err
    assert not gallery.exists()
    assert text not in err  # the refusal does not print it raw either


def test_a_name_with_a_zero_width_non_joiner_is_enrolled(tmp_path: Path, capsys) -> None:
    """ZWNJ/ZWJ are part of correct spelling (Persian, Indic scripts): not refused."""
    gallery = str(tmp_path / "g" / "gallery.json")
    name = "Mehr\u200cnaz"
    code, out, _ = cli(capsys, "enroll", "--consent", "--name", name, "--images", COLLINS,
                       "--gallery", gallery)
    assert code == 0 and name in out


@pytest.mark.parametrize("drivers", [None, {}, "drv-00000000"])
def test_a_forged_drivers_field_that_is_not_a_list_is_refused(gallery: Path, capsys,
                                                              drivers: object) -> None:
    """Without a key the checksum is no signature: a 'drivers' field that is not a list (null, an
    object, a string) is refused with the reason, never read as a gallery without drivers."""
    doc = json.loads(gallery.read_text())
    doc["drivers"] = drivers
    doc["sha256"] = _digest(drivers)
    gallery.write_text(json.dumps(doc))
    code, out, err = cli(capsys, "list", "--gallery", str(gallery))
    assert code == 2 and not out, out
    assert "'drivers' is not a list of driver records" in err and "Traceback" not in err


def test_names_of_an_older_gallery_are_escaped_in_every_output(gallery: Path, capsys) -> None:
    """A gallery written before the check (or by hand) still cannot forge rows, clear the screen or
    reverse text: list, identify, the enrol warning and forget escape what they print."""
    code, out, _ = cli(capsys, "enroll", "--consent", "--name", "Barack", "--images", OBAMA_1,
                       "--gallery", str(gallery))
    assert code == 0
    doc = json.loads(gallery.read_text())
    names = ["Seed\ndrv-00000000 Mallory 2026 1 0 v1 by Mallory", "\x1b[2J\x1b[HBarack\u202ekcab"]
    for d, name in zip(doc["drivers"], names, strict=True):
        d["name"] = name
        d["consent"]["who"] = name
    doc["sha256"] = _digest(doc["drivers"])
    gallery.write_text(json.dumps(doc))
    raw = ("\n", "\x1b", "\u202e")

    def clean(text: str) -> bool:
        return not any(c in text for c in raw[1:])

    code, out, _ = cli(capsys, "list", "--gallery", str(gallery))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3  # the header and one row per driver: no forged row
    assert clean(out) and "drv-00000000" not in lines[0] + lines[2]
    assert "Seed\\ndrv-00000000" in lines[1]
    assert "\\x1b[2J\\x1b[HBarack\\u202ekcab" in out

    code, out, _ = cli(capsys, "list", "--json", "--gallery", str(gallery))
    assert clean(out) and [d["name"] for d in json.loads(out)] == names  # JSON escapes itself

    code, out, _ = cli(capsys, "identify", OBAMA_2, "--gallery", str(gallery))
    assert code == 0 and clean(out) and len(out.splitlines()) == 1
    assert "\\x1b[2J\\x1b[HBarack\\u202ekcab (drv-" in out

    code, out, err = cli(capsys, "enroll", "--consent", "--name", "Barack O", "--images", OBAMA_3,
                         "--gallery", str(gallery))
    assert code == 0 and clean(err) and "already enrolled '\\x1b[2J\\x1b[HBarack\\u202ekcab'" in err

    barack = json.loads(cli(capsys, "list", "--json", "--gallery", str(gallery))[1])[1]["id"]
    code, out, _ = cli(capsys, "forget", barack, "--gallery", str(gallery))
    assert code == 0 and clean(out) and len(out.splitlines()) == 1 and "\\x1b[2J" in out


# -- low items ---------------------------------------------------------------------------------------


def test_a_gallery_nested_too_deeply_is_a_clear_error_and_restore_puts_it_back(gallery: Path,
                                                                              capsys) -> None:
    """'[[[[...' a few hundred kB long made json raise RecursionError: a traceback from every
    command (and, in the driver_monitor node, a dead process: test/ros/test_ros_gallery_faults.py)."""
    code, before, _ = cli(capsys, "list", "--gallery", str(gallery))
    assert code == 0 and "drv-" in before
    gallery.write_bytes(b"[" * 200_000)
    code, out, err = cli(capsys, "list", "--gallery", str(gallery))
    assert code == 2 and not out
    assert f"gallery {gallery} is not a gallery: its JSON nests too deeply" in err, err
    code, _, err = cli(capsys, "restore", "--gallery", str(gallery))
    assert code == 0, err
    assert cli(capsys, "list", "--gallery", str(gallery))[1] == before


def test_a_directory_as_gallery_is_a_clear_error(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "g"
    folder.mkdir(mode=0o700)
    for argv in (["list"], ["forget", "drv-00000000"], ["restore"],
                 ["enroll", "--consent", "--name", "Eve", "--images", COLLINS]):
        code, out, err = cli(capsys, *argv, "--gallery", str(folder))
        assert code == 2 and f"gallery {folder} is a directory, not a file" in err, argv
        assert f"e.g. {folder / 'gallery.json'}" in err
    assert list(folder.iterdir()) == []


def test_restore_is_advised_only_where_it_works(gallery: Path, capsys) -> None:
    bak = gallery.with_name("gallery.json.bak")
    gallery.unlink()
    code, _, err = cli(capsys, "list", "--gallery", str(gallery))  # a usable copy: advised
    assert code == 2 and "`sense-perception driver restore` to put it back" in err

    bak.write_bytes(bak.read_bytes()[:50])  # the copy is damaged too: restore cannot work
    code, _, err = cli(capsys, "list", "--gallery", str(gallery))
    assert code == 2 and "driver restore` to put it back" not in err
    assert "that copy cannot be restored either" in err and "is not valid JSON" in err
    assert cli(capsys, "restore", "--gallery", str(gallery))[0] == 2  # indeed it cannot

    gallery.write_bytes(b"{corrupt")  # corrupt gallery, unusable copy: no advice either
    gallery.chmod(0o600)
    code, _, err = cli(capsys, "list", "--gallery", str(gallery))
    assert code == 2 and "is not valid JSON" in err and "driver restore" not in err


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604])
def test_a_readable_last_good_copy_is_reported_by_list(bits: int, gallery: Path, capsys) -> None:
    bak = gallery.with_name("gallery.json.bak")
    bak.chmod(bits)
    code, out, err = cli(capsys, "list", "--gallery", str(gallery))
    assert code == 2 and not out
    assert f"gallery {bak} has mode {bits:04o}" in err and f"chmod 600 {bak}" in err
    bak.chmod(0o600)
    assert cli(capsys, "list", "--gallery", str(gallery))[0] == 0


def test_kept_face_images_others_may_read_are_refused_as_a_readable_gallery_is(
        tmp_path: Path, capsys) -> None:
    """A gallery restored from a copy that kept no modes (`cp -r`, an archive) has its kept face
    crops under the umask: a 0755 folder of 0644 PNGs, the driver's face readable by every local
    user. The gallery and its copy were refused with the chmod fix at that mode (P3); the crops
    were listed and used without a word. They are refused the same way now, as long as the
    folder lets another user reach them."""
    import numpy as np

    from sense_perception.face.gallery import ConsentRecord, GalleryStore

    store = GalleryStore(tmp_path / "g" / "gallery.json", keep_images=True)
    t = np.random.default_rng(3).normal(size=(1, 128)).astype(np.float32)
    t /= np.linalg.norm(t)
    store.enroll("Ada", np.repeat(t, 2, axis=0), ConsentRecord.now("Ada"),
                 images=[np.full((112, 112, 3), 5, np.uint8)] * 2)
    folder = store.images_dir
    crops = sorted(folder.iterdir())
    for dir_mode, crop_mode, refused in ((0o755, 0o644, True), (0o750, 0o640, True),
                                         (0o711, 0o604, True), (0o755, 0o600, False),
                                         (0o700, 0o644, False)):
        folder.chmod(dir_mode)
        for crop in crops:
            crop.chmod(crop_mode)
        code, out, err = cli(capsys, "list", "--gallery", str(store.path))
        assert (code == 2) is refused, (oct(dir_mode), oct(crop_mode), err)
        if refused:
            assert not out and f"kept face image {crops[0]} has mode {crop_mode:04o}" in err
            assert f"chmod 700 {folder}" in err
    folder.chmod(0o700)
    assert cli(capsys, "list", "--gallery", str(store.path))[0] == 0


def test_a_device_as_gallery_and_a_file_as_key_directory_are_clear_errors(tmp_path: Path,
                                                                         capsys) -> None:
    code, out, err = cli(capsys, "list", "--gallery", os.devnull)
    assert code == 2 and f"gallery {os.devnull} is a character device, not a regular file" in err
    blocker = tmp_path / "not_a_folder"
    blocker.write_bytes(PRECIOUS)
    code, out, err = cli(capsys, "keygen", "--out", str(blocker / "key.hex"))
    assert code == 2 and f"its directory {blocker} cannot be made" in err
    assert blocker.read_bytes() == PRECIOUS


# A child that enrols with --keep-images and is killed (SIGKILL, nothing of Python runs) after its
# face crops are on disk and before the gallery lists the driver: the window a power cut hits.
_KILLED_ENROLMENT = """
import os, signal, sys
from sense_perception.cli.main import main
from sense_perception.face.gallery import GalleryStore
def killed(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
GalleryStore._write = killed
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("next_change", ["forget", "enroll"])
def test_face_crops_of_a_killed_enrolment_are_erased_by_the_next_change(
        next_change: str, gallery: Path, tmp_path: Path, capsys) -> None:
    """A killed enrolment left its kept face crops beside the gallery for ever: no `driver list`
    showed the driver and no `forget` could reach them. The next enrol or forget erases them;
    the kept crops of enrolled drivers stay."""
    assert cli(capsys, "enroll", "--consent", "--name", "Kept", "--images", OBAMA_1,
               "--keep-images", "--gallery", str(gallery))[0] == 0
    kept = {d.id: d.images for d in GalleryStore(gallery).drivers()}
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_ENROLMENT)
    proc = subprocess.run([sys.executable, str(script), "driver", "enroll", "--consent", "--name",
                           "Killed", "--images", COLLINS, "--keep-images", "--gallery",
                           str(gallery)], capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    images = gallery.parent / "gallery.json.images"
    listed = {n for names in kept.values() for n in names}
    orphans = {p.name for p in images.iterdir()} - listed
    assert len(orphans) == 1, orphans  # the killed enrolment's crop, listed by no gallery
    assert {d.id for d in GalleryStore(gallery).drivers()} == set(kept)

    if next_change == "forget":
        assert cli(capsys, "forget", seed_id_of(gallery, "Seed"), "--gallery", str(gallery))[0] == 0
    else:
        assert cli(capsys, "enroll", "--consent", "--name", "Next", "--images", OBAMA_3,
                   "--gallery", str(gallery))[0] == 0
    assert {p.name for p in images.iterdir()} == listed  # the orphan is gone, the kept crop stays
    for name in listed:
        assert GalleryStore(gallery).load_image(name).shape == (112, 112, 3)


def seed_id_of(gallery: Path, name: str) -> str:
    [driver] = [d for d in GalleryStore(gallery).drivers() if d.name == name]
    return driver.id


def test_keygen_on_a_full_disk_leaves_no_empty_key_behind(tmp_path: Path) -> None:
    """keygen on a full disk ended in a traceback (exit 1) and left an empty key file, which every
    later keygen then refused to overwrite. On a real full disk (a tmpfs in a private mount
    namespace) it is a clear error (exit 2) that leaves nothing; once there is room it works."""
    from test_faults_replay import _namespace_prefix

    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = _namespace_prefix(disk)
    keygen = f'"{sys.executable}" -m sense_perception.cli.main driver keygen --out "$1/key.hex"'
    inside = ('mount -t tmpfs -o size=4k tmpfs "$1" && (head -c 8192 /dev/zero > "$1/fill"; true) '
              f'&& {keygen}; echo "full=$?"; ls -A "$1"; rm "$1/fill"; {keygen} >/dev/null; '
              'echo "room=$?"; wc -c < "$1/key.hex"')
    proc = subprocess.run([*prefix, "sh", "-c", inside, "sh", str(disk)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = proc.stdout.split()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "full=2" in lines and lines[lines.index("full=2") + 1] == "fill", proc.stdout
    assert "key file" in proc.stderr and "No space left on device" in proc.stderr, proc.stderr
    assert "room=0" in lines and lines[-1] == "65", proc.stdout  # 64 hex digits and a newline


_KILLED_KEYGEN = """
import os, secrets, signal, sys
from sense_perception.cli.main import main
def killed(n):  # kill -9 (a power cut) after the key file is created, before its key is written
    os.kill(os.getpid(), signal.SIGKILL)
secrets.token_hex = killed
sys.exit(main(sys.argv[1:]))
"""


def test_keygen_killed_before_its_key_is_written_leaves_no_key_file_blocking_the_next(
        tmp_path: Path, capsys) -> None:
    """keygen killed (kill -9, a power cut) between creating the key file and writing it left an
    empty key file: every later keygen refused to overwrite it and every reader said it held no
    key, advising keygen. The key is written in full to a temp file, then given its name: the
    name never holds a cut-off key, and the next keygen works."""
    key = tmp_path / "keys" / "gallery.key"
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_KEYGEN)
    proc = subprocess.run([sys.executable, str(script), "driver", "keygen", "--out", str(key)],
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not key.exists()
    assert cli(capsys, "keygen", "--out", str(key))[0] == 0
    assert len(load_key(str(key))) == 32


_SIGNALLED_KEYGEN = """
import os, signal, sys
import sense_perception.face.gallery as gallery
real = gallery._link_new
def link_then_stop(tmp, path):
    real(tmp, path)  # the key has its name; the temp still names it too
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
gallery._link_new = link_then_stop
from sense_perception.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_while_keygen_links_its_key_leaves_no_second_name_of_it(
        tmp_path: Path, signame: str, code: int) -> None:
    """SIGTERM (a service manager, ``timeout``) to ``driver keygen`` between linking the key and
    removing its temp name ended the process at once: the hidden ``.NAME.XXXX.keygen``, a second
    name of the key, stayed until the next keygen of that name. The stop now waits for the
    removal; keygen says what it wrote and exits 143 (130 on Ctrl-C)."""
    key = tmp_path / "keys" / "gallery.key"
    script = tmp_path / "signalled.py"
    script.write_text(_SIGNALLED_KEYGEN)
    proc = subprocess.run([sys.executable, str(script), signame, "driver", "keygen", "--out",
                           str(key)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert f"wrote a new 256-bit gallery key to {key}" in proc.stdout
    assert sorted(p.name for p in key.parent.iterdir()) == ["gallery.key"]
    assert key.stat().st_nlink == 1
    assert len(load_key(str(key))) == 32


def test_enrol_keeping_images_on_a_full_disk_is_a_clear_error_that_leaves_no_face(
        tmp_path: Path) -> None:
    """enroll --keep-images on a full disk ended in a traceback (exit 1) from the crop write. On a
    real full disk (a 16 kB tmpfs in a private mount namespace) it is an error naming the crop and
    the fix (exit 2), and no face crop, gallery or temp file is left."""
    from test_faults_replay import _namespace_prefix

    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = _namespace_prefix(disk)
    inside = (f'mount -t tmpfs -o size=16k tmpfs "$1" && "{sys.executable}" -m '
              'sense_perception.cli.main driver enroll --consent --name Full --keep-images '
              f'--images "{OBAMA_2}" --gallery "$1/gallery.json"; echo "code=$?"; ls -A "$1"')
    proc = subprocess.run([*prefix, "sh", "-c", inside, "sh", str(disk)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.split() == ["code=2", "gallery.json.lock"], proc.stdout
    assert "cannot be written: No space left on device" in proc.stderr, proc.stderr
    assert "nothing was enrolled" in proc.stderr and "fix: free space" in proc.stderr


# -- where the key and the gallery live (hostile run 4) ------------------------------------------

def _modes_below(top: Path, leaf: Path) -> dict[str, str]:
    """Mode of every folder from ``top`` (excluded) down to ``leaf`` (included)."""
    modes, path = {}, leaf
    while path != top:
        modes[str(path.relative_to(top))] = f"{stat.S_IMODE(path.stat().st_mode):04o}"
        path = path.parent
    return modes


def test_folders_made_for_the_key_and_the_gallery_are_0700_under_a_permissive_umask(
        tmp_path: Path) -> None:
    """Under `umask 0`, `driver keygen --out a/b/key` made a/ and a/b/ mode 0777 (only the file
    was private): anyone could delete the key, and with it the encrypted gallery, or swap in
    their own before the first enrolment. An enrolment into a new nested gallery path made its
    parents 0777 as well. Every folder these commands create is now 0700, whatever the umask."""
    keys, data = tmp_path / "keys", tmp_path / "data"
    key = keys / "a" / "b" / "gallery.key"
    gallery = data / "x" / "y" / "gallery.json.enc"
    command = [sys.executable, "-m", "sense_perception.cli.main", "driver"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SENSE_PERCEPTION_GALLERY_KEY", None)
    for argv in (["keygen", "--out", str(key)],
                 ["enroll", "--gallery", str(gallery), "--key-file", str(key), "--name", "Obama",
                  "--consent", "--keep-images", "--images", OBAMA_2, OBAMA_3]):
        proc = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=120,
                              env=env, preexec_fn=lambda: os.umask(0))
        assert proc.returncode == 0, proc.stderr
    assert _modes_below(tmp_path, key.parent) == {"keys": "0700", "keys/a": "0700",
                                                  "keys/a/b": "0700"}
    assert _modes_below(tmp_path, gallery.parent) == {"data": "0700", "data/x": "0700",
                                                      "data/x/y": "0700"}
    images = gallery.with_name(gallery.name + ".images")
    assert stat.S_IMODE(images.stat().st_mode) == 0o700 and len(list(images.iterdir())) == 2
    for path in (key, gallery, *images.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_key_others_could_replace_is_refused(tmp_path: Path, gallery: Path, capsys) -> None:
    """A key file in a folder others may write (they can delete it, and with it the encrypted
    gallery, or put their own key there) or owned by another user was accepted; it is refused
    (exit 2) by keygen and every command that reads the key, naming the folder or the owner and
    the fix. A sticky world-writable folder (/tmp's 1777) keeps each file to its owner: allowed."""
    shared = tmp_path / "shared"
    shared.mkdir()
    key = shared / "gallery.key"
    assert cli(capsys, "keygen", "--out", str(key))[0] == 0
    enc = tmp_path / "private" / "gallery.json.enc"
    enrol = ["enroll", "--gallery", str(enc), "--key-file", str(key), "--name", "Obama",
             "--consent", "--images", OBAMA_2]
    shared.chmod(0o777)
    code, _, err = cli(capsys, *enrol)
    assert code == 2 and f"gallery key file {key} is kept in {shared}" in err, err
    assert "mode 0777" in err and f"chmod go-w {shared}" in err, err
    assert not enc.exists()  # refused before the gallery was made
    code, _, err = cli(capsys, "keygen", "--out", str(shared / "second.key"))
    assert code == 2 and f"chmod go-w {shared}" in err and not (shared / "second.key").exists()
    shared.chmod(0o1777)  # sticky: others may add files, never delete or replace ours
    assert cli(capsys, *enrol)[0] == 0
    code, out, _ = cli(capsys, "list", "--gallery", str(enc), "--key-file", str(key))
    assert code == 0 and "Obama" in out
    shared.chmod(0o770)  # group-writable is refused as well
    code, _, err = cli(capsys, "list", "--gallery", str(enc), "--key-file", str(key))
    assert code == 2 and "mode 0770" in err, err
    shared.chmod(0o700)
    assert cli(capsys, "list", "--gallery", str(enc), "--key-file", str(key))[0] == 0
    if os.geteuid() != 0:
        return  # only root can give a file to another user
    os.chown(key, 65534, 65534)  # nobody's: it controls the key whatever the mode says
    code, _, err = cli(capsys, "list", "--gallery", str(enc), "--key-file", str(key))
    assert code == 2 and f"gallery key file {key} belongs to user id 65534" in err, err
    assert f"chown {os.geteuid()} {key}" in err
    os.chown(key, 0, 0)
    assert cli(capsys, "list", "--gallery", str(enc), "--key-file", str(key))[0] == 0


def test_a_gallery_others_could_replace_is_refused(tmp_path: Path, capsys) -> None:
    """A gallery in a folder others may write, or that another user owns, and a gallery or last
    good copy another user owns, were used: whoever can do that can delete the gallery or put one
    of their own in its place (a node running as root reads another user's 0600 file), and with
    it decide who is recognised as the driver (R58). Each is refused, naming the folder or the
    owner and the fix, and nothing is written; a sticky folder (/tmp's 1777) is allowed."""
    shared = tmp_path / "shared"
    shared.mkdir()
    plain = shared / "gallery.json"
    enrol = ["enroll", "--gallery", str(plain), "--name", "Obama", "--consent", "--images", OBAMA_2]
    assert cli(capsys, *enrol)[0] == 0
    before = plain.read_bytes()
    for mode in (0o777, 0o770):
        shared.chmod(mode)
        code, _, err = cli(capsys, "list", "--gallery", str(plain))
        assert code == 2 and f"gallery {plain} is kept in {shared}, which other users may write " \
                             f"(mode {mode:04o})" in err and f"chmod go-w {shared}" in err, err
        code, _, err = cli(capsys, *enrol[:-1], OBAMA_3)
        assert code == 2 and "which other users may write" in err, err
        assert plain.read_bytes() == before
    shared.chmod(0o1777)  # sticky: others may add files, never delete or replace ours
    assert cli(capsys, "list", "--gallery", str(plain))[0] == 0
    shared.chmod(0o700)
    assert cli(capsys, "list", "--gallery", str(plain))[0] == 0
    if os.geteuid() != 0:
        return  # only root can give a file to another user
    for path in (plain, plain.with_name("gallery.json.bak"), shared):
        os.chown(path, 65534, 65534)  # nobody's
        code, _, err = cli(capsys, "list", "--gallery", str(plain))
        assert code == 2 and "belongs to user id 65534" in err, (path, err)
        assert str(path) in err
        os.chown(path, 0, 0)
    assert cli(capsys, "list", "--gallery", str(plain))[0] == 0


def test_keygen_syncs_its_folder_with_the_key_alone_in_it(tmp_path: Path, monkeypatch) -> None:
    """keygen synced the key's folder while the temp file the key was written to still had its
    name (a hard link to the key) and removed it after: a power cut in the seconds after keygen,
    before the file system's next commit, kept that temp on disk, a hidden second name of the
    gallery key that nothing removes. The temp is gone by the time the folder is synced."""
    from sense_perception.face import gallery

    key = tmp_path / "keys" / "gallery.key"
    seen: list[list[str]] = []
    real = gallery.fsync_dir

    def recording(folder: Path) -> None:
        if folder == key.parent:
            seen.append(sorted(p.name for p in folder.iterdir()))
        real(folder)

    monkeypatch.setattr(gallery, "fsync_dir", recording)
    gallery.generate_key_file(key)
    assert seen and seen[-1] == ["gallery.key"], seen
    assert sorted(p.name for p in key.parent.iterdir()) == ["gallery.key"]


def test_keygen_sweeps_what_a_killed_keygen_left_beside_the_key(tmp_path: Path) -> None:
    """A keygen killed after writing its temp file left a hidden ``.NAME.XXXX.keygen`` holding a
    key nothing uses; one killed between the link and the temp's removal left a second name of
    the key itself. Nothing swept them. The next keygen zeroes and deletes the first, removes the
    second name only (the key stays whole), and refuses a link planted under such a name."""
    from sense_perception.face.gallery import generate_key_file

    folder = tmp_path / "keys"
    key = folder / "gallery.key"
    generate_key_file(key)
    kept = key.read_bytes()
    unused = folder / ".gallery.key.abc123.keygen"
    unused.write_text("ab" * 32 + "\n")
    second = folder / ".gallery.key.def456.keygen"
    os.link(key, second)
    with pytest.raises(GalleryError, match="already exists"):
        generate_key_file(key)  # the key is never overwritten; the leftovers go all the same
    assert not unused.exists() and not second.exists()
    assert key.read_bytes() == kept and key.stat().st_nlink == 1
    (folder / ".gallery.key.ghi789.keygen").symlink_to(key)
    with pytest.raises(GalleryError, match="interrupted keygen"):
        generate_key_file(key)
    assert key.read_bytes() == kept
