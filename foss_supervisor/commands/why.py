"""The ``why`` command: the cause chain of a program's, pipeline's, step's, table's or run's state, from the
daemon's own records.

Not a sentence made up for the state, but what the daemon saw. For a program: the reason of its last edge
(``stop requested by uid 1000 via web``), its recent exits (from the event log: how many, over how long,
with what code or signal), the last lines of its output, and, for each dependency that is not ready, that
dependency's own chain (``depends on db, which is FATAL <- db exited 1 ...``), to any depth without loops.
For anything else on the graph (docs/graph.md), the walk up its edges to the first node on each path that
is not as wanted (:mod:`foss_supervisor.graph.causes`: a late table, the step that failed to write it, that
step's error in its run, the program feeding it, stopped by hand), and everything downstream it affects.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.base.processstates import Health, ProcessState, is_exit_edge
from foss_supervisor.base.wanted import as_wanted
from foss_supervisor.commands.graph import whole_graph
from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.core.logview import LogSource, tail
from foss_supervisor.errors import CommandError
from foss_supervisor.graph import causes

__all__ = ["why"]

EXIT_STATES = (ProcessState.EXITED, ProcessState.BACKOFF, ProcessState.FATAL)
LAST_LINES = 2  # of the program's output, in a chain
MAX_DEPTH = 6  # dependencies followed


@command("why", name=(str, ..., Limit(size=512)))
async def why(ctx: CommandContext, name: str) -> dict[str, Any]:
    """Why ``name`` is in its state: a program, a service (``@dashboard``), a pipeline, a table
    (``schema.table``), a graph node id (``step:orders/enrich``, ``table:gold.t``) or a run id.

    ``{"name", "kind", "state", "wanted", "as_wanted": bool, "chain": [text, ...], "affected": [node id, ...]}``:
    ``chain[0]`` is ``NAME STATE``, each next item a cause of the one before, e.g. ``["api BACKOFF", "exited 3
    times in 41 s, last: exit 1", "last lines: could not connect to server", "depends on db, which is FATAL",
    "db FATAL", ...]`` or ``["table gold.daily_revenue late", "not written for 3h (fresh_within 2h)", "written
    by step orders/aggregate, which is failed", ...]``; ``affected``: the graph's nodes downstream of it,
    nearest first (a run: its pipeline's). ``wanted`` is a program's (running or stopped), else null. Raises
    CommandError for a name that is none of these.
    """
    snapshots = {p.name: p.snapshot() for p in ctx.supervisor.processes.values()}
    snapshots |= {s["name"]: s for s in ctx.services.snapshots()}
    events = ctx.events.recent(2000)  # newest first
    if name in snapshots:
        chain: list[str] = []
        await _explain(ctx, snapshots, events, name, chain, set(), 0)
        first = snapshots[name]
        graph, _ = await whole_graph(ctx)
        return {
            "name": name,
            "kind": "program",
            "state": first["state"],
            "wanted": first["wanted"],
            "as_wanted": _as_wanted(first),
            "chain": chain,
            "affected": causes.affected(graph, f"program:{name}"),
        }
    return await _on_graph(ctx, snapshots, events, name)


async def _on_graph(
    ctx: CommandContext, snapshots: dict[str, dict[str, Any]], events: list[dict[str, Any]], name: str
) -> dict[str, Any]:
    """``why`` for a pipeline, step, table or run: the walk up the graph (graph/causes.py)."""
    graph, _ = await whole_graph(ctx)
    service = ctx.pipelines
    runs: dict[str, Any] = {}
    if service is not None:
        runs = {p["name"]: p.get("last_run") for p in service.overview()}
    node_id = causes.node_for(graph, name)
    if node_id is None:
        run = _run(ctx, name)
        if run is None:
            known = sorted(n.id for n in graph.nodes if n.kind != "folder")
            known += sorted(s for s in snapshots if s.startswith("@"))
            raise CommandError(
                f"nothing named {name!r}: not a program, service, pipeline, table, run or graph node;"
                f" known: {', '.join(known[:40])}" + (f" and {len(known) - 40} more" if len(known) > 40 else "")
            )
        pipeline = f"pipeline:{run.get('pipeline')}"
        good = run.get("status") in (RunStatus.SUCCEEDED, RunStatus.RUNNING)
        return {
            "name": name,
            "kind": "run",
            "state": run.get("status"),
            "wanted": None,
            "as_wanted": good,
            "chain": causes.run_chain(run),
            "affected": causes.affected(graph, pipeline) if not good else [],
        }
    asked: list[str] = []  # programs on the way, explained afterwards (their chains read logs: asynchronous)

    def program(prog: str) -> list[str]:
        asked.append(prog)
        return [f"\0{prog}"]

    chain = causes.chain(graph, node_id, runs, program)
    for prog in dict.fromkeys(asked):
        mine: list[str] = []
        if prog in snapshots:
            await _explain(ctx, snapshots, events, prog, mine, set(), 0)
        at = chain.index(f"\0{prog}")
        chain[at : at + 1] = mine or [f"program {prog}"]
    node = next(n for n in graph.nodes if n.id == node_id)
    return {
        "name": name,
        "kind": node.kind,
        "state": node.state,
        "wanted": None,
        "as_wanted": causes.is_wanted(node) and len(chain) == 1,  # nothing wrong with it nor found upstream
        "chain": chain,
        "affected": causes.affected(graph, node_id),
    }


def _run(ctx: CommandContext, run_id: str) -> dict[str, Any] | None:
    if ctx.pipelines is None:
        return None
    try:
        return ctx.pipelines.get_run(run_id)
    except CommandError:
        return None


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
    if p["state"] in EXIT_STATES or (p["state"] == ProcessState.STARTING and p.get("spawns", 0) > 1):
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
        if d is None or dep in seen or (d["state"] == ProcessState.RUNNING and d.get("health") != Health.UNHEALTHY):
            continue
        chain.append(
            f"depends on {dep}, which is {d['state']}"
            + (" and unhealthy" if d["state"] == ProcessState.RUNNING else "")
        )
        await _explain(ctx, snapshots, events, dep, chain, seen, depth + 1)


def _exits(mine: list[dict[str, Any]]) -> str:
    """``exited 3 times in 41 s, last: exit 1`` (or ``killed by signal 9``), from the newest run of exits."""
    exits = []
    for e in mine:  # newest first; the run of exits ends at an operator's start or a stop
        if ProcessState.STOPPED in (e.get("old"), e.get("new")):
            break
        if is_exit_edge(str(e.get("old")), str(e.get("new")), e.get("exit_code")):
            exits.append(e)
    if not exits:
        return ""
    code = int(exits[0]["exit_code"])
    last = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    if len(exits) == 1:
        return f"exited once, {last}"
    return f"exited {len(exits)} times in {exits[0]['at'] - exits[-1]['at']:.0f} s, last: {last}"
