"""``/pipeline-management``, ``/runs/{run_id}`` and the run reports ``/reports/{name}/{run_id|latest}.html``."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from foss_supervisor.base.pipelinestates import STEP_SUCCEEDED
from foss_supervisor.errors import SupervisorError
from foss_supervisor.pipeline.events import StepLog
from foss_supervisor.web.history import mib
from foss_supervisor.web.keys import CORE, EVENTS
from foss_supervisor.web.pagecache import shared_page
from foss_supervisor.web.responder import respond
from foss_supervisor.web.security import REPORT_CSP
from foss_supervisor.web.views.overview import configured_pipelines, layers_of, pipelines_with_runs

__all__ = ["STEP_RUNS", "pipeline_management", "report", "run_page", "step_history"]

STEP_RUNS = 30  # finished runs the per-step charts show
REPORT_FILE = re.compile(r"^(?P<stem>latest|[A-Za-z0-9_-]{1,100})\.(?P<ext>html|json)$")


def step_history(runs: list[dict[str, Any]], steps: list[str], limit: int = STEP_RUNS) -> dict[str, Any]:
    """Each step over the last ``limit`` finished runs (run records as ``pipeline_runs`` gives them), oldest
    first: ``{"t": [run start, epoch s], "pt": the same, "steps": {step: {"duration": [s], "rows": [rows out],
    "peak_mib": [the worker's peak RSS during the step, MiB]}}}``; None where the step did not succeed in a
    run (or, for ``peak_mib``, was not measured)."""
    finished = sorted((r for r in runs if r["finished_at"] is not None), key=lambda r: r["started_at"])[-limit:]
    t = [r["started_at"] for r in finished]
    out: dict[str, dict[str, list[Any]]] = {s: {"duration": [], "rows": [], "peak_mib": []} for s in steps}
    for run in finished:
        by_name = {s["name"]: s for s in run["steps"]}
        for step, series in out.items():
            record = by_name.get(step)
            ok = record is not None and record["state"] in STEP_SUCCEEDED
            peak = (record.get("metrics") or {}).get("worker_peak_rss_bytes") if ok and record else None
            series["duration"].append(record["duration_s"] if ok and record else None)
            series["rows"].append(record["rows_out"] if ok and record else None)
            series["peak_mib"].append(mib(peak) if isinstance(peak, int) else None)
    return {"t": t, "pt": t, "steps": out}


@shared_page()
async def pipeline_management(request: web.Request) -> web.StreamResponse:
    """Each pipeline with its controls, live steps, figures, tables and the history of its last 50 runs; per
    step over the last 30 (:func:`step_history`) with its regression flag (the command's ``step_trends``)."""
    pipelines = await pipelines_with_runs(request.app[CORE], 50)
    for p in pipelines:
        p["step_history"] = step_history(p["recent_runs"], p["steps"])
        p["recent_runs"] = p["recent_runs"][:20]
        try:  # what the last run changed (commands/snapshots.py); kept by the runner, so cheap on a reload
            p["last_diff"] = await request.app[CORE].call("pipeline_diff", {"name": p["name"], "timeout_s": 10.0})
        except SupervisorError as exc:
            p["last_diff"] = {"error": str(exc), "tables": []}
        if p.get("partitions"):  # each partition with its last partition run (commands/pipelines.py)
            try:
                p["partition_list"] = await request.app[CORE].call("pipeline_partitions", {"name": p["name"]})
            except SupervisorError as exc:
                p["partition_list"] = {"error": str(exc), "partitions": []}
    return await respond(request, "pipelines.html", {"pipelines": pipelines})


async def run_page(request: web.Request) -> web.StreamResponse:
    """One run: its steps on a timeline, rows in and out, errors, and a link to its report."""
    core = request.app[CORE]
    try:
        run = await core.call("pipeline_run_info", {"run_id": request.match_info["run_id"]})
    except SupervisorError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    report = await core.call("pipeline_report", {"name": run["pipeline"], "run_id": run["run_id"]})
    declared = next((p for p in await configured_pipelines(core) if p["name"] == run["pipeline"]), {})
    start = run["started_at"]
    end = run["finished_at"] or max(
        [start, *((s["started_at"] or start) + (s["duration_s"] or 0) for s in run["steps"])]
    )
    span = max(end - start, 1e-6)
    for s in run["steps"]:
        offset = ((s["started_at"] or start) - start) / span
        s["bar"] = {"left": round(100 * offset, 2), "width": round(max(0.5, 100 * (s["duration_s"] or 0) / span), 2)}
    logged = await core.call(
        "log_read", {"source": "pipeline", "offset": -1, "max_bytes": 1024 * 1024, "contains": run["run_id"]}
    )
    step_lines = [
        f"{e['step']} {e['level']}: {e['message']}"
        for e in reversed(request.app[EVENTS].recent(1000))
        if e["type"] == StepLog.type and e["run_id"] == run["run_id"]
    ]
    data = {
        "log": logged["lines"][-200:],
        "step_log": step_lines[-500:],
        "run": run,
        "layers": layers_of([s["name"] for s in run["steps"]], declared.get("layers")),
        "report": report["json"],
        "has_report": report["html"] is not None,
    }
    return await respond(request, "run.html", data)


async def report(request: web.Request) -> web.StreamResponse:
    """A run report as written by the pipeline (a self-contained page, served under a no-script policy)."""
    match = REPORT_FILE.match(request.match_info["file"])
    if match is None:
        raise web.HTTPNotFound()
    stem = match["stem"]
    try:
        found = await request.app[CORE].call(
            "pipeline_report",
            {"name": request.match_info["name"], "run_id": "" if stem == "latest" else stem},
        )
    except SupervisorError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    if match["ext"] == "json":
        if found["json"] is None:
            raise web.HTTPNotFound(text="no report for that run\n")
        return web.json_response(found["json"])
    if found["html"] is None:
        raise web.HTTPNotFound(text="no report yet: the pipeline has not finished that run\n")
    return web.Response(text=found["html"], content_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})
