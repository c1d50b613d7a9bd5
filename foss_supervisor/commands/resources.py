"""The ``resources`` command: CPU and memory of every supervised process tree and of the host, measured one way
(:mod:`foss_supervisor.core.usage`) for the dashboard's charts, ``top`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.base.procinfo import ProcStat, read_stat
from foss_supervisor.commands.registry import CommandContext, command
from foss_supervisor.core.containment import UNREADABLE, spawn_tag, tree_of
from foss_supervisor.core.usage import HostMeter, UsageMeter

__all__: list[str] = []

# the figures' memory: one per daemon process, like the processes it measures; one measurement at a time
_trees = UsageMeter()
_host = HostMeter()
_measuring = threading.Lock()

#: (name, root PID, spawn tag) of one tree to measure; the tag finds what escaped the root
_Target = tuple[str, int | None, str]


@command("resources", programs=(bool, True))
async def resources(ctx: CommandContext, programs: bool) -> dict[str, Any]:
    """CPU and memory of each program's whole process tree, of the daemon, its services (``@dashboard``) and
    the pipeline worker, and the host's CPU, memory, load and the disk of the state dir. The dashboard's
    charts, ``top`` and ``/metrics`` all show these figures, so they agree. ``programs=false`` leaves the
    programs out (the light call the dashboard makes while nobody watches).

    Returns ``{"at": unix s, "host": {cpu_percent, cpu_count, memory_percent, memory_total_bytes,
    memory_available_bytes, load: [1, 5, 15 min], disk_path, disk_percent, disk_total_bytes, disk_free_bytes},
    "daemon": TREE, "services": {name: TREE}, "worker": TREE or null (no pipelines), "programs": {name: TREE}}``
    with ``TREE = {pid, processes, rss_bytes, cpu_percent, window_s, fds, read_bytes_per_s,
    write_bytes_per_s}``: ``pid`` the root (null when it does not run), ``processes`` the live members (the
    root, its descendants, and what escaped it), ``rss_bytes`` their resident memory summed, ``cpu_percent``
    their CPU over the last ``window_s`` seconds in percent of one core (200.0: two cores busy; null on the
    first look at a tree), ``fds`` the descriptors they hold, the two rates what they made the storage read
    and write over the window (bytes/s; null on a first look). The daemon's tree is the daemon
    alone (its children are the programs). The host's ``cpu_percent`` is of all cores (100.0: all busy).
    Asked again within a second, every figure is the same as the last answer's.
    """
    sup = ctx.supervisor
    progs: list[_Target] = [(n, p.pid, p.spawn_tag) for n, p in sup.processes.items()] if programs else []
    services: list[_Target] = [(n, p.pid, p.spawn_tag) for n, p in ctx.services.processes.items()]
    # the worker as its supervised process has it (worker_status would also read its RSS, which is not needed)
    worker_pid = ctx.pipelines.worker_snapshot().get("pid") if ctx.pipelines is not None else None
    state_dir = str(ctx.config.state_dir)
    adopted = sup.containment.reaper.adopted_pids()  # on the loop: it reads the child watcher's own table

    def measure() -> dict[str, Any]:
        with _measuring:
            escaped = _escaped_by_tag(adopted)
            out = {
                "host": _host.measure(state_dir),
                "daemon": _tree(os.getpid(), lambda root: [root]),
                "services": {name: _tree(pid, _members(escaped, tag)) for name, pid, tag in services},
                "worker": None if ctx.pipelines is None else _tree(worker_pid, _members(escaped, "")),
                "programs": {name: _tree(pid, _members(escaped, tag)) for name, pid, tag in progs},
            }
            _trees.forget_stale()
            return out

    return {"at": round(time.time(), 3), **await asyncio.to_thread(measure)}


def _escaped_by_tag(adopted: Iterable[int]) -> dict[str, list[int]]:
    """The daemon's adopted children by the spawn tag of the program they escaped (read once per answer, not
    once per program: a thousand programs would read every adopted process's environment a thousand times)."""
    out: dict[str, list[int]] = {}
    for pid in adopted:
        tag = spawn_tag(pid)
        if tag and tag != UNREADABLE:
            out.setdefault(tag, []).append(pid)
    return out


def _members(escaped: dict[str, list[int]], tag: str) -> Callable[[ProcStat], Iterable[ProcStat]]:
    """A tree's live members: the root and its descendants, and the processes of its spawn that escaped and
    were adopted by the daemon, with theirs (found by the spawn tag: this spawn's or one under it)."""

    def members(root: ProcStat) -> Iterable[ProcStat]:
        found = tree_of(root.pid)
        if tag:
            for other, pids in escaped.items():
                if other == tag or other.startswith(tag + "/"):
                    found.extend(e for pid in pids for e in tree_of(pid))
        return found

    return members


def _tree(pid: int | None, members: Callable[[ProcStat], Iterable[ProcStat]]) -> dict[str, Any]:
    root = read_stat(pid) if pid else None
    if root is None:
        return dataclass_to_json(_trees.measure(None, list))
    return dataclass_to_json(_trees.measure(root, lambda: members(root)))
