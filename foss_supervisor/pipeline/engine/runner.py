"""PipelineRunner: runs pipelines' steps in the supervised DuckDB worker, with history and events.

Shape: the runner owns one worker process (see worker/server.py for why one), supervised like a program as
``@pipeline-worker`` (:attr:`PipelineRunner.worker`, workerservice.py: started on first use, restarted
whenever it ends), and one client that speaks its protocol (:attr:`PipelineRunner.client`,
workerclient.py: steps here, queries and exports for the pipeline service). Steps run one at a time
in dependency order, each with a timeout (on expiry the worker is SIGKILLed, which loses only the
uncommitted step transaction, and restarted on the next request) and tenacity retries with exponential
backoff and jitter for transient faults (worker death, DuckDB transaction/IO/OOM errors). Runs of one
pipeline never overlap. Progress goes out as frozen events through the injected ``on_event``, with the
worker's state changes (the core's StateChanged, as for any supervised process).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.pipelinestates import RunMode
from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.core.events import EventBus
from foss_supervisor.pipeline.engine.execution import RunExecution
from foss_supervisor.pipeline.engine.history import RunHistory, RunRecord
from foss_supervisor.pipeline.engine.limits import MAX_RESULT_BYTES, WorkerLimits
from foss_supervisor.pipeline.engine.publish import remove_published
from foss_supervisor.pipeline.engine.recovery import recover_abandoned
from foss_supervisor.pipeline.engine.retry import RetryPlan, latest_run, plan_retry
from foss_supervisor.pipeline.engine.runstate import ActiveRun, access_payload, folders_payload
from foss_supervisor.pipeline.engine.snapshots import remove_snapshots
from foss_supervisor.pipeline.engine.spec import PipelineSpec, check_isolation
from foss_supervisor.pipeline.engine.workerclient import StepAttemptError, StepTimeoutError, WorkerClient
from foss_supervisor.pipeline.engine.workeredge import worker_argv, worker_environ
from foss_supervisor.pipeline.engine.workerservice import WorkerService
from foss_supervisor.pipeline.errors import (
    PipelineBusyError,
    PipelineConfigError,
    PipelineError,
)
from foss_supervisor.pipeline.events import (
    EventCallback,
)

__all__ = ["PipelineRunner", "StepAttemptError", "StepTimeoutError"]

log = structlog.get_logger("foss_supervisor.pipeline")


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
        history_days: int = 30,
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
        self._history_days = history_days  # the supervision schema keeps what the journal keeps
        self.history = RunHistory(state_dir / "pipeline_runs.jsonl", write_failures=write_failures)
        #: where ``export`` writes its files (the worker may write only here and nowhere else)
        self.export_dir = state_dir / "exports"
        #: where a pipeline's ``publish`` tables go after each good run: <warehouse folder>/published/<pipeline>/
        self.publish_dir = self.db_path.parent / "published"
        self._on_event = on_event
        self._worker_env = dict(worker_env or {})
        self.temp_dir = state_dir / "duckdb_tmp"  # where DuckDB spills
        self._threads = threads
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._sleep = sleep
        self._clock = clock
        bus = EventBus()  # the worker's state changes, to the same observer as the runs' events
        bus.on(self._emit)
        #: the DuckDB worker, supervised as ``@pipeline-worker``: its state, restarts, recycles and bounds
        self.worker = WorkerService(
            self.db_path,
            self._worker_argv,
            lambda: worker_environ(self._worker_env),
            self._emit,
            clock,
            bus,
            log_file=state_dir / "foss-supervisor.log",
            limits=limits or WorkerLimits.resolve(),
        )
        #: the one client of the worker's protocol: steps (here), queries and exports
        self.client = WorkerClient(self.worker, max_result_bytes, cancel_grace_s)
        self._step_lock = asyncio.Lock()
        self._run_locks = {name: asyncio.Lock() for name in self._specs}
        self._active: dict[str, ActiveRun] = {}
        self._last_diffs: dict[str, dict[str, Any]] = {}  # runsnapshots.RunSnapshots.last_diff
        self._held: dict[str, list[dict[str, Any]]] = {}  # holding.HeldFiles.held
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> PipelineRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the worker now (otherwise it starts on first use) so startup cost is paid up front; then tell
        the runs a killed daemon left abandoned which of their steps had committed, after finishing the rollbacks
        it left once their restore had committed (recovery.py)."""
        await self.worker.ensure()
        await self.recover_rollbacks()
        await recover_abandoned(self.history, self._specs, self.client)
        for spec in self._specs.values():  # what ``pipelines`` shows of each one's held files (holding.py)
            await self.refresh_held(spec)

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
        await self.worker.close()

    # ------------------------------------------------------------------ public API
    @property
    def pipelines(self) -> Mapping[str, PipelineSpec]:
        """Loaded pipelines by name."""
        return dict(self._specs)

    @property
    def limits(self) -> WorkerLimits:
        """The worker's memory, spill, recycle and grace bounds (see limits.py); ``worker.set_limits`` changes them."""
        return self.worker.limits

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

    async def run(
        self, pipeline: str, *, mode: RunMode = RunMode.RUN, trigger: str = "manual", partition: str | None = None
    ) -> RunRecord:
        """Run ``pipeline`` to completion in the caller's task and return its record.

        With ``partition`` (a value of the pipeline's ``partition:`` key, partition.py) the run is that
        partition's: ingest takes only its landing files, again, replacing its earlier rows, and SQL steps read
        the value as ``getvariable('partition')``. Raises PipelineBusyError if a run of it is in progress,
        PipelineError for a partition of a pipeline that declares none. Cancelling the caller cancels the run:
        the current step is interrupted (rolled back) and the run is recorded as cancelled.
        """
        spec = self._spec(pipeline)
        if partition is not None and spec.partition is None:
            raise PipelineError(f"pipeline {pipeline!r} declares no partition: key, so it has no partitions")
        return await self._run(spec, mode, trigger, None, partition)

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
        spec = self._spec(plan.source.pipeline)  # a partition's run is retried as that partition's
        return await self._run(spec, plan.source.mode, trigger, plan, plan.source.partition)

    async def _run(
        self, spec: PipelineSpec, mode: RunMode, trigger: str, retry: RetryPlan | None, partition: str | None = None
    ) -> RunRecord:
        pipeline = spec.name
        lock = self._run_locks[pipeline]
        if lock.locked() or self._closed:
            raise PipelineBusyError(f"pipeline {pipeline!r} is already running" if not self._closed else "closed")
        async with lock:
            run = ActiveRun(self._new_run_id(), spec, mode, trigger, self._clock(), retry, partition)
            run.task = asyncio.current_task()
            self._active[pipeline] = run
            try:
                return await self._execute(run)
            finally:
                self._active.pop(pipeline, None)

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
            await self.worker.restart()

    async def reset(self, pipeline: str) -> dict[str, Any]:
        """Drop every schema ``pipeline`` owns (its tables, views, macros and file ledger) in one transaction,
        forget its run history and remove what it published. The next run starts from scratch and ingests
        every landing file again. Its run snapshots are removed too.

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
                await self.client.attempt(payload, timeout_s=300.0, on_log=None)
            forgotten = self.history.forget(pipeline)
            self._held.pop(pipeline, None)
            unpublished = await asyncio.to_thread(remove_published, self.publish_dir / pipeline)
            await asyncio.to_thread(remove_snapshots, self.snapshot_folder(pipeline))
        log.info(
            "pipeline_reset", pipeline=pipeline, schemas=schemas, runs_forgotten=forgotten, unpublished=unpublished
        )
        return {
            "pipeline": pipeline,
            "schemas_dropped": schemas,
            "runs_forgotten": forgotten,
            "unpublished": unpublished,
        }

    async def replay(self, pipeline: str, *, trigger: str = "manual") -> RunRecord:
        """Re-validate the quarantine (after a reference or rule fix) and carry rows that pass into silver."""
        return await self.run(pipeline, mode=RunMode.REPLAY, trigger=trigger)

    async def cancel(self, pipeline: str) -> bool:
        """Cancel the run in progress, if any; returns whether there was one. Raises PipelineBusyError while the
        snapshot of a run whose steps committed is kept (execution.py): too late to cancel it."""
        run = self._active.get(pipeline)
        if run is None or run.task is None or run.task.done():
            return False
        if run.finishing:
            raise PipelineBusyError(
                f"too late to cancel run {run.run_id} of {pipeline}: its steps committed and its snapshot is being kept"
            )
        run.task.cancel()
        return True

    # ------------------------------------------------------------------ internals: worker
    def _worker_argv(self) -> list[str]:
        dirs = {d for s in self._specs.values() for d in (s.folders.landing, s.folders.reference)}
        return worker_argv(
            self.db_path,
            read_dirs=dirs,
            export_dir=self.export_dir,
            publish_dir=self.publish_dir,
            temp_dir=self.temp_dir,
            limits=self.limits,
            threads=self._threads,
            history_dir=self.state_dir / "history",
            history_days=self._history_days,
        )
