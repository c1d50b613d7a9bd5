"""The last hour of figures for the dashboard's charts, sampled every few seconds while the daemon runs.

Host CPU, memory and disk, the daemon's RSS, programs running, and each program's CPU and RSS: every figure
but the count comes from the ``resources`` command (the daemon measures each program's whole process tree:
the same figures ``top`` and ``/metrics`` show), the count from ``health``. Each program's figures are
sampled only while someone watches the dashboard (``watched``, or a view of the overview in the last
:data:`WATCH_S`): with 1,000 programs they cost the idle daemon about 1.5 % of a core; host figures are
always sampled.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.web.core import Core

__all__ = ["WATCH_S", "History", "mib"]

WATCH_S = 600.0  # after a look at the overview, programs' figures are sampled this long

log = structlog.get_logger("foss_supervisor.web")


def mib(n_bytes: int | None) -> float | None:
    """Bytes as MiB with one decimal, as every chart and KPI shows memory (None stays None)."""
    return None if n_bytes is None else round(n_bytes / 2**20, 1)


class History:
    """Samples every ``every_s`` seconds, keeping ``keep_s`` seconds of them (about an hour by default)."""

    def __init__(
        self,
        core: Core,
        every_s: float = 5.0,
        keep_s: float = 3600.0,
        watched: Callable[[], bool] = lambda: True,
    ) -> None:
        self._core = core
        self._watched = watched
        self._looked_at = -WATCH_S  # monotonic time of the last look at the overview
        self.every_s = every_s
        size = max(2, int(keep_s / every_s))
        self._t: deque[float] = deque(maxlen=size)
        self._host: dict[str, deque[float | None]] = {
            k: deque(maxlen=size) for k in ("cpu", "mem", "rss", "running", "disk")
        }
        self._programs: dict[str, dict[str, deque[float | None]]] = {}
        self._size = size
        self.last: dict[str, Any] | None = None  # the last ``resources`` reply (the overview's KPIs)

    async def sample(self) -> None:
        """Take one sample now (each program's figures only while someone watches)."""
        watched = self._watched() or time.monotonic() - self._looked_at < WATCH_S
        reply = await self._core.call("resources", {"programs": watched})
        running = (await self._core.read("health"))["programs"].get(ProcessState.RUNNING, 0)
        self.record(reply, running)

    def record(self, reply: dict[str, Any], running: int) -> None:
        """Append one sample: a ``resources`` reply and the count of programs running."""
        self.last = reply
        host = reply["host"]
        self._t.append(round(reply["at"], 1))
        self._host["cpu"].append(host["cpu_percent"])
        self._host["mem"].append(host["memory_percent"])
        self._host["rss"].append(mib(reply["daemon"]["rss_bytes"]))
        self._host["running"].append(running)
        self._host["disk"].append(host["disk_percent"])
        for name, tree in reply["programs"].items():
            series = self._programs.setdefault(name, self._empty())
            series["cpu"].append(tree["cpu_percent"])
            series["rss"].append(mib(tree["rss_bytes"]) if tree["pid"] else None)
        for name, series in self._programs.items():
            if name not in reply["programs"]:
                series["cpu"].append(None)
                series["rss"].append(None)

    def _empty(self) -> dict[str, deque[float | None]]:
        pad = [None] * (len(self._t) - 1)
        return {"cpu": deque(pad, maxlen=self._size), "rss": deque(pad, maxlen=self._size)}

    def touch(self) -> None:
        """Someone looked at the overview: sample each program's figures for the next :data:`WATCH_S`."""
        self._looked_at = time.monotonic()

    def series(self) -> dict[str, Any]:
        """Every sample: ``{"t": [unix s], "cpu": [%], "mem": [%], "rss": [MB], "running": [n], "disk": [%],
        "programs": {name: {"cpu": [%], "rss": [MB]}}}``, None where a program had no process."""
        out: dict[str, Any] = {"t": list(self._t), **{k: list(v) for k, v in self._host.items()}}
        out["programs"] = {n: {k: list(v) for k, v in s.items()} for n, s in self._programs.items()}
        return out

    async def run(self) -> None:
        """Sample until cancelled; a failed sample is logged and skipped, never fatal."""
        while True:
            try:
                await self.sample()
            except Exception as exc:  # a chart gap is better than a dead dashboard
                log.warning("history_sample_failed", error=repr(exc))
            await asyncio.sleep(self.every_s)

    def page_series(self, points: int = 240, program_points: int = 60) -> dict[str, Any]:
        """:meth:`series` thinned for a page: at most ``points`` host samples, the last ``program_points``
        of each program (a sparkline), so ``/`` stays small with many programs."""
        full = self.series()
        step = max(1, -(-len(full["t"]) // points))
        out = {k: v[::-1][::step][::-1] for k, v in full.items() if k != "programs"}
        out["pt"] = full["t"][-program_points:]
        out["programs"] = {n: {k: v[-program_points:] for k, v in s.items()} for n, s in full["programs"].items()}
        return out
