"""The ``why`` command: the cause chain of a program's state, from the daemon's own records.

Not a sentence made up for the state, but what the daemon saw: the reason of the program's last edge
(``stop requested by uid 1000 via web``), its recent exits (from the event log: how many, over how long,
with what code or signal), the last lines of its output, and, for each dependency that is not ready, that
dependency's own chain (``depends on db, which is FATAL <- db exited 1 ...``), to any depth without loops.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from foss_supervisor.base.wanted import as_wanted
from foss_supervisor.commands.registry import CommandContext, command
from foss_supervisor.core.logview import LogSource, tail
from foss_supervisor.errors import CommandError

__all__ = ["why"]

EXIT_STATES = ("EXITED", "BACKOFF", "FATAL")
LAST_LINES = 2  # of the program's output, in a chain
MAX_DEPTH = 6  # dependencies followed


@command("why", name=(str, ...))
async def why(ctx: CommandContext, name: str) -> dict[str, Any]:
    """Why ``name`` (a program, or a service such as ``@dashboard``) is in its state.

    ``{"name", "state", "wanted", "as_wanted": bool, "chain": [text, ...]}``: ``chain[0]`` is ``NAME STATE``,
    each next item a cause of the one before, e.g. ``["api BACKOFF", "exited 3 times in 41 s, last: exit 1",
    "last lines: could not connect to server", "depends on db, which is FATAL", "db FATAL", ...]``. Raises
    CommandError for an unknown name.
    """
    snapshots = {p.name: p.snapshot() for p in ctx.supervisor.processes.values()}
    snapshots |= {s["name"]: s for s in ctx.services.snapshots()}
    if name not in snapshots:
        raise CommandError(f"no program {name!r}; known: {', '.join(sorted(snapshots))}")
    events = ctx.events.recent(2000)  # newest first
    chain: list[str] = []
    await _explain(ctx, snapshots, events, name, chain, set(), 0)
    first = snapshots[name]
    return {
        "name": name,
        "state": first["state"],
        "wanted": first["wanted"],
        "as_wanted": _as_wanted(first),
        "chain": chain,
    }


def _as_wanted(p: dict[str, Any]) -> bool:
    return as_wanted(p) and p.get("health") != "unhealthy"


async def _explain(
    ctx: CommandContext,
    snapshots: dict[str, dict[str, Any]],
    events: list[dict[str, Any]],
    name: str,
    chain: list[str],
    seen: set[str],
    depth: int,
) -> None:
    p = snapshots[name]
    seen.add(name)
    chain.append(f"{name} {p['state']}" + (" (as wanted)" if _as_wanted(p) else ""))
    mine = [e for e in events if e.get("type") == "StateChanged" and e.get("name") == name]
    edge = next((e for e in mine if e.get("new") == p["state"]), None)
    if p.get("reason"):
        at = f" at {time.strftime('%H:%M:%S', time.localtime(edge['at']))}" if edge else ""
        chain.append(f"{p['reason']}{at}")
    if p["state"] in EXIT_STATES or (p["state"] == "STARTING" and p.get("spawns", 0) > 1):
        exits = _exits(mine)
        if exits:
            chain.append(exits)
        lines = (
            await asyncio.to_thread(tail, LogSource(name, Path(p["log_file"])), LAST_LINES) if p.get("log_file") else []
        )
        lines = [ln.strip() for ln in lines if ln.strip()]
        if lines:
            chain.append("last lines: " + " | ".join(line[:200] for line in lines))
    if p.get("health") == "unhealthy" and p.get("health_detail"):
        chain.append(f"unhealthy: {p['health_detail']}")
    if _as_wanted(p) or depth >= MAX_DEPTH:
        return
    for dep in p.get("depends_on") or []:
        d = snapshots.get(dep)
        if d is None or dep in seen or (d["state"] == "RUNNING" and d.get("health") != "unhealthy"):
            continue
        chain.append(f"depends on {dep}, which is {d['state']}" + (" and unhealthy" if d["state"] == "RUNNING" else ""))
        await _explain(ctx, snapshots, events, dep, chain, seen, depth + 1)


def _exits(mine: list[dict[str, Any]]) -> str:
    """``exited 3 times in 41 s, last: exit 1`` (or ``killed by signal 9``), from the newest run of exits."""
    exits = []
    for e in mine:  # newest first; the run of exits ends at an operator's start or a stop
        if e.get("old") == "STOPPED" or e.get("new") == "STOPPED":
            break
        if e.get("new") in EXIT_STATES and e.get("exit_code") is not None and e.get("old") != "BACKOFF":
            exits.append(e)
    if not exits:
        return ""
    code = int(exits[0]["exit_code"])
    last = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    if len(exits) == 1:
        return f"exited once, {last}"
    return f"exited {len(exits)} times in {exits[0]['at'] - exits[-1]['at']:.0f} s, last: {last}"
