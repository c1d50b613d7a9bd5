"""The last hour of figures for the dashboard's charts, sampled every few seconds while the daemon runs.

Host CPU and memory, the daemon's RSS, programs running, and each program's CPU and RSS (by its PID,
read with psutil). Programs come from the ``status`` command, like every other figure the web shows.
Each program's figures are sampled only while someone watches the dashboard (``watched``, or a view of
the overview in the last :data:`WATCH_S`): with 1,000 programs they cost the idle daemon about 1.5 % of
a core; host figures are always sampled.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import psutil
import structlog

from foss_supervisor.web.core import Core

__all__ = ["WATCH_S", "History"]

WATCH_S = 600.0  # after a look at the overview, programs' figures are sampled this long

log = structlog.get_logger("foss_supervisor.web")


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
        self._procs: dict[int, psutil.Process] = {}
        self._daemon: psutil.Process | None = None  # the daemon's process (the dashboard runs in another)
        self._size = size
        self._state_dir: str | None = None

    async def sample(self) -> None:
        """Take one sample now (each program's figures only while someone watches)."""
        watched = self._watched() or time.monotonic() - self._looked_at < WATCH_S
        if watched:
            programs = (await self._core.read("status"))["programs"]
            running = sum(1 for p in programs if p["state"] == "RUNNING")
        else:  # the light command: state counts, no snapshot of every program
            programs = []
            running = (await self._core.read("health"))["programs"].get("RUNNING", 0)
        self._t.append(round(time.time(), 1))
        self._host["cpu"].append(psutil.cpu_percent(interval=None))
        self._host["mem"].append(psutil.virtual_memory().percent)
        self._host["rss"].append(await self._daemon_rss_mb())
        self._host["running"].append(running)
        self._host["disk"].append(await self._disk_percent())
        seen = set()
        for p in programs:
            cpu, rss = self._measure(p["pid"])
            series = self._programs.setdefault(p["name"], self._empty())
            series["cpu"].append(cpu)
            series["rss"].append(rss)
            seen.add(p["name"])
        for name, series in self._programs.items():
            if name not in seen:
                series["cpu"].append(None)
                series["rss"].append(None)
        live = {p["pid"] for p in programs if p["pid"]}
        self._procs = {pid: proc for pid, proc in self._procs.items() if pid in live}

    async def _daemon_rss_mb(self) -> float | None:
        """The daemon's RSS (MB), its PID asked once from ``status`` (None when it cannot be read)."""
        try:
            if self._daemon is None or not self._daemon.is_running():
                self._daemon = psutil.Process(int((await self._core.read("status"))["daemon"]["pid"]))
            return round(self._daemon.memory_info().rss / 2**20, 1)
        except (psutil.Error, KeyError, TypeError, ValueError):
            return None

    async def _disk_percent(self) -> float | None:
        """How full (%) the state dir's file system is (its path from ``status``, asked once)."""
        if self._state_dir is None:
            self._state_dir = str((await self._core.read("status"))["daemon"]["state_dir"])
        try:
            return float(psutil.disk_usage(self._state_dir).percent)
        except OSError:
            return None

    def _empty(self) -> dict[str, deque[float | None]]:
        pad = [None] * (len(self._t) - 1)
        return {"cpu": deque(pad, maxlen=self._size), "rss": deque(pad, maxlen=self._size)}

    def _measure(self, pid: int | None) -> tuple[float | None, float | None]:
        """(CPU percent since the last sample, RSS in MB) of a program's main process, or Nones."""
        if not pid:
            return None, None
        try:
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                proc.cpu_percent(interval=None)  # the first call only starts the measurement
            return round(proc.cpu_percent(interval=None), 1), round(proc.memory_info().rss / 2**20, 1)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None, None

    def touch(self) -> None:
        """Someone looked at the overview: sample each program's figures for the next :data:`WATCH_S`."""
        self._looked_at = time.monotonic()

    def latest(self, key: str) -> float | None:
        """The last sample of a host series (``cpu``, ``mem``, ``rss``, ``running``, ``disk``), None before
        the first."""
        values = self._host[key]
        return values[-1] if values else None

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
