"""The commands of objectives and alerts: ``objectives``, ``alerts``, ``alert_ack`` and ``alert_silence``.

What they read and change is the daemon's :class:`~foss_supervisor.alerting.alertwatch.AlertWatch` (docs/graph.md,
"Objectives" and "Alerts"); the CLI (``foss-supervisor alerts``), the dashboard and the OpenAPI all reach them
through the registry.
"""

from __future__ import annotations

from typing import Any

from foss_supervisor.alerting.alertwatch import AlertWatch
from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.errors import CommandError

__all__ = ["objective_states"]

#: the longest silence: 30 days (seconds)
MAX_SILENCE_S = 30 * 86400.0


def objective_states(ctx: CommandContext) -> list[dict[str, Any]]:
    """The last evaluation of every objective (see Objectives.evaluate), [] when nothing watches them."""
    watch = ctx.alert_watch
    return [] if watch is None else list(watch.results)


def _watch(ctx: CommandContext) -> AlertWatch:
    if ctx.alert_watch is None:
        raise CommandError("objectives and alerts are not watched by this daemon")
    return ctx.alert_watch


@command("objectives")
async def objectives(ctx: CommandContext) -> list[dict[str, Any]]:
    """Every freshness and uptime objective with its state now: ``[{"id", "kind": "freshness"|"uptime",
    "node", "name", "state": "ok"|"late"|"violated", "detail", ...}]``; freshness adds ``fresh_within_s``,
    ``last_write_at``, ``age_s``, ``due_at``; uptime adds ``target_percent``, ``window_s``, ``uptime_percent``,
    ``up_s``, ``down_s``, ``budget_s``, ``observed_s`` (seconds; Unix seconds for ``*_at``)."""
    return _watch(ctx).objectives.evaluate()  # now, not as of the last tick; no incident is opened by a read


@command("alerts")
async def alerts(ctx: CommandContext) -> dict[str, Any]:
    """Open and recently closed alert incidents and the silences: ``{"open": [{"id", "key", "rule",
    "subject", "summary", "opened_at", "told_at", "notices", "acked", "closed_at", "state":
    "firing"|"resolved", "silenced"}], "closed": [newest first, at most 200], "silences": [{"key", "until"}],
    "dropped": int}`` (times are Unix seconds)."""
    watch = _watch(ctx)
    return watch.book.listing(watch.now())


@command("alert_ack", mutating=True, id=(int, ..., Limit(1, 2**53)))
async def alert_ack(ctx: CommandContext, id: int) -> dict[str, Any]:
    """Acknowledge the open incident ``id``: it is not told again after the quiet period; its resolved notice
    still comes. Returns the incident. Raises CommandError when no open incident has that id."""
    try:
        incident = _watch(ctx).change(lambda book: book.ack(id))
    except KeyError:
        raise CommandError(f"no open alert with id {id}") from None
    result: dict[str, Any] = incident.to_dict()
    return result


@command(
    "alert_silence", mutating=True, key=(str, ..., Limit(size=512)), for_s=(float, 7200.0, Limit(1.0, MAX_SILENCE_S))
)
async def alert_silence(ctx: CommandContext, key: str, for_s: float) -> dict[str, Any]:
    """Silence the alert ``key`` (an open incident's, or one not open yet) for ``for_s`` seconds (1 s to 30
    days; a new silence of the key replaces it): nothing about it is told meanwhile; if it still holds when the
    silence ends it is told then. Returns ``{"key", "until"}`` (Unix seconds)."""
    watch = _watch(ctx)
    until = watch.now() + for_s
    try:
        watch.change(lambda book: book.silence(key, until))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return {"key": key, "until": until}


@command("alert_unsilence", mutating=True, key=(str, ..., Limit(size=512)))
async def alert_unsilence(ctx: CommandContext, key: str) -> dict[str, Any]:
    """Lift the silence of the alert ``key`` before it ends: if its incident still holds it is told at once
    (at the next evaluation, which this causes). Returns ``{"key"}``. Raises CommandError when ``key`` is not
    silenced."""
    try:
        _watch(ctx).change(lambda book: book.unsilence(key))
    except KeyError:
        raise CommandError(f"no silence of {key!r}") from None
    return {"key": key}
