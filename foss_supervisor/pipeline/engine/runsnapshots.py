"""Snapshots, diff and rollback of runs, the runner's part: :class:`RunSnapshots` is a base of
:class:`~foss_supervisor.pipeline.engine.runner.PipelineRunner`, which sets every attribute declared below.

- After every successful run, :meth:`RunSnapshots.keep_snapshot` has the worker write each layer table
  (every base table of the pipeline's schemas but its file ledger's) into a partial snapshot, by reference
  to the previous snapshot's files where a table only grew, then makes it whole and keeps the newest
  ``snapshot_keep`` (snapshots.py, worker/snapshots.py, worker/segments.py).
- :meth:`RunSnapshots.diff` compares two runs' snapshots in the worker (worker/diff.py).
- :meth:`RunSnapshots.rollback` restores a run's snapshot in ONE worker transaction, then makes that run's
  published set current again (Parquet: the run's folder; Delta: each table restored to the run's version,
  publishdelta.py), or publishes the restored tables anew when it is no longer kept, and
  records a run with reason ``rollback``. Without ``apply`` it only says what would change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED, RunMode, RunStatus, StepState
from foss_supervisor.pipeline.engine.flowrun import ROLLED_BACK
from foss_supervisor.pipeline.engine.history import RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.engine.publish import published_run, switch_current
from foss_supervisor.pipeline.engine.publishdelta import DELTA, delta_run_versions, restore_delta_run
from foss_supervisor.pipeline.engine.recovery import ROLLBACK, left_rollback
from foss_supervisor.pipeline.engine.snapshots import (
    commit_snapshot,
    discard_snapshot_stage,
    link_snapshot,
    list_snapshots,
    load_snapshot,
    prune_snapshots,
    snapshot_root,
    snapshot_stage_name,
)
from foss_supervisor.pipeline.engine.snapshotsame import staged_unchanged
from foss_supervisor.pipeline.engine.spec import PipelineSpec, StepKind
from foss_supervisor.pipeline.engine.workerclient import WorkerClient
from foss_supervisor.pipeline.errors import PipelineBusyError, PipelineError, SnapshotError
from foss_supervisor.pipeline.events import EventCallback, RunFinished, RunStarted
from foss_supervisor.pipeline.worker.ledger import rollbacks_sql
from foss_supervisor.pipeline.worker.report import restore_report

__all__ = ["ROLLBACK", "RunSnapshots", "declared_keys"]

log = structlog.get_logger("foss_supervisor.pipeline")


def declared_keys(spec: PipelineSpec) -> dict[str, list[str]]:
    """``{schema.table: [column]}``: the key each ``deduplicate`` step declares for its target, and those steps
    declare in ``keys`` (tablekeys.py; the loader keys a table once)."""
    out = {
        str(s.params["target"]): _columns(s.params["key"])
        for s in spec.steps
        if s.kind is StepKind.DEDUPLICATE and s.params.get("target") and s.params.get("key")
    }
    return out | {table: list(columns) for s in spec.steps for table, columns in s.keys}


def _columns(key: Any) -> list[str]:
    """A ``deduplicate`` step's ``key`` as a list: one column may be written alone (dedupe.py)."""
    return [key] if isinstance(key, str) else [str(c) for c in key]


class RunSnapshots:
    """Snapshots, diff and rollback of one runner's pipelines (the runner sets the attributes below)."""

    _specs: dict[str, PipelineSpec]
    _run_locks: dict[str, asyncio.Lock]
    _step_lock: asyncio.Lock
    _closed: bool
    _clock: Callable[[], float]
    _on_event: EventCallback | None
    client: WorkerClient
    history: RunHistory
    publish_dir: Path
    publish: Callable[[str, str], Awaitable[dict[str, Any]]]
    _new_run_id: Callable[[], str]
    _spec: Callable[[str], PipelineSpec]
    _emit: Callable[[object], None]
    _last_diffs: dict[str, dict[str, Any]]  # per pipeline, the diff last_diff gave (snapshots never change)

    def snapshot_folder(self, pipeline: str) -> Path:
        """``<warehouse folder>/snapshots/<pipeline>/`` (snapshots.py)."""
        return snapshot_root(self.publish_dir) / pipeline

    async def keep_snapshot(self, spec: PipelineSpec, run_id: str) -> tuple[str | None, str | None]:
        """Keep run ``run_id``'s snapshot (none with ``snapshot_keep: 0``, which also removes older ones).
        Returns ``(warning, same_as)``: a warning ``snapshot failed: ...`` (nothing partial is left to read),
        or the run id of the previous snapshot when the run changed no layer table since: that snapshot stands
        for this run (diff and rollback read it for ``run_id``, :meth:`_snapshot_of`) and none is kept of its
        own, so a run with nothing new pushes no snapshot out of the retention and the last diff stays the
        last change."""
        folder = self.snapshot_folder(spec.name)
        if spec.snapshot_keep <= 0:
            await asyncio.to_thread(prune_snapshots, folder, 0)
            return None, None
        before, previous = await asyncio.to_thread(self._previous_tables, folder, run_id)
        request = {
            "task": "snapshot",
            "pipeline": spec.name,
            "run_id": run_id,
            "schemas": spec.layer_schemas,
            "keys": declared_keys(spec),
            "previous": previous,
        }
        try:
            written = await self.client.task(request, timeout_s=3600.0, what=f"snapshot of {spec.name}")
            stage = folder / snapshot_stage_name(run_id)
            if before is not None and await staged_unchanged(
                self.client, spec.name, stage, written["tables"], previous
            ):
                await asyncio.to_thread(discard_snapshot_stage, folder, run_id)
                log.info("pipeline_snapshot_unchanged", pipeline=spec.name, run_id=run_id, same_as=before)
                return None, before
            commit = asyncio.ensure_future(
                asyncio.to_thread(
                    commit_snapshot, folder, spec.name, run_id, written["tables"], keep=spec.snapshot_keep
                )
            )
            try:  # a thread cannot be stopped: a cancel waits for its few writes, so the record says what is on disk
                manifest = await asyncio.shield(commit)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await commit
                raise
        except (PipelineError, OSError) as exc:
            await asyncio.to_thread(discard_snapshot_stage, folder, run_id)
            return f"snapshot failed: {exc}", None
        except BaseException:
            await asyncio.to_thread(discard_snapshot_stage, folder, run_id)
            raise
        tables = manifest["tables"].values()
        log.info(
            "pipeline_snapshot_kept",
            pipeline=spec.name,
            run_id=run_id,
            tables=len(tables),
            bytes=sum(t["bytes"] for t in tables),
            linked=sum(t["linked"] for t in tables),
        )
        return None, None

    @staticmethod
    def _previous_tables(folder: Path, run_id: str) -> tuple[str | None, dict[str, Any]]:
        """The run id and tables of the newest whole snapshot but ``run_id``'s (files absolute): what a table
        that only grew since is stored by reference to (worker/segments.py); (None, {}) when there is none or
        it is unreadable."""
        for previous in reversed(list_snapshots(folder)):
            if previous != run_id:
                try:
                    return previous, dict(load_snapshot(folder, previous)["tables"])
                except (SnapshotError, OSError):  # unusable (named by diff and rollback): this one is copied whole
                    return None, {}
        return None, {}

    def snapshots(self, pipeline: str) -> list[str]:
        """Run ids of ``pipeline``'s whole snapshots, oldest first."""
        return list_snapshots(self.snapshot_folder(self._spec(pipeline).name))

    def _snapshot_of(self, run_id: str) -> str:
        """The run whose snapshot holds run ``run_id``'s tables: its own, or that of the run it changed nothing
        after (``same_as``, :meth:`keep_snapshot`)."""
        record = self.history.get(run_id)
        return record.same_as if record is not None and record.same_as else run_id

    def _pipeline_of(self, run_id: str) -> PipelineSpec:
        record = self.history.get(run_id)
        if record is None:
            raise SnapshotError(f"no such run: {run_id!r}")
        return self._spec(record.pipeline)

    async def diff(self, run_a: str, run_b: str, *, timeout_s: float = 60.0) -> dict[str, Any]:
        """The diff of run ``run_a``'s snapshot to run ``run_b``'s (both runs of one pipeline; worker/diff.py
        gives the shape of ``tables``). Returns ``{"pipeline", "run_a", "run_b", "tables", "truncated"}``.
        Raises SnapshotError (unknown run, another pipeline, no whole snapshot), QueryTimeoutError."""
        spec = self._pipeline_of(run_a)
        if self._pipeline_of(run_b).name != spec.name:
            raise SnapshotError(f"runs {run_a} and {run_b} are of different pipelines")
        folder = self.snapshot_folder(spec.name)
        a = await asyncio.to_thread(load_snapshot, folder, self._snapshot_of(run_a))
        b = await asyncio.to_thread(load_snapshot, folder, self._snapshot_of(run_b))
        request = {"task": "diff", "a": {"tables": a["tables"]}, "b": {"tables": b["tables"]}, "timeout_s": timeout_s}
        result = await self.client.task(request, timeout_s=timeout_s + 5.0, what=f"diff of {run_a} and {run_b}")
        return {"pipeline": spec.name, "run_a": run_a, "run_b": run_b} | result

    async def last_diff(self, pipeline: str, *, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """The diff of ``pipeline``'s last snapshot against the one before, or None with fewer than two. Kept
        per pipeline until a newer snapshot comes (a snapshot never changes), so a page may ask on every load.
        When the pipeline's last successful run kept no snapshot (its snapshot failed), ``note`` says so: the
        diff is then of the runs before it (a tester read it as the last run's)."""
        kept = await asyncio.to_thread(self.snapshots, pipeline)
        if len(kept) < 2:
            return None
        cached = self._last_diffs.get(pipeline)
        if cached is None or (cached["run_a"], cached["run_b"]) != (kept[-2], kept[-1]):
            cached = self._last_diffs[pipeline] = await self.diff(kept[-2], kept[-1], timeout_s=timeout_s)
        last = next((r for r in self.history.list(pipeline, limit=20) if r.status in RUN_SUCCEEDED), None)
        if last is not None and self._snapshot_of(last.run_id) not in kept:  # its snapshot failed: say so
            why = f" ({last.error})" if last.error else ""
            return cached | {"note": f"the last run, {last.run_id}, kept no snapshot{why}: this is run {kept[-1]}'s"}
        return cached

    def _published_kept(self, spec: PipelineSpec, run_id: str) -> bool:
        """Whether run ``run_id``'s published set can be made current again without publishing anew."""
        folder = self.publish_dir / spec.name
        if spec.publish_format == DELTA:
            return delta_run_versions(folder, run_id) is not None
        return published_run(folder, run_id)

    async def rollback(self, pipeline: str, run_id: str, *, apply: bool) -> dict[str, Any]:
        """Restore run ``run_id``'s layer tables and published set (see the module docstring).

        Returns ``{"pipeline", "to", "applied", "published": "switch" | "restore" | "republish" | None}``
        (``restore``: each Delta table restored to that run's version by a new commit) with, unapplied,
        ``"changes"`` (the diff of the live tables to the snapshot: what applying would change) and, applied,
        ``"run_id"`` (the rollback's run), ``"tables": [{table, rows}]`` restored and ``"dropped"``.
        Raises PipelineBusyError (a run in progress), SnapshotError (no whole snapshot of
        ``run_id``, or the restore failed: then every table is as it was), QueryTimeoutError.
        """
        spec = self._spec(pipeline)
        lock = self._run_locks[spec.name]
        if lock.locked() or self._closed:
            raise PipelineBusyError(f"a run of {spec.name} is in progress; rollback refused (cancel it or wait)")
        folder = self.snapshot_folder(spec.name)
        manifest = await asyncio.to_thread(load_snapshot, folder, self._snapshot_of(run_id))
        kept = await asyncio.to_thread(self._published_kept, spec, run_id)
        again = "restore" if spec.publish_format == DELTA else "switch"
        plan = {
            "pipeline": spec.name,
            "to": run_id,
            "applied": False,
            "published": (again if kept else "republish") if spec.publish else None,
        }
        if not apply:
            live = {"live": True, "schemas": spec.layer_schemas, "keys": declared_keys(spec)}
            preview = {"task": "diff", "a": live, "b": {"tables": manifest["tables"]}, "timeout_s": 60.0}
            try:
                plan["changes"] = (await self.client.task(preview, timeout_s=65.0, what="rollback preview"))["tables"]
            except PipelineError as exc:
                raise SnapshotError(f"the snapshot of run {run_id} cannot be compared: {exc}") from None
            return plan
        if lock.locked():
            raise PipelineBusyError(f"a run of {spec.name} started meanwhile; rollback refused")
        async with lock:
            return plan | await self._apply_rollback(spec, run_id, manifest)

    async def _apply_rollback(self, spec: PipelineSpec, target: str, manifest: dict[str, Any]) -> dict[str, Any]:
        rid, started = self._new_run_id(), self._clock()
        self.history.append(self._rollback_record(spec, rid, started, RunStatus.RUNNING, target, None))
        self._emit(RunStarted(started, rid, spec.name, RunMode.RUN, ROLLBACK, tuple(s.name for s in spec.steps)))
        restore = {
            "task": "restore",
            "pipeline": spec.name,
            "schemas": spec.layer_schemas,
            "tables": manifest["tables"],
            # the ledger row written in the restore's transaction: what a killed daemon's next start reads
            "ledger": spec.ledger,
            "run_id": rid,
            "target": target,
            "started_at": started,
        }
        try:
            async with self._step_lock:
                restored = await self.client.task(restore, timeout_s=3600.0, what=f"rollback of {spec.name}")
        except BaseException as exc:
            if not await self._restore_committed(spec, rid):
                error = f"rollback to {target} failed, every table is as it was: {exc}"
                status = RunStatus.FAILED if isinstance(exc, Exception) else RunStatus.CANCELLED
                self._record(spec, rid, started, status, target, error)
                if isinstance(exc, PipelineError | OSError):
                    raise SnapshotError(error) from None
                raise
            if not isinstance(exc, Exception):  # cancelled once it had committed: only a daemon that stops
                raise  # cancels a command, and its next start finishes the switch (recover_rollbacks)
            # the worker died between the restore's COMMIT and its reply
            restored = {"tables": [{"table": t, "rows": e["rows"]} for t, e in sorted(manifest["tables"].items())]}
            restored["dropped"] = []
        problem = await self._switch_to_restored(spec, target, rid)
        warning = f"tables rolled back to {target}, but: {problem}" if problem else None
        status = RunStatus.SUCCEEDED_WITH_WARNINGS if warning else RunStatus.SUCCEEDED
        self._record(spec, rid, started, status, target, warning)
        log.info("pipeline_rolled_back", pipeline=spec.name, to=target, run_id=rid, warning=warning)
        return {"applied": True, "run_id": rid, "tables": restored["tables"], "dropped": restored["dropped"]}

    async def _restore_committed(self, spec: PipelineSpec, rid: str) -> bool:
        """Whether rollback ``rid``'s restore committed (its ledger row, ledger.record_rollback); False when the
        ledger cannot tell (as for a step, worker/steps.py)."""
        sql = f"SELECT count(*) FROM {spec.ledger}.rollbacks WHERE run_id = '{rid}'"  # noqa: S608 (our own run id)
        try:
            found = await self.client.query(sql, max_rows=1, timeout_s=30.0)
        except PipelineError:
            return False
        return bool(found.rows and found.rows[0][0])

    async def _switch_to_restored(self, spec: PipelineSpec, target: str, rid: str) -> str | None:
        """After the tables were restored to run ``target``'s snapshot by rollback ``rid``: make the published
        set hold them (:meth:`_publish_restored`), the dashboard's report ``target``'s (report.restore_report) and
        keep ``rid``'s snapshot as ``target``'s. Each is done even
        when the other fails, and each may be done again (a daemon killed midway). Returns what failed, or None."""
        problems = []
        try:
            await self._publish_restored(spec, target, rid)
        except (PipelineError, OSError, ValueError) as exc:
            problems.append(str(exc))
        reports = spec.folders.reports / spec.name
        try:
            await asyncio.to_thread(restore_report, reports, target, rid)
        except OSError as exc:
            problems.append(f"the report of run {target} was not restored: {exc}")
        folder = self.snapshot_folder(spec.name)
        try:
            if rid not in await asyncio.to_thread(list_snapshots, folder):
                await asyncio.to_thread(discard_snapshot_stage, folder, rid)
                await asyncio.to_thread(link_snapshot, folder, self._snapshot_of(target), rid, keep=spec.snapshot_keep)
        except (PipelineError, OSError, ValueError) as exc:
            problems.append(str(exc))
        return "; ".join(problems) or None

    async def _publish_restored(self, spec: PipelineSpec, target: str, rid: str) -> None:
        """The published set of the tables restored to ``target`` by ``rid``: left as it is when ``rid`` had
        switched it already, else ``target``'s made current again while kept (Parquet: its folder; Delta: each
        table restored to its version, publishdelta.py), else the tables published anew as run ``rid``."""
        if not spec.publish:
            return
        folder = self.publish_dir / spec.name
        if spec.publish_format == DELTA:
            if await asyncio.to_thread(delta_run_versions, folder, rid) is not None:
                return
            if await asyncio.to_thread(delta_run_versions, folder, target) is not None:
                await restore_delta_run(
                    self.client, folder, spec.name, target, rid, finished_at=self._clock(), keep=spec.publish_keep
                )
                return
        else:
            for kept in (rid, target):
                if await asyncio.to_thread(published_run, folder, kept):
                    await asyncio.to_thread(switch_current, folder, kept)
                    return
        await self.publish(spec.name, rid)

    async def recover_rollbacks(self) -> list[str]:
        """At start, once the worker is up: finish each rollback a killed daemon left after its restore committed
        (read from each pipeline's ledger, recovery.left_rollback): the published set and the snapshot switched
        to the restored tables, then the run recorded ``succeeded_with_warnings`` saying so. Returns the run ids
        finished. A ledger that cannot be read is logged and left for the next start, never raises for it."""
        by_ledger = {s.ledger: s for s in self._specs.values()}
        names = ", ".join(f"'{ledger}'" for ledger in by_ledger)  # plain identifiers, checked by the loader
        try:
            have = await self.client.query(
                "SELECT DISTINCT schema_name FROM duckdb_tables() WHERE table_name = 'rollbacks'"  # noqa: S608
                f" AND schema_name IN ({names})",
                max_rows=10_000,
                timeout_s=30.0,
            )
            listed = [str(r[0]) for r in have.rows]
            found = await self.client.query(rollbacks_sql(listed), max_rows=10_000, timeout_s=30.0) if listed else None
            rows = found.rows if found is not None else ()
        except PipelineError as exc:
            log.warning("pipeline_rollbacks_not_checked", error=str(exc))
            return []
        finished: list[str] = []
        for row in rows:
            spec = by_ledger[str(row[0])]
            left = left_rollback(self.history, spec.name, [s.name for s in spec.steps], row[1:], now=self._clock())
            if left is None:
                continue
            rid = left.record.run_id
            kept = await asyncio.to_thread(list_snapshots, self.snapshot_folder(spec.name))
            problem: str | None
            async with self._run_locks[spec.name]:
                if left.target is None:
                    problem = "its ledger row names no run, so the published set was left as it was"
                elif left.target not in kept and rid not in kept:  # no restore of ours left such a row
                    problem = f"run {left.target} has no snapshot, so the published set was left as it was"
                else:
                    problem = await self._switch_to_restored(spec, left.target, rid)
            error = f"{left.record.error}; but: {problem}" if problem else left.record.error
            finished_at = max(self._clock(), left.record.started_at)
            record = dataclasses.replace(left.record, error=error, finished_at=finished_at)
            self.history.append(record)
            self._emit(RunFinished(self._clock(), rid, spec.name, record.status, record.duration_s or 0.0, error))
            log.warning("pipeline_rollback_finished_after_restart", pipeline=spec.name, run_id=rid, to=left.target)
            finished.append(rid)
        return finished

    def _rollback_record(
        self, spec: PipelineSpec, rid: str, started: float, status: RunStatus, target: str, error: str | None
    ) -> RunRecord:
        """The rollback as a run of reason ``rollback``: its steps skipped, ``note`` naming the run restored
        (``rolling back to run X`` while it runs, ``rollback to run X not applied`` when it failed)."""
        note = f"{ROLLED_BACK}{target}" if status in RUN_SUCCEEDED else f"rollback to run {target} not applied"
        return RunRecord(
            run_id=rid,
            pipeline=spec.name,
            mode=RunMode.RUN,
            trigger=ROLLBACK,
            status=status,
            started_at=started,
            finished_at=None if status is RunStatus.RUNNING else self._clock(),
            steps=tuple(StepRecord(name=s.name, state=StepState.SKIPPED) for s in spec.steps),
            error=error,
            note=f"rolling back to run {target}" if status is RunStatus.RUNNING else note,
        )

    def _record(
        self, spec: PipelineSpec, rid: str, started: float, status: RunStatus, target: str, error: str | None
    ) -> None:
        """Record the rollback's end (see :meth:`_rollback_record`)."""
        record = self._rollback_record(spec, rid, started, status, target, error)
        self.history.append(record)
        self._emit(RunFinished(self._clock(), rid, spec.name, status, record.duration_s or 0.0, error))
