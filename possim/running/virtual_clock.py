"""A discrete-event loop on virtual time: callbacks in a heap, time jumps to the next one.

Chosen over asyncio-on-a-virtual-clock by measurement (``make bench`` prints both):
the sans-IO core needs no coroutines, and a heap of callbacks runs several times more
runs per second, which is what fuzzing needs. Ties run in scheduling order, so a run
is a pure function of its inputs.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Handle:
    """A scheduled callback; ``cancel()`` keeps it from running (like asyncio's TimerHandle)."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    def __init__(self) -> None:
        self._now = 0.0
        self._seq = 0
        self._heap: list[tuple[float, int, Callable[[], None], Handle]] = []
        self.steps = 0

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        # call_at's body inlined, and a conditional expression rather than max() (the same values,
        # NaN included): every message and timer of a run passes here. ``now + delay`` with
        # ``delay >= 0`` is never before ``now``, so call_at's clamp has nothing to do.
        self._seq += 1
        handle = Handle()
        heapq.heappush(self._heap, (self._now + (delay if delay > 0.0 else 0.0), self._seq, callback, handle))
        return handle

    def call_at(self, at: float, callback: Callable[[], None]) -> Handle:
        self._seq += 1
        handle = Handle()
        now = self._now
        heapq.heappush(self._heap, (now if now > at else at, self._seq, callback, handle))
        return handle

    @property
    def waiting(self) -> int:
        """How many callbacks are in the heap (cancelled ones not yet dropped included)."""
        return len(self._heap)

    def reserve(self, count: int) -> int:
        """Take ``count`` places in the order of ties now and return the first one.

        A schedule of many callbacks (a long run's payments) is handed to the heap one at a time,
        each when the one before it runs, at the place it would have had if pushed at once
        (:meth:`call_at_place`): ties run as before, and the heap holds one entry, not all of them.
        """
        first = self._seq + 1
        self._seq += count
        return first

    def call_at_place(self, at: float, place: int, callback: Callable[[], None]) -> Handle:
        """``call_at`` at a place taken earlier by :meth:`reserve`: ties with it run in that place's order."""
        handle = Handle()
        now = self._now
        heapq.heappush(self._heap, (now if now > at else at, place, callback, handle))
        return handle

    def run(self, horizon: float = float("inf"), max_steps: int = 5_000_000) -> bool:
        """Run until nothing is scheduled (quiescence: True) or the horizon/step budget is hit."""
        heap = self._heap
        while heap:
            if heap[0][0] > horizon or self.steps >= max_steps:
                return False
            at, _, callback, handle = heapq.heappop(heap)
            if handle.cancelled:
                continue
            self._now = at
            self.steps += 1
            callback()
        return True


@contextmanager
def run_uncollected() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a run goes, and restore it after.

    A run keeps every trace record, journal row and message it makes until it ends, so the
    collector's passes, triggered by the count of objects made, find nothing to free yet
    scan an ever larger heap (a quarter to a third of a long run's time). A run makes no
    reference cycle per event; its few cycles (the rig and its drivers) are freed by the
    collector's later passes. Reference counting frees everything else as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            # The pass the collector owes for the objects the run made is taken now, inside the
            # run, rather than by whatever allocates next (a benchmark's next timing, say).
            gc.collect(0)
