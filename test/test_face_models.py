"""Face models: folding the block-quantised weights, the fold cache, YuNet decoding, alignment, SFace."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from sense_perception.core.runtime.model_registry import get_model
from sense_perception.errors import ImageDecodeError, ModelError
from sense_perception.face import model_fold
from sense_perception.face.align import ARCFACE_TEMPLATE, align_faces, similarity_transforms
from sense_perception.face.gallery import EMBEDDING_DIM as GALLERY_DIM
from sense_perception.face.sface import EMBEDDING_DIM, SFaceEmbedder
from sense_perception.face.yunet import YuNetDetector

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FACES = DATA / "faces"
PORTRAITS = sorted(FACES.glob("*"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fold_cache")


@pytest.fixture(scope="module")
def env_cache(cache: Path):
    mp = pytest.MonkeyPatch()
    mp.setenv(model_fold.CACHE_ENV, str(cache))
    yield cache
    mp.undo()


@pytest.fixture(scope="module")
def detector(env_cache: Path) -> YuNetDetector:
    return YuNetDetector(score_threshold=0.7, max_side=640)


@pytest.fixture(scope="module")
def embedder(env_cache: Path) -> SFaceEmbedder:
    return SFaceEmbedder(max_batch=4)


def _read(name: str) -> np.ndarray:
    image = cv2.imread(str(FACES / name))
    assert image is not None, name
    return image


# -- folding ---------------------------------------------------------------------------------------

def test_dequantize_blocked_matches_the_onnx_definition() -> None:
    x = np.array([[-128, 0, 5, 127, 3], [1, 2, 3, 4, 5]], np.int8)
    scale = np.array([[0.5, 2.0], [1.0, 0.25]], np.float32)  # blocks of 3 along axis 1
    zp = np.array([[1, -1], [0, 2]], np.int8)
    got = model_fold._dequantize(x, scale, zp, axis=1, block_size=3)
    want = np.array([[(-128 - 1) * 0.5, (0 - 1) * 0.5, (5 - 1) * 0.5, (127 + 1) * 2.0, (3 + 1) * 2.0],
                     [1.0, 2.0, 3.0, (4 - 2) * 0.25, (5 - 2) * 0.25]], np.float32)
    np.testing.assert_array_equal(got, want)
    per_axis = model_fold._dequantize(x, np.array([2.0, 3.0], np.float32), None, axis=0, block_size=0)
    np.testing.assert_array_equal(per_axis, x.astype(np.float32) * np.array([[2.0], [3.0]]))


def test_folded_models_have_no_quantised_nodes_and_dynamic_axes(env_cache: Path) -> None:
    yunet = onnx.load(str(model_fold.folded_model_path("yunet")))
    sface = onnx.load(str(model_fold.folded_model_path("sface")))
    for model in (yunet, sface):
        assert not [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
        assert not [i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert [i.name for i in sface.graph.input] == ["data"]
    assert sface.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    dims = yunet.graph.input[0].type.tensor_type.shape.dim
    assert (dims[2].dim_param, dims[3].dim_param) == ("H", "W")


def test_fold_cache_is_reused_verified_and_rebuilt_when_altered(tmp_path: Path) -> None:
    path = model_fold.folded_model_path("yunet", tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    original = path.read_bytes()
    assert meta["source_sha256"] == get_model("yunet").sha256
    stamp = path.stat().st_mtime_ns
    assert model_fold.folded_model_path("yunet", tmp_path) == path
    assert path.stat().st_mtime_ns == stamp  # valid cache: not rewritten
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert model_fold.folded_model_path("yunet", tmp_path) == path
    assert path.read_bytes() == original  # altered cache detected by its hash and rebuilt
    assert not list(tmp_path.glob("*.tmp"))


def test_a_folded_model_another_user_could_have_written_is_never_loaded(tmp_path: Path) -> None:
    """A folded SFace planted in a shared cache folder (another user's file, or one others may
    write), with a sidecar matching its own hash, was loaded as the face model: whoever wrote it
    chose who is recognised. Such a file is rebuilt now, and the cache folders a umask of 0
    would leave world-writable are made 0700."""
    import hashlib
    import os
    import stat

    real = model_fold.folded_model_path("yunet", tmp_path / "own").read_bytes()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp is
    spec = get_model("yunet")
    target = shared / f"yunet_fp32_{spec.sha256[:16]}_v{model_fold.FOLD_VERSION}.onnx"
    evil = real[:-1] + bytes([real[-1] ^ 1])
    owners = [None, 4242] if os.geteuid() == 0 else [None]  # chown needs root
    for owner in owners:
        target.write_bytes(evil)
        sidecar = target.with_suffix(".json")
        sidecar.write_text(json.dumps({"source_sha256": spec.sha256, "sha256":
                                       hashlib.sha256(evil).hexdigest(),
                                       "fold_version": model_fold.FOLD_VERSION}))
        if owner is None:
            target.chmod(0o666)  # ours, but anyone may write it in place
        else:
            target.chmod(0o600)
            for path in (target, sidecar):
                os.chown(path, owner, owner)
        assert model_fold.folded_model_path("yunet", shared) == target
        assert target.read_bytes() == real and target.stat().st_uid == os.geteuid()
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        target.unlink()
        sidecar.unlink()

    old = os.umask(0)
    try:
        model_fold.folded_model_path("yunet", tmp_path / "new" / "cache")
    finally:
        os.umask(old)
    for folder in (tmp_path / "new", tmp_path / "new" / "cache"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_fold_refuses_a_model_without_quantised_weights() -> None:
    model = onnx.load(str(get_model("yolox_nano").verified_path()))
    with pytest.raises(ModelError, match="DequantizeLinear"):
        model_fold.fold_constant_dequantize(model)


def test_folded_sface_equals_reference_evaluation_of_the_original(embedder: SFaceEmbedder) -> None:
    """onnx's reference evaluator runs the shipped int8 graph as is: the fold must not change it."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (1, 112, 112, 3), dtype=np.uint8)
    ref = ReferenceEvaluator(onnx.load(str(get_model("sface").verified_path())))
    want = ref.run(None, {"data": crop[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)})[0][0]
    want /= np.linalg.norm(want)
    got = embedder.embed(crop)[0]
    assert float(got @ want) > 0.9999


# -- YuNet -----------------------------------------------------------------------------------------

def test_yunet_matches_opencv_face_detector_on_the_original_model(detector: YuNetDetector) -> None:
    """OpenCV 5 runs the shipped quantised YuNet natively: same faces, same landmarks."""
    if int(cv2.__version__.split(".")[0]) < 5:
        pytest.skip("OpenCV < 5 cannot load the block-quantised YuNet")
    ref = cv2.FaceDetectorYN.create(str(get_model("yunet").verified_path()), "", (320, 320), 0.7, 0.3)
    for path in PORTRAITS:
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        s = min(1.0, 640 / max(h, w))  # the detector only ever shrinks
        small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        ref.setInputSize((small.shape[1], small.shape[0]))
        _, want = ref.detect(small)
        faces = detector.detect(image)
        assert len(faces) == len(want), path.name
        fx, fy = w / small.shape[1], h / small.shape[0]
        np.testing.assert_allclose(faces.scores, want[:, 14], atol=1e-4)
        np.testing.assert_allclose(faces.landmarks, want[:, 4:14].reshape(-1, 5, 2) * [fx, fy], atol=0.05)
        x, y, bw, bh = want[:, :4].T
        box = np.c_[x, y, x + bw, y + bh] * [fx, fy, fx, fy]
        np.testing.assert_allclose(faces.boxes, np.clip(box, 0, [w, h, w, h]), atol=0.05)


@pytest.mark.parametrize("path", PORTRAITS, ids=lambda p: p.name)
def test_yunet_finds_the_one_face_of_each_portrait(detector: YuNetDetector, path: Path) -> None:
    image = cv2.imread(str(path))
    faces = detector.detect(image)
    assert len(faces) == 1
    box, lm = faces.boxes[0], faces.landmarks[0]
    assert faces.scores[0] > 0.85
    assert (lm[:, 0] > box[0]).all() and (lm[:, 0] < box[2]).all()
    assert (lm[:, 1] > box[1]).all() and (lm[:, 1] < box[3]).all()
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # right eye/mouth corner on the image left
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]  # eyes above nose above mouth


def test_yunet_reports_source_pixels_whatever_the_downscale(detector: YuNetDetector) -> None:
    image = _read("obama_2_congress_2009.jpg")
    small = detector.detect(image)
    big = detector.detect(cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR))
    assert len(small) == len(big) == 1
    np.testing.assert_allclose(big.landmarks[0] / 2.0, small.landmarks[0], atol=2.0)
    np.testing.assert_allclose(big.boxes[0] / 2.0, small.boxes[0], atol=3.0)


def test_yunet_finds_no_face_on_a_street_frame_or_a_blank_image(detector: YuNetDetector) -> None:
    street = cv2.imread(str(DATA / "street" / "comma2k19_highway280_rav4_preview.png"))
    assert len(detector.detect(street)) == 0
    assert len(detector.detect(np.zeros((480, 640, 3), np.uint8))) == 0


def test_yunet_rejects_bad_images_clearly(detector: YuNetDetector) -> None:
    with pytest.raises(ImageDecodeError, match="HxWx3"):
        detector.detect(np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageDecodeError, match="uint8"):
        detector.detect(np.zeros((100, 100, 3), np.float32))


# -- alignment -------------------------------------------------------------------------------------

def test_similarity_transform_recovers_a_known_similarity() -> None:
    angle, scale, shift = np.deg2rad(20.0), 2.5, np.array([300.0, 120.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE @ rot.T + shift  # the template moved into an image
    m = similarity_transforms(src[None])[0]
    np.testing.assert_allclose(src @ m[:, :2].T + m[:, 2], ARCFACE_TEMPLATE, atol=1e-9)


def test_similarity_transform_never_mirrors() -> None:
    mirrored = ARCFACE_TEMPLATE * [-1.0, 1.0]
    m = similarity_transforms(mirrored[None])[0]
    assert np.linalg.det(m[:, :2]) > 0


def test_alignment_matches_opencv_align_crop(detector: YuNetDetector) -> None:
    image = _read("obama_2_congress_2009.jpg")
    faces = detector.detect(image)
    try:
        rec = cv2.FaceRecognizerSF.create(str(get_model("sface").verified_path()), "")
    except cv2.error:
        pytest.skip("this OpenCV cannot load the quantised SFace")
    row = np.r_[faces.boxes[0, :2], faces.boxes[0, 2:] - faces.boxes[0, :2],
                faces.landmarks[0].ravel(), faces.scores[0]].astype(np.float32)[None]
    want = rec.alignCrop(image, row)
    got = align_faces(image, faces.landmarks[:1])[0]
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2


# -- SFace -----------------------------------------------------------------------------------------

def test_embeddings_are_unit_128d_and_batching_changes_nothing(detector: YuNetDetector,
                                                               embedder: SFaceEmbedder) -> None:
    crops = []
    for name in ("obama_1_official_portrait_2012.jpg", "obama_2_congress_2009.jpg",
                 "biden_1_official_vp_portrait_2013.jpg", "biden_2_blue_room_2010.jpg",
                 "eileen_collins_nasa_astronaut.png"):
        image = _read(name)
        crops.append(align_faces(image, detector.detect(image).landmarks[:1])[0])
    crops = np.stack(crops)
    batched = embedder.embed(crops)  # 5 faces with max_batch 4: two inference calls
    singles = np.concatenate([embedder.embed(c[None]) for c in crops])
    assert batched.shape == (5, EMBEDDING_DIM) == (5, GALLERY_DIM)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, singles, atol=1e-4)
    sims = batched @ batched.T
    assert sims[0, 1] > 0.6  # Obama, two different photos
    assert sims[2, 3] > 0.6  # Biden, two different photos
    assert max(sims[0, 2], sims[0, 4], sims[2, 4], sims[1, 3]) < 0.35  # different people


def test_embedder_rejects_unaligned_input(embedder: SFaceEmbedder) -> None:
    with pytest.raises(ImageDecodeError, match="align_faces"):
        embedder.embed(np.zeros((1, 100, 100, 3), np.uint8))
