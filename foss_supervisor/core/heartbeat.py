"""The supervision loop's heartbeat: proof, measured, that the loop which reaps and restarts is not held up.

:class:`Heartbeat` wakes every ``interval_s`` on the daemon's event loop and records how late it woke
(the *lag*: what anything else on the loop — a SIGCHLD, a probe, a restart — would have waited too).
``status`` shows the last beat, the latest lag and the largest of the last minute
(:meth:`Heartbeat.snapshot`); ``/metrics`` exports them. A loop that never beats again is what the
systemd watchdog (``WatchdogSec=``) catches: the daemon pings it from this same loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Heartbeat"]


class Heartbeat:
    """Beats every ``interval_s`` on the running loop; keeps the lags of the last ``window_s``."""

    def __init__(
        self, interval_s: float = 0.25, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._lags: deque[float] = deque(maxlen=max(1, int(window_s / interval_s)))
        self.beats = 0
        self.last_beat_at = 0.0  # wall clock of the last beat
        self.max_lag_ever_s = 0.0

    def beat(self, lag_s: float) -> None:
        """Record one wake-up that came ``lag_s`` late."""
        self.beats += 1
        self.last_beat_at = time.time()
        self._lags.append(lag_s)
        self.max_lag_ever_s = max(self.max_lag_ever_s, lag_s)

    async def run(self) -> None:
        """Beat until cancelled."""
        while True:
            due = self._clock() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.beat(max(0.0, self._clock() - due))

    def snapshot(self) -> dict[str, Any]:
        """``{"beats", "last_beat_at" (epoch s), "lag_s" (latest), "max_lag_s" (last minute),
        "max_lag_ever_s", "interval_s"}``; lags in seconds."""
        return {
            "beats": self.beats,
            "last_beat_at": round(self.last_beat_at, 3),
            "lag_s": round(self._lags[-1], 6) if self._lags else None,
            "max_lag_s": round(max(self._lags), 6) if self._lags else None,
            "max_lag_ever_s": round(self.max_lag_ever_s, 6),
            "interval_s": self.interval_s,
        }
