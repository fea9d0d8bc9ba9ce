"""Driver identity on real faces: enrol, identify, reject, driver selection, privacy, settings."""
from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from sense_perception.errors import ConfigError, PrivacyError
from sense_perception.face import model_fold
from sense_perception.face.decision import DriverState
from sense_perception.face.driver_select import DEFAULT_REGIONS, select_driver, validate_region
from sense_perception.face.gallery import ConsentRecord, GalleryStore
from sense_perception.face.identify import TemplateIndex
from sense_perception.face.pipeline import DriverIdentifier, FaceEngine
from sense_perception.face.privacy import check_identity_allowed
from sense_perception.face.settings import DriverMonitorSettings, FaceConfig

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
OBAMA = ["obama_1_official_portrait_2012.jpg", "obama_2_congress_2009.jpg", "obama_3_blue_room_2010.jpg"]
OTHERS = ["biden_1_official_vp_portrait_2013.jpg", "biden_2_blue_room_2010.jpg",
          "eileen_collins_nasa_astronaut.png"]


@functools.lru_cache(maxsize=None)
def read(name: str) -> np.ndarray:
    """A real photo, shrunk to the detector's working size once so frame loops stay fast."""
    image = cv2.imread(str(FACES / name))
    assert image is not None, name
    scale = min(1.0, 640 / max(image.shape[:2]))
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    image.flags.writeable = False
    return image


def face_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceEngine]:
    """The face models for a whole module, their fold cache in a temporary folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv(model_fold.CACHE_ENV, str(tmp_path_factory.mktemp("fold_cache")))
    try:
        yield FaceEngine(FaceConfig(driver_region=[0.0, 0.0, 1.0, 1.0]))
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceEngine]:
    yield from face_engine(tmp_path_factory)


@pytest.fixture(scope="module")
def embeddings(engine: FaceEngine) -> dict[str, np.ndarray]:
    out = {}
    for name in OBAMA + OTHERS:
        _, index, emb, _ = engine.driver_embedding(read(name))
        assert index >= 0 and emb is not None, name
        out[name] = emb
    return out


def settings(gallery: Path, **params: object) -> DriverMonitorSettings:
    return DriverMonitorSettings.from_params({"gallery.path": str(gallery), **params}, "test")


def enrol(store: GalleryStore, name: str, *embs: np.ndarray) -> str:
    return store.enroll(name, np.stack(embs), ConsentRecord.now(name)).id


# -- single-image matching -------------------------------------------------------------------------

def test_enrol_one_obama_photo_identifies_the_others_and_rejects_everyone_else(
        tmp_path: Path, embeddings: dict[str, np.ndarray]) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    obama_id = enrol(store, "Barack", embeddings[OBAMA[0]])
    index = TemplateIndex(store.drivers())
    threshold = DriverMonitorSettings().identity.match_threshold
    same = index.match(np.stack([embeddings[n] for n in OBAMA[1:]]))
    assert [index.ids[i] for i in same.index] == [obama_id, obama_id]
    assert (same.score >= threshold).all()
    other = index.match(np.stack([embeddings[n] for n in OTHERS]))
    assert (other.score < threshold).all()


def test_template_index_scores_every_driver_by_its_best_template(
        tmp_path: Path, embeddings: dict[str, np.ndarray]) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    ids = [enrol(store, "Joe", embeddings[OTHERS[0]]),
           enrol(store, "Barack", embeddings[OBAMA[0]], embeddings[OBAMA[2]]),
           enrol(store, "Eileen", embeddings[OTHERS[2]])]
    index = TemplateIndex(store.drivers())
    assert index.matrix.flags["C_CONTIGUOUS"] and index.matrix.dtype == np.float32
    assert index.matrix.shape == (4, 128) and index.owner.tolist() == [0, 1, 1, 2]
    queries = np.stack([embeddings[OBAMA[1]], embeddings[OTHERS[1]]])
    m = index.match(queries)
    want = np.stack([np.max(queries @ index.matrix[index.owner == d].T, axis=1) for d in range(3)], 1)
    np.testing.assert_allclose(m.per_driver, want, atol=1e-6)
    assert [ids[i] for i in m.index] == [ids[1], ids[0]]  # Obama -> Barack, Biden 2010 -> Joe


def test_empty_gallery_matches_nobody(embeddings: dict[str, np.ndarray]) -> None:
    m = TemplateIndex([]).match(embeddings[OBAMA[0]][None])
    assert m.index.tolist() == [-1] and m.score.tolist() == [-1.0] and m.per_driver.shape == (1, 0)


# -- the whole pipeline on frames ------------------------------------------------------------------

def test_pipeline_identifies_enrolled_driver_over_frames_and_never_an_unknown(
        tmp_path: Path, engine: FaceEngine, embeddings: dict[str, np.ndarray]) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    obama_id = enrol(store, "Barack", embeddings[OBAMA[0]])
    ident = DriverIdentifier(settings(store.path), store, engine)
    frame = read(OBAMA[1])
    results = [ident.process(frame, 0.1 * i) for i in range(7)]
    assert [r.state for r in results[:5]] == [DriverState.UNCERTAIN] * 5  # one frame never decides
    last = results[-1]
    assert last.state is DriverState.IDENTIFIED
    assert (last.driver_id, last.display_name) == (obama_id, "Barack")
    # The reason is published (driver_reason in /diagnostics): the id, never the display name.
    assert last.score >= 0.6 and obama_id in last.reason and "Barack" not in last.reason
    assert last.faces.boxes.shape == (1, 4) and last.faces.landmarks.shape == (1, 5, 2)
    assert last.driver_index == 0

    stranger = read(OTHERS[0])
    t = 1.0
    for _ in range(6):  # window 10, 6 votes: identity drops after 5 strangers, unknown after 6
        t += 0.1
        r = ident.process(stranger, t)
    assert r.state is DriverState.UNKNOWN and r.driver_id is None and r.display_name is None
    assert [d.id for d in store.drivers()] == [obama_id]  # an unknown face is never enrolled

    blank = np.zeros_like(frame)
    states = [ident.process(blank, t + 0.1 * (i + 1)).state for i in range(3)]
    assert states == [DriverState.UNKNOWN, DriverState.UNKNOWN, DriverState.NO_FACE]


def test_hysteresis_keeps_identity_through_a_few_foreign_frames(
        tmp_path: Path, engine: FaceEngine, embeddings: dict[str, np.ndarray]) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    enrol(store, "Barack", embeddings[OBAMA[0]])
    small_window = {"identity.window": 6, "identity.min_votes": 4}
    ident = DriverIdentifier(settings(store.path, **small_window), store, engine)
    obama, other = read(OBAMA[2]), read(OTHERS[2])
    seq = [obama] * 5 + [other] * 2 + [obama] + [other] * 5
    states = [ident.process(img, 0.05 * i).state for i, img in enumerate(seq)]
    assert states[:4] == [DriverState.UNCERTAIN] * 3 + [DriverState.IDENTIFIED]
    assert states[4:8] == [DriverState.IDENTIFIED] * 4  # two foreign frames do not drop it
    assert states[-1] is DriverState.UNKNOWN  # a lasting change does


def test_embed_interval_skips_sface_only_on_a_settled_face_that_stays(
        tmp_path: Path, engine: FaceEngine, embeddings: dict[str, np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    obama_id = enrol(store, "Barack", embeddings[OBAMA[0]])
    ident = DriverIdentifier(settings(store.path, **{"identity.embed_interval_s": 0.5,
                                                     "attention.enabled": False}), store, engine)
    embedded: list[float] = []
    original = ident.engine.embed
    stamp = {"t": 0.0}
    monkeypatch.setattr(ident.engine, "embed",
                        lambda image, marks: embedded.append(stamp["t"]) or original(image, marks))

    def run(frame: np.ndarray, t: float):
        stamp["t"] = round(t, 3)
        return ident.process(frame, t)

    frame = read(OBAMA[1])
    states = [run(frame, 0.1 * i).state for i in range(20)]
    assert states[:5] == [DriverState.UNCERTAIN] * 5 and set(states[5:]) == {DriverState.IDENTIFIED}
    # every frame until settled (identified at 0.5 s), then at most one embedding per 0.5 s
    assert embedded == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5]
    assert run(frame, 2.0).driver_id == obama_id and embedded[-1] == 2.0
    # the face jumps across the image (someone else leaned in): embedded at once
    h, w = frame.shape[:2]
    moved = cv2.warpAffine(frame, np.float32([[1, 0, 0.3 * w], [0, 1, 0]]), (w, h))
    run(moved, 2.1)
    assert embedded[-1] == 2.1
    # an unsettled decision (a reloaded gallery) is embedded every frame again
    ident.reload_gallery()
    for i in range(3):
        run(moved, 2.2 + 0.1 * i)
    assert embedded[-3:] == [2.2, 2.3, 2.4]


def test_embed_interval_never_holds_an_identity_on_the_next_person_in_the_seat(
        tmp_path: Path, engine: FaceEngine, embeddings: dict[str, np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another person's face in the driver's region right after the identified driver's, no empty
    frame between (a rear passenger behind the seat as the driver leaves it): their first frame,
    a face that jumped, was embedded and voted against the driver, but the decision was still
    'identified', so it counted as settled and their next frames (the same box) were held
    unembedded for an interval each: the old identity stayed on the new person for one interval
    per vote (2 s with the defaults) instead of the window's few frames."""
    store = GalleryStore(tmp_path / "gallery.json")
    enrol(store, "Barack", embeddings[OBAMA[0]])
    params = {"identity.window": 3, "identity.min_votes": 2, "identity.embed_interval_s": 1.5,
              "attention.enabled": False}
    ident = DriverIdentifier(settings(store.path, **params), store, engine)
    driver, stranger = face_crop(engine, OBAMA[1], 200), face_crop(engine, OTHERS[0], 200)
    frame_a, frame_b = cabin_frame((driver, 900, 250)), cabin_frame((stranger, 1040, 300))
    assert [ident.process(frame_a, 0.1 * i).state for i in range(3)][-1] is DriverState.IDENTIFIED
    embedded: list[float] = []
    original = ident.engine.embed
    stamp = {"t": 0.0}
    monkeypatch.setattr(ident.engine, "embed",
                        lambda image, marks: embedded.append(stamp["t"]) or original(image, marks))
    results = []
    for i in range(3):
        stamp["t"] = t = round(0.3 + 0.1 * i, 3)
        results.append(ident.process(frame_b, t))
    assert results[0].driver_id is not None  # the window still holds two of the driver's votes
    assert embedded[:2] == [0.3, 0.4]  # the vote against it unsettles the decision
    assert results[1].driver_id is None and results[2].state is DriverState.UNKNOWN
    # settled on the stranger: the interval applies again
    assert embedded == [0.3, 0.4]


def test_only_the_driver_face_is_embedded(tmp_path: Path, engine: FaceEngine,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    left, right = read(OTHERS[2]), read(OBAMA[1])
    h = 600
    cabin = np.hstack([cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h)) for im in (left, right)])
    monkeypatch.setattr(engine, "region", DEFAULT_REGIONS["left"])  # the default seat region
    ident = DriverIdentifier(settings(store.path), store, engine)
    seen: list[int] = []
    original = ident.engine.embedder.embed
    monkeypatch.setattr(ident.engine.embedder, "embed",
                        lambda crops: seen.append(len(crops)) or original(crops))
    r = ident.process(cabin, 0.0)
    assert len(r.faces) == 2
    # Left-hand drive: the driver sits on the image right of a rearward-facing cabin camera.
    assert r.faces.boxes[r.driver_index, 0] > cabin.shape[1] / 2
    assert seen == [1]  # the passenger's face was detected but never embedded


def cabin_frame(*faces: tuple[np.ndarray, int, int]) -> np.ndarray:
    """A 1280x720 cabin frame with each (face photo, x, y) pasted in, clipped at the edges."""
    frame = np.full((720, 1280, 3), 60, np.uint8)
    for image, x, y in faces:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(1280, x + w), min(720, y + h)
        frame[y0:y1, x0:x1] = image[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


def face_crop(engine: FaceEngine, name: str, size: int) -> np.ndarray:
    """The face of a real photo, cropped 1.6 times its box and scaled to ``size`` square."""
    image = read(name)
    x1, y1, x2, y2 = engine.detect(image).boxes[0]
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.8 * (x2 - x1)
    crop = image[int(max(0, cy - half)):int(cy + half), int(max(0, cx - half)):int(cx + half)]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def test_a_passenger_leaning_in_is_never_taken_for_the_driver(
        tmp_path: Path, engine: FaceEngine, embeddings: dict[str, np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The enrolled driver sits in the passenger seat, leaning towards the middle and nearer the
    camera (face centre x 0.37, inside the left-seat default region's overlap with the passenger
    half) while a stranger drives. The largest face in the region was taken: the passenger was
    embedded and identified as the driver, and their attention reported as the driver's."""
    assert FaceConfig().driver_half == "right" and FaceConfig(driver_side="right").driver_half == "left"
    assert FaceConfig(driver_region=[0.0, 0.0, 1.0, 1.0]).driver_half is None
    store = GalleryStore(tmp_path / "gallery.json")
    enrol(store, "Barack", embeddings[OBAMA[0]])
    monkeypatch.setattr(engine, "region", DEFAULT_REGIONS["left"])
    monkeypatch.setattr(engine, "driver_half", FaceConfig().driver_half)
    small_window = {"identity.window": 3, "identity.min_votes": 2, "attention.enabled": False}
    ident = DriverIdentifier(settings(store.path, **small_window), store, engine)
    passenger = (face_crop(engine, OBAMA[1], 300), 330, 150)
    driver = (face_crop(engine, OTHERS[0], 200), 900, 250)
    embedded: list[np.ndarray] = []
    original = ident.engine.embed
    monkeypatch.setattr(ident.engine, "embed",
                        lambda image, marks: embedded.append(np.array(marks)) or original(image, marks))
    for i in range(3):
        r = ident.process(cabin_frame(passenger, driver), 0.1 * i)
    assert len(r.faces) == 2
    assert r.faces.boxes[r.driver_index, 0] > 640  # the driver, on the image's right
    assert r.state is DriverState.UNKNOWN and r.driver_id is None
    assert all(m[0, :, 0].min() > 640 for m in embedded)  # the passenger was never embedded
    # a lone face in the overlap is the driver's (leaning in), and a rear-seat face on the
    # driver's half, under half as wide as the front-row face, does not take its place
    boxes = np.array([[420, 100, 620, 300], [800, 300, 880, 380]], np.float32)  # centre x 0.41
    assert select_driver(boxes[:1], (720, 1280, 3), DEFAULT_REGIONS["left"], "right") == 0
    assert select_driver(boxes, (720, 1280, 3), DEFAULT_REGIONS["left"], "right") == 0
    boxes[1] = [800, 300, 920, 420]  # a front-row face (0.6 of the width) on the driver's half
    assert select_driver(boxes, (720, 1280, 3), DEFAULT_REGIONS["left"], "right") == 1
    assert select_driver(boxes, (720, 1280, 3), DEFAULT_REGIONS["left"]) == 0  # a region of the user's


def test_gallery_changes_on_disk_are_picked_up(tmp_path: Path, engine: FaceEngine,
                                                embeddings: dict[str, np.ndarray]) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    small_window = {"identity.window": 3, "identity.min_votes": 2}
    ident = DriverIdentifier(settings(store.path, **small_window), store, engine)
    frame = read(OTHERS[1])
    assert [ident.process(frame, 0.1 * i).state for i in range(2)][-1] is DriverState.UNKNOWN
    joe = enrol(store, "Joe", embeddings[OTHERS[0]])
    states = [ident.process(frame, 2.0 + 0.1 * i) for i in range(2)]
    assert states[-1].state is DriverState.IDENTIFIED and states[-1].driver_id == joe
    store.forget(joe)
    assert ident.process(frame, 5.0).state is not DriverState.IDENTIFIED


def test_a_failed_gallery_re_read_names_no_home_folder_or_gallery_path_in_diagnostics(
        tmp_path: Path, engine: FaceEngine, embeddings: dict[str, np.ndarray],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """``gallery_error`` goes to /diagnostics, which the node and a replay played with
    ``--publish`` put on the DDS domain: it named the gallery's full path (``/home/alice/...``);
    the gallery by its setting now, the fix hint kept, the full path in the local log (R93)."""
    from sense_perception.core.output.status import driver_values, driver_warnings

    home = tmp_path / "qzhomeowner"
    monkeypatch.setenv("HOME", str(home))
    store = GalleryStore(home / "data" / "gallery.json")
    enrol(store, "Zorbalina Quetzalfeather", embeddings[OTHERS[0]])
    ident = DriverIdentifier(settings(store.path), store, engine)
    store.path.chmod(0o644)  # a copy restored with cp: refused (others may read it)
    store.path.write_bytes(store.path.read_bytes())  # a new mtime: re-read at the next check
    with caplog.at_level("WARNING", logger="sense_perception.face.pipeline"):
        ident.process(read(OTHERS[1]), 5.0)
    shown = [driver_values(ident, None)["gallery_error"], *driver_warnings(ident)]
    for text in shown:
        assert "qzhomeowner" not in text and str(tmp_path) not in text, text
        assert "Zorbalina" not in text
        assert "<gallery.path> has mode 0644" in text and "chmod 600 <gallery.path>" in text, text
    assert f"{store.path} has mode 0644" in caplog.text  # locally, in full


# -- privacy, selection, settings ------------------------------------------------------------------

@pytest.mark.parametrize("role", ["front", "rear", "exterior", "surround", "dashcam"])
def test_identity_is_refused_outside_the_cabin(tmp_path: Path, role: str) -> None:
    params = {"camera_role": role, "gallery.path": str(tmp_path / "g.json"),
              "gallery.key_file": str(tmp_path / "missing.key")}
    with pytest.raises(PrivacyError, match=rf"camera_role '{role}'.*not consented"):
        DriverIdentifier.from_params(params, "test")  # refused before the key is even read
    check_identity_allowed("cabin")


def test_select_driver_takes_the_largest_face_inside_the_region() -> None:
    boxes = np.array([[10, 10, 200, 200],      # largest, centre x 0.105: outside the left-seat region
                      [700, 100, 800, 200],    # inside
                      [600, 300, 760, 460]],   # inside and larger
                     np.float32)
    assert select_driver(boxes, (720, 1000, 3), DEFAULT_REGIONS["left"]) == 2
    assert select_driver(boxes, (720, 1000, 3), DEFAULT_REGIONS["right"]) == 0
    assert select_driver(boxes, (720, 1000, 3), (0.0, 0.0, 0.05, 0.05)) == -1
    assert select_driver(np.zeros((0, 4), np.float32), (720, 1000, 3), (0, 0, 1, 1)) == -1


def test_settings_are_validated_with_clear_errors() -> None:
    s = DriverMonitorSettings.from_params({"face.driver_side": "right", "identity.window": 12,
                                           "identity.min_votes": 7, "camera_role": "cabin"})
    assert s.face.region == DEFAULT_REGIONS["right"] and s.identity.window == 12
    with pytest.raises(ConfigError, match="face.driver_regoin"):
        DriverMonitorSettings.from_params({"face.driver_regoin": [0, 0, 1, 1]}, "cfg.yaml")
    with pytest.raises(ConfigError, match="driver_region"):
        DriverMonitorSettings.from_params({"face.driver_region": [0.5, 0, 0.2, 1]})
    with pytest.raises(ConfigError, match="exit_threshold"):
        DriverMonitorSettings.from_params({"identity.exit_threshold": 0.6,
                                           "identity.enter_threshold": 0.5})
    with pytest.raises(ConfigError, match="driver_side"):
        DriverMonitorSettings.from_params({"face.driver_side": "middle"})
    with pytest.raises(ValueError, match="driver_region"):
        validate_region([0, 0, 1], "left")
