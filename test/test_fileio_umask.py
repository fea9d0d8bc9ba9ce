"""The umask a shared output's mode is computed from is read without changing it (SECURITY.md R90)."""
from __future__ import annotations

import os

import pytest

from sense_perception import fileio


@pytest.mark.parametrize("mask", [0o022, 0o000, 0o027])
def test_the_umask_is_read_without_being_changed_even_for_a_moment(monkeypatch, mask):
    """R90: umask_now set the umask to 077 and put it back: for that moment every other thread's
    new file got 077's mode, and two threads reading it at once could leave the process at 077
    for good. Where /proc/self/status says it, it is read from there, never set."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc/self/status: the umask can only be read by setting it")
    real = os.umask(mask)
    set_to: list[int] = []

    def umask(value: int) -> int:
        set_to.append(value)
        return real_umask(value)

    real_umask = os.umask
    monkeypatch.setattr(os, "umask", umask)
    try:
        assert fileio.umask_now() == mask
        assert fileio.shared_mode(0o666) == 0o666 & ~(mask | 0o022)
    finally:
        monkeypatch.undo()
        os.umask(real)
    assert set_to == [], [oct(v) for v in set_to]
