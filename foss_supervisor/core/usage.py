"""CPU and memory of whole process trees, measured one way for every reader (the ``resources`` command).

A *tree* is a root process and every live descendant (for a program, also what escaped it and was adopted
by the daemon: :meth:`~foss_supervisor.core.containment.Containment.tree`). Its figures:

- ``rss_bytes``: the sum of its members' resident memory (``/proc/PID/stat`` field 24, as ``top`` shows RES);
- ``cpu_percent``: CPU time its members used since the previous look at the same tree, over the wall time
  between the two looks, in percent of one core (200.0: two cores busy), as ``top`` and psutil count it.
  A member seen for the first time counts from its start when it started after the previous look, else from
  now on. None on the first look at a tree (nothing to compare with);
- ``window_s``: the seconds that ``cpu_percent`` covers;
- ``fds``: the descriptors its members hold open (those whose ``/proc/PID/fd`` can be read; None if none can);
- ``read_bytes_per_s``, ``write_bytes_per_s``: what its members made the storage layer read and write
  (``/proc/PID/io``: cached reads not counted) over the same window, counted as CPU is; None on a first look.

Looks at the same tree closer than :data:`MIN_WINDOW_S` return the figures of the last one: every reader
(the dashboard's charts, ``top``, ``/metrics``) asking within that second gets the very same numbers, and none
shortens another's window to nothing. Trees are named by their root's identity (PID and start time), so a
reused PID is a new tree. Baselines of trees not looked at for :data:`FORGET_S` are dropped.

The host's figures (:class:`HostMeter`, with psutil) follow the same rule: CPU over the time since the
previous look, the same figures within :data:`MIN_WINDOW_S`.

Reads ``/proc`` (``stat``, ``io`` and the ``fd`` folder of each member) and may take tens of milliseconds for
a thousand programs: call :meth:`UsageMeter.measure` off the event loop, from one thread at a time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil

from foss_supervisor.base.procinfo import ProcStat, fd_count, io_bytes, ticks_per_s

__all__ = ["FORGET_S", "MIN_WINDOW_S", "PAGE_BYTES", "HostMeter", "TreeUsage", "UsageMeter", "boot_clock"]

MIN_WINDOW_S = 1.0
FORGET_S = 600.0
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def boot_clock() -> float:
    """Seconds since boot on the clock ``/proc/PID/stat``'s start times count on (``CLOCK_BOOTTIME``)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True, slots=True)
class TreeUsage:
    """One tree's figures (see the module docstring); ``pid`` None: nothing runs."""

    pid: int | None
    processes: int
    rss_bytes: int
    cpu_percent: float | None
    window_s: float | None
    fds: int | None = None
    read_bytes_per_s: float | None = None
    write_bytes_per_s: float | None = None


NOTHING = TreeUsage(pid=None, processes=0, rss_bytes=0, cpu_percent=None, window_s=None)


@dataclass(slots=True)
class _Look:
    at: float  # boot clock
    ticks: dict[tuple[int, int], int]  # (pid, start_ticks) -> cpu ticks at that look
    usage: TreeUsage
    io: dict[tuple[int, int], tuple[int, int]]  # (pid, start_ticks) -> (read_bytes, write_bytes) at that look


class UsageMeter:
    """Measures trees, remembering the last look at each; ``clock`` is :func:`boot_clock` (injectable)."""

    def __init__(self, clock: Callable[[], float] = boot_clock) -> None:
        self._clock = clock
        self._looks: dict[tuple[int, int], _Look] = {}

    def measure(self, root: ProcStat | None, members: Callable[[], Iterable[ProcStat]]) -> TreeUsage:
        """The figures of the tree rooted at ``root`` (None: not running); ``members()`` lists the live tree
        (the root included), called only when the last look is older than :data:`MIN_WINDOW_S`."""
        if root is None or root.zombie:
            return NOTHING
        now = self._clock()
        key = (root.pid, root.start_ticks)
        last = self._looks.get(key)
        if last is not None and now - last.at < MIN_WINDOW_S:
            return last.usage
        alive = [m for m in members() if not m.zombie]
        ticks = {(m.pid, m.start_ticks): m.cpu_ticks for m in alive}
        io = {(m.pid, m.start_ticks): got for m in alive if (got := io_bytes(m.pid)) is not None}
        fds = [n for m in alive if (n := fd_count(m.pid)) is not None]
        cpu_percent = window = read_rate = write_rate = None
        if last is not None:
            hz = ticks_per_s()
            window = now - last.at
            born = {k for k in ticks if k not in last.ticks and k[1] / hz >= last.at}  # all their use is new
            cpu_percent = round(100.0 * _used(ticks, last.ticks, born) / hz / window, 1)
            reads = _used({k: v[0] for k, v in io.items()}, {k: v[0] for k, v in last.io.items()}, born)
            writes = _used({k: v[1] for k, v in io.items()}, {k: v[1] for k, v in last.io.items()}, born)
            read_rate, write_rate = round(reads / window, 1), round(writes / window, 1)
            window = round(window, 3)
        usage = TreeUsage(
            pid=root.pid,
            processes=len(alive),
            rss_bytes=sum(m.rss_pages for m in alive) * PAGE_BYTES,
            cpu_percent=cpu_percent,
            window_s=window,
            fds=sum(fds) if fds else None,
            read_bytes_per_s=read_rate if io else None,
            write_bytes_per_s=write_rate if io else None,
        )
        self._looks[key] = _Look(now, ticks, usage, io)
        return usage

    def forget_stale(self) -> None:
        """Drop what is remembered of trees not looked at for :data:`FORGET_S` (gone programs, old PIDs)."""
        now = self._clock()
        self._looks = {k: v for k, v in self._looks.items() if now - v.at < FORGET_S}


def _used(now: dict[tuple[int, int], int], before: dict[tuple[int, int], int], born: set[tuple[int, int]]) -> int:
    """A counter's growth over the members alive now: since the last look for those seen then, all of it for
    those born since (a member seen for the first time but older than the last look counts from now on)."""
    used = 0
    for member, value in now.items():
        if (was := before.get(member)) is not None:
            used += max(0, value - was)
        elif member in born:
            used += value
    return used


class HostMeter:
    """The host's CPU (%, all cores: 100.0 is every core busy), memory and load, and the disk of one path."""

    def __init__(self, clock: Callable[[], float] = boot_clock) -> None:
        self._clock = clock
        self._at: float | None = None
        self._last: dict[str, Any] = {}

    def measure(self, disk_path: str) -> dict[str, Any]:
        """``{cpu_percent (None on the first look), cpu_count, memory_percent, memory_total_bytes,
        memory_available_bytes, load ([1, 5, 15] min), disk_path, disk_percent, disk_total_bytes,
        disk_free_bytes}`` (the disk's three None when ``disk_path`` cannot be read)."""
        now = self._clock()
        if self._at is not None and now - self._at < MIN_WINDOW_S and self._last.get("disk_path") == disk_path:
            return self._last
        cpu = psutil.cpu_percent(interval=None)  # since the previous call: this meter's previous look
        vm = psutil.virtual_memory()
        try:
            disk: Any = psutil.disk_usage(disk_path)
        except OSError:
            disk = None
        self._last = {
            "cpu_percent": round(cpu, 1) if self._at is not None else None,
            "cpu_count": psutil.cpu_count(),
            "memory_percent": vm.percent,
            "memory_total_bytes": vm.total,
            "memory_available_bytes": vm.available,
            "load": [round(x, 2) for x in os.getloadavg()],
            "disk_path": disk_path,
            "disk_percent": disk.percent if disk else None,
            "disk_total_bytes": disk.total if disk else None,
            "disk_free_bytes": disk.free if disk else None,
        }
        self._at = now
        return self._last
