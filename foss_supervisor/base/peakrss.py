"""This process's peak resident memory over a stretch of work, as Linux counts it (``VmHWM``).

``VmHWM`` in ``/proc/self/status`` is the high-water mark of the resident set since the process started, or
since ``5`` was last written to ``/proc/self/clear_refs`` (Linux 4.0+), which sets it back to the current RSS.
:class:`PeakRss` does that at the start and reads the mark at the end: the peak of the *whole process* in
between (everything its threads did meanwhile, not one task's share). Where the reset is refused (an old
kernel, a read-only ``/proc``) the figure would be the lifetime peak, so none is given. Stdlib only.
"""

from __future__ import annotations

import contextlib

__all__ = ["PeakRss", "peak_rss_bytes"]

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def peak_rss_bytes(status: str = _STATUS) -> int | None:
    """``VmHWM`` of ``status`` (a ``/proc/PID/status`` file) in bytes, or None when it cannot be read."""
    with contextlib.suppress(OSError, ValueError), open(status, encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # the kernel says kB (KiB)
    return None


class PeakRss:
    """``start()`` resets the mark; ``bytes()`` is the process's peak RSS since then (None when unknown)."""

    def __init__(self) -> None:
        self._reset = False

    def start(self) -> None:
        """Set the high-water mark back to the current RSS (remembered when the kernel refuses)."""
        try:
            with open(_CLEAR_REFS, "w", encoding="ascii") as f:
                f.write("5")
            self._reset = True
        except OSError:
            self._reset = False

    def bytes(self) -> int | None:
        """The peak since :meth:`start` in bytes, or None (never started, reset refused, unreadable)."""
        return peak_rss_bytes() if self._reset else None
