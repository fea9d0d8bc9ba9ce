"""GalleryStore: permissions, atomic writes, locking, encryption, tamper detection, forgetting."""
from __future__ import annotations

import base64
import json
import multiprocessing
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from sense_perception.errors import GalleryError
from sense_perception.face.gallery import (MAGIC, ConsentRecord, GalleryConfig, GalleryStore,
                                           default_gallery_path, generate_key_file, load_key)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def templates(n: int, seed: int) -> np.ndarray:
    t = np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def consent(who: str = "Ada") -> ConsentRecord:
    return ConsentRecord.now(who)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_enrol_roundtrip_with_consent_record_and_mode_0600(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "g" / "gallery.json")
    t = templates(3, 0)
    rec = store.enroll("Ada", t, consent("Ada"))
    assert mode(store.path) == 0o600
    assert mode(store.path.parent) == 0o700
    [back] = store.drivers()
    assert (back.id, back.name, back.consent) == (rec.id, "Ada", rec.consent)
    assert back.consent.text_version == "1" and back.consent.when.endswith("+00:00")
    np.testing.assert_array_equal(back.templates, t)
    assert back.images == [] and not store.images_dir.exists()  # no image unless asked
    doc = json.loads(store.path.read_text())
    assert doc["schema"] == 1 and doc["format"] == "sense_perception.driver_gallery"


def test_no_temp_or_stray_files_are_left(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    store.enroll("Ada", templates(1, 0), consent())
    store.enroll("Bob", templates(1, 1), consent("Bob"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.json", "gallery.json.bak",
                                                          "gallery.json.lock"]


def test_max_templates_is_enforced(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json", max_templates=4)
    rec = store.enroll("Ada", templates(9, 0), consent())
    assert rec.templates.shape == (4, 128)


def test_refuses_a_group_or_world_readable_gallery(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    store.enroll("Ada", templates(1, 0), consent())
    os.chmod(store.path, 0o644)
    before = store.path.read_bytes()
    with pytest.raises(GalleryError, match=r"mode 0644.*chmod 600"):
        store.drivers()
    with pytest.raises(GalleryError, match="chmod 600"):
        store.enroll("Bob", templates(1, 1), consent("Bob"))
    assert store.path.read_bytes() == before


def test_invalid_templates_and_names_are_refused(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    with pytest.raises(GalleryError, match="unit-length"):
        store.enroll("Ada", np.ones((1, 128), np.float32), consent())
    with pytest.raises(GalleryError, match="name"):
        store.enroll("  ", templates(1, 0), consent())
    assert not store.path.exists()


def test_tampered_plain_gallery_is_refused(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    store.enroll("Ada", templates(1, 0), consent())
    doc = json.loads(store.path.read_text())
    doc["drivers"][0]["name"] = "Mallory"
    store.path.write_text(json.dumps(doc))
    with pytest.raises(GalleryError, match="modified outside sense_perception"):
        store.drivers()
    store.path.write_bytes(b"{ not json")
    with pytest.raises(GalleryError, match="not valid JSON"):
        store.drivers()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json")
    store.enroll("Ada", templates(1, 0), consent())
    doc = json.loads(store.path.read_text())
    doc["schema"] = 99
    store.path.write_text(json.dumps(doc))
    with pytest.raises(GalleryError, match="schema version 99"):
        store.drivers()


def test_encrypted_gallery_roundtrip_has_no_plaintext(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json.enc", key=KEY)
    t = templates(2, 0)
    store.enroll("Ada Lovelace", t, consent("Ada Lovelace"))
    blob = store.path.read_bytes()
    assert blob.startswith(MAGIC)
    assert b"Ada Lovelace" not in blob
    assert base64.b64encode(t[0].tobytes()) not in blob and t[0].tobytes() not in blob
    np.testing.assert_array_equal(GalleryStore(store.path, key=KEY).drivers()[0].templates, t)


def test_wrong_key_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "gallery.json.enc"
    GalleryStore(path, key=KEY).enroll("Ada", templates(1, 0), consent())
    before = path.read_bytes()
    wrong = GalleryStore(path, key=OTHER_KEY)
    with pytest.raises(GalleryError, match="wrong key"):
        wrong.drivers()
    with pytest.raises(GalleryError, match="wrong key"):
        wrong.enroll("Eve", templates(1, 1), consent("Eve"))
    with pytest.raises(GalleryError, match="wrong key"):
        wrong.forget("drv-00000000")
    assert path.read_bytes() == before
    with pytest.raises(GalleryError, match="is encrypted"):
        GalleryStore(path).drivers()


def test_tampered_encrypted_gallery_is_refused(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json.enc", key=KEY)
    store.enroll("Ada", templates(1, 0), consent())
    blob = bytearray(store.path.read_bytes())
    blob[-20] ^= 0x01
    store.path.write_bytes(bytes(blob))
    with pytest.raises(GalleryError, match="tampered"):
        store.drivers()


def test_plain_file_is_refused_when_a_key_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "gallery.json"
    GalleryStore(path).enroll("Mallory", templates(1, 0), consent("Mallory"))
    with pytest.raises(GalleryError, match="not encrypted but a key is configured"):
        GalleryStore(path, key=KEY).drivers()


def test_forget_erases_every_trace(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json", keep_images=True)
    ada_t, bob_t = templates(2, 0), templates(1, 1)
    crops = [np.full((112, 112, 3), 60 + i, np.uint8) for i in range(2)]
    ada = store.enroll("Ada", ada_t, consent("Ada"), images=crops)
    bob = store.enroll("Bob", bob_t, consent("Bob"), images=[np.zeros((112, 112, 3), np.uint8)])
    assert len(ada.images) == 2 and all(mode(store.images_dir / n) == 0o600 for n in ada.images)
    np.testing.assert_array_equal(store.load_image(ada.images[1]), crops[1])
    before = store.path.read_bytes()
    assert base64.b64encode(ada_t[0].tobytes()) in before

    gone = store.forget(ada.id)
    assert gone.id == ada.id
    after = store.path.read_bytes()
    for row in ada_t:
        assert base64.b64encode(row.tobytes()) not in after
        assert row.tobytes() not in after
    assert ada.id.encode() not in after and b"Ada" not in after
    assert not any(store.images_dir.glob(f"{ada.id}_*"))
    assert [d.id for d in store.drivers()] == [bob.id]
    store.forget(bob.id)
    assert not store.images_dir.exists()
    assert store.drivers() == []
    with pytest.raises(GalleryError, match="no enrolled driver has id"):
        store.forget(bob.id)


def test_forget_in_encrypted_gallery_erases_kept_encrypted_images(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "gallery.json.enc", key=KEY, keep_images=True)
    crop = np.full((112, 112, 3), 99, np.uint8)
    ada = store.enroll("Ada", templates(1, 0), consent(), images=[crop])
    [name] = ada.images
    assert name.endswith(".png.enc")
    assert b"PNG" not in (store.images_dir / name).read_bytes()
    np.testing.assert_array_equal(store.load_image(name), crop)
    store.forget(ada.id)
    assert not (store.images_dir / name).exists()


def test_previous_file_version_is_zeroed_after_replacement(tmp_path: Path) -> None:
    """The old inode (still reachable through a hard link here) no longer holds the templates."""
    store = GalleryStore(tmp_path / "gallery.json")
    ada_t = templates(1, 0)
    ada = store.enroll("Ada", ada_t, consent())
    old_link = tmp_path / "old_version"
    os.link(store.path, old_link)
    store.forget(ada.id)
    old = old_link.read_bytes()
    assert old and old == bytes(len(old))
    assert base64.b64encode(ada_t[0].tobytes()) not in old


def _enrol_worker(args: tuple[str, int]) -> str:
    path, i = args
    store = GalleryStore(path)
    return store.enroll(f"driver-{i}", templates(2, 100 + i), ConsentRecord.now(f"driver-{i}")).id


def test_concurrent_enrolment_from_several_processes_keeps_every_entry(tmp_path: Path) -> None:
    path = str(tmp_path / "gallery.json")
    # spawn, not fork: by now the test process holds Ray's gRPC and onnxruntime threads, and a
    # forked child can inherit one of their locks held, and wait on it for ever (seen in CI)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        ids = pool.map(_enrol_worker, [(path, i) for i in range(12)])
    drivers = GalleryStore(path).drivers()
    assert sorted(d.id for d in drivers) == sorted(ids)
    assert sorted(d.name for d in drivers) == sorted(f"driver-{i}" for i in range(12))
    assert mode(Path(path)) == 0o600


def test_key_sources_and_key_file_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = generate_key_file(tmp_path / "keys" / "gallery.key")
    assert mode(key_file) == 0o600
    key = load_key(str(key_file))
    assert key is not None and len(key) == 32
    with pytest.raises(GalleryError, match="never overwritten"):
        generate_key_file(key_file)
    os.chmod(key_file, 0o644)
    with pytest.raises(GalleryError, match="chmod 600"):
        load_key(str(key_file))
    monkeypatch.setenv("MY_GALLERY_KEY", base64.b64encode(KEY).decode())
    assert load_key("", "MY_GALLERY_KEY") == KEY
    monkeypatch.setenv("MY_GALLERY_KEY", KEY.hex())
    assert load_key("", "MY_GALLERY_KEY") == KEY
    monkeypatch.setenv("MY_GALLERY_KEY", "short")
    with pytest.raises(GalleryError, match="32-byte key"):
        load_key("", "MY_GALLERY_KEY")
    monkeypatch.delenv("MY_GALLERY_KEY")
    assert load_key("", "MY_GALLERY_KEY") is None


def test_default_path_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENSE_PERCEPTION_GALLERY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_gallery_path() == tmp_path / "sense_perception" / "gallery.json"
    assert default_gallery_path(True).name == "gallery.json.enc"
    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY_KEY", KEY.hex())
    store = GalleryStore.from_config(GalleryConfig())
    assert store.encrypted and store.path.name == "gallery.json.enc"
    monkeypatch.setenv("SENSE_PERCEPTION_GALLERY", str(tmp_path / "elsewhere.json"))
    assert default_gallery_path() == tmp_path / "elsewhere.json"
    with pytest.raises(ValueError, match="key_env"):
        GalleryConfig(key_env="not a name")
