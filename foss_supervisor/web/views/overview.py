"""``/``: key figures, the medallion flow of each pipeline, the programs with their controls, recent events, and
the audit: who asked for which change, through which door, and how it ended."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.core.events import CommandCompleted
from foss_supervisor.errors import CommandError
from foss_supervisor.web.core import LISTED_EVENTS, Core
from foss_supervisor.web.history import History, mib
from foss_supervisor.web.icons import event_line
from foss_supervisor.web.keys import CORE, EVENTS, HISTORY
from foss_supervisor.web.pagecache import shared_page
from foss_supervisor.web.responder import respond

__all__ = [
    "AUDIT_SHOWN",
    "audit_line",
    "configured_pipelines",
    "layers_of",
    "overview",
    "pipelines_with_runs",
    "run_history",
    "system_resources",
]


def system_resources(reply: dict[str, Any]) -> dict[str, Any]:
    """The overview's KPIs from a ``resources`` reply: the host's CPU, memory, disk (of the state dir) and load,
    and the daemon's RSS (MB). The figures are the daemon's measurement, as the charts, ``top`` and
    ``/metrics`` show them."""
    host = reply["host"]
    free = host["disk_free_bytes"]
    return {
        "cpu_percent": host["cpu_percent"],
        "cpus": host["cpu_count"],
        "memory_percent": host["memory_percent"],
        "memory_used_mb": round((host["memory_total_bytes"] - host["memory_available_bytes"]) / 2**20),
        "memory_total_mb": round(host["memory_total_bytes"] / 2**20),
        "disk_percent": host["disk_percent"],
        "disk_free_gb": None if free is None else round(free / 2**30, 1),
        "load": host["load"],
        "daemon_rss_mb": mib(reply["daemon"]["rss_bytes"]),
    }


def layers_of(steps: list[str], declared: dict[str, str] | None = None) -> dict[str, str]:
    """Step name -> medallion layer (bronze, silver, gold): as the pipeline declares it (``layer:``), else by
    position (first, middle, last third). The engine knows no pipeline's step names: each declares its own."""
    n = max(len(steps), 1)
    known = declared or {}
    return {s: known.get(s, ("bronze", "silver", "gold")[min(2, 3 * i // n)]) for i, s in enumerate(steps)}


def run_history(runs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Per finished run, oldest first: ``{"t": [start], "duration": [s], "rows": [ingested], "pass_rate": [%]}``."""
    out: dict[str, list[Any]] = {"t": [], "duration": [], "rows": [], "pass_rate": []}
    for run in sorted((r for r in runs if r["finished_at"] is not None), key=lambda r: r["started_at"]):
        steps = {s["name"]: s for s in run["steps"]}
        validate = steps.get("validate", {})  # a retry's reused validate carries its source run's figures
        checked = (validate.get("metrics") if validate.get("state") != "skipped" else None) or {}
        valid, rejected = checked.get("valid"), checked.get("rejected")
        out["t"].append(run["started_at"])
        out["duration"].append(run["duration_s"])
        out["rows"].append(run.get("ingested"))  # its shipped ingest steps' lines (history.RunRecord.ingested)
        total = (valid or 0) + (rejected or 0)
        out["pass_rate"].append(round(100 * valid / total, 2) if valid is not None and total else None)
    return out


async def configured_pipelines(core: Core) -> list[dict[str, Any]]:
    """The ``pipelines`` command's answer, or an empty list when the daemon has none configured."""
    try:
        found: list[dict[str, Any]] = await core.read("pipelines")
    except CommandError:  # "no pipelines are configured"
        return []
    return found


async def pipelines_with_runs(core: Core, limit: int = 10) -> list[dict[str, Any]]:
    """Every pipeline (command ``pipelines``) with its last ``limit`` runs and each step's layer."""
    out = []
    for p in await configured_pipelines(core):  # shared replies: new dicts, never changed in place
        runs = await core.read("pipeline_runs", {"name": p["name"], "limit": limit})
        out.append(
            {**p, "recent_runs": runs, "layers": layers_of(p["steps"], p.get("layers")), "history": run_history(runs)}
        )
    return out


AUDIT_SHOWN = 12  # state-changing commands listed on the overview, newest first (the journal keeps them all)


def audit_line(e: dict[str, Any]) -> dict[str, Any]:
    """``{"at", "text", "ok"}`` of a ``CommandCompleted`` event: ``stop api by uid 1000 via web: done`` (or
    ``refused: <why>``); what the command was about is its ``names``, ``name`` or ``pipeline`` argument."""
    args = e.get("args") or {}
    about = args.get("names") or args.get("name") or args.get("pipeline") or ""
    target = " ".join(str(a) for a in about) if isinstance(about, list) else str(about)
    who = f"uid {e['uid']}" if e.get("uid") is not None else "the daemon"
    outcome = "done" if e.get("ok") else f"refused: {e.get('error') or 'no reason given'}"
    text = f"{e.get('command')} {target}".strip() + f" by {who} via {e.get('via')}: {outcome}"
    return {"at": e["at"], "text": text, "ok": bool(e.get("ok"))}


def _listed(e: dict[str, Any]) -> dict[str, Any]:
    """``{"at", "text"}``: a recent event as the list shows it (the live ones arrive with the same words)."""
    return {"at": e["at"], "text": event_line(e)}


@shared_page()
async def overview(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE]
    status = await core.read("status", {"ports": True})  # what each program listens on, under its name
    programs = status["programs"]
    data = {
        "status": status,
        "health": await core.read("health"),
        "running": sum(1 for p in programs if p["state"] == ProcessState.RUNNING),
        "total": len(programs),
        "resources": system_resources(request.app[HISTORY].last or await core.call("resources", {"programs": False})),
        "generated_at": time.time(),
        "pipelines": await pipelines_with_runs(core, 30),
        "series": _looked_at(request).page_series(),
        "events": [
            {"at": e["at"], "text": event_line(e)} for e in request.app[EVENTS].recent(40) if e["type"] in LISTED_EVENTS
        ][:20],
        "audit": [audit_line(e) for e in request.app[EVENTS].recent(1000) if e["type"] == CommandCompleted.type][
            :AUDIT_SHOWN
        ],
    }
    return await respond(request, "index.html", data)


def _looked_at(request: web.Request) -> History:
    """The chart history, told that someone is looking (so it samples each program for a while)."""
    history = request.app[HISTORY]
    history.touch()
    return history
