"""Merge time-ordered streams (the storage files of a split bag) into one, in time order, starting
each stream only once the merge reaches the time it starts at.

rosbag2 splits a recording into files one after the other (``--max-bag-size``, ``-duration``): an
hours-long bag may have hundreds of them. A plain :func:`heapq.merge` starts every stream at once,
and each started storage file holds a decompressed chunk and a message (a raw frame: megabytes)
until the merge takes it: memory would grow with the number of files. Started only when due, the
streams held at once are those whose times overlap (one, in a recording split as rosbag2 splits).
"""
from __future__ import annotations

import heapq
from typing import Callable, Generic, Iterator, NamedTuple, Sequence, TypeVar

T = TypeVar("T")


class Source(NamedTuple, Generic[T]):
    """A stream: the earliest time it can give (None: unknown, started at once) and how to start
    it."""

    start: int | None
    open: Callable[[], Iterator[T]]


def merge_by_time(sources: Sequence[Source[T]], time_of: Callable[[T], int]) -> Iterator[T]:
    """Items of every source in ``time_of`` order (ties: the earlier source first).

    Each source must give its items in time order, none before its start time. A source is
    started when the next item to give is not before its start time, or at once when its start
    is unknown.
    """
    order = sorted(range(len(sources)),
                   key=lambda i: (sources[i].start is not None, sources[i].start or 0, i))
    heap: list[tuple[int, int, T, Iterator[T]]] = []
    admitted = 0

    def due(source: Source[T]) -> bool:
        return not heap or source.start is None or source.start <= heap[0][0]

    while True:
        while admitted < len(order) and due(sources[order[admitted]]):
            index = order[admitted]
            admitted += 1
            stream = sources[index].open()
            for first in stream:  # its first item, if any
                heapq.heappush(heap, (time_of(first), index, first, stream))
                break
        if not heap:
            return
        _, index, item, stream = heap[0]
        yield item
        for following in stream:
            heapq.heapreplace(heap, (time_of(following), index, following, stream))
            break
        else:
            heapq.heappop(heap)


__all__ = ["Source", "merge_by_time"]
