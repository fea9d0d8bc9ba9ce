"""Temporal identity decision: votes, hysteresis, no-face hold, time gaps (pure logic, no models)."""
from __future__ import annotations

import math

import pytest

from sense_perception.face.decision import DriverState, IdentityConfig, IdentityDecider

CFG = IdentityConfig(enter_threshold=0.5, exit_threshold=0.4, window=10, min_votes=6,
                     no_face_frames=3, max_gap_s=2.0)
ID, UNK, UNC, NONE = (DriverState.IDENTIFIED, DriverState.UNKNOWN, DriverState.UNCERTAIN,
                      DriverState.NO_FACE)


def run(decider: IdentityDecider, frames: list, t0: float = 0.0, dt: float = 0.1) -> list:
    """frames: (index, score) for a scored face, None for no face, 'small' for an unscored face."""
    out = []
    for i, f in enumerate(frames):
        t = t0 + i * dt
        if f is None:
            out.append(decider.update(t, face=False))
        elif f == "small":
            out.append(decider.update(t, face=True))
        else:
            out.append(decider.update(t, True, *f))
    return out


def states(decisions: list) -> list:
    return [d.state for d in decisions]


def test_identity_needs_min_votes_above_enter() -> None:
    d = IdentityDecider(CFG, ["Ada", "Bob"])
    out = run(d, [(0, 0.7)] * 6)
    assert states(out) == [UNC] * 5 + [ID]
    assert out[-1].index == 0 and out[-1].score == pytest.approx(0.7) and "Ada" in out[-1].reason


def test_scores_between_exit_and_enter_never_enter_but_do_hold() -> None:
    d = IdentityDecider(CFG, ["Ada"])
    assert states(run(d, [(0, 0.45)] * 12))[-1] is UNC  # weak evidence: never identified
    d.reset()
    out = run(d, [(0, 0.7)] * 6 + [(0, 0.45)] * 10)
    assert states(out)[5:] == [ID] * 11  # once identified, exit-level scores keep it


def test_hysteresis_survives_isolated_bad_frames_but_not_a_lasting_change() -> None:
    d = IdentityDecider(CFG, ["Ada"])
    seq = [(0, 0.7)] * 8 + [(0, 0.1)] * 3 + [(0, 0.7)] * 2 + [(-1, 0.1)] * 8
    s = states(run(d, seq))
    assert s[7:13] == [ID] * 6
    assert s[-1] is UNK
    assert UNC in s[13:]  # passes through uncertain before enough no-match votes


def test_switch_between_enrolled_drivers() -> None:
    d = IdentityDecider(CFG, ["Ada", "Bob"])
    out = run(d, [(0, 0.8)] * 8 + [(1, 0.8)] * 10)
    assert out[7].index == 0 and out[-1].state is ID and out[-1].index == 1


def test_unknown_needs_min_votes_below_exit() -> None:
    d = IdentityDecider(CFG)
    s = states(run(d, [(-1, -1.0)] * 6))  # empty gallery: every face is a no-match vote
    assert s == [UNC] * 5 + [UNK]


def test_missing_face_holds_then_no_face_clears_evidence() -> None:
    d = IdentityDecider(CFG, ["Ada"])
    out = run(d, [(0, 0.7)] * 6 + [None, None, None] + [(0, 0.7)])
    assert states(out)[6:] == [ID, ID, NONE, UNC]  # a new person must earn identity afresh
    assert "holding" in out[6].reason


def test_time_gap_or_rewind_clears_evidence() -> None:
    d = IdentityDecider(CFG, ["Ada"])
    run(d, [(0, 0.7)] * 6)
    assert d.update(10.0, True, 0, 0.7).state is UNC  # 9.5 s pause
    run(d, [(0, 0.7)] * 6, t0=10.1)
    assert d.decision.state is ID
    assert d.update(1.0, True, 0, 0.7).state is UNC  # stream rewound


def test_small_faces_are_present_but_unscored() -> None:
    d = IdentityDecider(CFG, ["Ada"])
    out = run(d, ["small"] * 4)
    assert states(out) == [UNC] * 4 and "too small" in out[-1].reason
    assert math.isfinite(out[-1].score)


@pytest.mark.parametrize("kwargs, field", [
    ({"exit_threshold": 0.6, "enter_threshold": 0.5}, "exit_threshold"),
    ({"window": 5, "min_votes": 6}, "min_votes"),
    ({"match_threshold": 1.5}, "match_threshold"),
])
def test_invalid_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        IdentityConfig(**kwargs)


def test_a_camera_fault_is_neither_a_vote_nor_an_empty_seat() -> None:
    d = IdentityDecider(CFG, ["Ada"])
    assert states(run(d, [(0, 0.7)] * 8))[-1] is ID
    during = [d.camera_fault() for _ in range(15)]  # 1.5 s of a dark camera
    assert {x.state for x in during} == {DriverState.CAMERA_FAULT}
    assert all(x.index == -1 and "not judged" in x.reason for x in during)
    # shorter than max_gap_s: the evidence is kept and the first good frame is identified again
    assert d.update(2.2, True, 0, 0.7).state is ID
    # longer (2.5 s since the last judged frame): the seat may hold someone else, judged afresh
    assert d.camera_fault().state is DriverState.CAMERA_FAULT
    assert d.update(4.7, True, 0, 0.7).state is UNC
