"""A restart (time going back for good) told from one frame stamped in the past."""
from __future__ import annotations

from sense_perception.core.stamp_order import StampOrder


def test_a_stray_stamp_is_held_and_two_frames_behind_are_a_restart():
    order = StampOrder()
    restarts = []
    used = [order.step(t, on_restart=lambda: restarts.append(order.last))
            for t in (10.0, 10.1, 0.0, 10.2, 10.2, 3.0, 3.1, 3.2)]
    assert used == [(10.0, False), (10.1, False),
                    (10.1, False),  # stamped 0: held at the last time
                    (10.2, False), (10.2, False),  # back on the clock; the same stamp twice is no step
                    (10.2, False),  # behind: not known yet
                    (3.1, True), (3.2, False)]  # going on from 3.0: a restart, the clock starts there
    assert restarts == [10.2]  # called before the clock moves back


def test_frames_behind_that_do_not_go_on_from_each_other_are_strays():
    order = StampOrder()
    order.step(50.0)
    assert order.step(20.0) == (50.0, False)
    assert order.step(10.0) == (50.0, False)  # before the first one behind: another stray
    assert order.step(10.5) == (10.5, True)
    order.rewind(40.0)
    assert order.step(39.0) == (40.0, False)
    order.reset()
    assert order.step(1.0) == (1.0, False)
