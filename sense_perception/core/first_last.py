"""A log that keeps its first and last items and counts the rest: a report's event list stays
bounded over an hours-long recording.

A replay reports events (a camera condition raised or cleared, the driver's state changing) for
its summary.json. A camera flickering between two conditions makes one per frame or two, and a
one-hour bag of six 30 Hz cameras has 650 000 frames: kept whole, the list grew the replay's
memory and its summary.json without bound. :class:`FirstLast` keeps the first ``head`` items (how
it began) and the last ``tail`` (how it ended), and counts how many it left out between them.
"""
from __future__ import annotations

from collections import deque
from typing import Generic, Iterable, TypeVar

T = TypeVar("T")

#: Items kept at each end of a replay's event lists (camera health events, driver and attention
#: timelines, alerts): enough to read how a condition started and ended.
KEEP_EACH_END = 100


class FirstLast(Generic[T]):
    """The first ``head`` and the last ``tail`` items appended, with the count of the rest.

    Args:
        head: items kept from the start.
        tail: items kept from the end.
    """

    def __init__(self, head: int = KEEP_EACH_END, tail: int = KEEP_EACH_END) -> None:
        self._head: list[T] = []
        self._tail: deque[T] = deque(maxlen=max(0, int(tail)))
        self._head_size = max(0, int(head))
        self.total = 0  # items ever appended

    def append(self, item: T) -> None:
        """Add ``item`` (the oldest of the tail is dropped once the tail is full)."""
        self.total += 1
        if len(self._head) < self._head_size:
            self._head.append(item)
        else:
            self._tail.append(item)

    def extend(self, items: Iterable[T]) -> None:
        """Add each of ``items``."""
        for item in items:
            self.append(item)

    @property
    def left_out(self) -> int:
        """Items appended but no longer kept (between the head and the tail)."""
        return self.total - len(self._head) - len(self._tail)

    @property
    def last(self) -> T | None:
        """The last item appended, or None."""
        if self._tail:
            return self._tail[-1]
        return self._head[-1] if self._head else None

    def items(self) -> list[T]:
        """The kept items in order: the head, then the tail."""
        return [*self._head, *self._tail]

    def __len__(self) -> int:
        return len(self._head) + len(self._tail)

    def __bool__(self) -> bool:
        return self.total > 0
