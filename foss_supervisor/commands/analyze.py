"""The ``analyze`` commands: how this daemon's start-up went, or a pipeline run, and the chain that decided it.

As ``systemd-analyze critical-chain`` does for units: each program's ``@offset`` (when it first became
RUNNING, from the daemon's start) and ``+duration`` (from its first spawn to then), and the chain that set
the total: the program ready last, then the dependency it waited for that was ready last, and so on. Read
from the events of this run of the daemon (the event log, or the journal when the log has dropped the
first ones). For a run (``analyze_run``), the same of its steps, from its record: ``@`` when a step ended,
``+`` how long it ran, the chain through ``depends_on`` from the step that ended last.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.core.eventjournal import read_journal
from foss_supervisor.errors import CommandError

__all__ = ["analyze_run", "analyze_startup", "critical_chain", "run_step_times", "startup_times"]


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


@command("analyze_run", run_id=(str, ..., Limit(size=128)))
async def analyze_run(ctx: CommandContext, run_id: str) -> dict[str, Any]:
    """The steps of pipeline run ``run_id`` and the chain of them that decided its length.

    ``{"run_id", "pipeline", "status", "started_at" (epoch s), "total_s" (None while it runs), "steps":
    [{name, offset_s, duration_s}] (by offset: when the step ended, from the run's start; None: it did not
    run), "chain": [{name, offset_s, duration_s}] (from the step that ended last, through its dependency that
    ended last)}``. Raises CommandError when no pipelines are configured or no such run is kept.
    """
    if ctx.pipelines is None:
        raise CommandError("no pipelines are configured")
    run = ctx.pipelines.get_run(run_id)
    spec = ctx.pipelines.specs.get(str(run["pipeline"]))
    names = [str(s["name"]) for s in run.get("steps") or []]
    depends = {s.name: list(s.depends_on) for s in spec.steps} if spec is not None else {}
    depends = {name: [d for d in depends.get(name, []) if d in names] for name in names}
    times = run_step_times(run, depends)
    finished = run.get("finished_at")
    return {
        "run_id": run["run_id"],
        "pipeline": run["pipeline"],
        "status": run["status"],
        "started_at": run["started_at"],
        "total_s": None if finished is None else round(float(finished) - float(run["started_at"]), 3),
        "steps": sorted(times.values(), key=lambda t: (t["offset_s"] is None, t["offset_s"] or 0.0, t["name"])),
        "chain": critical_chain(times, depends),
    }


def run_step_times(run: dict[str, Any], depends: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Each step of ``run`` (a RunRecord's dict) that ran: when it ended, as an offset (s) from the run's start,
    and how long it ran; steps that did not run have None for both."""
    start = float(run["started_at"])
    records = {str(s["name"]): s for s in run.get("steps") or []}
    out = {}
    for name in depends:
        s = records.get(name, {})
        began, took = s.get("started_at"), s.get("duration_s")
        ran = began is not None and took is not None
        out[name] = {
            "name": name,
            "offset_s": round(float(began) + float(took) - start, 3) if ran else None,
            "duration_s": round(float(took), 3) if ran else None,
        }
    return out


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
        if e.get("new") == ProcessState.STARTING:
            spawned.setdefault(name, float(e["at"]))
        elif e.get("new") == ProcessState.RUNNING and name not in running:
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
