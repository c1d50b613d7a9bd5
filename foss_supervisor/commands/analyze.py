"""The ``analyze`` command: how this daemon's start-up went, and the chain of programs that decided it.

As ``systemd-analyze critical-chain`` does for units: each program's ``@offset`` (when it first became
RUNNING, from the daemon's start) and ``+duration`` (from its first spawn to then), and the chain that set
the total: the program ready last, then the dependency it waited for that was ready last, and so on. Read
from the events of this run of the daemon (the event log, or the journal when the log has dropped the
first ones).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from foss_supervisor.commands.registry import CommandContext, command
from foss_supervisor.core.eventjournal import read_journal

__all__ = ["analyze_startup", "critical_chain", "startup_times"]


@command("analyze_startup")
async def analyze_startup(ctx: CommandContext) -> dict[str, Any]:
    """Start-up times of this run of the daemon.

    ``{"boot", "started_at" (epoch s), "total_s" (to the last program ready; None while one wanted running is
    still on its way), "programs": [{name, offset_s, duration_s}] (by offset; None: not RUNNING yet),
    "chain": [{name, offset_s, duration_s}] (the critical chain, last first)}``.
    """
    events, dropped = ctx.events.since(0)
    if dropped:  # the first events are gone from memory: the journal has them (within a second)
        events = await asyncio.to_thread(
            _from_journal, ctx.config.state_dir / "history", ctx.events.boot, ctx.started_at, events
        )
    depends = {p.name: list(p.cfg.depends_on) for p in ctx.supervisor.processes.values()}
    times = startup_times(events, ctx.started_at, depends)
    ready = [t["offset_s"] for t in times.values() if t["offset_s"] is not None]
    wanted = {p.name for p in ctx.supervisor.processes.values() if p.wanted}
    waiting = any(t["offset_s"] is None for name, t in times.items() if name in wanted)
    return {
        "boot": ctx.events.boot,
        "started_at": ctx.started_at,
        "total_s": None if waiting or not ready else max(ready),
        "programs": sorted(times.values(), key=lambda t: (t["offset_s"] is None, t["offset_s"] or 0.0, t["name"])),
        "chain": critical_chain(times, depends),
    }


def startup_times(
    events: list[dict[str, Any]], started_at: float, depends: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Each program's first spawn and first RUNNING after ``started_at``, as offsets (s) from it."""
    spawned: dict[str, float] = {}
    running: dict[str, float] = {}
    for e in events:
        name = e.get("name")
        if e.get("type") != "StateChanged" or name not in depends:
            continue
        if e.get("new") == "STARTING":
            spawned.setdefault(name, float(e["at"]))
        elif e.get("new") == "RUNNING" and name not in running:
            running[name] = float(e["at"])
    out = {}
    for name in depends:
        at = running.get(name)
        first = spawned.get(name, at)
        out[name] = {
            "name": name,
            "offset_s": None if at is None else round(at - started_at, 3),
            "duration_s": None if at is None or first is None else round(at - first, 3),
        }
    return out


def critical_chain(times: dict[str, dict[str, Any]], depends: dict[str, list[str]]) -> list[dict[str, Any]]:
    """From the program ready last, each step to the dependency ready last, until one waited for none."""
    ready = {n: t for n, t in times.items() if t["offset_s"] is not None}
    if not ready:
        return []
    current = max(ready.values(), key=lambda t: (t["offset_s"], t["name"]))
    chain = [current]
    seen = {current["name"]}
    while True:
        deps = [ready[d] for d in depends.get(current["name"], []) if d in ready and d not in seen]
        if not deps:
            return chain
        current = max(deps, key=lambda t: (t["offset_s"], t["name"]))
        chain.append(current)
        seen.add(current["name"])


def _from_journal(folder: Path, boot: str, started_at: float, kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's events from the journal's files (from the day it started), then those still only in memory."""
    events = {e["seq"]: e for e in read_journal(folder, started_at, boot=boot) if isinstance(e.get("seq"), int)}
    for e in kept:
        events.setdefault(int(e["seq"]), e)
    return [events[s] for s in sorted(events)]
