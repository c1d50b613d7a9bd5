"""The pipelines' façade: what the commands see of the package (``PipelineService``; a test checks that they
import nothing else of it). It owns the runner, the supervised worker and its client, the triggers and the
pipelines' state on disk (paused schedules, input fingerprints); the engine itself (worker, steps,
history) is the rest of :mod:`foss_supervisor.pipeline`.

How runs start (on demand, by a trigger, as a retry) is :mod:`~foss_supervisor.pipeline.engine.scheduling`, its
base. Queries and exports go straight to the worker's client; pipeline events go to the bus unchanged.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.diskroom import export_refusal, floor_refusal
from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.config import Config
from foss_supervisor.core.events import EventBus
from foss_supervisor.core.statestore import read_json
from foss_supervisor.errors import CommandError, ConfigError, ConfigRefused
from foss_supervisor.pipeline.engine.backfill import Backfills
from foss_supervisor.pipeline.engine.configcheck import check_pipeline_files
from foss_supervisor.pipeline.engine.fingerprint import FingerprintStore, definition_digest, landing_signature
from foss_supervisor.pipeline.engine.flowrun import flow_run, last_worked
from foss_supervisor.pipeline.engine.limits import worker_limits
from foss_supervisor.pipeline.engine.regression import TREND_RUNS, StepRegressionWatch, step_trends
from foss_supervisor.pipeline.engine.reloadcheck import sql_problems
from foss_supervisor.pipeline.engine.retry import latest_run, retry_options
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.schedule import overdue_reason
from foss_supervisor.pipeline.engine.spec import PipelineSpec, check_isolation, load_for_daemon
from foss_supervisor.pipeline.engine.triggers import Triggers
from foss_supervisor.pipeline.errors import PipelineError
from foss_supervisor.pipeline.events import RunFinished
from foss_supervisor.pipeline.worker.callables import load_callable

__all__ = ["PipelineService", "check_pipeline_files", "load_specs", "worker_limits"]

log = structlog.get_logger("foss_supervisor.pipelines")


def load_specs(config: Config) -> list[PipelineSpec]:
    """Load every configured pipeline with the daemon's folders; a broken one is a ConfigError."""
    specs = [
        load_for_daemon(pc.file, name=pc.name, landing=pc.landing, reference=pc.reference, data_dir=config.data_path)
        for pc in config.pipelines.values()
    ]
    check_isolation(specs)
    return specs


class PipelineService(Backfills):
    """The pipelines' façade: the commands see this and nothing else of the package (a test checks it).

    Owns the PipelineRunner (runs), its worker (``runner.worker``, supervised as ``@pipeline-worker``) and
    the worker's client (``runner.client``: queries and exports go straight to it), and the triggers.
    """

    def __init__(self, config: Config, bus: EventBus, write_failures: WriteFailures | None = None) -> None:
        self.config = config
        self._bus = bus
        self.specs = {s.name: s for s in load_specs(config)}
        self.runner = PipelineRunner(
            list(self.specs.values()),
            state_dir=config.state_dir,
            on_event=bus.publish,
            limits=worker_limits(config),
            write_failures=write_failures,
            history_days=config.history_retention_days,
        )
        self._group: asyncio.TaskGroup | None = None
        self._triggers = Triggers(self._try_start, lambda: self.config.watch_interval_s)
        self._fingerprints = FingerprintStore(config.state_dir / "pipeline_inputs.json")
        # pipelines whose schedules (timer, cron, landing files, after:) an operator paused; kept across restarts
        self._paused_file = config.state_dir / "pipelines_paused.json"
        paused = read_json(self._paused_file)
        self._paused = {n for n in paused if isinstance(n, str)} if isinstance(paused, list) else set()
        self._write_failures = write_failures or WriteFailures()
        self.started_at = time.time()  # a schedule is not overdue for the time the daemon was down
        self._finished: dict[str, dict[str, int]] = {}  # pipeline -> status -> runs finished since start
        self._redefined_while_paused = set()  # their config_changed run starts when resumed (unless one ran)
        self._run_inputs = {}
        self._skips = {}
        self._backfills = {}
        self._backfilling = set()
        self._lineage: tuple[dict[str, str], dict[str, Any]] | None = None  # (the SQL read, what it touches)
        bus.on(self._count_finished)
        bus.on(StepRegressionWatch(lambda name, limit: self.runner.runs(name, limit), bus.publish))

    # ---------------------------------------------------------------- lifecycle

    async def run(self, shutdown: asyncio.Event) -> None:
        """Prepare folders and demo data, start the worker, run the triggers until ``shutdown``."""
        for pc in self.config.pipelines.values():
            pc.landing.mkdir(parents=True, exist_ok=True)
        await self._first_start_demo_data()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self.runner.start()
                for pc in self.config.pipelines.values():
                    self._triggers.start(group, pc, self.specs[pc.name].patterns)
                await shutdown.wait()
                self._triggers.stop_all()
                for name in self.specs:  # a run in progress is interrupted and recorded as cancelled
                    await self.runner.cancel(name)
        finally:
            self._group = None
            await self.runner.aclose()

    async def _first_start_demo_data(self) -> None:
        for pc in self.config.pipelines.values():
            spec = self.specs[pc.name]
            marker = self.config.state_dir / f".demo-data-{pc.name}"
            if pc.demo_data and not marker.exists() and not landing_signature(pc.landing, spec.patterns):
                if spec.demo_data is None:
                    log.warning("demo_data_unavailable", pipeline=pc.name, reason="its file declares no demo_data:")
                    continue
                summary = await asyncio.to_thread(_generate, spec.demo_data, pc.landing)
                marker.touch()
                log.info("demo_data_written", pipeline=pc.name, landing=str(pc.landing), summary=str(summary))

    async def cancel(self, name: str) -> bool:
        """Cancel ``name``'s backfill and run in progress; whether there was either."""
        self._spec(name)
        backfill = await self.cancel_backfill(name)
        return await self.runner.cancel(name) or backfill

    async def reload(self, new: Config, dry_run: bool) -> dict[str, list[str]]:
        """Apply a new config's pipelines: added, removed and changed ones (YAML, SQL, folders, triggers).

        Returns the plan ``{"added", "removed", "changed", "unchanged"}``; with ``dry_run`` nothing changes.
        New ``warehouse:`` bounds (memory_limit, recycle_rss, ...) restart the worker with them once it is idle.
        Raises (changing nothing) ConfigRefused for pipelines that do not load, CommandError while a run of a
        changed or removed pipeline is in progress or when the new pipelines cannot share one runner (another
        warehouse file needs a daemon restart). The daemon checks their SQL first (:meth:`check_sql`)."""
        try:
            new_specs = {s.name: s for s in await asyncio.to_thread(load_specs, new)}
        except ConfigError as exc:  # exit 2, as every refused config (cli/terminal.py)
            raise ConfigRefused(f"pipelines refused, the running ones stay: {exc}") from None
        old = self.specs
        redefined = {
            n for n in old.keys() & new_specs.keys() if definition_digest(old[n]) != definition_digest(new_specs[n])
        }
        changed = sorted(
            n
            for n in old.keys() & new_specs.keys()
            if definition_digest(old[n]) != definition_digest(new_specs[n])
            or self.config.pipelines[n] != new.pipelines[n]
        )
        plan = {
            "added": sorted(new_specs.keys() - old.keys()),
            "removed": sorted(old.keys() - new_specs.keys()),
            "changed": changed,
            "unchanged": sorted((old.keys() & new_specs.keys()) - set(changed)),
        }
        if dry_run:
            return plan
        if not (plan["added"] or plan["removed"] or plan["changed"]):
            await self.runner.worker.set_limits(worker_limits(new))  # new bounds: the worker restarts once idle
            return plan
        if new.data_path != self.config.data_path:  # another warehouse file: the daemon reports a restart
            log.warning("pipelines_reload_deferred", reason="data_dir changed: takes effect on restart")
            return plan
        busy = [n for n in (*plan["removed"], *plan["changed"]) if self._busy(n)]
        if busy:
            raise CommandError(f"pipeline(s) {', '.join(busy)} running: reload again once they end, or cancel them")
        try:
            await self.runner.replace_pipelines(list(new_specs.values()))
        except PipelineError as exc:
            raise CommandError(f"pipelines refused, the running ones stay: {exc}") from None
        for name in (*plan["removed"], *plan["changed"]):
            self._triggers.stop(name)
        self.specs, self.config = new_specs, new
        await self.runner.worker.set_limits(worker_limits(new))
        for name in (*plan["added"], *plan["changed"]):
            pc = new.pipelines[name]
            pc.landing.mkdir(parents=True, exist_ok=True)
            if self._group is not None:
                # a new definition (YAML, SQL) of a pipeline that runs on landed files runs once, said as such;
                # its watcher then waits for files landing after it
                rerun = name in redefined and pc.on_new_files
                self._triggers.start(self._group, pc, new_specs[name].patterns, baseline=rerun)
                if rerun and not self._try_start(name, "config_changed", skip_unchanged=False):
                    self._redefined_while_paused.add(name)
        self._redefined_while_paused &= new_specs.keys()
        log.info("pipelines_reloaded", **plan)
        return plan

    async def check_sql(self, new: Config, plan: dict[str, list[str]]) -> None:
        """Raise ConfigRefused when ``pipeline validate`` finds an error in a pipeline the reload ``plan`` adds
        or changes, or when that check cannot finish (reloadcheck.py): the running pipelines stay."""
        limit = worker_limits(new).os_memory_limit  # the worker's bound: the check runs the same SQL
        if problems := await sql_problems(new, [*plan["added"], *plan["changed"]], os_memory_limit=limit):
            raise ConfigRefused(f"pipelines refused, the running ones stay: {'; '.join(problems)}")

    async def reset(self, name: str, confirm: str) -> dict[str, Any]:
        """Drop the pipeline's schemas and ledger, forget its runs and reports (its landing files are new
        again: its watcher starts a run for them); ``confirm`` must be its name."""
        spec = self._spec(name)
        if confirm != name:
            raise CommandError(f"resetting drops every table of pipeline {name!r}: confirm with its name")
        self._refuse_while_backfilling(name, "reset")
        try:
            result = await self.runner.reset(name)
        except PipelineError as exc:
            raise CommandError(str(exc)) from None
        self._fingerprints.set(name, None)
        self._triggers.forget(self._group, self.config.pipelines[name], spec.patterns)
        reports = spec.folders.reports / name
        await asyncio.to_thread(shutil.rmtree, reports, True)
        return {**result, "reports_removed": str(reports)}

    def set_paused(self, name: str, paused: bool) -> dict[str, Any]:
        """Pause or resume a pipeline's schedules (manual runs still run); remembered across restarts. Resumed,
        a pipeline whose definition a reload changed while it was paused starts its ``config_changed`` run."""
        self._spec(name)
        self._paused = self._paused | {name} if paused else self._paused - {name}
        text = json.dumps(sorted(self._paused)) + "\n"
        try:
            atomic_write(self._paused_file, text, durable=False)
        except OSError as exc:
            self._write_failures.failed(self._paused_file, "state", exc)
        else:
            self._write_failures.succeeded(self._paused_file)
        log.info("pipeline_schedules_paused" if paused else "pipeline_schedules_resumed", pipeline=name)
        if not paused and name in self._redefined_while_paused:  # its new SQL, reloaded while paused, runs now
            self._redefined_while_paused.discard(name)
            self._try_start(name, "config_changed", skip_unchanged=False)
        return {"name": name, "paused": paused}

    def _count_finished(self, event: object) -> None:
        if isinstance(event, RunFinished):
            counts = self._finished.setdefault(event.pipeline, {})
            counts[event.status.value] = counts.get(event.status.value, 0) + 1

    def overview(self) -> list[dict[str, Any]]:
        """Each pipeline with its steps, its run in progress, its last finished run and its report, and
        ``runs_finished``: ``{status: count}`` of the runs finished since the daemon started (only grows);
        ``skips``: ``{"count", "last_at", "last_trigger"}`` of the triggers that found nothing new since then (no
        run is recorded for them). ``last_run`` is the last finished run that did work (flowrun.py), ``flow_run``
        the run whose steps the flow graph shows (after a rollback: the run it restored) or null; ``active_run``
        carries ``elapsed_s``; ``step_trends``: each step's latest successful run against the median of the ten
        before it (:func:`~foss_supervisor.pipeline.engine.regression.step_trends`); ``partitions``: the per-partition
        summary of a pipeline that declares ``partition:``, else null; ``held``: its held files (summaries)."""
        now = time.time()
        out = []
        for name, spec in self.specs.items():
            pc = self.config.pipelines[name]
            active = self.runner.active_run(name)
            recent = self.runner.runs(name, limit=50)
            finished = last_worked(recent)  # a skipped run of an older history changed nothing
            flow = flow_run(recent, self.runner.get_run)  # after a rollback: the run it restored
            report = spec.folders.reports / name / "latest.json"
            out.append(
                {
                    "name": name,
                    "description": spec.description,
                    "steps": [s.name for s in spec.steps],
                    "layers": {s.name: s.layer for s in spec.steps if s.layer},  # as declared; others are guessed
                    "landing": str(pc.landing),
                    "every_s": pc.every_s,
                    "on_new_files": pc.on_new_files,
                    "cron": pc.cron,
                    "after": list(pc.after),
                    "paused": name in self._paused,
                    "patterns": list(spec.patterns),
                    "schemas": sorted(spec.schemas),
                    "runs_finished": dict(self._finished.get(name, {})),
                    "active_run": (active.to_dict() | {"elapsed_s": round(now - active.started_at, 3)})
                    if active
                    else None,
                    "skips": dict(self._skips.get(name) or {"count": 0, "last_at": None, "last_trigger": None}),
                    "last_run": finished.to_dict() if finished else None,
                    "flow_run": flow.to_dict() if flow else None,
                    "step_trends": step_trends(self.runner.runs(name, limit=TREND_RUNS), [s.name for s in spec.steps]),
                    "report": read_json(report),
                    "report_html": f"/reports/{name}/latest.html" if report.with_suffix(".html").exists() else None,
                    "report_url": f"{self.config.dashboard_url}reports/{name}/latest.html",
                    **self.summaries(name),  # partitions and held files
                }
            )
        return out

    def overdue(self, now: float) -> dict[str, str]:
        """Pipelines whose timed schedule went by without a run: name -> why (see pipeline/engine/schedule.py).

        Paused pipelines and ones running now are left out.
        """
        out = {}
        for name in self.specs:
            pc = self.config.pipelines[name]
            if name in self._paused or self.runner.is_running(name):
                continue
            last = next(iter(self.runner.runs(name, limit=1)), None)
            last_at = None if last is None else max(last.started_at, last.finished_at or 0.0)
            skipped_at = (self._skips.get(name) or {}).get("last_at")  # a trigger that found nothing new ran too
            if skipped_at is not None:
                last_at = max(last_at or 0.0, skipped_at)
            if reason := overdue_reason(pc.every_s, pc.cron, last_at, self.started_at, now):
                out[name] = reason
        return out

    def worker_status(self) -> dict[str, Any]:
        """The DuckDB worker as ``status`` shows it (WorkerService.status) and ``active_runs``: the pipelines
        running now."""
        return {
            **self.runner.worker.status(),
            "active_runs": sorted(n for n in self.specs if self.runner.is_running(n)),
        }

    def worker_snapshot(self) -> dict[str, Any]:
        """The worker as a supervised process, the shape of a program's entry in ``status`` (for ``services``)."""
        return self.runner.worker.process.snapshot()

    def problems(self) -> list[str]:
        """The worker crash-looping or given up (for ``/health``)."""
        return self.runner.worker.problems()

    def runs(self, name: str | None, limit: int) -> list[dict[str, Any]]:
        if name is not None:
            self._spec(name)
        return [r.to_dict() for r in self.runner.runs(name, limit)]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's record (RunRecord.to_dict) plus ``"retry"``: what a retry of it may do (retry.retry_options)."""
        record = self.runner.get_run(run_id)
        if record is None:
            raise CommandError(f"no such run: {run_id!r}")
        options = retry_options(
            self.runner.pipelines.get(record.pipeline),
            record,
            latest=latest_run(self.runner.runs(record.pipeline, 1000)),
            busy=self.runner.is_running(record.pipeline),
        )
        return {**record.to_dict(), "retry": options}

    async def diff(self, run_a: str, run_b: str, name: str, timeout_s: float) -> dict[str, Any]:
        """Two runs' snapshots compared, or with ``name`` alone its last two (runsnapshots.py): the reply of
        ``pipeline_diff``; a refusal (unknown run, snapshot gone or incomplete, timeout) as CommandError."""
        try:
            if name and not (run_a or run_b):
                last = await self.runner.last_diff(name, timeout_s=timeout_s)
                return last or {"pipeline": name, "run_a": None, "run_b": None, "tables": [], "truncated": False}
            return await self.runner.diff(run_a, run_b, timeout_s=timeout_s)
        except PipelineError as exc:
            raise CommandError(str(exc)) from None

    async def rollback(self, name: str, to: str, apply: bool) -> dict[str, Any]:
        """``pipeline_rollback`` (runsnapshots.RunSnapshots.rollback); a refusal as CommandError."""
        if apply:
            self._refuse_while_backfilling(name, "rollback")
        try:
            return await self.runner.rollback(name, to, apply=apply)
        except PipelineError as exc:
            raise CommandError(str(exc)) from None

    async def query(self, sql: str, max_rows: int, timeout_s: float) -> dict[str, Any]:
        try:
            result = await self.runner.client.query(sql, max_rows=max_rows, timeout_s=timeout_s)
        except PipelineError as exc:
            raise CommandError(str(exc)) from None
        return result.to_dict()

    async def lineage(self, specs: dict[str, PipelineSpec] | None = None) -> dict[str, Any]:
        """What each pipeline's SQL reads and writes, as the worker reads it (pipeline/worker/lineage.py), kept until
        the SQL changes: ``{"scripts": {"setup:PIPELINE" | "step:PIPELINE/STEP": {"statements": [{"reads", "writes",
        "object"}, ...], "error", "columns": {"writes", "reads", "unknown"}}}, "error": ""}`` (``columns``:
        pipeline/worker/columns.py); when the worker cannot answer, no scripts and ``error`` says why. ``specs``: read
        now, not kept (a new config's, :meth:`proposed`; the running ones against the warehouse as it is now)."""
        scripts = _scripts(self.specs if specs is None else specs)
        if specs is None and self._lineage is not None and self._lineage[0] == scripts:
            return self._lineage[1]
        try:
            found = {"scripts": await self.runner.client.lineage(scripts), "error": ""}
        except PipelineError as exc:
            return {"scripts": {}, "error": str(exc)}
        if specs is None:
            self._lineage = (scripts, found)
        return found

    async def proposed(self, new: Config) -> dict[str, PipelineSpec]:
        """A new config's pipelines as a reload would load them (for the impact of a change before it is
        applied). Raises CommandError for pipelines that do not load, as :meth:`reload` would."""
        try:
            return {s.name: s for s in await asyncio.to_thread(load_specs, new)}
        except ConfigError as exc:
            raise CommandError(f"pipelines refused, the running ones stay: {exc}") from None

    async def export(self, table: str, fmt: str, sql: str = "") -> dict[str, Any]:
        """The whole table, or the whole result of a read-only query, as a csv, parquet or jsonl file in the
        state dir's exports folder (see WorkerClient.export)."""
        state_dir, exports_dir = self.config.state_dir, self.runner.export_dir
        if why := await asyncio.to_thread(export_refusal, state_dir, exports_dir):  # slow readers fill no disk
            raise CommandError(why)
        try:
            result = await self.runner.client.export(table, fmt, sql=sql)
        except PipelineError as exc:
            raise CommandError(str(exc)) from None
        if why := await asyncio.to_thread(floor_refusal, state_dir):  # it took the filesystem under its floor
            await asyncio.to_thread(Path(result["path"]).unlink, missing_ok=True)
            raise CommandError(f"this export ({result.get('bytes', 0):,} bytes) was removed: {why}")
        return result

    async def demo_data(self, name: str, orders: int, seed: int) -> dict[str, Any]:
        """Sample landing files from the pipeline's own generator (its file's ``demo_data:``)."""
        spec = self._spec(name)
        pc = self.config.pipelines[name]
        if spec.demo_data is None:
            raise CommandError(f"pipeline {name!r} has no demo data: its file declares no demo_data: generator")
        prefix = f"demo-{seed}-{int(time.time())}"
        summary = await asyncio.to_thread(
            _generate, spec.demo_data, pc.landing, orders=orders, seed=seed, prefix=prefix
        )
        return {"pipeline": name, "landing": str(pc.landing), "summary": jsonable(summary)}

    def report_path(self, name: str, filename: str) -> Path:
        spec = self._spec(name)
        return spec.folders.reports / name / filename

    def last_run_line(self) -> str | None:
        """``orders succeeded 12:03`` for systemd's STATUS line."""
        latest = [r for name in self.specs for r in self.runner.runs(name, limit=1)]
        if not latest:
            return None
        run = max(latest, key=lambda r: r.started_at)
        return f"{run.pipeline} {run.status.value} {time.strftime('%H:%M', time.localtime(run.started_at))}"


def _scripts(specs: dict[str, PipelineSpec]) -> dict[str, str]:
    """The SQL the lineage is read from: each pipeline's setup, then each step's, in the pipelines' order."""
    scripts = {f"setup:{n}": spec.setup_sql for n, spec in specs.items() if spec.setup_sql}
    return scripts | {f"step:{n}/{st.name}": st.sql for n, spec in specs.items() for st in spec.steps if st.sql}


def _generate(ref: str, landing: Path, **options: Any) -> Any:
    """Run a pipeline's demo data generator (loaded from its folder, in this thread: never on the loop)."""
    return load_callable(ref)(landing, **options)
