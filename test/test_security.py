"""Security and privacy promises (SECURITY.md): private files, the key never shown, identity only on
the cabin camera, no face pixels on disk unless asked, input size limits, no silent overwrite.

Everything runs for real: real photos, the real face models, the shipped sample bag, the CLI.
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import stat
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from replay_helpers import CABIN, FRONT, SAMPLE_BAG, SAMPLE_COUNTS, WINDSHIELD, read_output
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from sense_perception.cli.main import main
from sense_perception.core.imaging.image_decode import decode_any
from sense_perception.errors import BagError, GalleryError, PrivacyError
from sense_perception.face import model_fold
from sense_perception.face.gallery import ConsentRecord, GalleryStore, generate_key_file, load_key
from sense_perception.face.pipeline import DriverIdentifier, FaceEngine
from sense_perception.face.settings import DriverMonitorSettings, FaceConfig
from sense_perception.replay.engine import INCOMPLETE_FILE, ReplayOptions, Replayer

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
OBAMA_1, OBAMA_2, OBAMA_3 = (str(FACES / n) for n in (
    "obama_1_official_portrait_2012.jpg", "obama_2_congress_2009.jpg", "obama_3_blue_room_2010.jpg"))
BIDEN_1 = str(FACES / "biden_1_official_vp_portrait_2013.jpg")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def unit(n: int, seed: int) -> np.ndarray:
    t = np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def fold_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fold_cache")


@pytest.fixture(scope="module")
def still_engine(fold_cache: Path) -> FaceEngine:
    mp = pytest.MonkeyPatch()
    mp.setenv(model_fold.CACHE_ENV, str(fold_cache))
    try:
        yield FaceEngine(FaceConfig(driver_region=[0.0, 0.0, 1.0, 1.0]))
    finally:
        mp.undo()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, fold_cache: Path) -> None:
    for var in ("SENSE_PERCEPTION_GALLERY", "SENSE_PERCEPTION_GALLERY_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(model_fold.CACHE_ENV, str(fold_cache))


def bag_frames(topic: str) -> list[np.ndarray]:
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(SAMPLE_BAG) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [decode_any(store.deserialize_cdr(raw, c.msgtype))
                for c, _, raw in reader.messages(connections=conns)]


# -- the gallery is private ------------------------------------------------------------------------


@pytest.mark.parametrize("bit", [0o040, 0o020, 0o010, 0o004, 0o002, 0o001],
                         ids=["g+r", "g+w", "g+x", "o+r", "o+w", "o+x"])
def test_any_group_or_other_permission_refuses_gallery_and_last_good_copy(tmp_path: Path, bit: int,
                                                                         capsys) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    store.enroll("Ada", unit(1, 0), ConsentRecord.now("Ada"))
    store.path.chmod(0o600 | bit)
    with pytest.raises(GalleryError, match=f"mode {0o600 | bit:04o}.*chmod 600"):
        store.drivers()
    assert main(["driver", "list", "--gallery", str(store.path)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    # the last good copy gets the same check before it is ever restored
    store.path.chmod(0o600)
    store.path.write_bytes(b"corrupt")
    store.backup_path.chmod(0o600 | bit)
    with pytest.raises(GalleryError, match=r"\.bak has mode.*chmod 600"):
        store.restore()
    assert store.path.read_bytes() == b"corrupt"


def test_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        key_file = generate_key_file(tmp_path / "keys" / "gallery.key")
        store = GalleryStore(tmp_path / "data" / "gallery.json.enc", key=load_key(str(key_file)),
                             keep_images=True)
        store.enroll("Ada", unit(1, 0), ConsentRecord.now("Ada"),
                     images=[np.full((112, 112, 3), 80, np.uint8)])
    finally:
        os.umask(old)
    assert mode(key_file) == 0o600
    assert mode(store.path.parent) == 0o700 and mode(store.images_dir) == 0o700
    for path in [store.path, store.backup_path, store.path.with_name(store.path.name + ".lock"),
                 *store.images_dir.iterdir()]:
        assert mode(path) == 0o600, path


def test_forget_erases_the_driver_from_the_last_good_copy_too(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    ada_t = unit(2, 1)
    ada = store.enroll("Ada Lovelace", ada_t, ConsentRecord.now("Ada Lovelace")).id
    store.enroll("Bob", unit(1, 2), ConsentRecord.now("Bob"))
    assert base64.b64encode(ada_t[0].tobytes()) in store.backup_path.read_bytes()
    store.forget(ada)
    for path in (store.path, store.backup_path):
        blob = path.read_bytes()
        assert b"Ada Lovelace" not in blob and ada.encode() not in blob
        for row in ada_t:
            assert base64.b64encode(row.tobytes()) not in blob and row.tobytes() not in blob


# -- the encryption key is never shown --------------------------------------------------------------


def key_forms(key: bytes) -> list[bytes]:
    """Every spelling of the key that could end up in text: hex, base64, repr, raw."""
    b64 = base64.b64encode(key)
    return [key, key.hex().encode(), key.hex().upper().encode(), b64, b64.rstrip(b"="),
            base64.urlsafe_b64encode(key).rstrip(b"="), repr(key).encode(), str(list(key)).encode()]


def assert_no_key(key: bytes, text: str | bytes, where: str) -> None:
    data = text.encode(errors="surrogateescape") if isinstance(text, str) else text
    for form in key_forms(key):
        assert form not in data, f"the gallery key appears in {where}"


def test_gallery_key_never_appears_in_logs_output_errors_or_files(
        tmp_path: Path, caplog, capsys, monkeypatch: pytest.MonkeyPatch, clean_env) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[tuple[str, str]] = []

    def run(*argv: str) -> int:
        code = main(["-v", *argv])
        out, err = capsys.readouterr()
        texts.append((" ".join(argv), out + err))
        return code

    key_file = tmp_path / "gallery.key"
    assert run("driver", "keygen", "--out", str(key_file)) == 0
    key = load_key(str(key_file))
    gallery = tmp_path / "g" / "gallery.json.enc"
    common = ["--gallery", str(gallery), "--key-file", str(key_file)]
    assert run("driver", "enroll", "--name", "Barack Obama", "--consent", "--keep-images",
               "--images", OBAMA_2, OBAMA_3, *common) == 0
    assert run("driver", "list", "--json", *common) == 0
    assert run("driver", "identify", OBAMA_1, BIDEN_1, *common) == 0
    assert run("driver", "restore", *common) == 2  # refused: the gallery is fine
    config = tmp_path / "params.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    gallery:\n"
                      f"      path: {gallery}\n      key_file: {key_file}\n")
    assert run("replay", str(SAMPLE_BAG), "--out", str(tmp_path / "out"), "--topics",
               "--cabin", CABIN, "--config", str(config)) == 0

    # the same key from the environment, in hex and in base64
    for value in (key.hex(), base64.b64encode(key).decode()):
        monkeypatch.setenv("SENSE_PERCEPTION_GALLERY_KEY", value)
        assert run("driver", "list", "--gallery", str(gallery)) == 0
    # error paths: a wrong key, a key almost right, a key file others can read, a tampered file
    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY_KEY", bytes(reversed(key)).hex())
    assert run("driver", "list", "--gallery", str(gallery)) == 2
    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY_KEY", key.hex()[:-2])
    assert run("driver", "list", "--gallery", str(gallery)) == 2
    monkeypatch.delenv("SENSE_PERCEPTION_GALLERY_KEY")
    key_file.chmod(0o644)
    assert run("driver", "list", *common) == 2
    key_file.chmod(0o600)
    blob = bytearray(gallery.read_bytes())
    blob[-5] ^= 1
    gallery.write_bytes(bytes(blob))
    assert run("driver", "list", *common) == 2
    with pytest.raises(GalleryError) as exc:
        GalleryStore(gallery, key=key).drivers()
    assert run("driver", "restore", *common) == 0
    listing = next(t for argv, t in texts if argv.startswith("driver list --json"))
    [entry_id] = re.findall(r"drv-[0-9a-f]{8}", listing)
    assert run("driver", "forget", entry_id, *common) == 0

    errors = [t for _, t in texts if "error:" in t]
    assert len(errors) >= 5  # the error paths above really failed, with a message
    for argv, text in texts:
        assert_no_key(key, text, f"the output of `{argv}`")
    assert_no_key(key, caplog.text, "the log")
    assert logging.getLogger("sense_perception").isEnabledFor(logging.DEBUG)  # DEBUG was on
    assert caplog.records  # and the package did log
    assert_no_key(key, str(exc.value) + repr(exc.value.__cause__), "the exception")
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != key_file:
            assert_no_key(key, path.read_bytes(), str(path))


# -- identity only on the in-cabin camera ----------------------------------------------------------


class _Untouchable:
    """Stands in for the gallery or the face engine and fails the test if anything is used."""

    def __init__(self) -> None:
        self.touched: list[str] = []

    def __getattr__(self, name: str):
        self.touched.append(name)
        raise AssertionError(f"identity touched {name} on a camera that is not the cabin")


@pytest.mark.parametrize("role", ["front", "rear", "left", "surround", "exterior", "", "cabin2",
                                  "dashcam"])
def test_identifier_refuses_other_roles_before_reading_gallery_or_running_models(role: str) -> None:
    gallery, engine = _Untouchable(), _Untouchable()
    with pytest.raises(PrivacyError, match="not consented"):
        DriverIdentifier(DriverMonitorSettings(camera_role=role), gallery=gallery, engine=engine)
    assert gallery.touched == [] and engine.touched == []
    # control: on the cabin camera the same construction does read the gallery
    with pytest.raises(AssertionError, match="identity touched"):
        DriverIdentifier(DriverMonitorSettings(camera_role="cabin"), gallery=gallery, engine=engine)


def test_replay_refuses_identity_when_the_cabin_camera_is_not_configured_as_cabin(
        tmp_path: Path, capsys, clean_env) -> None:
    config = tmp_path / "params.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    camera_role: front\n")
    out = tmp_path / "out"
    assert main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", "--cabin", FRONT,
                 "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "face identification refused on camera_role 'front'" in err
    assert not any(out.iterdir())


@pytest.fixture(scope="module")
def detector():
    from sense_perception.core.detection.detector import ObjectDetector

    return ObjectDetector.from_params({"runtime.intra_op_threads": 1}, "test")


class _Recording:
    def __init__(self, inner) -> None:
        self._inner = inner
        self.seen: list[np.ndarray] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def process(self, image, t, camera_fault=False):
        self.seen.append(image.copy())
        return self._inner.process(image, t, camera_fault=camera_fault)


def test_replay_runs_identity_on_cabin_frames_only(tmp_path: Path, detector, clean_env) -> None:
    identifier = _Recording(DriverIdentifier.from_params(
        {"gallery.path": str(tmp_path / "gallery.json"), "runtime.intra_op_threads": 1}, "test"))
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", cabin=CABIN),
                      detector=detector, identifier=identifier).run()
    assert result.complete
    cabin = bag_frames(CABIN)
    assert len(identifier.seen) == len(cabin) == SAMPLE_COUNTS[CABIN]
    for seen, frame in zip(identifier.seen, cabin, strict=True):
        np.testing.assert_array_equal(seen, frame)
    topics = {m.channel.topic for m in read_output(tmp_path / "out" / "bag")}
    identity_topics = {t for t in topics if t.endswith(("/faces", "/driver_identity"))}
    assert identity_topics == {"/camera/cabin/faces", "/camera/cabin/driver_identity"}


# -- no face pixels on disk unless asked -----------------------------------------------------------

_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_B64 = re.compile(rb"(?:/9j/|iVBORw0KGgo)[A-Za-z0-9+/]{60,}={0,2}")


def _decodes(view: memoryview) -> bool:
    image = cv2.imdecode(np.frombuffer(view, np.uint8), cv2.IMREAD_UNCHANGED)
    return image is not None and min(image.shape[:2]) >= 8


def images_in(data: bytes) -> list[str]:
    """Images stored in ``data``: JPEG/PNG that really decode (also base64-encoded), or MP4."""
    found, view = [], memoryview(data)
    for sig in _SIGNATURES:
        at = data.find(sig)
        while at >= 0:
            if _decodes(view[at:]):
                found.append(f"{'PNG' if sig[1:4] == b'PNG' else 'JPEG'} at {at}")
            at = data.find(sig, at + 1)
    for match in _B64.finditer(data):
        try:
            blob = base64.b64decode(match.group(0) + b"=" * (-len(match.group(0)) % 4))
        except (binascii.Error, ValueError):
            continue
        if _decodes(memoryview(blob)):
            found.append(f"base64 image at {match.start()}")
    if data[4:8] == b"ftyp":
        found.append("MP4 video")
    return found


def pixel_probes(images: list[np.ndarray]) -> list[bytes]:
    """A middle row of each image, in BGR and RGB order: raw pixel dumps would contain it."""
    probes = []
    for image in images:
        row = image[image.shape[0] // 2]
        probes += [row.tobytes(), row[:, ::-1].tobytes()]
    return probes


def scan(root: Path, probes: list[bytes]) -> dict[str, list[str]]:
    hits = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        found = images_in(data) + [f"raw pixels (probe {i})" for i, p in enumerate(probes) if p in data]
        if found:
            hits[str(path.relative_to(root))] = found
    return hits


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, the working directory and TMPDIR inside ``tmp_path/box``: every file the commands
    write lands where the scan looks (the default gallery and model cache included)."""
    box = tmp_path / "box"
    for name in ("home", "cwd", "tmp"):
        (box / name).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(box / "home"))
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "SENSE_PERCEPTION_GALLERY",
                "SENSE_PERCEPTION_GALLERY_KEY", model_fold.CACHE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TMPDIR", str(box / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(box / "tmp"))
    monkeypatch.chdir(box / "cwd")
    return box


def _crops(engine: FaceEngine, paths: list[str]) -> list[np.ndarray]:
    crops = []
    for path in paths:
        _, index, _, aligned = engine.driver_embedding(cv2.imread(path))
        assert index >= 0, path
        crops.append(aligned.copy())
    return crops


def test_no_face_pixels_are_written_by_enrol_identify_or_replay(sandbox: Path, still_engine,
                                                               capsys) -> None:
    crops = _crops(still_engine, [OBAMA_2, OBAMA_3, OBAMA_1, BIDEN_1])
    probes = pixel_probes(crops + bag_frames(CABIN))
    assert main(["driver", "enroll", "--name", "Barack Obama", "--consent",
                 "--images", OBAMA_2, OBAMA_3]) == 0
    assert main(["driver", "identify", OBAMA_1, BIDEN_1]) == 0
    assert "Barack Obama" in capsys.readouterr().out
    assert main(["replay", str(SAMPLE_BAG), "--out", "out", "--cabin", CABIN]) == 0

    gallery = sandbox / "home" / ".local" / "share" / "sense_perception" / "gallery.json"
    assert gallery.is_file() and not gallery.with_name("gallery.json.images").exists()
    assert (sandbox / "cwd" / "out" / "summary.json").is_file()
    assert scan(sandbox, probes) == {}
    with Reader(sandbox / "cwd" / "out" / "bag") as reader:
        types = {c.msgtype for c in reader.connections}
    assert "vision_msgs/msg/Classification" in types  # identity ran
    assert not {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"} & types


def test_face_pixels_appear_only_where_asked(sandbox: Path, still_engine) -> None:
    """--keep-images keeps the aligned crops beside the gallery (and only there); --copy-input and
    --video-cabin put camera frames in the replay output (--video alone does not film the cabin). Also shows that the scan finds images."""
    crops = _crops(still_engine, [OBAMA_2, OBAMA_3])
    assert main(["driver", "enroll", "--name", "Barack Obama", "--consent", "--keep-images",
                 "--images", OBAMA_2, OBAMA_3]) == 0
    images_dir = "home/.local/share/sense_perception/gallery.json.images"
    hits = scan(sandbox, pixel_probes(crops))
    assert sorted(hits) == sorted(f"{images_dir}/{p.name}" for p in (sandbox / images_dir).iterdir())
    assert len(hits) == 2 and all(found[0] == "PNG at 0" for found in hits.values())
    kept = [cv2.imread(str(sandbox / name)) for name in sorted(hits)]
    for image in kept:  # exactly the aligned crops, nothing else of the photo
        assert image.shape == (112, 112, 3)
        assert any(np.array_equal(image, crop) for crop in crops)

    # --video alone never films the cabin: the driver's face needs its own request.
    assert main(["replay", str(SAMPLE_BAG), "--out", "out", "--topics", "--cabin", CABIN,
                 "--video"]) == 0
    assert not any((sandbox / "cwd" / "out").rglob("*.mp4"))
    assert main(["replay", str(SAMPLE_BAG), "--out", "out", "--topics", "--cabin", CABIN,
                 "--copy-input", "--video-cabin", "--force"]) == 0
    hits = {k: v for k, v in scan(sandbox, []).items() if not k.startswith(images_dir)}
    videos = [str(p.relative_to(sandbox)) for p in (sandbox / "cwd" / "out" / "video").iterdir()]
    assert len(videos) == 1 and hits.pop(videos[0]) == ["MP4 video"]
    # the copied input frames, and nothing else (the output MCAP is named after the input bag)
    assert list(hits) == ["cwd/out/bag/sample_bag.mcap"]
    assert sum(f.startswith("JPEG") for f in hits["cwd/out/bag/sample_bag.mcap"]) == SAMPLE_COUNTS[CABIN]


# -- input size limits ------------------------------------------------------------------------------


def test_replay_applies_the_configured_input_size_limits(tmp_path: Path, detector, clean_env) -> None:
    config = tmp_path / "params.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    input:\n      max_width: 900\n"
                      "driver_monitor:\n  ros__parameters:\n    input:\n      max_pixels: 300000\n"
                      f"    gallery:\n      path: {tmp_path / 'gallery.json'}\n")
    result = Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "out", cabin=CABIN, config=config),
                      detector=detector).run()
    skipped = {s["topic"]: s for s in result.summary["skipped"]}
    assert set(skipped) == {FRONT, CABIN}
    assert skipped[FRONT]["count"] == SAMPLE_COUNTS[FRONT]  # 960 px wide > input.max_width 900
    assert "exceeds input.max_width=900" in skipped[FRONT]["reason"]
    assert skipped[CABIN]["count"] == SAMPLE_COUNTS[CABIN]  # 640x480 > input.max_pixels
    assert "max_pixels=300000" in skipped[CABIN]["reason"]
    assert result.summary["cameras"][WINDSHIELD]["frames"] == 1  # 640 px: within the limits


def test_bad_input_limits_are_a_config_error(tmp_path: Path, capsys) -> None:
    config = tmp_path / "params.yaml"
    config.write_text("object_detector:\n  ros__parameters:\n    input:\n      max_widht: 900\n")
    assert main(["replay", str(SAMPLE_BAG), "--out", str(tmp_path / "out"), "--topics", WINDSHIELD,
                 "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "input.max_widht" in err and "input.max_width" in err and str(config) in err


# -- the replay never overwrites without --force ----------------------------------------------------


def test_replay_refuses_to_overwrite_and_touches_nothing_without_force(tmp_path: Path, detector) -> None:
    out = tmp_path / "out"
    Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[WINDSHIELD]), detector=detector).run()
    (out / "notes.txt").write_text("mine")
    (out / INCOMPLETE_FILE).write_text("stale")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    with pytest.raises(BagError, match="not empty; pass --force"):
        Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[WINDSHIELD]), detector=detector).run()
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()} == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(BagError, match="is a file"):
        Replayer(ReplayOptions(SAMPLE_BAG, tmp_path / "file"), detector=detector).run()
    result = Replayer(ReplayOptions(SAMPLE_BAG, out, topics=[WINDSHIELD], force=True),
                      detector=detector).run()
    assert result.complete
    assert (out / "notes.txt").read_text() == "mine" and not (out / INCOMPLETE_FILE).exists()


# -- SECURITY.md stays honest -----------------------------------------------------------------------


def test_security_md_cites_only_existing_tests() -> None:
    import ast

    root = Path(__file__).resolve().parents[1]
    cited = re.findall(r"(test/[\w/]+\.py)::(\w+)", (root / "SECURITY.md").read_text())
    assert len(cited) >= 50
    missing = []
    for file, name in sorted(set(cited)):
        path = root / file
        tree = ast.parse(path.read_text()) if path.is_file() else ast.Module(body=[], type_ignores=[])
        if name not in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}:
            missing.append(f"{file}::{name}")
    assert not missing, f"SECURITY.md cites tests that do not exist: {missing}"


_CORE_LIMIT_AFTER = """
import resource, sys
{call}
print("core limit", resource.getrlimit(resource.RLIMIT_CORE)[0])
"""


def core_limit_after(call: str, python: str, cwd: Path) -> int:
    """The soft core-file limit of a process, started with core dumps allowed (as `ulimit -c
    unlimited` or systemd's defaults do), after ``call`` ran in it."""
    import resource
    import subprocess
    import sys

    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
    if hard == 0:
        pytest.skip("this system's hard core-file limit is 0: no process here may dump core")

    def allow_core_dumps() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))

    done = subprocess.run([python or sys.executable, "-c", _CORE_LIMIT_AFTER.format(call=call)],
                          cwd=cwd, capture_output=True, text=True, timeout=120,
                          preexec_fn=allow_core_dumps,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "core limit" in done.stdout, done.stderr
    return int(done.stdout.rsplit("core limit", 1)[1])


def test_a_crash_writes_no_core_file_of_the_decrypted_gallery(tmp_path: Path) -> None:
    """With core dumps allowed, a crash of native code (or an abort) while a command held the
    gallery wrote the process memory to a core file: an encrypted gallery's names and templates
    in clear (found in a `core` of `driver list` aborted after listing), out of reach of
    `driver forget`. Every command sets its soft core-file limit to 0 first."""
    gallery = tmp_path / "gallery.json"
    call = ("from sense_perception.cli.main import main; "
            f"main(['driver', 'list', '--gallery', {str(gallery)!r}])")
    assert core_limit_after(call, "", tmp_path) == 0


def test_a_crash_hands_no_core_to_a_crash_reporter(tmp_path: Path) -> None:
    """R74: the core-file limit of 0 (R40) binds a core *file* only. Where `core_pattern` pipes
    the dump to a crash reporter (Ubuntu's apport, systemd-coredump), the kernel ignores the limit
    and streams the whole process memory (the decrypted gallery, camera frames) to it, and apport
    writes a crash report holding it whatever the limit for a packaged executable such as
    `/usr/bin/python3`. Every command now leaves its process non-dumpable: no core at all."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("prctl(2) is Linux's")
    script = ("import ctypes\n"
              "from sense_perception.cli.main import main\n"
              "def dumpable():  # prctl(PR_GET_DUMPABLE)\n"
              "    return ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)\n"
              "before = dumpable()\n"
              f"main(['driver', 'list', '--gallery', {str(tmp_path / 'gallery.json')!r}])\n"
              "print('dumpable', before, dumpable())\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "dumpable" in done.stdout, done.stderr
    before, after = map(int, done.stdout.rsplit("dumpable", 1)[1].split())
    assert (before, after) == (1, 0), done.stdout
    # a fleet run's Ray worker is a program of its own (dumpable again): its BagWorker makes it not
    script = script.replace(
        "from sense_perception.cli.main import main",
        "from sense_perception.fleet.worker import BagWorker, WorkerSettings\n"
        "from pathlib import Path").replace(
        f"main(['driver', 'list', '--gallery', {str(tmp_path / 'gallery.json')!r}])",
        f"BagWorker(WorkerSettings(out=Path({str(tmp_path)!r})))")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "dumpable" in done.stdout, done.stderr
    assert done.stdout.rsplit("dumpable", 1)[1].split() == ["1", "0"], done.stdout
