"""Bad input never escapes :func:`safe_decode`: property-based fuzzing plus a committed corpus.

Every generated sensor_msgs/Image or CompressedImage either decodes to a valid ``(H, W, 3)`` uint8
image, or returns an ImageDecodeError that the FrameErrorLedger counted under ``decode.<field>``.
For raw images an independent model of the ROS encoding rules predicts which: a message the model
finds valid must decode (with the right pixels for bgr8/mono8), an invalid one must fail naming one
of the fields the model found at fault. Compressed inputs are real JPEG/PNG crops of street frames,
then cut, patched and scrambled: intact ones within the limits must decode to the reference pixels,
cut ones must fail, scrambled ones must do either cleanly.

Runs are derandomised (the same examples on every machine) and each fuzz test asserts how many
examples it ran, so the suite provably exercises more than 10,000 cases.
"""
from __future__ import annotations

import array
import json
import struct
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sense_perception.core.imaging.frame_errors import DEFAULT_MAX_MESSAGE_CHARS, FrameErrorLedger
from sense_perception.core.imaging.frame_guard import InputLimits, safe_decode
from sense_perception.core.imaging.image_decode import SUPPORTED_ENCODINGS

HERE = Path(__file__).resolve().parent
STREET = HERE.parents[1] / "shared" / "data" / "street"
CORPUS = HERE / "data" / "bad_images"

# Examples per fuzz test; their sum is the number of generated cases in a run (>= 10,000).
N_RAW, N_WIRE, N_COMPRESSED, N_OBJECTS = 4000, 2000, 4000, 600


def fuzz_settings(n: int) -> settings:
    # derandomize: CI replays exactly these examples; database=None: nothing is read or stored.
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_counted(n: int, strategy: st.SearchStrategy, check: Callable[[Any], None]) -> int:
    """Run ``check`` on ``n`` derandomised examples of ``strategy``; returns how many ran."""
    ran = 0

    @fuzz_settings(n)
    @given(strategy)
    def body(example: Any) -> None:
        nonlocal ran
        ran += 1
        check(example)

    body()
    return ran


@dataclass
class Image:
    """A plain dataclass with the fields of sensor_msgs/Image."""

    height: Any
    width: Any
    encoding: Any
    is_bigendian: Any
    step: Any
    data: Any


@dataclass
class CompressedImage:
    """A plain dataclass with the fields of sensor_msgs/CompressedImage."""

    format: Any
    data: Any


# --- an independent model of sensor_msgs/Image validity ---------------------------------------------

# Bytes per pixel and whether the width must be even, from REP 104 / sensor_msgs image_encodings.h,
# written out again here on purpose: the model must not share a table with the code it checks.
# 16UC1 (REP 118 depth) is no picture: refused by its encoding like an unknown one (R31).
BPP = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1, "mono16": 2, "8UC3": 3, "8UC1": 1,
       "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2, "bayer_rggb8": 1,
       "bayer_bggr8": 1, "bayer_gbrg8": 1, "bayer_grbg8": 1}
EVEN_WIDTH = {"yuv422", "uyvy", "yuv422_yuy2", "yuyv"}
SIXTEEN_BIT = {"mono16"}
UNKNOWN_ENCODINGS = ["nv12", "rgb16", "BGR8", "", "bgr8 ", "32FC1", "16UC1", "yuv420", "bayer_rggb16",
                     "jpeg"]


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def data_size(data: Any) -> int | None:
    """Bytes in ``data`` if it is a valid byte container, else None."""
    if isinstance(data, np.ndarray):
        return data.size if data.dtype == np.uint8 else None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    if isinstance(data, array.array):
        return len(data) * data.itemsize  # any array exposes its bytes, as a uint8 buffer would
    if isinstance(data, list):
        return len(data) if all(is_int(v) and 0 <= v <= 255 for v in data) else None
    return None


def raw_faults(msg: Image, limits: InputLimits) -> set[str]:
    """Fields at fault in ``msg`` under ``limits``; empty when it must decode."""
    faults: set[str] = set()
    h, w = msg.height, msg.width
    for name, value, limit in (("height", h, limits.max_height), ("width", w, limits.max_width)):
        if not is_int(value) or value <= 0 or value > limit:
            faults.add(name)
    if faults:
        return faults  # sizes unusable: the later checks depend on them
    if h * w > limits.max_pixels:
        faults.add("height*width")
    enc = msg.encoding
    if isinstance(enc, (bytes, bytearray)):
        enc = bytes(enc).decode("ascii", "replace")
    if enc not in BPP:
        return faults | {"encoding"}
    if enc in EVEN_WIDTH and w % 2:
        faults.add("width")
    if not is_int(msg.step) or msg.step < w * BPP[enc]:
        return faults | {"step"}
    if enc in SIXTEEN_BIT and msg.is_bigendian not in (0, 1):  # True == 1, False == 0
        faults.add("is_bigendian")
    size = data_size(msg.data)
    if size is None or size < msg.step * h:
        faults.add("data")
    return faults


def expected_pixels(msg: Image) -> np.ndarray | None:
    """The BGR output for bgr8/mono8 rows read by hand (None for other encodings)."""
    bpp = {"bgr8": 3, "8UC3": 3, "mono8": 1, "8UC1": 1}.get(msg.encoding)
    if bpp is None:
        return None
    buf = np.frombuffer(bytes(bytearray(msg.data)), np.uint8)[: msg.step * msg.height]
    rows = buf.reshape(msg.height, msg.step)[:, : msg.width * bpp].reshape(msg.height, msg.width, bpp)
    return rows if bpp == 3 else np.repeat(rows, 3, axis=2)


def kept(text: str) -> str:
    """``text`` as the ledger keeps it (long messages are cut)."""
    limit = DEFAULT_MAX_MESSAGE_CHARS
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_outcome(msg: object, limits: InputLimits, ledger: FrameErrorLedger,
                  faults: set[str] | None) -> Any:
    """Decode ``msg`` once; check the result, the error and the ledger; return the result.

    ``faults`` is the model's verdict (None when there is none): empty -> must decode, else the
    error must name one of these fields.
    """
    before = ledger.as_dict()
    image, error = safe_decode(msg, limits, ledger, source="/fuzz")
    after = ledger.as_dict()
    assert (image is None) != (error is None)
    if error is None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert 0 < image.shape[0] <= limits.max_height and 0 < image.shape[1] <= limits.max_width
        assert image.flags.c_contiguous and image.flags.writeable
        assert after == before, "a decoded frame must not be counted as lost"
        assert not faults, f"decoded although {faults} are at fault: {msg!r:.300}"
    else:
        kind = f"decode.{error.field}"
        assert after["total"] == before["total"] + 1
        old = before["kinds"].get(kind, {"count": 0})["count"]
        assert after["kinds"][kind]["count"] == old + 1
        assert after["kinds"][kind]["last_message"] == kept(str(error))
        assert after["kinds"][kind]["last_source"] == "/fuzz"
        assert str(error).startswith(f"{error.field}: ") and len(str(error)) > len(error.field) + 5
        if faults is not None:
            assert faults, f"failed although the model finds it valid: {error} for {msg!r:.300}"
            assert error.field in faults, f"{error.field!r} not in {faults}: {error}"
    return image if error is None else error


# --- strategies: sensor_msgs/Image ---------------------------------------------------------------------

# 23 kB of real street pixels: the payload of every generated raw image.
_POOL = cv2.imread(str(STREET / "pandaset_seq002_front_camera_00.jpg"), cv2.IMREAD_COLOR)[400:404].tobytes()
SMALL_LIMITS = InputLimits(max_width=12, max_height=10, max_pixels=80, max_compressed_bytes=1500)
LIMITS = st.sampled_from([InputLimits(), SMALL_LIMITS])

odd_values = st.sampled_from(["4", 4.0, None, True, b"4", np.float32(2.0)])
CONTAINERS: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
    "array": lambda b: array.array("B", b), "numpy": lambda b: np.frombuffer(b, np.uint8), "list": list,
}
BAD_DATA = [None, "abc", 42, np.zeros(8, np.uint16), array.array("H", [1, 2]), [300, 1], [-1]]
RAW_FAULTS = st.lists(st.sampled_from(["height", "width", "encoding", "step", "is_bigendian", "data",
                                        "pixels", "odd_width"]), max_size=2, unique=True)
HUGE = [0, 100_000, 2**31 - 1, 2**32 - 1]
# Strategies are built once (keyed by ``wire``): building them inside the composite costs more
# than a decode.
BAD_SIZES = {
    (limits, wire): st.sampled_from(HUGE + [limits.max_width + 1, limits.max_height + 1]) if wire
    else st.one_of(st.sampled_from(HUGE + [limits.max_width + 1, limits.max_height + 1]),
                   st.integers(-(2**40), -1), odd_values)
    for limits in (InputLimits(), SMALL_LIMITS) for wire in (True, False)
}
BAD_ENCODINGS = st.one_of(st.sampled_from(UNKNOWN_ENCODINGS), st.text(max_size=6))
WIRE_BAD_ENCODINGS = BAD_ENCODINGS.map(lambda e: e.encode("ascii", "replace").decode().replace("\x00", ""))
# A step fault: ("short", k) -> k bytes below the row, or ("set", value).
BAD_STEPS = {
    True: st.one_of(st.tuples(st.just("short"), st.integers(1, 64)),
                    st.tuples(st.just("set"), st.sampled_from(HUGE))),
    False: st.one_of(st.tuples(st.just("short"), st.integers(1, 2**40)),
                     st.tuples(st.just("set"), odd_values)),
}
BAD_BIGENDIAN = {True: st.sampled_from([2, 255]), False: st.sampled_from([2, 255, -1, 0.5, "1", None])}
BAD_CONTAINERS = st.sampled_from([None] * len(BAD_DATA) + BAD_DATA)  # None: a valid container, too short
ENCODINGS = st.sampled_from(SUPPORTED_ENCODINGS)
CONTAINER_NAMES = st.sampled_from(sorted(CONTAINERS))
PADS, EXTRAS, BITS = st.sampled_from([0, 0, 1, 3, 8]), st.sampled_from([0, 0, 1, 7]), st.sampled_from([0, 1])
H_BASE, W_BASE, OFFSETS = st.integers(1, 10), st.integers(1, 12), st.integers(0, 63)
FRACTIONS = st.floats(0, 1)


@st.composite
def raw_messages(draw: st.DrawFn, wire: bool = False) -> tuple[Image, InputLimits]:
    """A valid sensor_msgs/Image of real pixels with up to two faults injected.

    ``wire`` keeps every field representable in CDR (unsigned, in range), as in a bag.
    """
    limits = draw(LIMITS)
    encoding = draw(ENCODINGS)
    height, width = draw(H_BASE), draw(W_BASE)
    if encoding in EVEN_WIDTH:
        width += width % 2
    step = width * BPP[encoding] + draw(PADS)
    is_bigendian = draw(BITS)
    length = step * height + draw(EXTRAS)
    container = "numpy" if wire else draw(CONTAINER_NAMES)
    data: Any = None
    for fault in draw(RAW_FAULTS):
        if fault == "height":
            height = draw(BAD_SIZES[limits, wire])
        elif fault == "width":
            width = draw(BAD_SIZES[limits, wire])
        elif fault == "encoding":
            encoding = draw(WIRE_BAD_ENCODINGS if wire else BAD_ENCODINGS)
        elif fault == "step":
            how, value = draw(BAD_STEPS[wire])
            if how == "set":
                step = value
            else:  # CDR's uint32 cannot go below 0; a Python object can
                step = max(step - value, 0) if wire else step - value
        elif fault == "is_bigendian":
            is_bigendian = draw(BAD_BIGENDIAN[wire])
        elif fault == "data":
            length = int(draw(FRACTIONS) * max(length - 1, 0))
            if not wire:
                data = draw(BAD_CONTAINERS)
        elif fault == "pixels":
            height, width = limits.max_height, limits.max_width
        elif fault == "odd_width" and is_int(width):
            width |= 1
    if data is None:
        offset = draw(OFFSETS)
        data = CONTAINERS[container](_POOL[offset: offset + length])
    return Image(height, width, encoding, is_bigendian, step, data), limits


def check_raw(msg: Image, limits: InputLimits, ledger: FrameErrorLedger) -> None:
    faults = raw_faults(msg, limits)
    out = check_outcome(msg, limits, ledger, faults)
    if isinstance(out, np.ndarray):
        assert out.shape == (msg.height, msg.width, 3)
        expected = expected_pixels(msg)
        if expected is not None:
            np.testing.assert_array_equal(out, expected)


def test_fuzz_raw_image_fields() -> None:
    ledger = FrameErrorLedger()
    ran = run_counted(N_RAW, raw_messages(), lambda ex: check_raw(*ex, ledger))
    assert ran >= N_RAW
    # The generator reached both outcomes and many distinct faults, not one error over and over.
    assert set(ledger.as_dict()["kinds"]) >= {"decode.height", "decode.width", "decode.encoding",
                                              "decode.step", "decode.data", "decode.is_bigendian",
                                              "decode.height*width"}
    assert 0.2 * N_RAW < ledger.total() < 0.95 * N_RAW


@pytest.fixture(scope="module")
def typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def to_wire(typestore, msg: Image) -> object:
    """The same fields as a rosbags sensor_msgs/Image, through CDR bytes and back (what a bag holds)."""
    types = typestore.types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0),
                                          frame_id="camera_front")
    real = types["sensor_msgs/msg/Image"](header=header, height=msg.height, width=msg.width,
                                          encoding=msg.encoding, is_bigendian=msg.is_bigendian,
                                          step=msg.step, data=msg.data)
    cdr = typestore.serialize_cdr(real, "sensor_msgs/msg/Image")
    return typestore.deserialize_cdr(cdr, "sensor_msgs/msg/Image")


def test_fuzz_raw_image_through_cdr(typestore) -> None:
    ledger = FrameErrorLedger()

    def check(example: tuple[Image, InputLimits]) -> None:
        msg, limits = example
        wire = to_wire(typestore, msg)
        faults = raw_faults(msg, limits)
        out = check_outcome(wire, limits, ledger, faults)
        if isinstance(out, np.ndarray):
            assert out.shape == (msg.height, msg.width, 3)

    assert run_counted(N_WIRE, raw_messages(wire=True), check) >= N_WIRE
    assert 0 < ledger.total() < N_WIRE


# --- strategies: sensor_msgs/CompressedImage ----------------------------------------------------------


def _street_crop(name: str, y: int, x: int, h: int = 48, w: int = 64) -> np.ndarray:
    return cv2.imread(str(STREET / name), cv2.IMREAD_COLOR)[y: y + h, x: x + w].copy()


def _encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


_CROP = _street_crop("pandaset_seq002_front_camera_10.jpg", 520, 900)
_CROP_ODD = _street_crop("comma2k19_highway280_rav4_preview.png", 480, 560, 17, 33)
# (name, bytes, (height, width)): real street pixels in each layout a camera driver may send.
BASES = [
    ("jpeg", _encode(".jpg", _CROP, cv2.IMWRITE_JPEG_QUALITY, 90), (48, 64)),
    ("jpeg_progressive", _encode(".jpg", _CROP, cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (48, 64)),
    ("jpeg_gray_odd", _encode(".jpg", cv2.cvtColor(_CROP_ODD, cv2.COLOR_BGR2GRAY)), (17, 33)),
    ("png", _encode(".png", _CROP), (48, 64)),
    ("png_gray16_odd", _encode(".png", cv2.cvtColor(_CROP_ODD, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257),
     (17, 33)),
]
REFERENCE = {name: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for name, data, _ in BASES}
# format -> the decoded channels arrive as RGB and must be swapped. compressed_image_transport's
# decoder: a colour source encoding before ";" without "compressed bgr" after it means RGB bytes.
GOOD_FORMATS = {"jpeg": False, "png": False, "": False, "rgb8; jpeg compressed bgr8": False,
                "bgr8; png compressed": True, "rgb8; png compressed": True,
                "rgb8; jpeg compressed rgb8": True,
                "mono8; jpeg compressed ": False, "bgra8; png compressed bgra8": False}
BAD_FORMATS = ["h264", "tiff", "webp", "16UC1; compressedDepth png", "bmp"]


DIMS_A, DIMS_B = [0, 1, 17, 48, 64, 65535], [0, 1, 33, 64, 8193, 65535, 100_000]


def mutate(data: bytes, recipe: bytes) -> bytes:
    """Apply the edits a recipe encodes, 4 bytes each: opcode, 16-bit position, value.

    One flat ``binary`` draw per case costs hypothesis far less than a list of tuples, and still
    shrinks well. Opcodes: flip a byte, insert a run, delete a span, append a run, repeat the
    stream, or rewrite the size fields of the JPEG SOF / PNG IHDR header.
    """
    buf = bytearray(data)
    for i in range(0, len(recipe) - 3, 4):
        if not buf:
            break
        op, pos, value = recipe[i] % 6, (recipe[i + 1] << 8 | recipe[i + 2]) % len(buf), recipe[i + 3]
        if op == 0:
            buf[pos] = value
        elif op == 1:
            buf[pos:pos] = bytes([value]) * (value % 16 + 1)
        elif op == 2:
            del buf[pos: pos + value % 64 + 1]
        elif op == 3:
            buf += bytes([value]) * (pos % 64 + 1)
        elif op == 4:
            buf *= 2
        else:
            patch_dims(buf, DIMS_A[pos % len(DIMS_A)], DIMS_B[value % len(DIMS_B)], fix_crc=bool(value & 128))
    return bytes(buf)


def patch_dims(buf: bytearray, height: int, width: int, fix_crc: bool) -> None:
    """Rewrite the frame size in a JPEG SOF or PNG IHDR header in place (no-op without one)."""
    if buf.startswith(b"\x89PNG") and len(buf) >= 33:
        struct.pack_into(">II", buf, 16, width, height)
        if fix_crc:  # keep the IHDR checksum valid so that only the size is a lie
            struct.pack_into(">I", buf, 29, zlib.crc32(bytes(buf[12:29])))
        return
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = buf.find(marker)
        if 0 < at <= len(buf) - 9:
            struct.pack_into(">HH", buf, at + 5, height & 0xFFFF, width & 0xFFFF)
            return


# Weighted so that about half the cases reach the codec, and a good share of those decode.
COMPRESSED_LIMITS = st.sampled_from([InputLimits()] * 4 + [SMALL_LIMITS,
                                     InputLimits(max_width=40, max_compressed_bytes=2500)])
FORMATS = st.sampled_from(sorted(GOOD_FORMATS) * 3 + BAD_FORMATS)
HOW = st.sampled_from(["intact", "intact", "truncate", "mutate", "mutate", "mutate"])
RECIPES = st.binary(min_size=4, max_size=16)
COMPRESSED_CONTAINERS = st.sampled_from(["bytes", "numpy", "array", "memoryview"])
BASE_CHOICE = st.sampled_from(BASES)


@st.composite
def compressed_messages(draw: st.DrawFn) -> tuple[CompressedImage, InputLimits, str, str, set | None]:
    name, base, (height, width) = draw(BASE_CHOICE)
    fmt = draw(FORMATS)
    limits = draw(COMPRESSED_LIMITS)
    how = draw(HOW)
    data = base
    if how == "truncate":
        data = base[: int(draw(FRACTIONS) * (len(base) - 1))]
    elif how == "mutate":
        data = mutate(data, draw(RECIPES))
    msg = CompressedImage(fmt, CONTAINERS[draw(COMPRESSED_CONTAINERS)](data))
    # Faults that hold whatever the bytes say: the format string and the stream's length.
    faults: set[str] | None = set()
    if fmt in BAD_FORMATS:
        faults.add("format")
    if len(data) > limits.max_compressed_bytes:
        faults.add("data")
    if how == "mutate":
        # A scrambled stream (even its size fields) may or may not still decode: without a fault
        # above, only the invariants of check_outcome hold.
        return msg, limits, name, how, faults or None
    if how == "truncate" or height > limits.max_height or width > limits.max_width:
        faults.add("data")
    return msg, limits, name, how, faults


def check_compressed(example: tuple, ledger: FrameErrorLedger) -> None:
    msg, limits, name, how, faults = example
    out = check_outcome(msg, limits, ledger, faults)
    if isinstance(out, np.ndarray) and how == "intact":
        expected = REFERENCE[name][..., ::-1] if GOOD_FORMATS[msg.format] else REFERENCE[name]
        np.testing.assert_array_equal(out, expected)
    elif not isinstance(out, np.ndarray):
        assert out.field in {"data", "format"}


def test_fuzz_compressed_real_jpeg_png() -> None:
    ledger = FrameErrorLedger()
    ran = run_counted(N_COMPRESSED, compressed_messages(), lambda ex: check_compressed(ex, ledger))
    assert ran >= N_COMPRESSED
    kinds = ledger.as_dict()["kinds"]
    assert set(kinds) == {"decode.data", "decode.format"}
    assert 0.3 * N_COMPRESSED < ledger.total() < 0.95 * N_COMPRESSED


# --- arbitrary objects: no field access, buffer or attribute may raise through ---------------------------


class Exploding:
    """An object whose fields raise on access, like a half-built or foreign message."""

    def __init__(self, exc: type[BaseException], compressed: bool) -> None:
        self._exc, self._compressed = exc, compressed

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or (name == "format" and not self._compressed):
            raise AttributeError(name)
        raise self._exc(f"field {name} exploded")


class BadBuffer:
    """``data`` whose buffer protocol fails."""

    def __len__(self) -> int:
        raise OverflowError("length too large")


objects = st.one_of(
    st.none(), st.integers(), st.text(max_size=5), st.binary(max_size=8),
    st.dictionaries(st.sampled_from(["format", "data", "encoding", "height"]), st.integers(), max_size=3),
    st.builds(Exploding, st.sampled_from([RuntimeError, ValueError, TypeError, KeyError, MemoryError]),
              st.booleans()),
    st.builds(CompressedImage,
              st.one_of(st.none(), st.integers(), st.binary(max_size=4), st.text(max_size=8)),
              st.one_of(st.just(BadBuffer()), st.none(), st.text(max_size=4), st.integers(),
                        st.binary(max_size=12))),
    st.builds(Image, st.integers(1, 3), st.integers(1, 3), st.sampled_from(["bgr8", "mono16"]),
              st.integers(0, 1), st.integers(1, 12), st.just(BadBuffer())),
)


def test_fuzz_arbitrary_objects_never_raise() -> None:
    ledger = FrameErrorLedger()

    def check(obj: Any) -> None:
        image, error = safe_decode(obj, SMALL_LIMITS, ledger, source="/fuzz")
        assert image is None and error is not None  # none of these is a decodable message
        assert ledger.count(f"decode.{error.field}") >= 1

    assert run_counted(N_OBJECTS, objects, check) >= N_OBJECTS
    assert ledger.total() == N_OBJECTS


def test_total_generated_cases_at_least_10000() -> None:
    assert N_RAW + N_WIRE + N_COMPRESSED + N_OBJECTS >= 10_000


# --- the committed corpus ---------------------------------------------------------------------------

CORPUS_CASES = sorted(CORPUS.glob("*.json"))


def load_case(path: Path) -> tuple[dict, object, InputLimits]:
    case = json.loads(path.read_text())
    data = path.with_suffix(".bin").read_bytes()
    cls = CompressedImage if case["message"] == "sensor_msgs/msg/CompressedImage" else Image
    return case, cls(**case["fields"], data=data), InputLimits(**case.get("limits", {}))


def test_corpus_covers_the_issue_list() -> None:
    names = {p.stem for p in CORPUS_CASES}
    assert len(names) >= 30
    for needed in ("raw_unknown_encoding_nv12", "raw_step_smaller_than_row", "raw_data_short_by_one",
                   "raw_data_longer_than_step_x_height", "raw_height_zero", "raw_header_100000x100000",
                   "raw_yuv422_odd_width", "jpeg_truncated_half", "png_truncated_half", "png_idat_zeroed",
                   "png_ihdr_claims_100000x100000"):
        assert needed in names
    for path in CORPUS_CASES:
        assert path.with_suffix(".bin").stat().st_size < 4096


@pytest.mark.parametrize("path", CORPUS_CASES, ids=lambda p: p.stem)
def test_corpus_case(path: Path) -> None:
    case, msg, limits = load_case(path)
    ledger = FrameErrorLedger()
    image, error = safe_decode(msg, limits, ledger, source=path.name)
    field = case["expect"].get("error_field")
    if field is None:
        assert error is None, str(error)
        assert list(image.shape) == case["expect"]["shape"] and image.dtype == np.uint8
        assert ledger.total() == 0
    else:
        assert image is None and error is not None
        assert error.field == field, str(error)
        assert ledger.as_dict() == {"total": 1, "kinds": {f"decode.{field}": {
            "count": 1, "last_message": kept(str(error)), "last_source": path.name}}}


@pytest.mark.parametrize("path", [p for p in CORPUS_CASES if "sensor_msgs/msg/Image" in p.read_text()],
                         ids=lambda p: p.stem)
def test_corpus_raw_case_as_real_cdr_message(path: Path, typestore) -> None:
    case, msg, limits = load_case(path)
    msg.data = np.frombuffer(msg.data, np.uint8)
    wire = to_wire(typestore, msg)
    _, error = safe_decode(wire, limits)
    assert (error.field if error else None) == case["expect"].get("error_field")


# --- hostile headers do not allocate ----------------------------------------------------------------


def peak_bytes(func: Callable[[], Any]) -> tuple[int, Any]:
    tracemalloc.start()  # numpy registers its buffers with tracemalloc, so a frame would show
    try:
        result = func()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("limits", [InputLimits(), InputLimits(max_width=10**6, max_height=10**6)],
                         ids=["defaults", "only_max_pixels"])
def test_raw_100000x100000_header_does_not_allocate(limits: InputLimits) -> None:
    ledger = FrameErrorLedger()
    msg = Image(100_000, 100_000, "bgr8", 0, 300_000, np.zeros(64, np.uint8))
    peak, (image, error) = peak_bytes(lambda: safe_decode(msg, limits, ledger))
    assert image is None and error.field in {"width", "height*width"}
    assert "100000" in str(error)
    assert ledger.total() == 1
    assert peak < 256_000  # a decode of the claim needs 30 GB; the message itself is 64 bytes


@pytest.mark.parametrize("name", ["png_ihdr_claims_100000x100000", "jpeg_sof_claims_65535x65535"])
def test_compressed_bomb_header_never_reaches_the_codec(name: str, monkeypatch) -> None:
    calls: list[int] = []
    real = cv2.imdecode

    def spy(*args: Any) -> Any:  # OpenCV allocates outside tracemalloc's view: watch the call instead
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(cv2, "imdecode", spy)
    _, msg, limits = load_case(CORPUS / f"{name}.json")
    ledger = FrameErrorLedger()
    peak, (image, error) = peak_bytes(lambda: safe_decode(msg, limits, ledger))
    assert image is None and error.field == "data" and "exceeds max_pixels" in str(error)
    assert calls == [] and peak < 256_000
    # The same spy sees a real decode, so an empty list above is meaningful.
    assert safe_decode(CompressedImage("png", BASES[3][1]))[0] is not None and calls == [1]


# --- real full-size frames pass the default limits ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in STREET.iterdir()))
def test_real_street_frames_decode_within_default_limits(name: str) -> None:
    data = (STREET / name).read_bytes()
    ledger = FrameErrorLedger()
    image, error = safe_decode(CompressedImage(name.rsplit(".", 1)[1], np.frombuffer(data, np.uint8)),
                               None, ledger)
    assert error is None and ledger.total() == 0
    reference = cv2.imread(str(STREET / name), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(image, reference)


# --- the detector's path: zero-copy views and reduced-scale JPEG decoding -------------------------------

N_REDUCED = 600
SMALLEST = lambda w, h: (1, 1)  # noqa: E731 - allow the deepest libjpeg reduction (1/8)


def _same_verdict(msg: object, limits: InputLimits) -> None:
    """The detector's path (a view, JPEGs at 1/8 scale) fails exactly where a full BGR decode does,
    with the same field; where it succeeds, it reports the full image's size."""
    full, full_error = safe_decode(msg, limits)
    view, view_error = safe_decode(msg, limits, zero_copy=True, size_floor=SMALLEST)
    assert (view is None) != (view_error is None)
    if full_error is not None:
        assert view_error is not None and view_error.field == full_error.field, (
            f"full decode: {full_error}; reduced: {view_error or 'decoded'}")
        return
    assert view_error is None, f"full decode worked, the reduced one failed: {view_error}"
    assert view.source_size == (full.shape[1], full.shape[0])
    assert view.array.dtype == np.uint8 and view.array.shape[2] == len(view.order)


def test_fuzz_compressed_on_the_detector_path_fails_where_a_full_decode_does() -> None:
    ran = run_counted(N_REDUCED, compressed_messages(), lambda ex: _same_verdict(ex[0], ex[1]))
    assert ran >= N_REDUCED


@pytest.mark.parametrize("path", CORPUS_CASES, ids=lambda p: p.stem)
def test_corpus_case_on_the_detector_path(path: Path) -> None:
    _, msg, limits = load_case(path)
    _same_verdict(msg, limits)
