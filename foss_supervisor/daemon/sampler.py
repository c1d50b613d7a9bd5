"""Resource samples for the history: every ``history.sample_interval`` the ``resources`` command's figures go
on the bus as one :class:`~foss_supervisor.core.events.ResourcesSampled` event, which the event log numbers
and the journal keeps (``docs/history.md``). One event per pass, however many programs: a subscriber hears
one line a minute, not one per program."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from foss_supervisor.commands import CommandContext, dispatch
from foss_supervisor.core.events import ResourcesSampled

__all__ = ["sample_from", "sample_resources"]

log = structlog.get_logger("foss_supervisor.history")
IDLE_RECHECK_S = 30.0  # with sampling off, how often the (reloadable) setting is looked at again


def sample_from(figures: dict[str, Any], health: Mapping[str, str] | None = None) -> ResourcesSampled:
    """The event of one ``resources`` reply, each tree without its ``window_s`` (the interval says it); each
    program's entry also carries ``health`` (``health[name]``: its probes' verdict at the sample, the periodic
    sample of probe results beside the journal's ``HealthChanged`` at each change)."""

    def tree(t: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if t is None else {k: v for k, v in t.items() if k != "window_s"}

    said = health or {}
    return ResourcesSampled(
        programs=[{"name": n, **(tree(t) or {}), "health": said.get(n)} for n, t in figures["programs"].items()],
        services=[{"name": n, **(tree(t) or {})} for n, t in figures["services"].items()],
        daemon=tree(figures["daemon"]) or {},
        worker=tree(figures.get("worker")),
        host=figures["host"],
    )


async def sample_resources(ctx: CommandContext, interval: Callable[[], float]) -> None:
    """Publish a sample every ``interval()`` seconds (read each time: a reload may change it; 0 pauses)."""
    while True:
        every = interval()
        await asyncio.sleep(every if every > 0 else IDLE_RECHECK_S)
        if every <= 0:
            continue
        try:
            figures = await dispatch(ctx, "resources", {"programs": True})
        except Exception as exc:  # a failed measurement is one lost sample, never the daemon's end
            log.warning("resource_sample_failed", error=f"{type(exc).__name__}: {exc}")
            continue
        health = {name: str(p.health) for name, p in ctx.supervisor.processes.items()}
        ctx.bus.publish(sample_from(figures, health))
