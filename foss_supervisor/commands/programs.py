"""The commands of the daemon and its programs: ping, status, start, stop, restart, is_ready, signal, reload,
scale, shutdown, help and health."""

from __future__ import annotations

import asyncio
import os
import signal as signal_module
import time
from typing import Any

from foss_supervisor import __version__
from foss_supervisor.base.listening import listening_sockets, ports_of
from foss_supervisor.commands.alerts import objective_states
from foss_supervisor.commands.registry import COMMANDS, CommandContext, Limit, command
from foss_supervisor.commands.verdict import assess
from foss_supervisor.core.containment import tree_of
from foss_supervisor.errors import CommandError

__all__ = ["parse_signal"]


@command("ping")
async def ping(ctx: CommandContext) -> dict[str, Any]:
    """Liveness: answers at once with the daemon's PID, phase (starting, ready, reloading, stopping),
    config file, state dir and instance id (the one written in its PID lock file: proof that the daemon
    answering is the one holding the lock, so another ``start`` can tell whether it is the same instance)."""
    cfg = ctx.config
    return {
        "pong": True,
        "pid": os.getpid(),
        "phase": ctx.phase,
        "version": __version__,
        "config": str(cfg.source),
        "state_dir": str(cfg.state_dir),
        "instance": ctx.instance_id,
    }


def _listening(roots: dict[str, int | None]) -> dict[str, list[str]]:
    """Each program's listening TCP addresses: its whole tree's (the server a wrapper started counts)."""
    sockets = listening_sockets()
    return {name: ports_of((m.pid for m in tree_of(pid)), sockets) if pid else [] for name, pid in roots.items()}


@command("status", names=(list, []), ports=(bool, False))
async def status(ctx: CommandContext, names: list[str], ports: bool) -> dict[str, Any]:
    """The daemon and its programs (all, or those names select: see ``selectors``); with ``ports``, each
    program also lists what its process tree listens on, ``ports: ["127.0.0.1:8080", "*:443"]`` (TCP,
    read from /proc in a thread: it costs a directory listing per process).

    ``{"daemon": {pid, version, phase, uptime_s, config, state_dir, dashboard_url, health, problems,
    warnings, loop: {beats, last_beat_at, lag_s, max_lag_s, max_lag_ever_s, interval_s}}, "services": [the
    daemon's own children, each like a program: ``@dashboard``, and ``@pipeline-worker`` when pipelines
    are configured], "programs": [{name, group, state, health, health_detail, pid, exit_code, completed,
    uptime_s, spawns, wanted ("running"|"stopped"), disabled, reason, next_attempt_at, retry_in_s, status_text,
    command, depends_on, dependency_conditions, log_file, env}], "groups": {group: [program, ...]} (the
    config's ``groups:``), "objectives": [each objective's last evaluation, as the ``objectives`` command
    gives it]}`` (secrets redacted, as in every reply),
    plus, when pipelines are configured, ``"pipelines": {"worker": {name, state, reason, pid, busy,
    uptime_s, rss_bytes, startup_s, starts, restarts, last_restart, recycles, recycle_pending, limit_hits,
    memory_limit, limits, warehouse, active_runs}}`` (see WorkerService.status); ``status --json`` prints it.
    """
    cfg = ctx.config
    verdict = assess(ctx)
    programs = []
    for proc in ctx.supervisor.select(names) if names else ctx.supervisor.processes.values():
        snap = proc.snapshot()
        snap["env"] = dict(proc.cfg.env)
        programs.append(snap)
    if ports:
        found = await asyncio.to_thread(_listening, {p["name"]: p["pid"] for p in programs})
        for p in programs:
            p["ports"] = found.get(p["name"], [])
    result: dict[str, Any] = {
        "daemon": {
            "pid": os.getpid(),
            "version": __version__,
            "phase": ctx.phase,
            "uptime_s": round(time.time() - ctx.started_at, 3),
            "config": str(cfg.source),
            "state_dir": str(cfg.state_dir),
            "dashboard_url": cfg.dashboard_url,
            # the verdict /health gives (verdict.assess): healthy, degraded (warnings) or unhealthy (problems)
            "health": verdict["status"],
            "problems": verdict["problems"],
            "warnings": verdict["warnings"],
            # the supervision loop's heartbeat: how late it woke (what a SIGCHLD would have waited)
            "loop": ctx.heartbeat.snapshot(),
        },
        "services": ctx.services.snapshots(),
        "programs": programs,
        "groups": {name: list(members) for name, members in cfg.groups.items()},
        "objectives": objective_states(ctx),  # freshness and uptime (the ``objectives`` command's shape)
    }
    if ctx.pipelines is not None:
        result["services"].append(ctx.pipelines.worker_snapshot())
        result["pipelines"] = {"worker": ctx.pipelines.worker_status()}
    return result


@command("start", mutating=True, names=(list, ...), wait_s=(float, 30.0))
async def start(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Start programs (a group name starts all its replicas); waits up to wait_s for RUNNING."""
    return await ctx.supervisor.act("start", names, wait_s)


@command("stop", mutating=True, names=(list, ...), wait_s=(float, 60.0))
async def stop(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Stop programs; they stay stopped, across daemon restarts too, until started by hand."""
    return await ctx.supervisor.act("stop", names, wait_s)


@command("restart", mutating=True, names=(list, ...), wait_s=(float, 60.0), rolling=(bool, False))
async def restart(ctx: CommandContext, names: list[str], wait_s: float, rolling: bool) -> list[dict[str, Any]]:
    """Stop programs (stop_signal, then SIGKILL after stop_timeout) and start them again, dependents
    stopped first and each started once its dependencies are ready.

    rolling: one at a time (the replicas of ``web`` in order), each waited for until ready (RUNNING
    and, when probed, healthy; wait_s each at most) before the next is stopped, so the set never drops;
    it stops at the first that does not come back ready, and returns the ones it restarted.
    """
    if rolling:
        return await ctx.supervisor.rolling_restart(names, _bounded_wait(wait_s))
    return await ctx.supervisor.act("restart", names, wait_s)


MAX_WAIT_S = 3600.0


def _bounded_wait(wait_s: float) -> float:
    if not 0.0 <= wait_s <= MAX_WAIT_S:  # NaN too
        raise CommandError(f"wait_s must be between 0 and {MAX_WAIT_S:g} seconds")
    return wait_s


@command("is_ready", names=(list, ["all"]), wait_s=(float, 0.0))
async def is_ready(ctx: CommandContext, names: list[str], wait_s: float) -> dict[str, Any]:
    """Whether every selected program is ready (RUNNING and, when probed, healthy; a completed one-shot job
    counts; a disabled program only when named), as process-compose's ``project is-ready``.

    wait_s (0 to 3600): wait that long at most for all to be ready; 0 answers at once. The wait ends
    early when each program that is not ready will not be without an operator (stopped, FATAL, or
    waiting on a dependency that gave up). Returns
    ``{"ready": bool, "programs": [{"name", "state", "health", "ready", "reason"}]}``.
    """
    programs = await ctx.supervisor.readiness(names, _bounded_wait(wait_s))
    return {"ready": all(p["ready"] for p in programs), "programs": programs}


@command("signal", mutating=True, signal=(str, ...), names=(list, ...))
async def signal_(ctx: CommandContext, signal: str, names: list[str]) -> list[dict[str, Any]]:
    """Send a signal (a name like HUP, SIGUSR1, or a number) to programs' process groups.

    Returns each selected program's name, pid and whether it was signalled (a stopped one is not).
    """
    sig = parse_signal(signal)
    out = []
    for proc in ctx.supervisor.select(names):
        sent = proc.signal(sig)
        out.append(
            {
                "name": proc.name,
                "pid": proc.pid,
                "signal": sig.name,
                "sent": sent,
                "reason": "" if sent else f"not running ({proc.state})",
            }
        )
    return out


def parse_signal(text: str) -> signal_module.Signals:
    """A signal from ``HUP``, ``SIGHUP``, ``hup`` or ``1``; CommandError names the unknown one."""
    try:
        if text.isdigit():
            return signal_module.Signals(int(text))
        name = text.upper()
        return signal_module.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise CommandError(f"unknown signal {text!r}; e.g. HUP, TERM, USR1, 9") from None


@command("reload", mutating=True, dry_run=(bool, False))
async def reload(ctx: CommandContext, dry_run: bool) -> dict[str, Any]:
    """Re-read the config file: restart changed programs, start new ones, stop removed ones.

    A broken file is refused with the reason and the running config stays. With dry_run the plan
    is returned and nothing changes. The plan's ``impact`` lists, per pipeline, the steps whose SQL changed
    and every table downstream that would be rebuilt (``{"pipelines": {NAME: {"changed_steps",
    "removed_steps", "setup_changed", "downstream_tables"}}, "breaking": [], "error"}``); a change that drops
    or retypes a column another step reads or a table's ``contract:`` declares is refused (ConfigRefused,
    dry run too) naming the file, the step, the column and each consumer (docs/graph.md).
    """
    return await ctx.reload(dry_run)


@command("scale", mutating=True, name=(str, ...), replicas=(int, ..., Limit(1, 1000)))
async def scale(ctx: CommandContext, name: str, replicas: int) -> dict[str, Any]:
    """Run ``replicas`` copies of program ``name`` now (1 to 1000), as process-compose and PM2 scale.

    The config file is re-read with that count: new copies start, surplus ones stop (the highest
    numbers first), the running ones are not touched; other programs keep their running counts. Names
    follow the file's count: a program the file runs once is NAME, scaled up NAME, NAME-1, NAME-2...;
    one the file runs several times is NAME-0, NAME-1... at any count. Refused when the file holds
    other changes (reload those first). A scale outlives reloads while the file's ``replicas`` of that
    program stays as it was (editing it is the new word); a daemon restart uses the file's counts.
    Returns the reload plan (added, changed, removed, unchanged).
    """
    sets = ctx.config.replica_sets
    if name not in sets:
        raise CommandError(f"no such program: {name!r}; known: {', '.join(sorted(sets))}")
    wanted = {n: len(members) for n, members in sets.items()} | {name: replicas}  # earlier scales stay
    preview = await ctx.reload(True, wanted)
    ours = {name, *sets[name], *(f"{name}-{i}" for i in range(replicas))}
    others = sorted({*preview["added"], *preview["changed"], *preview["removed"]} - ours)
    if others or preview["needs_daemon_restart"]:
        pending = ", ".join(others + preview["needs_daemon_restart"])
        raise CommandError(f"the config file has other changes ({pending}); run `reload` first, then scale")
    return await ctx.reload(False, wanted)


@command("shutdown", mutating=True)
async def shutdown(ctx: CommandContext) -> dict[str, Any]:
    """Stop every program in reverse dependency order, then the daemon (exit 0)."""
    ctx.request_shutdown()
    return {"stopping": True, "pid": os.getpid()}


@command("help")
async def help_(ctx: CommandContext) -> dict[str, Any]:
    """Every command with its parameters and documentation."""
    return {
        name: {
            "doc": cmd.doc,
            "mutating": cmd.mutating,
            "params": {p: {"type": t.__name__, "required": d is ...} for p, (t, d) in cmd.params.items()},
        }
        for name, cmd in sorted(COMMANDS.items())
    }


# ------------------------------------------------------------------------------------------
# Read-only views the dashboard and /metrics need, as plain data (transports never walk core objects).


@command("health")
async def health(ctx: CommandContext) -> dict[str, Any]:
    """Healthy, degraded or unhealthy, with the reasons: the one verdict
    (:func:`foss_supervisor.commands.verdict.assess`, whose table says what counts) that ``/health``,
    ``status``, ``/metrics`` and the dashboard show.

    Unhealthy (``/health`` answers 503): something that should run is not running or not healthy, or a
    pipeline is failing or overdue. Degraded (200, under ``warnings``): a refused reload, failing
    writes, a program up again after crashes in a row. Returns ``{"ok": bool, "status":
    "healthy"|"degraded"|"unhealthy", "phase": str, "problems": [str], "warnings": [str],
    "programs": {state: count}}``.
    """
    return assess(ctx)
