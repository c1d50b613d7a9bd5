"""The event loop's exception handler, shared by the daemon's loop and the dashboard process's loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["LoopErrorLog"]

log = structlog.get_logger("foss_supervisor.loop")


class LoopErrorLog:
    """The event loop's exception handler: each distinct message is logged at most once per ``interval_s``.

    The loop reports some failures again and again (``socket.accept() out of system resource`` once a
    second per listening socket while descriptors run out); the log says each once, then how many
    were skipped, instead of filling the disk.
    """

    MAX_MESSAGES = 256  # distinct messages remembered; the memory is dropped when more arrive

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # message -> (last logged at, skipped since)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "unhandled error in the event loop")
        now = self._clock()
        last, skipped = self._seen.get(message, (None, 0))
        if last is not None and now - last < self.interval_s:
            self._seen[message] = (last, skipped + 1)
            return
        if len(self._seen) >= self.MAX_MESSAGES:
            self._seen.clear()
        self._seen[message] = (now, 0)
        exc = context.get("exception")
        log.error(
            "event_loop_error",
            message=message,
            skipped_since_last=skipped,
            error=f"{type(exc).__name__}: {exc}" if exc else None,
            exc_info=exc,
        )
