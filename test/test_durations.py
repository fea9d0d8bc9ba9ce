"""Waits and limits in messages are said as a reader would, through one formatter (R94).

They were printed in whole seconds (``{waited:.0f} s``): a load given up after a 0.5 s
``warm_up_timeout_s`` said "has not returned after 0 s" (or "after 1 s"), a stalled inference
of 0.7 s "for 1 s", and limits of minutes read as "600 s"."""
from __future__ import annotations

import math

from sense_perception.core.health.inference_guard import InferenceWatch, waiting_camera
from sense_perception.core.runtime.progress import WarmUpProgress
from sense_perception.core.runtime.warm_up import timed_out
from sense_perception.durations import duration


def test_a_duration_is_said_in_the_unit_a_reader_expects():
    said = {0.0: "0 s", 0.05: "0.05 s", 0.5: "0.5 s", 0.52: "0.52 s", 1.0: "1 s", 1.5: "1.5 s",
            2.0: "2 s", 12.3: "12 s", 45.0: "45 s", 90.0: "1.5 min", 600.0: "10 min",
            5400.0: "1.5 h", math.inf: "inf s"}
    assert {seconds: duration(seconds) for seconds in said} == said


def test_a_duration_at_the_edges_is_said_plainly():
    """At the edges the formatter said nonsense: ``1e-05 s`` for ten microseconds, ``60 s`` for
    59.7 s and ``60 min`` for 3599 s (a value that rounds up to the next unit), ``-0 s`` (R97)."""
    said = {1e-5: "0.00001 s", 5e-7: "0.0000005 s", 59.7: "1 min", 59.99: "1 min",
            3599.0: "1 h", 3570.0: "1 h", 59.4: "59 s", 3540.0: "59 min", -0.0: "0 s",
            9.96: "10 s", 119.0: "2 min"}
    assert {seconds: duration(seconds) for seconds in said} == said
    assert duration(math.nan) == "nan s" and duration(-1.0) == "-1 s"


def test_a_load_given_up_after_half_a_second_says_half_a_second():
    progress = WarmUpProgress(lambda: 0.0)
    progress.loading("yunet", "an onnxruntime session on CPUExecutionProvider")
    for waited, words in ((0.5, "0.5 s"), (0.7, "0.7 s"), (90.0, "1.5 min")):
        text = timed_out(progress, waited, 0.5)
        assert text.startswith("the load of yunet (an onnxruntime session on "
                               f"CPUExecutionProvider) has not returned after {words} "
                               "(warm_up_timeout_s 0.5)"), text


def test_a_stalled_inference_of_under_a_second_is_said_so():
    now = [0.0]
    watch = InferenceWatch(clock=lambda: now[0])
    watch.begin(["/a/image_raw"], {"/a/image_raw": 1})
    now[0] = 0.7
    text, _ = watch.stalled(0.5, {"/a/image_raw": 1})
    assert text.startswith("inference has not returned for 0.7 s (inference_stall_s 0.5;"), text
    status = waiting_camera({"level": 0, "message": "ok", "values": []}, 0.7, 0.5)
    assert "which has not returned for 0.7 s (inference_stall_s 0.5)" in status["message"]
