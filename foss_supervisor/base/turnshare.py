"""Clients' share of the event loop: work for clients begins only while the loop's current turn has room.

asyncio runs in turns: each turn waits for I/O and timers, then runs every callback that is ready, one
after the other. Supervision's own work (a child's exit, the spawn that replaces it, a stop's timer)
is such a callback, so it waits for the turn in progress to end: the length of a turn is the delay that
clients' requests add to supervision, and a restart, which takes several turns (the exit, the new
process's pipes), pays it each time. A flood of ``status`` requests from local clients, 16 of them per
turn at about a millisecond each, made restarts 4x slower than a bare spawn (``benchmarks/chaos.py``,
phase ``control``).

:class:`TurnShare` is the one gate every client request of the control socket passes before it runs: the
first in a turn always begins (a command is never cut, so one is the least a turn can give); more begin
only while less than ``budget_s`` has passed since the turn's first began. The others wait in arrival
order and are woken for a later turn, a few at a time (as many as fitted the last turn, one more while
they all fit). So clients keep their throughput, and what they add to a turn is bounded by the budget plus
the request that crossed it: twice that at most, where a turn meets the end of one count and the start of
the next (the count restarts at a callback early in each turn, not at the turn's exact start).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

__all__ = ["DEFAULT_BUDGET_S", "TurnShare"]

DEFAULT_BUDGET_S = 0.002  # clients' work that may begin in one turn of the loop, after its first request


class TurnShare:
    """A FIFO gate that bounds how much clients' work begins in one turn of the running event loop.

    ``budget_s`` (seconds, > 0): once this long has passed since the first request of a turn began, no
    more begin in that turn. ``clock`` (seconds, monotonic; default :func:`time.perf_counter`) is a seam
    for tests. Use :meth:`take` right before the synchronous part of a request; the gate measures the
    turn, not the request, so nothing has to be reported back. Only for use on one event loop.

    Each turn with waiters runs, in this order: :meth:`_reset` (counts afresh), the waiters woken for it
    (each begins, or goes back to the front of the line when the turn has no room left), then
    :meth:`_wake`, which wakes the next ones for the next turn. Both are scheduled by the previous turn's
    :meth:`_wake` around its wake-ups, which is what puts them in that order.
    """

    def __init__(self, budget_s: float = DEFAULT_BUDGET_S, clock: Callable[[], float] = time.perf_counter) -> None:
        if not budget_s > 0:
            raise ValueError(f"budget_s must be a positive number of seconds, not {budget_s!r}")
        self.budget_s = budget_s
        self._clock = clock
        self._queue: deque[asyncio.Future[None]] = deque()
        self._turn_started = 0.0  # clock() when the first request of this turn began
        self._begun = 0  # requests begun in this turn
        self._turned_back = 0  # woken waiters that found no room in this turn
        self._marked = False  # a reset is due at the start of the next turn
        self._waking = False  # a wake-up is due at the end of the next turn's woken waiters
        self._batch = 1  # waiters woken per turn: as many as fitted the last time, one more while all fit
        self._woken = 0  # waiters woken that have not resumed yet (newcomers go behind them)

    @property
    def waiting(self) -> int:
        """Requests waiting for a later turn, now."""
        return len(self._queue)

    async def take(self) -> None:
        """Return in a turn of the loop that has room for one more request (FIFO among waiters).

        Returns at once when nobody waits and this turn has room. Cancelling a waiting caller removes
        it from the line; nothing else is lost.
        """
        if not self._queue and not self._woken and self._room():
            self._begin()
            return
        place: int | None = None  # None: at the back; else this place from the front
        while True:
            fut = asyncio.get_running_loop().create_future()
            if place is None:
                self._queue.append(fut)
            else:
                self._queue.insert(place, fut)
            if not self._waking:
                self._waking = True
                asyncio.get_running_loop().call_soon(self._wake)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self._queue:
                    self._queue.remove(fut)
                elif fut.done() and not fut.cancelled():
                    self._woken -= 1  # woken, then cancelled before it resumed: it just leaves
                raise
            self._woken -= 1
            if self._room():
                self._begin()
                return
            place = self._turned_back  # no room after all: first in line for the next turn, in arrival order
            self._turned_back += 1

    def _room(self) -> bool:
        self._mark()
        return self._begun == 0 or self._clock() - self._turn_started < self.budget_s

    def _begin(self) -> None:
        if self._begun == 0:
            self._turn_started = self._clock()
        self._begun += 1

    def _mark(self) -> None:
        """Make sure a reset runs at the start of the next turn (it ends this turn's count)."""
        if not self._marked:
            self._marked = True
            asyncio.get_running_loop().call_soon(self._reset)

    def _reset(self) -> None:
        self._marked = False
        self._begun = 0
        self._turned_back = 0

    def _wake(self) -> None:
        """After this turn's woken waiters: wake the next ones, to run in the next turn after its reset."""
        self._waking = False
        if self._turned_back:
            self._batch = max(1, self._begun - self._turned_back)
        elif self._begun >= self._batch:
            self._batch += 1
        if not self._queue:
            return
        self._mark()  # scheduled before the wake-ups: the next turn counts afresh before they run
        woken = 0
        while self._queue and woken < self._batch:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_result(None)
                woken += 1
        self._woken += woken
        self._waking = True  # after the wake-ups: runs once they have begun or turned back
        asyncio.get_running_loop().call_soon(self._wake)
