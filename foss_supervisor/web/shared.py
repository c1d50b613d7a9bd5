"""Shared results ("single flight" with a short reuse): callers asking for the same key at once wait for
one computation, and its result serves later callers for ``max_age_s`` while the ``generation`` they
give is unchanged. Used for the core's read-only replies (:mod:`foss_supervisor.web.core`) and for
rendered pages (:mod:`foss_supervisor.web.pagecache`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SharedResults"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedResults(Generic[K, V]):
    """Results by key: key -> (generation, started at, the computation in progress or done).

    At most ``max_keys`` keys are remembered (forgotten all at once beyond: keys can be open-ended).
    """

    def __init__(self, max_keys: int) -> None:
        self._max_keys = max_keys
        self._entries: dict[K, tuple[Hashable, float, asyncio.Future[V]]] = {}

    async def get(self, key: K, generation: Hashable, max_age_s: float, make: Callable[[], Awaitable[V]]) -> V:
        """The result for ``key``: one in progress, or a finished one younger than ``max_age_s`` of the same
        ``generation``; else ``make()`` starts a new one. A failed result is not kept (raised to each caller
        that waited for it); one caller cancelled does not cancel the others' result.
        """
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is None or hit[0] != generation or (hit[2].done() and now - hit[1] >= max_age_s):
            if len(self._entries) >= self._max_keys:
                self._entries.clear()
            task = asyncio.ensure_future(make())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen, even if every caller left
            hit = (generation, now, task)
            self._entries[key] = hit
        try:
            return await asyncio.shield(hit[2])
        except Exception:
            if self._entries.get(key) is hit:
                del self._entries[key]
            raise
