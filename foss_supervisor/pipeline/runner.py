"""PipelineRunner: runs pipelines' steps in the supervised DuckDB worker, with history and events.

Shape: the runner owns one worker child (see worker.py for why one) through its WorkerHost (workerhost.py:
spawned on demand, awaited by its own ``proc.wait()``, never ``os.waitpid(-1)``). Steps run one at a time
in dependency order, each with a timeout (on expiry the worker is SIGKILLed, which loses only the
uncommitted step transaction, and restarted on the next request) and tenacity retries with exponential
backoff and jitter for transient faults (worker death, DuckDB transaction/IO/OOM errors). Runs of one
pipeline never overlap. Progress goes out as frozen events through the injected ``on_event``; nothing here
imports the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.pipeline.client import QueryResult, WorkerClient
from foss_supervisor.pipeline.errors import (
    PipelineBusyError,
    PipelineConfigError,
)
from foss_supervisor.pipeline.events import (
    EventCallback,
    RunFinished,
    RunStarted,
)
from foss_supervisor.pipeline.execution import RunExecution
from foss_supervisor.pipeline.history import RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.limits import MAX_RESULT_BYTES, WorkerLimits
from foss_supervisor.pipeline.retry import RetryPlan, latest_run, plan_retry
from foss_supervisor.pipeline.runstate import ActiveRun, access_payload, folders_payload
from foss_supervisor.pipeline.spec import PipelineSpec, check_isolation
from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.workerhost import StepAttemptError, StepTimeoutError, WorkerHost
from foss_supervisor.pipeline.workerproc import WorkerProcess

__all__ = ["PipelineRunner", "QueryResult", "StepAttemptError", "StepTimeoutError", "WorkerProcess"]

log = structlog.get_logger("foss_supervisor.pipeline")

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


# ------------------------------------------------------------------------------------------- runner


class PipelineRunner(RunExecution):
    """Runs declared pipelines against one warehouse file through one supervised DuckDB worker.

    Use as ``async with PipelineRunner(specs, state_dir=...) as runner: rec = await runner.run("orders")``.
    """

    def __init__(
        self,
        pipelines: Sequence[PipelineSpec],
        *,
        state_dir: Path,
        on_event: EventCallback | None = None,
        worker_env: Mapping[str, str] | None = None,
        limits: WorkerLimits | None = None,
        threads: int | None = None,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        cancel_grace_s: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        write_failures: WriteFailures | None = None,
        clock: Callable[[], float] = time.time,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        if not pipelines:
            raise PipelineConfigError("<runner>", "pipelines", "at least one pipeline is required")
        self._specs: dict[str, PipelineSpec] = {}
        for p in pipelines:
            if p.name in self._specs:
                raise PipelineConfigError(str(p.path), "name", f"pipeline {p.name!r} given twice")
            self._specs[p.name] = p
        dbs = {p.folders.warehouse for p in pipelines}
        if len(dbs) != 1:
            raise PipelineConfigError(
                "<runner>", "folders.warehouse", f"one runner serves one warehouse file, got {sorted(map(str, dbs))}"
            )
        self.db_path: Path = dbs.pop()
        check_isolation(self._specs.values())
        self.state_dir = state_dir
        self.history = RunHistory(state_dir / "pipeline_runs.jsonl", write_failures=write_failures)
        #: where ``export`` writes its files (the worker may write only here and nowhere else)
        self.export_dir = state_dir / "exports"
        #: where a pipeline's ``publish`` tables go after each good run: <warehouse folder>/published/<pipeline>/
        self.publish_dir = self.db_path.parent / "published"
        self._on_event = on_event
        self._worker_env = dict(worker_env or {})
        #: the worker's memory, spill, recycle and grace bounds (see limits.py); DuckDB spills to temp_dir
        self.limits = limits or WorkerLimits.resolve()
        self.temp_dir = state_dir / "duckdb_tmp"
        self._threads = threads
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._sleep = sleep
        self._clock = clock
        self._host = WorkerHost(
            self.db_path, self._worker_argv, self._worker_environ, self._emit, clock, cancel_grace_s, self.limits
        )
        self._client = WorkerClient(self._host, max_result_bytes)
        self._step_lock = asyncio.Lock()
        self._run_locks = {name: asyncio.Lock() for name in self._specs}
        self._active: dict[str, ActiveRun] = {}
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> PipelineRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the worker now (otherwise it starts on first use) so startup cost is paid up front."""
        await self._host.ensure()

    async def aclose(self) -> None:
        """Cancel active runs, then stop the worker cleanly (bounded; SIGKILL as last resort)."""
        self._closed = True
        for run in list(self._active.values()):
            if run.task is not None and not run.task.done():
                run.task.cancel()
        for run in list(self._active.values()):
            if run.task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(run.task), 30.0)
        await self._host.close()

    # ------------------------------------------------------------------ public API
    @property
    def pipelines(self) -> Mapping[str, PipelineSpec]:
        """Loaded pipelines by name."""
        return dict(self._specs)

    @property
    def worker_pid(self) -> int | None:
        """PID of the live worker, if any (for status pages and tests)."""
        return self._host.pid

    @property
    def worker_startup_s(self) -> float | None:
        """Spawn-to-ready time of the current worker."""
        return self._host.startup_s

    def worker_status(self) -> dict[str, Any]:
        """The worker as ``status`` shows it: ``{pid (None when stopped), state ("running"|"stopped"),
        busy (a step, setup, publish or reset is in it; queries run beside), uptime_s, rss_bytes (resident
        memory), starts (spawns since the runner started), restarts (spawns after the first), last_restart
        ({reason, at, pid, returncode} of the worker that ended last, or None), recycles ({reason: count}),
        recycle_pending (reason or None), limit_hits ({time, memory, result_size}), memory_limit (bytes),
        limits (every bound, see WorkerLimits.to_dict), warehouse, active_runs (pipeline names)}``. The
        worker starts on first use and again after it died or was recycled."""
        figures = self._host.figures()
        return {
            "pid": figures["pid"],
            "state": "running" if figures["pid"] is not None else "stopped",
            "busy": self._step_lock.locked(),
            "uptime_s": figures["uptime_s"],
            "rss_bytes": figures["rss_bytes"],
            "starts": self._host.starts,
            "restarts": figures["restarts"],
            "last_restart": figures["last_restart"],
            "recycles": figures["recycles"],
            "recycle_pending": figures["recycle_pending"],
            "limit_hits": figures["limit_hits"],
            "memory_limit": self.limits.memory_limit,
            "limits": self.limits.to_dict(),
            "warehouse": str(self.db_path),
            "active_runs": sorted(self._active),
        }

    async def set_limits(self, limits: WorkerLimits) -> None:
        """Serve with ``limits`` from now on (a reload): when they changed, the worker is restarted with them
        (cleanly, and only once no step or export runs in it)."""
        if limits == self.limits:
            return
        self.limits = self._host.limits = limits
        log.info("pipeline_worker_limits_changed", **limits.to_dict())
        await self._host.recycle("limits", polite=True)

    def is_running(self, pipeline: str) -> bool:
        """True while a run of ``pipeline`` is in progress."""
        return pipeline in self._active

    def active_run(self, pipeline: str) -> RunRecord | None:
        """Live snapshot of the run in progress, if any."""
        run = self._active.get(pipeline)
        return run.snapshot() if run is not None else None

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Run history, newest first (active runs included with status running)."""
        return self.history.list(pipeline, limit)

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run by id, live if it is in progress."""
        for run in self._active.values():
            if run.run_id == run_id:
                return run.snapshot()
        return self.history.get(run_id)

    async def run(self, pipeline: str, *, mode: RunMode = RunMode.RUN, trigger: str = "manual") -> RunRecord:
        """Run ``pipeline`` to completion in the caller's task and return its record.

        Raises PipelineBusyError if a run of it is in progress. Cancelling the caller cancels the run: the
        current step is interrupted (rolled back) and the run is recorded as cancelled.
        """
        return await self._run(self._spec(pipeline), mode, trigger, None)

    def plan_retry(self, run_id: str, *, step: str | None = None) -> RetryPlan:
        """What ``retry(run_id, step=step)`` would run (see retry.plan_retry), or why it is refused:
        PipelineBusyError, RetryRefusedError."""
        source = self.get_run(run_id)
        name = source.pipeline if source is not None else ""
        return plan_retry(
            self._specs.get(name),
            source,
            run_id=run_id,
            step=step,
            latest=latest_run(self.history.list(name, 1000)),
            busy=self._closed or (name in self._run_locks and self._run_locks[name].locked()),
        )

    async def retry(self, run_id: str, *, step: str | None = None, trigger: str = "manual") -> RunRecord:
        """Retry failed run ``run_id`` as a new run (``retry_of`` names it) in its mode: run ``step`` (or, when
        None, every step that was not ok) and everything downstream; the other steps are recorded as skipped,
        reused from it. Runs to completion in the caller's task like :meth:`run`.

        Raises PipelineBusyError or RetryRefusedError (see retry.plan_retry for each reason).
        """
        plan = self.plan_retry(run_id, step=step)
        return await self._run(self._spec(plan.source.pipeline), plan.source.mode, trigger, plan)

    async def _run(self, spec: PipelineSpec, mode: RunMode, trigger: str, retry: RetryPlan | None) -> RunRecord:
        pipeline = spec.name
        lock = self._run_locks[pipeline]
        if lock.locked() or self._closed:
            raise PipelineBusyError(f"pipeline {pipeline!r} is already running" if not self._closed else "closed")
        async with lock:
            run = ActiveRun(self._new_run_id(), spec, mode, trigger, self._clock(), retry)
            run.task = asyncio.current_task()
            self._active[pipeline] = run
            try:
                return await self._execute(run)
            finally:
                self._active.pop(pipeline, None)

    def record_skipped(self, pipeline: str, *, trigger: str, reason: str) -> RunRecord:
        """Record (and announce) a run that did not run because ``reason``; every step is skipped.

        Raises PipelineBusyError while a run of ``pipeline`` is in progress.
        """
        spec = self._spec(pipeline)
        if self._run_locks[pipeline].locked():
            raise PipelineBusyError(f"pipeline {pipeline!r} is already running")
        now = self._clock()
        record = RunRecord(
            run_id=self._new_run_id(),
            pipeline=pipeline,
            mode=RunMode.RUN,
            trigger=trigger,
            status=RunStatus.SKIPPED,
            started_at=now,
            finished_at=now,
            note=reason,
            steps=tuple(StepRecord(name=s.name, state=StepState.SKIPPED) for s in spec.steps),
        )
        self.history.append(record)
        self._emit(RunStarted(now, record.run_id, pipeline, RunMode.RUN, trigger, tuple(s.name for s in spec.steps)))
        self._emit(RunFinished(now, record.run_id, pipeline, RunStatus.SKIPPED, 0.0, None))
        log.info("pipeline_run_skipped", run_id=record.run_id, pipeline=pipeline, trigger=trigger, reason=reason)
        return record

    async def replace_pipelines(self, pipelines: Sequence[PipelineSpec]) -> None:
        """Serve ``pipelines`` from now on (a reload). Runs in progress keep their own spec; the worker is
        stopped (and starts again on next use) when the folders it may read changed.

        Raises PipelineConfigError for two pipelines sharing a schema or another warehouse file.
        """
        specs = {p.name: p for p in pipelines}
        check_isolation(specs.values())
        if {p.folders.warehouse for p in pipelines} - {self.db_path}:
            raise PipelineConfigError("<runner>", "folders.warehouse", "one runner serves one warehouse file")
        old_specs, old_argv = self._specs, self._worker_argv()
        self._specs = specs
        if self._worker_argv() != old_argv and self._active:
            self._specs = old_specs
            raise PipelineBusyError(
                f"the worker must restart for new folders, and {', '.join(sorted(self._active))} is running"
            )
        self._run_locks = {name: self._run_locks.get(name) or asyncio.Lock() for name in specs}
        if self._worker_argv() != old_argv:
            await self._host.stop()

    async def reset(self, pipeline: str) -> dict[str, Any]:
        """Drop every schema ``pipeline`` owns (its tables, views, macros and file ledger) in one transaction,
        and forget its run history. The next run starts from scratch and ingests every landing file again.

        Raises PipelineBusyError while a run of it is in progress, StepAttemptError if DuckDB refuses.
        """
        spec = self._spec(pipeline)
        lock = self._run_locks[pipeline]
        if lock.locked() or self._closed:
            raise PipelineBusyError(f"pipeline {pipeline!r} is running; cancel it first")
        async with lock:
            schemas = sorted(spec.schemas)
            payload = {
                "pipeline": pipeline,
                "run_id": "reset",
                "mode": RunMode.RUN.value,
                "require_metrics": False,
                "folders": folders_payload(spec),
                "access": access_payload(spec),
                "step": {
                    "name": "_reset",
                    "kind": "sql",
                    "sql": "".join(f"DROP SCHEMA IF EXISTS {s} CASCADE;\n" for s in schemas),
                },
            }
            async with self._step_lock:
                await self._host.attempt(payload, timeout_s=300.0, on_log=None)
            forgotten = self.history.forget(pipeline)
        log.info("pipeline_reset", pipeline=pipeline, schemas=schemas, runs_forgotten=forgotten)
        return {"pipeline": pipeline, "schemas_dropped": schemas, "runs_forgotten": forgotten}

    async def replay(self, pipeline: str, *, trigger: str = "manual") -> RunRecord:
        """Re-validate the quarantine (after a reference or rule fix) and carry rows that pass into silver."""
        return await self.run(pipeline, mode=RunMode.REPLAY, trigger=trigger)

    async def cancel(self, pipeline: str) -> bool:
        """Cancel the run in progress, if any; returns whether there was one."""
        run = self._active.get(pipeline)
        if run is None or run.task is None or run.task.done():
            return False
        run.task.cancel()
        return True

    async def query(self, sql: str, *, max_rows: int = 1000, timeout_s: float = 10.0) -> QueryResult:
        """Run one read-only query in the worker (see WorkerClient.query)."""
        return await self._client.query(sql, max_rows=max_rows, timeout_s=timeout_s)

    async def export(self, table: str, fmt: str, *, sql: str = "", timeout_s: float = 3600.0) -> dict[str, Any]:
        """Write a whole table, or a query's whole result, into ``export_dir`` (see WorkerClient.export); the
        caller owns the file."""
        return await self._client.export(table, fmt, sql=sql, timeout_s=timeout_s)

    async def publish(self, pipeline: str) -> list[dict[str, Any]]:
        """Write every table ``pipeline`` publishes as Parquet into ``publish_dir/<pipeline>/schema.table.parquet``,
        each replaced atomically; returns what export returned per table."""
        spec = self._spec(pipeline)
        schemas = sorted(p for p in spec.publish if "." not in p)
        in_list = ", ".join(f"'{s}'" for s in schemas or ["-"])  # plain identifiers, checked by the loader
        listed = await self.query(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables()"  # noqa: S608
            f" WHERE NOT temporary AND schema_name IN ({in_list}) ORDER BY 1",
            max_rows=10_000,
        )
        tables = sorted({*(r[0] for r in listed.rows), *(p for p in spec.publish if "." in p)})
        return [await self._client.export(t, "parquet", publish_to=pipeline, name=f"{t}.parquet") for t in tables]

    # ------------------------------------------------------------------ internals: worker
    def _worker_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "foss_supervisor.pipeline.worker", "--db", str(self.db_path)]
        dirs = sorted({str(d) for s in self._specs.values() for d in (s.folders.landing, s.folders.reference)})
        for d in dirs:
            argv += ["--allow-dir", d]
        argv += ["--export-dir", str(self.export_dir), "--publish-dir", str(self.publish_dir)]
        argv += [
            "--memory-limit",
            str(self.limits.memory_limit),
            "--os-memory-limit",
            str(self.limits.os_memory_limit),
            "--temp-dir",
            str(self.temp_dir),
            "--max-temp-size",
            str(self.limits.max_temp_directory_size),
        ]
        if self._threads:
            argv += ["--threads", str(self._threads)]
        return argv

    def _worker_environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self._worker_env)
        paths = [_PACKAGE_ROOT, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env
