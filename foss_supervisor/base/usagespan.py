"""What this process used over a stretch of work: peak memory, CPU time and storage I/O (stdlib only).

The pipeline worker measures each step with one: :meth:`UsageSpan.start` before it, :meth:`UsageSpan.figures`
after. Every figure is of the *whole process* over the span (its other threads too: a query served during a
step counts), named ``worker_*`` where it is kept so nobody takes it for the step's own share:

- ``worker_peak_rss_bytes``: the peak resident memory (:class:`~foss_supervisor.base.peakrss.PeakRss`);
- ``worker_cpu_s``: user + system CPU seconds (``getrusage(RUSAGE_SELF)``);
- ``worker_read_bytes``, ``worker_write_bytes``: what it made the storage read and write (``/proc/self/io``).

A figure that cannot be measured (a kernel without the file, a refused reset) is left out, never guessed.
"""

from __future__ import annotations

import os
import resource

from foss_supervisor.base.peakrss import PeakRss
from foss_supervisor.base.procinfo import io_bytes

__all__ = ["UsageSpan"]


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


class UsageSpan:
    """``start()``, then ``figures()``: ``{"worker_peak_rss_bytes", "worker_cpu_s", "worker_read_bytes",
    "worker_write_bytes"}`` over the span (bytes, seconds), each present only when measured."""

    def __init__(self) -> None:
        self._peak = PeakRss()
        self._cpu = 0.0
        self._io: tuple[int, int] | None = None

    def start(self) -> None:
        self._peak.start()
        self._cpu = _cpu_s()
        self._io = io_bytes(os.getpid())

    def figures(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {"worker_cpu_s": round(max(0.0, _cpu_s() - self._cpu), 3)}
        if (peak := self._peak.bytes()) is not None:
            out["worker_peak_rss_bytes"] = peak
        now = io_bytes(os.getpid())
        if now is not None and self._io is not None:
            out["worker_read_bytes"] = max(0, now[0] - self._io[0])
            out["worker_write_bytes"] = max(0, now[1] - self._io[1])
        return out
