"""Prometheus metrics, read from the daemon at scrape time (no counters to keep in sync)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from foss_supervisor.commands import CommandContext
from foss_supervisor.states import Health, ProcessState

__all__ = ["build_registry", "render"]

_HEALTH_VALUE = {Health.HEALTHY: 1.0, Health.UNHEALTHY: 0.0, Health.UNKNOWN: -1.0}


class _SupervisorCollector(Collector):
    def __init__(self, ctx: CommandContext, extra: Callable[[], Iterator[Metric]] | None) -> None:
        self._ctx = ctx
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        procs = list(self._ctx.supervisor.processes.values())
        state = GaugeMetricFamily("foss_supervisor_program_state", "1 for the state each program is in",
                                  labels=["program", "state"])  # fmt: skip
        health = GaugeMetricFamily("foss_supervisor_program_health", "1 healthy, 0 unhealthy, -1 unknown",
                                   labels=["program"])  # fmt: skip
        spawns = GaugeMetricFamily("foss_supervisor_program_spawns", "times the program was spawned",
                                   labels=["program"])  # fmt: skip
        uptime = GaugeMetricFamily("foss_supervisor_program_uptime_seconds", "seconds since the current spawn",
                                   labels=["program"])  # fmt: skip
        for proc in procs:
            snap: dict[str, Any] = proc.snapshot()
            for s in ProcessState:
                state.add_metric([proc.name, s.value], 1.0 if proc.state is s else 0.0)
            health.add_metric([proc.name], _HEALTH_VALUE[proc.health])
            spawns.add_metric([proc.name], float(proc.spawns))
            uptime.add_metric([proc.name], float(snap["uptime_s"] or 0.0))
        yield from (state, health, spawns, uptime)
        ready = GaugeMetricFamily("foss_supervisor_ready", "1 when the daemon is ready")
        ready.add_metric([], 1.0 if self._ctx.phase == "ready" else 0.0)
        yield ready
        if self._extra is not None:
            yield from self._extra()


def build_registry(ctx: CommandContext, extra: Callable[[], Iterator[Metric]] | None = None) -> CollectorRegistry:
    """A registry of our own (never the global one), so tests and daemons do not share state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SupervisorCollector(ctx, extra))
    ProcessCollector(namespace="foss_supervisor", registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
