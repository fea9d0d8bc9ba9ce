"""Still-image commands read files within the ``input.*`` limits, header first (issue 20, item 11).

Real photos from ../shared/data, hostile files made from them (a real PNG of 20000x20000 zero
pixels that is only a few hundred KB, real PNGs whose header claims another size), and the real
commands through ``sense_perception.cli.main.main``.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from sense_perception.cli.main import main
from sense_perception.core.imaging.frame_guard import InputLimits
from sense_perception.core.imaging.image_file import probe_image_file, read_image_file
from sense_perception.errors import ImageDecodeError
from sense_perception.face import model_fold

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
COMMA = DATA / "street" / "comma2k19_highway280_rav4_preview.png"  # 1164x874
PANDASET = DATA / "street" / "pandaset_seq002_front_camera_40.jpg"  # 1920x1080
FACE = DATA / "faces" / "eileen_collins_nasa_astronaut.png"  # 512x512
CPU_DETECTOR = """object_detector:
  ros__parameters:
    runtime: {{providers: [CPUExecutionProvider]}}
    input: {{{limits}}}
"""


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zero_png(path: Path, width: int, height: int) -> Path:
    """A valid greyscale PNG of ``width`` x ``height`` zero pixels, streamed (never in memory)."""
    packer, row = zlib.compressobj(9), bytes(width + 1)  # filter byte + pixels per row
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data)
                     + _chunk(b"IEND", b""))
    return path


def claiming(path: Path, source: Path, width: int, height: int) -> Path:
    """A copy of the real PNG ``source`` whose header (CRC fixed) claims ``width`` x ``height``."""
    data = bytearray(source.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zero_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 20000, 20000)


def _config(tmp_path: Path, limits: str = "") -> str:
    path = tmp_path / "detector.yaml"
    path.write_text(CPU_DETECTOR.format(limits=limits))
    return str(path)


def test_a_small_png_claiming_20000_square_is_refused_from_its_header(bomb: Path) -> None:
    assert bomb.stat().st_size < 1_000_000  # a few hundred KB that would decode to 1.2 GB
    with pytest.raises(ImageDecodeError, match=r"bomb\.png: the header claims 20000x20000 px: "
                                               r"width 20000 exceeds input\.max_width=8192"):
        read_image_file(bomb)
    # Cheap: a separate process refuses it and its peak memory stays far below one decode.
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (this pytest
    # process, models loaded) across exec; VmHWM belongs to the new program's memory alone.
    code = ("import re, sys\n"
            "from sense_perception.core.imaging.image_file import read_image_file\n"
            "try:\n    read_image_file(sys.argv[1])\nexcept Exception as exc:\n    print(exc)\n"
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n")
    run = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=True)
    message, peak_kib = run.stdout.strip().splitlines()
    assert "exceeds input.max_width" in message
    assert int(peak_kib) < 400_000, f"peak RSS {int(peak_kib) // 1024} MB: it was decoded"


def test_detect_refuses_oversized_and_huge_headers_and_goes_on(tmp_path: Path, bomb: Path,
                                                               capsys) -> None:
    huge = claiming(tmp_path / "huge.png", COMMA, 40000, 30000)
    folder = tmp_path / "a_folder.png"
    folder.mkdir()
    out = tmp_path / "out"
    code = main(["detect", str(bomb), str(huge), str(folder), str(COMMA), "--out", str(out),
                 "--config", _config(tmp_path), "--no-annotate"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"{bomb}: the header claims 20000x20000" in err
    assert f"{huge}: the header claims 40000x30000" in err
    assert f"{folder}: is a directory" in err and "no such file" not in err
    doc = json.loads((out / "detections.json").read_text())
    assert [i["path"] for i in doc["images"]] == [str(COMMA)]


def test_a_huge_header_within_raised_limits_is_a_clear_error(tmp_path: Path, capsys) -> None:
    huge = claiming(tmp_path / "huge.png", COMMA, 40000, 30000)
    config = _config(tmp_path, "max_width: 50000, max_height: 50000, max_pixels: 2000000000")
    code = main(["detect", str(huge), str(COMMA), "--out", str(tmp_path / "out"), "--config",
                 config, "--no-annotate"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "cv2.error" not in err
    assert f"cannot read {huge}: not a decodable image" in err


def test_detect_reads_with_the_configured_limits(tmp_path: Path, capsys) -> None:
    code = main(["detect", str(PANDASET), str(COMMA), "--out", str(tmp_path / "out"),
                 "--config", _config(tmp_path, "max_width: 1500"), "--no-annotate"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{PANDASET}: the header claims 1920x1080 px: width 1920 exceeds input.max_width=1500" \
        in err
    doc = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [i["path"] for i in doc["images"]] == [str(COMMA)]


def test_a_1x1_image_is_named_skipped_and_the_rest_detected(tmp_path: Path, capsys) -> None:
    import cv2
    import numpy as np

    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((1, 1, 3), 200, np.uint8))
    code = main(["detect", str(tiny), str(COMMA), "--out", str(tmp_path / "out"),
                 "--config", _config(tmp_path), "--no-annotate", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot detect on {tiny} (1x1 px)" in err
    doc = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [i["path"] for i in doc["images"]] == [str(COMMA)]
    assert sum(d["label"] == "car" for d in doc["images"][0]["detections"]) >= 4


def test_reader_refuses_fifos_empty_files_and_unknown_formats(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageDecodeError, match=r"pipe\.png: not a regular file"):
        read_image_file(fifo)  # refused at once, not blocked waiting for a writer
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"empty\.jpg: the file is empty"):
        read_image_file(empty)
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(ImageDecodeError, match=r"notes\.png: not a decodable image"):
        read_image_file(text)
    big = tmp_path / "big.png"
    big.write_bytes(COMMA.read_bytes())
    with pytest.raises(ImageDecodeError, match=r"input\.max_compressed_bytes=1000"):
        read_image_file(big, InputLimits(max_compressed_bytes=1000))


def test_reader_reads_real_photos_of_every_kind(tmp_path: Path) -> None:
    import cv2

    assert read_image_file(COMMA).shape == (874, 1164, 3)
    assert probe_image_file(PANDASET) == (1920, 1080)
    bmp = tmp_path / "face.bmp"
    cv2.imwrite(str(bmp), cv2.imread(str(FACE)))
    assert probe_image_file(bmp) == (512, 512)  # sized by Pillow from the BMP header
    assert (read_image_file(bmp) == cv2.imread(str(FACE))).all()


@pytest.fixture()
def face_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(model_fold.CACHE_ENV, str(tmp_path / "fold_cache"))
    monkeypatch.delenv("SENSE_PERCEPTION_GALLERY_KEY", raising=False)
    return tmp_path


def test_driver_commands_read_photos_within_the_limits(face_env: Path, bomb: Path,
                                                       capsys) -> None:
    gallery = str(face_env / "g.json")
    for argv in (["attention", str(bomb)], ["identify", str(bomb), "--gallery", gallery],
                 ["enroll", "--consent", "--name", "Eve", "--images", str(bomb), "--gallery",
                  gallery]):
        code = main(["driver", *argv])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, argv
        assert f"{bomb}: the header claims 20000x20000 px" in err, argv
    assert not Path(gallery).exists()
    config = face_env / "dm.yaml"
    config.write_text("driver_monitor:\n  ros__parameters:\n    input: {max_width: 500}\n")
    code = main(["driver", "attention", str(FACE), "--config", str(config)])
    assert code == 2
    assert "width 512 exceeds input.max_width=500" in capsys.readouterr().err
    import cv2
    import numpy as np

    tiny = face_env / "tiny.png"
    cv2.imwrite(str(tiny), np.full((1, 1, 3), 200, np.uint8))
    assert main(["driver", "attention", str(tiny)]) == 2
    assert f"{tiny}: image 1x1 is too small" in capsys.readouterr().err
    folder = face_env / "photos"
    folder.mkdir()
    assert main(["driver", "attention", str(folder)]) == 2
    assert f"{folder}: is a directory" in capsys.readouterr().err


def test_write_image_encodes_by_suffix_and_names_what_it_cannot_encode(tmp_path: Path) -> None:
    """The one image writer of detect and the tools: a real photo written as JPEG at the quality
    asked reads back at its size, whole; a suffix OpenCV has no encoder for is an OSError naming
    it, leaving nothing behind (no temp file, no empty image)."""
    import cv2

    from sense_perception.fileio import write_image

    photo = read_image_file(PANDASET)
    low, high = tmp_path / "low.jpg", tmp_path / "high.jpg"
    write_image(low, photo, [cv2.IMWRITE_JPEG_QUALITY, 20])
    write_image(high, photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert read_image_file(high).shape == photo.shape
    assert low.stat().st_size < high.stat().st_size  # the quality asked was used
    with pytest.raises(OSError, match=r"OpenCV cannot encode \.notanimage"):
        write_image(tmp_path / "x.notanimage", photo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["high.jpg", "low.jpg"]


def test_files_mistaken_for_photos_are_refused_naming_the_fix(tmp_path: Path) -> None:
    # R64: each was "unknown format or corrupt header" (or "is a directory"), naming no fix
    page = tmp_path / "street.jpg"  # a browser's "save as" of the image's web page
    page.write_text("\n<!DOCTYPE html>\n<html><head><title>street</title></head></html>\n")
    with pytest.raises(ImageDecodeError, match=r"street\.jpg: .*an HTML page, not an image.*"
                                               r"Save image as"):
        read_image_file(page)
    heic = tmp_path / "IMG_0001.HEIC"
    heic.write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64))
    with pytest.raises(ImageDecodeError, match=r"HEIC/HEIF file .*convert it to JPEG or PNG"):
        read_image_file(heic)
    with pytest.raises(ImageDecodeError, match=r"is a directory, not an image file; give the "
                                               r"images in it \(DIR/\*\.jpg"):
        read_image_file(tmp_path)
    with pytest.raises(ImageDecodeError, match=r"no such file; the name is a pattern no shell "
                                               r"expanded"):
        read_image_file(tmp_path / "*.jpg")
    with pytest.raises(ImageDecodeError, match=r"no such file$"):
        read_image_file(tmp_path / "gone.jpg")


def test_detect_notes_a_files_further_frames_and_transparent_part(tmp_path: Path) -> None:
    # R64: detect took the first page of a TIFF, the first frame of a GIF, and a transparent
    # part as the black under it, and said nothing
    from PIL import Image

    from sense_perception.core.imaging.image_layers import image_layers, layer_notes

    still = Image.open(PANDASET).resize((320, 180))
    gif = tmp_path / "clip.gif"
    still.save(gif, save_all=True, append_images=[still.rotate(5)], duration=100)
    assert layer_notes(gif) == [f"{gif} holds 2 frames (pages or an animation): only the first "
                                "is detected"]
    cut = still.convert("RGBA")
    cut.putalpha(Image.new("L", (320, 180), 255).crop((0, 0, 320, 180)))
    cut.paste((0, 0, 0, 0), (0, 0, 80, 180))  # a quarter transparent
    png = tmp_path / "cut.png"
    cut.save(png)
    assert image_layers(png).transparent == pytest.approx(0.25)
    assert layer_notes(png) == [f"25.00 % of {png} is transparent: it is detected as the colour "
                                "stored under it (black as a rule), as OpenCV reads it"]
    assert layer_notes(PANDASET) == [] and image_layers(PANDASET).frames == 1


def test_a_portrait_avif_stands_as_a_viewer_shows_it(tmp_path: Path) -> None:
    # R64: a phone's portrait AVIF keeps its turn in the HEIF `irot` box; OpenCV ignored it and
    # gave the photo on its side, while the header check (Pillow) said it stood
    from PIL import Image, features

    from sense_perception.core.imaging.image_file import probe_image_header

    if not features.check("avif"):
        pytest.skip("this Pillow writes no AVIF")
    still = Image.open(PANDASET).resize((320, 180))
    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees clockwise to be shown
    path = tmp_path / "portrait.avif"
    still.save(path, exif=exif.tobytes(), quality=90)
    shown = read_image_file(path)
    assert shown.shape == (320, 180, 3)
    assert probe_image_header(path).shown == (180, 320)
    want = np.asarray(still.transpose(Image.Transpose.ROTATE_270))[..., ::-1]
    assert np.abs(shown.astype(int) - want).mean() < 6
    assert read_image_file(path, grey=True).shape == (320, 180)


def test_a_48_mp_phone_photo_is_refused_naming_where_to_raise_the_limit(tmp_path: Path) -> None:
    # R64: "raise input.max_pixels for images that large" said not where; a phone's 48 MP photo
    # (8064 x 6048) is over the default 40 MP
    phone = claiming(tmp_path / "IMG_0001.png", COMMA, 6048, 8000)  # 48.4 MP, both sides < 8192
    with pytest.raises(ImageDecodeError, match=r"more than input\.max_pixels=40000000; for a "
                                               r"photo that large .* raise input\.max_pixels in "
                                               r"a --config YAML \(NODE: ros__parameters: input: "
                                               r"max_pixels: N\) or downscale the photo"):
        read_image_file(phone)


def test_a_whole_file_opencv_cannot_decode_is_named_for_what_it_is(tmp_path: Path) -> None:
    # R64: a 32-bit float TIFF (a known format, whole) was "unknown format or truncated file"
    from PIL import Image

    path = tmp_path / "scan.tiff"
    Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)).save(path)
    with pytest.raises(ImageDecodeError, match=r"scan\.tiff: not a decodable image \(OpenCV "
                                               r"cannot decode this TIFF file of 32-bit float "
                                               r"samples .* save it as an 8- or 16-bit JPEG"):
        read_image_file(path)
