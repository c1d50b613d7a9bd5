"""One bounded poll for code that may block (the CLI, scripts, tests): a condition checked at growing
intervals until it holds or a deadline passes. Never call it on an event loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["poll_until"]

T = TypeVar("T")


def poll_until(check: Callable[[], T], timeout_s: float, max_interval_s: float = 0.1) -> T | None:
    """The first truthy value of ``check()``, or None when it is still falsy after ``timeout_s`` seconds.

    Checked at once, then after intervals growing from 5 ms by half each time up to ``max_interval_s``;
    the last check falls on the deadline. Blocks the calling thread for at most ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        if value := check():
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, max_interval_s)
