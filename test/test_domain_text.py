"""The texts the nodes put on the DDS domain name no path that names a person (R93):
:mod:`sense_perception.face.domain_text`."""
from __future__ import annotations

from pathlib import Path

import pytest

from sense_perception.face.domain_text import gallery_paths, home_paths, redact_paths


def test_the_gallery_its_companions_folder_key_and_home_are_labelled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "alice"
    monkeypatch.setenv("HOME", str(home))
    gallery = home / ".local" / "share" / "sense_perception" / "gallery.json"
    paths = home_paths() + gallery_paths("", str(home / "keys" / "gallery.key"))
    text = (f"gallery {gallery} has mode 0644; fix: chmod 600 {gallery}; its copy {gallery}.bak, "
            f"lock {gallery}.lock; folder {gallery.parent} (mode 0777); key {home}/keys/gallery.key; "
            f"config {home}/perception.yaml; other {home}x/y, {tmp_path}/al")
    assert redact_paths(text, paths) == (
        "gallery <gallery.path> has mode 0644; fix: chmod 600 <gallery.path>; its copy "
        "<gallery.path>.bak, lock <gallery.path>.lock; folder <gallery.path's folder> (mode 0777); "
        f"key <gallery.key_file>; config ~/perception.yaml; other {home}x/y, {tmp_path}/al")
    # the encrypted default and a gallery.path of the user's, ~ expanded
    assert redact_paths(f"{gallery}.enc", paths) == "<gallery.path>"
    assert redact_paths(f"{home}/g.json is a FIFO", gallery_paths("~/g.json", "")) == \
        "<gallery.path> is a FIFO"


def test_a_label_is_never_read_as_a_pattern(tmp_path: Path) -> None:
    assert redact_paths(f"{tmp_path}/a", [(str(tmp_path), r"\1 \g<0>")]) == r"\1 \g<0>/a"
    assert redact_paths("/ is the root", [("/", "<root>")]) == "/ is the root"  # never "/"


def test_a_path_is_labelled_only_where_it_is_that_path_not_inside_another_or_a_word(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A home folder was taken out of a longer path that merely ended in its name (HOME=/data:
    ``/mnt/data/g.json`` said ``/mnt~/g.json``), and a relative gallery name out of every word
    and name it ended (``gallery`` in "gallery gallery: 1 driver(s)" and "the gallery key file",
    ``gallery.json`` out of ``my_gallery.json``): garbled lines on the domain (R97)."""
    monkeypatch.setenv("HOME", "/data")
    home = [pair for pair in home_paths() if pair[0] == "/data"]
    assert home == [("/data", "~")]
    assert redact_paths("camera log /mnt/data/g.json; gallery /data/g.json", home) == \
        "camera log /mnt/data/g.json; gallery ~/g.json"
    monkeypatch.chdir(tmp_path)
    line = "gallery gallery: 1 driver(s); the gallery key file; my_gallery.json, gallery.json"
    assert redact_paths(line, gallery_paths("gallery", "key")) == line
    assert redact_paths(line, gallery_paths("gallery.json", "")) == line
    # the working folder's absolute forms are still labelled
    assert redact_paths(f"{tmp_path}/gallery.json is a FIFO", gallery_paths("gallery.json", "")) \
        == "<gallery.path> is a FIFO"


def test_the_private_participant_profile_never_replaces_the_users_own(tmp_path: Path) -> None:
    from sense_perception.ros.dds_privacy import PROFILE, PROFILE_ENV, use_private_participant

    assert PROFILE.is_file() and b"fastdds.physical_data.user" in PROFILE.read_bytes()
    env: dict[str, str] = {}
    assert use_private_participant(env, tmp_path) == str(PROFILE)
    assert all(env[name] == str(PROFILE) for name in PROFILE_ENV)
    mine = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"}
    assert use_private_participant(mine, tmp_path) is None and mine == {
        "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"}
    cyclone = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert use_private_participant(cyclone, tmp_path) is None and len(cyclone) == 1
    (tmp_path / "DEFAULT_FASTRTPS_PROFILES.xml").write_text("<profiles/>")
    assert use_private_participant({}, tmp_path) is None  # Fast DDS reads that one
    assert use_private_participant({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, tmp_path / "x") \
        == str(PROFILE)


def test_a_replay_published_to_the_domain_names_no_home_folder_in_its_diagnostics(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`replay --publish` put its /diagnostics on the domain as written to the output bag: a
    status naming a path under the home folder (a provider's fallback reason, `session creation
    failed: ...` with onnxruntime's text) reached every participant, where the node's own
    /diagnostics labels it ``~`` (R93). The published copy is labelled; the bag keeps the full
    text (R97)."""
    from rosbags.typesys import Stores, get_typestore

    from sense_perception.core.output import messages
    from sense_perception.core.output.frame_outputs import DIAGNOSTIC_ARRAY
    from sense_perception.replay.sink import ResultSink
    from sense_perception.replay.writer import OutputBag

    home = tmp_path / "alice"
    monkeypatch.setenv("HOME", str(home))
    reason = f"yolo: TensorrtExecutionProvider skipped: cannot write {home}/.cache/trt/engine"
    status = messages.diagnostic_status("sense_perception replay: object_detector", messages.WARN,
                                        f"fell back ({reason})", "",
                                        {"provider_fallback[yolo]": reason, "frames": 3})
    array = messages.diagnostic_array(messages.Header(1, 2, ""), [status])

    class Recorder:
        published: list[bytes] = []

        def publish(self, topic: str, msgtype: str, raw, qos=()) -> None:
            self.published.append(bytes(raw))

    bag = OutputBag(tmp_path / "out", get_typestore(Stores.ROS2_JAZZY), name="x")
    written: list[bytes] = []
    write_raw = bag.write_raw
    monkeypatch.setattr(bag, "write_raw", lambda topic, msgtype, ts, raw, qos=(): (
        written.append(bytes(raw)), write_raw(topic, msgtype, ts, raw, qos))[1])
    sink = ResultSink(bag, Recorder())
    sink.emit("/diagnostics", DIAGNOSTIC_ARRAY, 10, array)
    sink.emit("/diagnostics", DIAGNOSTIC_ARRAY, 11, messages.diagnostic_array(
        messages.Header(1, 3, ""), [{**status, "message": "ok", "values": []}]))
    bag.close()
    name = str(home).encode()
    assert name in written[0] and b"alice" not in Recorder.published[0]
    assert b"~/.cache/trt/engine" in Recorder.published[0] and b"frames" in Recorder.published[0]
    assert Recorder.published[1] == written[1]  # nothing to label: the same bytes
