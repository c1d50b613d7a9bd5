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
import dataclasses
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from foss_supervisor.pipeline.client import QueryResult, WorkerClient
from foss_supervisor.pipeline.errors import (
    PipelineBusyError,
    PipelineConfigError,
    PipelineError,
    UnknownPipelineError,
    WorkerError,
)
from foss_supervisor.pipeline.events import (
    EventCallback,
    PipelineEvent,
    RunFinished,
    RunStarted,
    StepLog,
    StepStateChanged,
)
from foss_supervisor.pipeline.history import RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.limits import MAX_RESULT_BYTES, WorkerLimits
from foss_supervisor.pipeline.retry import RetryPlan, latest_run, plan_retry
from foss_supervisor.pipeline.runstate import ActiveRun, access_payload, folders_payload, is_transient, step_payload
from foss_supervisor.pipeline.spec import PipelineSpec, StepSpec, check_isolation
from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState, check_step_transition
from foss_supervisor.pipeline.workerhost import StepAttemptError, StepTimeoutError, WorkerHost
from foss_supervisor.pipeline.workerproc import WorkerProcess
from foss_supervisor.writefailures import WriteFailures

__all__ = ["PipelineRunner", "QueryResult", "StepAttemptError", "StepTimeoutError", "WorkerProcess"]

log = structlog.get_logger("foss_supervisor.pipeline")

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


# ------------------------------------------------------------------------------------------- runner


class PipelineRunner:
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
        self._host = WorkerHost(self.db_path, self._worker_argv, self._worker_environ, self._emit, clock,
                                cancel_grace_s, self.limits)  # fmt: skip
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
            "pid": figures["pid"], "state": "running" if figures["pid"] is not None else "stopped",
            "busy": self._step_lock.locked(), "uptime_s": figures["uptime_s"], "rss_bytes": figures["rss_bytes"],
            "starts": self._host.starts, "restarts": figures["restarts"], "last_restart": figures["last_restart"],
            "recycles": figures["recycles"], "recycle_pending": figures["recycle_pending"],
            "limit_hits": figures["limit_hits"], "memory_limit": self.limits.memory_limit,
            "limits": self.limits.to_dict(), "warehouse": str(self.db_path), "active_runs": sorted(self._active),
        }  # fmt: skip

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
            self._specs.get(name), source, run_id=run_id, step=step, latest=latest_run(self.history.list(name, 1000)),
            busy=self._closed or (name in self._run_locks and self._run_locks[name].locked()),
        )  # fmt: skip

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
            run_id=self._new_run_id(), pipeline=pipeline, mode=RunMode.RUN, trigger=trigger,
            status=RunStatus.SKIPPED, started_at=now, finished_at=now, note=reason,
            steps=tuple(StepRecord(name=s.name, state=StepState.SKIPPED) for s in spec.steps),
        )  # fmt: skip
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
                "pipeline": pipeline, "run_id": "reset", "mode": RunMode.RUN.value, "require_metrics": False,
                "folders": folders_payload(spec), "access": access_payload(spec),
                "step": {"name": "_reset", "kind": "sql",
                         "sql": "".join(f"DROP SCHEMA IF EXISTS {s} CASCADE;\n" for s in schemas)},
            }  # fmt: skip
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
        argv += ["--memory-limit", str(self.limits.memory_limit), "--os-memory-limit",
                 str(self.limits.os_memory_limit), "--temp-dir", str(self.temp_dir),
                 "--max-temp-size", str(self.limits.max_temp_directory_size)]  # fmt: skip
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

    # ------------------------------------------------------------------ internals: runs
    def _spec(self, name: str) -> PipelineSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise UnknownPipelineError(f"no pipeline named {name!r} (known: {known})") from None

    def _new_run_id(self) -> str:
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock())) + "-" + secrets.token_hex(3)

    def _emit(self, event: PipelineEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # an observer must never break a run
            log.exception("pipeline_event_observer_failed", event=type(event).__name__)

    def _set_state(self, run: ActiveRun, step: StepSpec, new: StepState, **changes: Any) -> None:
        rec = run.steps[step.name]
        check_step_transition(rec.state, new)
        run.steps[step.name] = dataclasses.replace(rec, state=new, **changes)
        rec2 = run.steps[step.name]
        index = [s.name for s in run.spec.steps].index(step.name)
        self._emit(
            StepStateChanged(
                at=self._clock(),
                run_id=run.run_id,
                pipeline=run.spec.name,
                step=step.name,
                old=rec.state,
                new=new,
                index=index,
                total=len(run.spec.steps),
                attempt=rec2.attempts,
                rows_in=rec2.rows_in,
                rows_out=rec2.rows_out,
                duration_s=rec2.duration_s,
                error=rec2.error,
                warnings=rec2.warnings,
            )
        )
        log.debug(
            "pipeline_step_state",
            run_id=run.run_id,
            pipeline=run.spec.name,
            step=step.name,
            old=rec.state.value,
            new=new.value,
            attempt=rec2.attempts,
            error=rec2.error,
        )

    async def _execute(self, run: ActiveRun) -> RunRecord:
        spec = run.spec
        self.history.append(run.snapshot())
        self._emit(
            RunStarted(self._clock(), run.run_id, spec.name, run.mode, run.trigger, tuple(s.name for s in spec.steps))
        )
        log.info("pipeline_run_started", run_id=run.run_id, pipeline=spec.name, mode=run.mode.value,
                 retry_of=run.retry.source.run_id if run.retry else None)  # fmt: skip
        try:
            await self._setup(run)
            for step in spec.steps:
                rec = run.steps[step.name]
                if run.mode not in step.modes:
                    self._set_state(run, step, StepState.SKIPPED)
                    continue
                if run.retry is not None and step.name in run.retry.reused:  # committed by the source run
                    reused = run.retry.reused[step.name]
                    self._set_state(run, step, StepState.SKIPPED, metrics=reused.metrics, warnings=(run.retry.note,))
                    continue
                failed_deps = [d for d in step.depends_on if not run.steps[d].state.ok]
                if failed_deps:
                    self._set_state(
                        run,
                        step,
                        StepState.UPSTREAM_FAILED,
                        error=f"upstream step(s) did not succeed: {', '.join(failed_deps)}",
                    )
                    continue
                del rec
                await self._run_step(run, step)
        except asyncio.CancelledError:
            for step in spec.steps:
                if run.steps[step.name].state is StepState.PENDING:
                    self._set_state(run, step, StepState.CANCELLED)
            self._finish(run, RunStatus.CANCELLED, "cancelled")
            raise
        except (WorkerError, StepAttemptError, OSError) as exc:
            for step in spec.steps:
                if run.steps[step.name].state is StepState.PENDING:
                    self._set_state(run, step, StepState.UPSTREAM_FAILED, error="pipeline setup failed")
            return self._finish(run, RunStatus.FAILED, f"setup failed: {exc}")
        states = [run.steps[s.name].state for s in spec.steps]
        bad = [s.name for s in spec.steps if not run.steps[s.name].state.ok]
        if bad:
            first = run.steps[bad[0]]
            return self._finish(run, RunStatus.FAILED, f"step {bad[0]} {first.state.value}: {first.error}")
        if spec.publish:
            try:
                published = await self.publish(spec.name)
                log.info("pipeline_published", pipeline=spec.name, tables=[p["path"] for p in published])
            except (PipelineError, OSError) as exc:
                return self._finish(run, RunStatus.SUCCEEDED_WITH_WARNINGS, f"publish failed: {exc}")
        if StepState.SUCCEEDED_WITH_WARNINGS in states:
            return self._finish(run, RunStatus.SUCCEEDED_WITH_WARNINGS, None)
        return self._finish(run, RunStatus.SUCCEEDED, None)

    def _finish(self, run: ActiveRun, status: RunStatus, error: str | None) -> RunRecord:
        run.status = status
        run.error = error
        run.finished_at = self._clock()
        record = run.snapshot()
        self.history.append(record)
        self._emit(RunFinished(self._clock(), run.run_id, run.spec.name, status, record.duration_s or 0.0, error))
        log.info(
            "pipeline_run_finished",
            run_id=run.run_id,
            pipeline=run.spec.name,
            status=status.value,
            duration_s=record.duration_s,
            error=error,
        )
        return record

    def _wait(self) -> wait_exponential_jitter:
        """Exponential backoff (x2 per attempt) with jitter, capped at retry_max_s."""
        return wait_exponential_jitter(
            multiplier=self._retry_initial_s, max=self._retry_max_s, jitter=self._retry_initial_s
        )

    async def _setup(self, run: ActiveRun) -> None:
        """Create the pipeline's ledger and run its idempotent schema script, in one transaction (retried
        like a step)."""
        payload = {
            "pipeline": run.spec.name,
            "run_id": run.run_id,
            "mode": run.mode.value,
            "folders": folders_payload(run.spec),
            "require_metrics": False,
            "create_ledger": True,
            "access": access_payload(run.spec),
            "step": {"name": "_setup", "kind": "sql", "sql": run.spec.setup_sql or ""},
        }
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=self._wait(),
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
        ):
            with attempt:
                async with self._step_lock:
                    await self._host.attempt(payload, timeout_s=120.0, on_log=None)

    async def _run_step(self, run: ActiveRun, step: StepSpec) -> None:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self._set_state(run, step, StepState.RETRYING, error=f"{type(exc).__name__}: {exc}")

        retrying = AsyncRetrying(
            stop=stop_after_attempt(step.retries + 1),
            wait=self._wait(),
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
            before_sleep=before_sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._step_attempt(run, step)
        except asyncio.CancelledError:
            if not run.steps[step.name].state.terminal:
                self._set_state(run, step, StepState.CANCELLED, error="cancelled")
            raise
        except StepTimeoutError as exc:
            self._set_state(run, step, StepState.CRASHED, error=str(exc), **self._elapsed(run, step))
        except WorkerError as exc:
            self._set_state(run, step, StepState.CRASHED, error=str(exc), **self._elapsed(run, step))
        except StepAttemptError as exc:
            if exc.kind == "no_input":  # nothing landed for this step to read: skipped, not failed
                self._set_state(run, step, StepState.SKIPPED, warnings=(f"no input: {exc}",),
                                **self._elapsed(run, step))  # fmt: skip
                return
            state = StepState.CANCELLED if exc.kind == "cancelled" else StepState.FAILED
            self._set_state(run, step, state, error=f"{exc.kind}: {exc}", **self._elapsed(run, step))

    def _elapsed(self, run: ActiveRun, step: StepSpec) -> dict[str, Any]:
        started = run.steps[step.name].started_at
        return {"duration_s": round(self._clock() - started, 6)} if started is not None else {}

    async def _step_attempt(self, run: ActiveRun, step: StepSpec) -> None:
        rec = run.steps[step.name]
        self._set_state(run, step, StepState.QUEUED)
        async with self._step_lock:
            self._set_state(
                run, step, StepState.RUNNING, attempts=rec.attempts + 1, started_at=self._clock(), error=None
            )
            payload = step_payload(run, step)

            def on_log(level: str, message: str) -> None:
                self._emit(StepLog(self._clock(), run.run_id, run.spec.name, step.name, level, message))

            result = await self._host.attempt(payload, timeout_s=step.timeout_s, on_log=on_log)
        metrics: dict[str, Any] = dict(result.get("metrics") or {})
        warnings = tuple(result.get("warnings") or ())
        final = StepState.SUCCEEDED_WITH_WARNINGS if warnings else StepState.SUCCEEDED
        self._set_state(
            run,
            step,
            final,
            rows_in=_as_int(metrics.get("rows_in")),
            rows_out=_as_int(metrics.get("rows_out")),
            metrics=metrics,
            warnings=warnings,
            duration_s=float(result.get("duration_s", 0.0)),
        )


def _as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
