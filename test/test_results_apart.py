"""Results of detect, eval and the --json-out commands are never written where another run's
--force deletes them: a fleet run's bag folder, or a replay's output (SECURITY.md R35)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sense_perception.cli.main import main
from sense_perception.fleet import outputs
from sense_perception.outpaths import REPLAY_MARK


def test_results_are_never_written_inside_a_fleet_bag_folder_or_a_replay_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    truth = tmp_path / "gt.json"
    truth.write_text('{"images": []}\n')
    fleet_bag = tmp_path / "fleet" / "bag1"  # what a fleet run made for one bag
    fleet_bag.mkdir(parents=True)
    outputs.mark(fleet_bag)
    replay = tmp_path / "replay"
    replay.mkdir()
    (replay / REPLAY_MARK).write_text("replay\n")
    for inside, whose in ((fleet_bag / "review", "an earlier fleet run"),
                          (replay / "video", "the output folder of a replay")):
        for argv, option in ((["detect", photo, "--out", inside], "--out"),
                             (["eval", truth, "--out", inside], "--out"),
                             (["health", photo, "--json-out", inside / "h.json"], "--json-out"),
                             (["driver", "attention", photo, "--json-out", inside / "a.json"],
                              "--json-out")):
            assert main([str(a) for a in argv]) == 2, argv
            err = capsys.readouterr().err
            assert option in err and whose in err and "Traceback" not in err, (argv, err)
            assert not inside.exists()  # refused before anything was created
    # Why: fleet's --force (or a retry) replaces the bag's folder whole, with what was put inside.
    kept = fleet_bag / "review"
    kept.mkdir()
    (kept / "detections.json").write_text("{}")
    new = outputs.prepare_temp(tmp_path / "fleet", "bag1")
    new.mkdir()
    outputs.publish(new, fleet_bag)
    assert not kept.exists()
