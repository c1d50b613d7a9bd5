"""Prometheus metrics, built at scrape time from what the commands return (no counters to keep in sync).

Programs (state, health, spawns, uptime), CPU and memory of every process tree (each program's, the daemon's,
its services', the pipeline worker's: the ``resources`` command's figures, the same the charts and ``top``
show, as ``foss_supervisor_tree_*{kind, name}``), the daemon (ready, its verdict: the one ``verdict.assess`` that
``/health`` gives, the supervision loop's heartbeat lag, its services, its process figures as
``foss_supervisor_process_*``; the dashboard process's own as ``foss_supervisor_dashboard_process_*``)
and pipelines: runs finished by status, the worker's starts, the last run's duration, status and
per-step rows and seconds, and the quality pass ratios of the latest report.

Named as Prometheus asks: monotonic totals are counters ending in ``_total`` (``rate()`` across daemon
restarts: a restart starts them at 0 again, which Prometheus reads as a reset), units end the name in
their base unit (``_seconds``, ``_bytes``, ``_timestamp_seconds``, ``_rows``, ``_ratio`` for 0..1).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.base.processstates import DaemonPhase, ProcessState
from foss_supervisor.web.core import Core
from foss_supervisor.web.views.overview import configured_pipelines

__all__ = ["exposition", "render", "snapshot", "trees"]

PROGRAM_STATES = tuple(state.value for state in ProcessState)  # a series per state, zeros included
VERDICTS = ("healthy", "degraded", "unhealthy")
_HEALTH_VALUE = {"healthy": 1.0, "unhealthy": 0.0, "unknown": -1.0}


async def snapshot(core: Core) -> dict[str, Any]:
    """What one scrape reports: ``{"status", "pipelines", "resources"}``, the replies of those three commands."""
    return {
        "status": await core.read("status"),
        "pipelines": await configured_pipelines(core),
        "resources": await core.call("resources"),
    }


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"foss_supervisor_{name}", doc, labels=labels)


def _counter(name: str, doc: str, labels: list[str] | None = None) -> CounterMetricFamily:
    """A monotonic total; exposed as ``foss_supervisor_<name>_total``."""
    return CounterMetricFamily(f"foss_supervisor_{name}", doc, labels=labels)


class _Snapshot(Collector):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def collect(self) -> Iterator[Metric]:
        yield from self._programs(self._data["status"])
        yield from self._pipelines(self._data["pipelines"])
        yield from self._resources(self._data["resources"])
        yield from self._objectives(self._data["status"].get("objectives") or [])

    @staticmethod
    def _objectives(objectives: list[dict[str, Any]]) -> Iterator[Metric]:
        """Freshness and uptime objectives (docs/graph.md); ``name`` is the graph node (``table:gold.t``)."""
        ok = _gauge("objective_ok", "1 while the objective is met, 0 while late or violated", ["kind", "name"])
        age = _gauge("objective_freshness_age_seconds", "seconds since the last write (or since watched)", ["name"])
        fresh = _gauge("objective_freshness_target_seconds", "fresh_within: the age at which it is late", ["name"])
        up = _gauge("objective_running_ratio", "time RUNNING over the watched part of the window (0..1)", ["name"])
        target = _gauge(
            "objective_running_target_ratio", "the uptime objective's target share RUNNING (0..1)", ["name"]
        )
        for o in objectives:
            ok.add_metric([o["kind"], o["node"]], 1.0 if o["state"] == "ok" else 0.0)
            if o["kind"] == "freshness":
                age.add_metric([o["node"]], float(o["age_s"]))
                fresh.add_metric([o["node"]], float(o["fresh_within_s"]))
            else:
                up.add_metric([o["node"]], float(o["uptime_percent"]) / 100)
                target.add_metric([o["node"]], float(o["target_percent"]) / 100)
        yield from (ok, age, fresh, up, target)

    @staticmethod
    def _programs(status: dict[str, Any]) -> Iterator[Metric]:
        state = _gauge("program_state", "1 for the state each program is in", ["program", "state"])
        health = _gauge("program_health", "1 healthy, 0 unhealthy, -1 unknown", ["program"])
        spawns = _counter("program_spawns", "times the program was spawned since the daemon started", ["program"])
        uptime = _gauge("program_uptime_seconds", "seconds since the current spawn", ["program"])
        for p in status["programs"]:
            for s in PROGRAM_STATES:
                state.add_metric([p["name"], s], 1.0 if p["state"] == s else 0.0)
            health.add_metric([p["name"]], _HEALTH_VALUE.get(p["health"], -1.0))
            spawns.add_metric([p["name"]], float(p["spawns"]))
            uptime.add_metric([p["name"]], float(p["uptime_s"] or 0.0))
        daemon = status["daemon"]
        ready = _gauge("ready", "1 when the daemon is ready")
        ready.add_metric([], 1.0 if daemon["phase"] == DaemonPhase.READY else 0.0)
        verdict = _gauge("health_status", "1 for the verdict /health gives (503 when unhealthy)", ["status"])
        for v in VERDICTS:
            verdict.add_metric([v], 1.0 if daemon["health"] == v else 0.0)
        problems = _gauge("health_problems", "reasons the daemon is unhealthy (each one listed by /health)")
        problems.add_metric([], float(len(daemon["problems"])))
        warnings = _gauge("health_warnings", "reasons the daemon is degraded (each one listed by /health)")
        warnings.add_metric([], float(len(daemon["warnings"])))
        loop = daemon.get("loop") or {}
        lag = _gauge("loop_lag_seconds", "how late the supervision loop's last heartbeat woke")
        lag.add_metric([], float(loop.get("lag_s") or 0.0))
        lag_max = _gauge("loop_lag_max_seconds", "the largest heartbeat lag of the last minute")
        lag_max.add_metric([], float(loop.get("max_lag_s") or 0.0))
        beat = _gauge("loop_last_beat_timestamp_seconds", "when the supervision loop last beat (Unix time)")
        beat.add_metric([], float(loop.get("last_beat_at") or 0.0))
        service = _gauge("service_state", "1 for the state each of the daemon's services is in", ["service", "state"])
        for svc in status.get("services", []):
            for s in PROGRAM_STATES:
                service.add_metric([svc["name"], s], 1.0 if svc["state"] == s else 0.0)
        yield from (state, health, spawns, uptime, ready, verdict, problems, warnings, lag, lag_max, beat, service)
        worker = (status.get("pipelines") or {}).get("worker")
        if worker is not None:
            starts = _counter("pipeline_worker_starts", "times the DuckDB worker process was started")
            starts.add_metric([], float(worker["starts"]))
            yield starts

    @staticmethod
    def _resources(reply: dict[str, Any]) -> Iterator[Metric]:
        labels = ["kind", "name"]
        rss = _gauge("tree_resident_memory_bytes", "resident memory of the process tree (its members summed)", labels)
        cpu = _gauge(
            "tree_cpu_ratio",
            "CPU seconds the tree used per second over the last window (1 = one core busy, more with several)",
            labels,
        )
        members = _gauge("tree_processes", "live processes in the tree: its root, descendants, escaped ones", labels)
        for kind, name, tree in trees(reply):
            if tree["pid"] is None:
                continue
            rss.add_metric([kind, name], float(tree["rss_bytes"]))
            members.add_metric([kind, name], float(tree["processes"]))
            if tree["cpu_percent"] is not None:
                cpu.add_metric([kind, name], tree["cpu_percent"] / 100)
        host = _gauge("host_cpu_ratio", "the host's CPU busy over the last window (1 = every core)")
        if reply["host"]["cpu_percent"] is not None:
            host.add_metric([], reply["host"]["cpu_percent"] / 100)
        yield from (rss, cpu, members, host)

    @staticmethod
    def _pipelines(pipelines: list[dict[str, Any]]) -> Iterator[Metric]:
        runs = _counter("pipeline_runs", "runs finished since the daemon started, by status", ["pipeline", "status"])
        running = _gauge("pipeline_running", "1 while a run is in progress", ["pipeline"])
        last_status = _gauge(
            "pipeline_last_run_status", "1 for the status of the last finished run", ["pipeline", "status"]
        )
        last_duration = _gauge(
            "pipeline_last_run_duration_seconds", "how long the last finished run took", ["pipeline"]
        )
        last_finished = _gauge(
            "pipeline_last_run_finished_timestamp_seconds", "when it finished (Unix time)", ["pipeline"]
        )
        step_rows = _gauge(
            "pipeline_step_output_rows", "rows the step wrote in the last finished run", ["pipeline", "step"]
        )
        step_seconds = _gauge(
            "pipeline_step_duration_seconds", "how long the step took in the last finished run", ["pipeline", "step"]
        )
        step_state = _gauge(
            "pipeline_step_state",
            "1 for the state of each step in the last finished run",
            ["pipeline", "step", "state"],
        )
        regressed = _gauge(
            "pipeline_step_regressed",
            "1 when the step's latest successful run took over 1.5x the median of its previous ten",
            ["pipeline", "step"],
        )
        ratio = _gauge(
            "pipeline_step_slowdown_ratio",
            "the step's latest successful run over the median of its previous ten (with ten or more)",
            ["pipeline", "step"],
        )
        quality = _gauge(
            "pipeline_quality_pass_ratio",
            "valid rows over rows checked (0..1), from the latest report",
            ["pipeline", "scope"],
        )
        for p in pipelines:
            name = p["name"]
            finished = {s.value: 0 for s in RunStatus} | p["runs_finished"]  # every status, 0 until one ends so
            for status, n in finished.items():
                runs.add_metric([name, status], float(n))
            running.add_metric([name], 1.0 if p["active_run"] else 0.0)
            last = p["last_run"]
            if last is not None:
                for s in RunStatus:
                    last_status.add_metric([name, s.value], 1.0 if last["status"] == s.value else 0.0)
                last_duration.add_metric([name], float(last["duration_s"] or 0.0))
                last_finished.add_metric([name], float(last["finished_at"] or 0.0))
                for step in last["steps"]:
                    if step["rows_out"] is not None:
                        step_rows.add_metric([name, step["name"]], float(step["rows_out"]))
                    step_seconds.add_metric([name, step["name"]], float(step["duration_s"] or 0.0))
                    for st in StepState:
                        step_state.add_metric([name, step["name"], st.value], 1.0 if step["state"] == st.value else 0.0)
            for step, trend in (p.get("step_trends") or {}).items():
                regressed.add_metric([name, step], 1.0 if trend["regressed"] else 0.0)
                if trend["ratio"] is not None:
                    ratio.add_metric([name, step], float(trend["ratio"]))
            q = (p.get("report") or {}).get("quality") or {}
            for scope in ("run", "overall"):
                if q.get(f"{scope}_pass_rate") is not None:
                    quality.add_metric([name, scope], float(q[f"{scope}_pass_rate"]))
        yield from (
            runs,
            running,
            last_status,
            last_duration,
            last_finished,
            step_rows,
            step_seconds,
            step_state,
            regressed,
            ratio,
            quality,
        )


def trees(reply: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(kind, name, figures)`` of every tree of a ``resources`` reply: the daemon, its services, the pipeline
    worker, the programs."""
    yield "daemon", "daemon", reply["daemon"]
    for name, tree in reply["services"].items():
        yield "service", name, tree
    if reply["worker"] is not None:
        yield "worker", "pipeline", reply["worker"]
    for name, tree in reply["programs"].items():
        yield "program", name, tree


def exposition(data: dict[str, Any]) -> bytes:
    """The exposition text of ``data`` (as :func:`snapshot` returns it) and of this process's figures, from a
    registry of our own each time, never the global one."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(data))
    daemon_pid = data["status"]["daemon"].get("pid")
    if isinstance(daemon_pid, int):  # the daemon's own figures, read from /proc by its PID
        ProcessCollector(namespace="foss_supervisor", pid=lambda: daemon_pid, registry=registry)
    ProcessCollector(namespace="foss_supervisor_dashboard", registry=registry)  # this process's
    return generate_latest(registry)


async def render(core: Core) -> bytes:
    """The exposition text of one scrape."""
    return exposition(await snapshot(core))
