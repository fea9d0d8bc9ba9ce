"""The golden replay: the sample bag's replay outputs as JSON, and how a new replay is compared to it.

``make golden`` (``python test/golden_replay.py``) replays the sample bag the way test_replay.py's
``sample_run`` does (every camera, the default ObjectDetector without the pedestrian specialist
that ``build_detector`` adds, the driver enrolled from two photos not in the bag) and writes
every output message but the copied input as message dicts to :data:`GOLDEN`. The enrolled
driver's id is random per enrolment, so it is stored as :data:`DRIVER`.

Tolerances (the cross-path ones of test/support.py, because another CPU picks other kernels):

* Detection2DArray: the same labels, boxes within 0.1 px, scores within 1e-3
  (:func:`support.assert_detections_close`; a detection on one side only is allowed when its
  score is within 1e-3 of the threshold it was cut at); the track ids of the paired detections
  are the same;
* ImageAnnotations: the same number of boxes and captions, corners and caption positions within
  0.1 px, caption texts the same but for the score digits;
* Classification: the same class ids, scores within 1e-3, but the driver attention's
  ``eye_openness_*`` within 1e-2: a ratio of face-mesh landmark distances (about 1), which moved
  by up to 4.7e-3 between an AVX2 machine (AMD EPYC) and the AVX-512 one the golden file was
  written on, while every other value stayed within its tolerance; PoseStamped: within 1e-3 (m
  and quaternion);
* Detection3DArray: paired by label and position (a detection on one side only allowed as for
  the 2-D ones), the same headers and ids, scores within 1e-3, positions, orientations and sizes
  within 1e-3 (m), covariances within 1 % (they grow with the range squared: 0.45 m² at 13 m
  moved by 1e-3 between the two machines above; compared exactly, every 3-D output failed on
  the AVX2 one);
* LabelInfo, headers and bag times: exactly the same;
* /diagnostics: the same statuses with the same keys (their values are timings and counters;
  the ``provider*`` keys depend on the machine's execution providers and are left out);
* DiagnosticStatus (``<ns>/camera_health``): the same name, level, message, hardware_id and keys;
  the metric values within 1e-2 (they are pixel statistics of the decoded frame).
"""
from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

TEST = Path(__file__).resolve().parent
GOLDEN = TEST / "data" / "golden_replay.json"
DRIVER = "<enrolled driver>"
BOX_PX, SCORE, POSE, HEALTH, EYE_OPENNESS, COVARIANCE = 0.1, 1e-3, 1e-3, 1e-2, 1e-2, 1e-2


def _plain(value: Any) -> Any:
    """A rosbags message as JSON-ready nested dicts and lists."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__
                if k != "__msgtype__"}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _mask(value: Any, driver_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, driver_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, driver_id) for v in value]
    if isinstance(value, str) and driver_id:
        return value.replace(driver_id, DRIVER)
    return value


def replay_messages(bag_dir: Path, driver_id: str = "",
                    skip_topics: frozenset[str] = frozenset()) -> dict[str, list[dict[str, Any]]]:
    """{topic: [{"t": bag time ns, "type": msgtype, "msg": dict}]} of an output bag, the enrolled
    driver's id replaced by :data:`DRIVER`; /diagnostics keeps only each status' name and keys.

    Args:
        bag_dir: the replay's output bag.
        driver_id: the enrolled driver's id in this run ("" for none).
        skip_topics: topics left out (the copied input).
    """
    from rosbags.rosbag2 import Reader

    from sense_perception.replay.typestore import make_typestore

    store = make_typestore()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with Reader(bag_dir) as reader:
        for conn, t, raw in reader.messages():
            if conn.topic in skip_topics:
                continue
            msg = _plain(store.deserialize_cdr(raw, conn.msgtype))
            if conn.topic == "/diagnostics":
                # the keys but the execution providers' (which differ by machine)
                msg = {"status": [{"name": s["name"], "keys": sorted(
                    kv["key"] for kv in s["values"] if not kv["key"].startswith("provider"))}
                    for s in msg["status"]]}
            out[conn.topic].append({"t": int(t), "type": conn.msgtype, "msg": _mask(msg, driver_id)})
    return dict(sorted(out.items()))


def _detections(msg: dict[str, Any], names: list[str]) -> Any:
    from sense_perception.core.types import Detections

    boxes, scores, labels, ids = [], [], [], []
    for d in msg["detections"]:
        c, w, h = d["bbox"]["center"]["position"], d["bbox"]["size_x"], d["bbox"]["size_y"]
        boxes.append([c["x"] - w / 2, c["y"] - h / 2, c["x"] + w / 2, c["y"] + h / 2])
        hyp = d["results"][0]["hypothesis"]
        scores.append(hyp["score"])
        if hyp["class_id"] not in names:
            names.append(hyp["class_id"])
        labels.append(names.index(hyp["class_id"]))
        ids.append(int(d["id"]) if d["id"] else -1)
    return Detections(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64),
                      np.asarray(labels, np.int32), np.asarray(ids, np.int64))


_SCORE_IN_TEXT = re.compile(r"\d+\.\d\d")


def _close(a: Any, b: Any, tol: float, what: str) -> None:
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=0,
                               atol=tol, err_msg=what)


def _compare_detections_3d(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str,
                           threshold: float | None) -> None:
    """Detection3Ds of one array, within the tolerances of the module's docstring."""
    from scipy.optimize import linear_sum_assignment

    def parts(d: dict[str, Any]) -> tuple[str, float, np.ndarray]:
        hyp = d["results"][0]["hypothesis"]
        centre = d["bbox"]["center"]["position"]
        return hyp["class_id"], hyp["score"], np.array([centre["x"], centre["y"], centre["z"]])

    g, w = [parts(d) for d in got], [parts(d) for d in want]
    cost = np.array([[np.linalg.norm(a[2] - b[2]) if a[0] == b[0] else np.inf for b in w]
                     for a in g]).reshape(len(g), len(w))
    finite = np.where(np.isfinite(cost), cost, 1e9)
    rows, cols = linear_sum_assignment(finite) if cost.size else (np.zeros(0, int), np.zeros(0, int))
    near = finite[rows, cols] <= POSE
    rows, cols = rows[near], cols[near]
    for side, dets, used in (("got", g, rows), ("want", w, cols)):
        for i in sorted(set(range(len(dets))) - set(used.tolist())):  # a borderline detection
            assert threshold is not None and abs(dets[i][1] - threshold) <= SCORE, \
                f"{what}: 3-D detection {i} of '{side}' ({dets[i][0]}) has no partner"
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b, where = got[i], want[j], f"{what} 3-D detection {j}"
        assert (a["header"], a["id"]) == (b["header"], b["id"]), where
        ra, rb = a["results"][0], b["results"][0]
        _close(ra["hypothesis"]["score"], rb["hypothesis"]["score"], SCORE, where)
        for pose_a, pose_b in ((ra["pose"]["pose"], rb["pose"]["pose"]),
                               (a["bbox"]["center"], b["bbox"]["center"])):
            for part in ("position", "orientation"):
                _close(list(pose_a[part].values()), list(pose_b[part].values()), POSE, where)
        _close(list(a["bbox"]["size"].values()), list(b["bbox"]["size"].values()), POSE, where)
        np.testing.assert_allclose(ra["pose"]["covariance"], rb["pose"]["covariance"],
                                   rtol=COVARIANCE, atol=1e-9, err_msg=where)


def _compare_message(msgtype: str, got: dict[str, Any], want: dict[str, Any], what: str,
                     threshold: float | None) -> None:
    from support import assert_detections_close

    if "header" in want:
        assert got["header"] == want["header"], what
    if msgtype == "vision_msgs/msg/Detection2DArray":
        names: list[str] = []
        g, w = _detections(got, names), _detections(want, names)
        assert_detections_close(g, w, box_px=BOX_PX, score=SCORE, threshold=threshold, what=what)
        if len(g) == len(w):  # with a borderline detection on one side only, later ids may shift
            assert sorted(g.track_ids.tolist()) == sorted(w.track_ids.tolist()), what
    elif msgtype == "foxglove_msgs/msg/ImageAnnotations":
        assert len(got["points"]) == len(want["points"]) and got["circles"] == want["circles"], what
        for a, b in zip(got["points"], want["points"], strict=True):
            assert (a["type"], a["timestamp"]) == (b["type"], b["timestamp"]), what
            _close([[p["x"], p["y"]] for p in a["points"]], [[p["x"], p["y"]] for p in b["points"]],
                   BOX_PX, what)
        assert [_SCORE_IN_TEXT.sub("#.##", t["text"]) for t in got["texts"]] == \
            [_SCORE_IN_TEXT.sub("#.##", t["text"]) for t in want["texts"]], what
        _close([[t["position"]["x"], t["position"]["y"]] for t in got["texts"]],
               [[t["position"]["x"], t["position"]["y"]] for t in want["texts"]], BOX_PX, what)
    elif msgtype == "vision_msgs/msg/Classification":
        assert [r["class_id"] for r in got["results"]] == [r["class_id"] for r in want["results"]], what
        for g_result, w_result in zip(got["results"], want["results"], strict=True):
            tol = EYE_OPENNESS if w_result["class_id"].startswith("eye_openness") else SCORE
            _close(g_result["score"], w_result["score"], tol, f"{what} {w_result['class_id']}")
    elif msgtype == "diagnostic_msgs/msg/DiagnosticStatus":
        assert {k: v for k, v in got.items() if k != "values"} == \
            {k: v for k, v in want.items() if k != "values"}, what
        assert [kv["key"] for kv in got["values"]] == [kv["key"] for kv in want["values"]], what
        _close([float(kv["value"]) for kv in got["values"]],
               [float(kv["value"]) for kv in want["values"]], HEALTH, what)
    elif msgtype == "vision_msgs/msg/Detection3DArray":
        _compare_detections_3d(got["detections"], want["detections"], what, threshold)
    elif msgtype == "geometry_msgs/msg/PoseStamped":
        for part in ("position", "orientation"):
            _close(list(got["pose"][part].values()), list(want["pose"][part].values()), POSE, what)
    else:  # LabelInfo, /diagnostics' names and keys
        assert got == want, what


def assert_matches_golden(got: dict[str, list[dict[str, Any]]],
                          golden: dict[str, list[dict[str, Any]]] | None = None,
                          threshold: float | None = None) -> None:
    """Assert that replay outputs (:func:`replay_messages`) match the golden ones within the
    tolerances above. ``threshold``: the detector's score threshold (a detection near it may be on
    one side only)."""
    want = golden if golden is not None else json.loads(GOLDEN.read_text())["topics"]
    assert sorted(got) == sorted(want), "output topics differ from the golden replay"
    for topic, messages in want.items():
        assert [m["t"] for m in got[topic]] == [m["t"] for m in messages], f"{topic}: bag times differ"
        for i, (g, w) in enumerate(zip(got[topic], messages, strict=True)):
            assert g["type"] == w["type"], topic
            _compare_message(w["type"], g["msg"], w["msg"], f"{topic}[{i}]", threshold)


def golden_label_counts(golden: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, dict[str, int]]:
    """{output topic: {label: count}} over the golden Detection2DArrays and faces."""
    want = golden if golden is not None else json.loads(GOLDEN.read_text())["topics"]
    counts: dict[str, dict[str, int]] = {}
    for topic, messages in want.items():
        if messages[0]["type"] != "vision_msgs/msg/Detection2DArray":
            continue
        labels = [d["results"][0]["hypothesis"]["class_id"] for m in messages for d in m["msg"]["detections"]]
        counts[topic] = {k: labels.count(k) for k in sorted(set(labels))}
    return counts


def main() -> int:
    """Replay the sample bag like test_replay.py's ``sample_run`` and write :data:`GOLDEN`."""
    import tempfile

    sys.path.insert(0, str(TEST))
    from replay_helpers import CABIN, SAMPLE_BAG, SAMPLE_INPUTS, enrol_sample_driver

    from sense_perception.core.detection.detector import ObjectDetector
    from sense_perception.replay.engine import ReplayOptions, Replayer

    with tempfile.TemporaryDirectory() as tmp:
        gallery, driver_id = enrol_sample_driver(Path(tmp))
        config = Path(tmp) / "params.yaml"
        config.write_text(f"driver_monitor:\n  ros__parameters:\n    gallery:\n      path: {gallery}\n")
        out = Path(tmp) / "out"
        result = Replayer(ReplayOptions(SAMPLE_BAG, out, cabin=CABIN, config=config),
                          detector=ObjectDetector.from_params({}, "golden")).run()
        assert result.complete, result.summary["skipped"]
        topics = replay_messages(out / "bag", driver_id, SAMPLE_INPUTS)
    # One message a line: a regenerated file diffs message by message.
    lines = [f' {json.dumps(topic)}: [\n' + ",\n".join(f"  {json.dumps(m)}" for m in messages) + "\n ]"
             for topic, messages in topics.items()]
    GOLDEN.write_text('{"about": ' + json.dumps(__doc__.splitlines()[0]) + ',\n"bag": '
                      '"sense_perception/data/sample_bag",\n"topics": {\n' + ",\n".join(lines) + "\n}}\n")
    print(f"wrote {GOLDEN} ({sum(len(v) for v in topics.values())} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
