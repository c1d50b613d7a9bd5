"""A bound on how many of one kind of work run at once on an event loop: an ``asyncio.Semaphore`` per loop.

A semaphore belongs to the loop it first waits on; a module-level one would break the second loop of a
process (the tests run many). :class:`LoopGate` keeps one per running loop, forgotten with the loop.
"""

from __future__ import annotations

import asyncio
import weakref

__all__ = ["LoopGate"]


class LoopGate:
    """``gate()`` is the running loop's ``asyncio.Semaphore(size)``: ``async with gate(): ...``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self) -> asyncio.Semaphore:
        """This loop's semaphore (made on first use); call it from a coroutine of that loop."""
        loop = asyncio.get_running_loop()
        gate = self._by_loop.get(loop)
        if gate is None:
            gate = self._by_loop[loop] = asyncio.Semaphore(self.size)
        return gate
