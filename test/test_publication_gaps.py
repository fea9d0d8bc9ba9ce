"""The count of frames a camera published that never reached the node (publication sequence
numbers with gaps), ROS-free: what counts, and what must never count."""
from __future__ import annotations

from sense_perception.core.health.publication_gaps import PublicationGaps
from sense_perception.core.health.stats import TRANSPORT, HealthStats


def test_skipped_numbers_of_one_publisher_are_counted():
    gaps = PublicationGaps(lambda _source: 1)
    assert gaps.observe("/a", 7) == 0  # the first sample is a baseline: earlier ones were not ours
    assert gaps.observe("/a", 8) == 0
    assert gaps.observe("/a", 12) == 3
    assert gaps.observe("/b", 100) == 0  # each topic has its own baseline
    assert gaps.observe("/b", 102) == 1
    assert (gaps.missed("/a"), gaps.missed("/b")) == (3, 1)


def test_nothing_counts_with_two_publishers_a_restart_or_no_number():
    publishers = {"/a": 2}
    asked = []

    def count(source: str) -> int:
        asked.append(source)
        return publishers[source]

    gaps = PublicationGaps(count)
    for seq in (100, 5, 101, 6, 102, 7):  # two writers interleaving: never a loss
        assert gaps.observe("/a", seq) == 0
    assert gaps.missed("/a") == 0 and asked, "the publisher count is asked when a skip is seen"
    publishers["/a"] = 1
    asked.clear()
    assert gaps.observe("/a", 8) == 0 and gaps.observe("/a", 9) == 0
    assert asked == [], "no skip, no graph query"
    assert gaps.observe("/a", 1) == 0  # the camera driver restarted: a new baseline
    assert gaps.observe("/a", 2) == 0
    for unsupported in (None, 0):  # the middleware gives no number
        assert gaps.observe("/a", unsupported) == 0
    assert gaps.observe("/a", 5) == 2
    assert gaps.missed("/a") == 2


def test_lost_in_transport_is_a_kind_of_lost_frame_with_its_topic():
    stats = HealthStats(["/a"])
    stats.frames_lost_in_transport("/a", 4)
    report = stats.report("n")
    values = {v["key"]: v["value"] for v in report["values"]}
    assert values[f"lost[{TRANSPORT}]"] == "4"
    assert values["lost_frames"] == "4"
    assert values[f"last_error[{TRANSPORT}]"].startswith("/a: 4 frame(s) published but never delivered")
    # like frames replaced by newer ones, a frame the transport dropped is counted, not an error
    assert report["level"] == HealthStats(["/a"]).report("n")["level"] and report["message"] == "ok"
