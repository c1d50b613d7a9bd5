"""The one definition of healthy: :func:`assess` is what ``/health``, ``status``, ``/metrics`` and the
dashboard all show (the ``health`` command returns it; ``status`` carries it under ``daemon``).

==========  =====  ===========================================================================================
status      HTTP   when
==========  =====  ===========================================================================================
unhealthy   503    something that should run is not running or not healthy, or a pipeline is failing or
                   overdue: the daemon is starting or stopping; one of its subsystems failed (dashboard,
                   pipelines, hooks); the pipeline worker is crash-looping (BACKOFF); a program is FATAL,
                   crash-looping in BACKOFF, a job that exited with an unexpected code, waiting behind a
                   dependency that gave up, or failing its health probes (a process that is stopped, by
                   SIGSTOP or a debugger, or a zombie fails the next probe whatever its kind); a pipeline's
                   last finished run failed or was abandoned, or its timer or cron schedule went by (plus a
                   minute's grace) with no run
degraded    200    everything runs, but an operator should look (``warnings``): the last reload was refused
                   (the previous config still runs), writes fail (logs, state files: a full disk), a
                   program crashed several times in a row and is up again, not yet for ``backoff.reset_after``,
                   or a pipeline's last finished run ended succeeded_with_warnings (a quality threshold, a
                   failed publish: its first warning is shown), or a freshness objective is late or an
                   uptime objective violated (docs/graph.md)
healthy     200    none of the above
==========  =====  ===========================================================================================

A reload in progress is not a problem (the programs keep running); paused pipelines and running ones are
never overdue.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from foss_supervisor.base.pipelinestates import RUN_FAILED, RunStatus
from foss_supervisor.base.processstates import DaemonPhase

if TYPE_CHECKING:
    from foss_supervisor.commands.registry import CommandContext

__all__ = ["assess"]

_SERVING_PHASES = (DaemonPhase.READY, DaemonPhase.RELOADING)
_FAILED_RUNS = RUN_FAILED


def assess(ctx: CommandContext, now: float | None = None) -> dict[str, Any]:
    """The verdict on the daemon ``ctx`` at ``now`` (Unix seconds, default: the clock).

    Returns ``{"ok": bool (not unhealthy), "status": "healthy"|"degraded"|"unhealthy", "phase": str,
    "problems": [str] (each makes it unhealthy), "warnings": [str] (each makes it degraded),
    "programs": {state: count}}``.
    """
    problems = [] if ctx.phase in _SERVING_PHASES else [f"daemon is {ctx.phase}"]
    problems += [*ctx.problems, *ctx.supervisor.problems()]
    warnings = [*ctx.warnings, *ctx.supervisor.warnings()]
    counts: dict[str, int] = {}
    for proc in ctx.supervisor.processes.values():  # probes call this often: no snapshot, no Enum.value
        state: str = proc.state  # a StrEnum member is its own value
        counts[state] = counts.get(state, 0) + 1
    if ctx.pipelines is not None:
        problems += ctx.pipelines.problems()  # its worker crash-looping
        overdue = ctx.pipelines.overdue(time.time() if now is None else now)
        for name in ctx.pipelines.specs:
            last = next((r for r in ctx.pipelines.runs(name, 5) if r["finished_at"] is not None), None)
            if last is not None and last["status"] in _FAILED_RUNS:
                problems.append(f"pipeline {name}: last run {last['run_id']} {last['status']}: {last['error'] or ''}")
            elif last is not None and last["status"] == RunStatus.SUCCEEDED_WITH_WARNINGS:
                said = last["error"] or next((w for s in last["steps"] for w in s.get("warnings") or ()), "")
                warnings.append(f"pipeline {name}: last run {last['run_id']} succeeded_with_warnings: {said}")
            if name in overdue:
                problems.append(f"pipeline {name}: {overdue[name]}")
    if (watch := ctx.alert_watch) is not None:  # the last evaluation: probes call this often
        warnings += [f"objective {o['node']} {o['state']}: {o['detail']}" for o in watch.results if o["state"] != "ok"]
    status = "unhealthy" if problems else ("degraded" if warnings else "healthy")
    return {
        "ok": not problems,
        "status": status,
        "phase": ctx.phase,
        "problems": problems,
        "warnings": warnings,
        "programs": counts,
    }
