"""The camera-health evaluation's tuning / held-out split: seeded, by source image, disjoint."""
from __future__ import annotations

from sense_perception.evaluation import camera_health_eval as ev

from support import REPO

DATA = REPO.parent / "shared" / "data"


def test_split_is_seeded_disjoint_complete_and_by_source_image():
    subsets = ev.split(DATA)
    assert ev.split(DATA) == subsets  # the same seed, the same split
    pandaset = sorted((DATA / "street_labelled" / "pandaset_seq002_front").glob("*.jpg"))
    tuning, held = subsets["tuning"], subsets["held_out"]
    for group in ("pandaset", "street", "cabin"):
        assert not set(tuning[group]) & set(held[group]), group
    assert sorted(tuning["pandaset"] + held["pandaset"]) == pandaset
    assert sorted(tuning["cabin"] + held["cabin"]) == sorted((DATA / "faces").iterdir())
    assert len(tuning["pandaset"]) == len(held["pandaset"]) == 40
    # whole one-second segments of the drive: neighbouring frames (near copies) stay together
    for paths in (tuning["pandaset"], held["pandaset"]):
        segments = {int(p.stem) // ev.SEGMENT for p in paths}
        assert len(paths) == ev.SEGMENT * len(segments)
    # another seed draws another split: the subsets come from the seed, not a fixed list
    assert ev.split(DATA, seed=ev.SPLIT_SEED + 1)["held_out"]["pandaset"] != held["pandaset"]
    # the held-out one-frame rates use frames no earlier tuning saw (odd frames)
    assert all(int(p.stem) % 2 == 1 for p in ev.clean_sets(held, 2, 1)["pandaset"])


def test_the_crosscheck_tool_names_its_extra_when_albumentations_is_missing(monkeypatch, capsys):
    """tools/camera_health_crosscheck.py without the crosscheck extra: exit 2 naming it (it died
    with ModuleNotFoundError, `--help` included)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("crosscheck", REPO / "tools" / "camera_health_crosscheck.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setitem(sys.modules, "albumentations", None)  # as if not installed
    assert tool.main([]) == 2
    assert "pip install -e '.[crosscheck]'" in capsys.readouterr().err
