"""Pipeline commands: runs (run, replay, retry, cancel, pause, resume, reset), held files (release), their
history and reports, the read-only query and the export of tables, demo data.

Registered into :data:`foss_supervisor.commands.registry.COMMANDS` on import (``commands`` imports this module).
Every one answers CommandError "no pipelines are configured" on a daemon without pipelines.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.errors import CommandError

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.service import PipelineService


__all__ = [
    "demo_data",
    "export",
    "pipeline_backfill",
    "pipeline_cancel",
    "pipeline_partitions",
    "pipeline_pause",
    "pipeline_release",
    "pipeline_replay",
    "pipeline_report",
    "pipeline_reset",
    "pipeline_resume",
    "pipeline_retry",
    "pipeline_run",
    "pipeline_run_info",
    "pipeline_runs",
    "pipelines",
    "query",
]

SQL_LIMIT = Limit(size=1024 * 1024)  # a statement of up to a mebibyte (the control socket's line limit)
PARTITION_LIMIT = Limit(size=64)  # a partition value (partition.MAX_VALUE)


def _pipelines(ctx: CommandContext) -> PipelineService:
    if ctx.pipelines is None:
        raise CommandError("no pipelines are configured (see pipelines: in the config)")
    return ctx.pipelines


@command("pipelines")
async def pipelines(ctx: CommandContext) -> list[dict[str, Any]]:
    """Every pipeline: its steps, its run in progress, its last finished run and its latest report (KPIs),
    and ``step_trends``: each step's latest successful run against the median of its ten before
    (``{step: {duration_s, median_s, ratio, previous, regressed}}``, regressed over 1.5x)."""
    return _pipelines(ctx).overview()


@command("pipeline_run", mutating=True, name=(str, ...), wait=(bool, False))
async def pipeline_run(ctx: CommandContext, name: str, wait: bool) -> dict[str, Any]:
    """Run a pipeline now. Returns the live run (with its run_id) at once, or its final record with wait."""
    return await _pipelines(ctx).run_now(name, wait)


@command("export", mutating=True, table=(str, ""), sql=(str, "", SQL_LIMIT), format=(str, "parquet"))
async def export(ctx: CommandContext, table: str, sql: str, format: str) -> dict[str, Any]:
    """Write a whole table or view (``table``: schema.table), or the whole result of a read-only query
    (``sql``, checked as ``query`` checks it), as csv, parquet or jsonl, streamed by DuckDB, no row cap.

    Returns ``{"path", "rows", "bytes", "format"}``: a file in ``<state_dir>/exports`` that the caller moves
    away or deletes (the CLI does both). Exactly one of ``table`` and ``sql``. Refused (CommandError, saying
    the figures) while the state filesystem is under its free-space floor or the exports folder holds its
    budget of files not yet fetched; an export that took the filesystem under the floor is removed
    (``foss_supervisor/base/diskroom.py``).
    """
    if bool(table) == bool(sql):
        raise CommandError("export needs a table (schema.table) or a query (sql), not both")
    return await _pipelines(ctx).export(table, format, sql)


@command("pipeline_reset", mutating=True, name=(str, ...), confirm=(str, ""))
async def pipeline_reset(ctx: CommandContext, name: str, confirm: str) -> dict[str, Any]:
    """Drop every table of a pipeline (its schemas and file ledger), forget its runs and reports, and remove
    what it published (``<data_dir>/published/<name>/``).

    ``confirm`` must repeat the pipeline's name. The next run ingests every landing file again.
    """
    return await _pipelines(ctx).reset(name, confirm)


@command("pipeline_release", mutating=True, name=(str, ...), files=(list, []), all=(bool, False))
async def pipeline_release(ctx: CommandContext, name: str, files: list[str], all: bool) -> dict[str, Any]:
    """Release held landing files of pipeline ``name`` (files a run held when they failed an error threshold of
    a quality step: see the docs): ``files`` (each a held file's name, path or sha256), or every one with
    ``all``. They become pending again and the next run, by any trigger, ingests them anew (after a rule or
    the data was fixed; a held file whose content changed is a new file and needs no release).

    A name or path releases every held content of that path, a sha256 that one content (pipeline/engine/holding.py).
    Returns ``{"pipeline", "released": [path, each once], "contents": held contents released, "held": [the held
    files left, one per path: {path, name, sha256, held_run, held_at, lines, note, contents, sha256s}], "stale":
    [{path, sha256, why: changed | missing}: a released content its landing file no longer holds, which the next
    run marks so and does not ingest]}``.
    Refused (nothing changes) with the reason: neither or both of ``files`` and ``all``, a file that is not held
    (the held ones are named), a run of the pipeline in progress.
    """
    return await _pipelines(ctx).release(name, files, all)


@command("pipeline_replay", mutating=True, name=(str, ...), wait=(bool, False))
async def pipeline_replay(ctx: CommandContext, name: str, wait: bool) -> dict[str, Any]:
    """Re-validate the quarantine (after reference data or a rule was fixed); rows that now pass go to silver."""
    return await _pipelines(ctx).run_now(name, wait, replay=True)


@command("pipeline_retry", mutating=True, run_id=(str, ...), step=(str, ""), wait=(bool, False))
async def pipeline_retry(ctx: CommandContext, run_id: str, step: str, wait: bool) -> dict[str, Any]:
    """Retry a failed or cancelled run as a new run (``retry_of`` names it): its failed steps, or ``step``, and
    everything downstream run again; the steps that succeeded are skipped, reused from it (see the docs).

    Only the latest run of a pipeline can be retried. Refused with the reason: unknown run, still running,
    succeeded, not the latest, pipeline busy, ``step`` unknown or ok, an upstream step not ok ("retry from
    X"), the pipeline's steps changed since. Returns the live run at once, or its final record with wait.
    """
    return await _pipelines(ctx).retry_now(run_id, step or None, wait)


@command("pipeline_pause", mutating=True, name=(str, ...))
async def pipeline_pause(ctx: CommandContext, name: str) -> dict[str, Any]:
    """Pause a pipeline's schedules (timer, cron, landing files, ``after:``); manual runs still run.

    Remembered across daemon restarts. Returns ``{"name", "paused": true}``.
    """
    return _pipelines(ctx).set_paused(name, True)


@command("pipeline_resume", mutating=True, name=(str, ...))
async def pipeline_resume(ctx: CommandContext, name: str) -> dict[str, Any]:
    """Resume a pipeline's schedules; files that landed while paused start a run.

    Returns ``{"name", "paused": false}``.
    """
    return _pipelines(ctx).set_paused(name, False)


@command("pipeline_cancel", mutating=True, name=(str, ...))
async def pipeline_cancel(ctx: CommandContext, name: str) -> dict[str, Any]:
    """Cancel the run in progress: the current step is rolled back, the run is recorded as cancelled. Once
    every step committed it is too late for the run: a cancel during its publish undoes the publish (the
    run is then ``succeeded_with_warnings``), and once the publish ended the cancel is refused (an error
    saying so; the run ends by itself when its snapshot is kept).

    Returns ``{"name", "cancelled": bool, "detail": str}`` (``detail`` says what happened, in words).
    """
    cancelled = await _pipelines(ctx).cancel(name)
    detail = f"the run of {name} in progress is cancelled" if cancelled else f"no run of {name} was in progress"
    return {"name": name, "cancelled": cancelled, "detail": detail}


@command(
    "pipeline_backfill",
    mutating=True,
    name=(str, ...),
    start=(str, "", PARTITION_LIMIT),
    end=(str, "", PARTITION_LIMIT),
    only_failed=(bool, False),
    dry_run=(bool, False),
    parallel=(int, 1, Limit(1, 64)),
    wait=(bool, False),
)
async def pipeline_backfill(
    ctx: CommandContext, name: str, start: str, end: str, only_failed: bool, dry_run: bool, parallel: int, wait: bool
) -> dict[str, Any]:
    """Re-run the partitions of a pipeline that declares ``partition:`` whose value is in ``[start, end]``
    (inclusive; empty is open; a date partition takes YYYY-MM-DD), each as its own run with reason
    ``backfill``: its ingest takes that partition's landing files again, replacing its earlier rows.

    ``only_failed``: just the partitions whose last partition run failed, was cancelled or abandoned.
    ``dry_run``: list the partitions, run nothing. ``parallel``: partitions run one at a time, because the runs
    of one pipeline never overlap and the DuckDB worker has one writer; any value but 1 is refused with that
    reason. ``pipeline_cancel`` cancels a backfill (its current partition is recorded as cancelled).

    Returns ``{"pipeline", "dry_run", "partitions": [value], "backfill": {"partitions", "done": {value:
    status}, "current", "counts", "started_at", "finished_at"} | null}`` at once, or when done with ``wait``.
    """
    return await _pipelines(ctx).backfill(
        name, start, end, only_failed=only_failed, dry_run=dry_run, parallel=parallel, wait=wait
    )


@command("pipeline_partitions", name=(str, ...))
async def pipeline_partitions(ctx: CommandContext, name: str) -> dict[str, Any]:
    """Every partition of a pipeline that declares ``partition:`` (from its landing files and its history), each
    with its last partition run: ``{"pipeline", "key", "partitions": [{"partition", "files", "status"
    (never_run when none), "run_id", "finished_at", "error", "failed_step", "warnings", "rows_out": {step:
    n}}], "counts": {status: n}, "unmatched_files", "backfill": the latest backfill | null}``."""
    return await _pipelines(ctx).partitions(name)


@command("pipeline_runs", name=(str, ""), limit=(int, 20))
async def pipeline_runs(ctx: CommandContext, name: str, limit: int) -> list[dict[str, Any]]:
    """Run history, newest first, with every step's state, rows in and out, timings and errors, and each run's
    ``ingested`` (lines its shipped ingest steps took in during it that stayed in bronze; null when none ran in
    it) and ``held_rows`` (bronze rows its hold took out; null when it held nothing)."""
    return _pipelines(ctx).runs(name or None, max(1, min(limit, 500)))


@command("pipeline_run_info", run_id=(str, ...))
async def pipeline_run_info(ctx: CommandContext, run_id: str) -> dict[str, Any]:
    """One run by its id (live while it runs), with ``retry_of`` (the run it retries, or null) and ``"retry":
    {"possible": bool, "reason": str | null, "from_steps": [step]}``: what ``pipeline_retry`` would accept."""
    return _pipelines(ctx).get_run(run_id)


@command("query", sql=(str, ..., SQL_LIMIT), max_rows=(int, 1000), timeout_s=(float, 10.0))
async def query(ctx: CommandContext, sql: str, max_rows: int, timeout_s: float) -> dict[str, Any]:
    """A read-only SQL query on the warehouse (bronze.x, silver.x, gold.x): SELECT only, time- and row-limited.

    Writes, ATTACH, COPY, INSTALL/LOAD, SET/PRAGMA and file-reading functions are refused; a query
    that runs past timeout_s (at most 60) is interrupted.
    """
    return await _pipelines(ctx).query(sql, max(1, min(max_rows, 100_000)), max(0.1, min(timeout_s, 60.0)))


@command("demo_data", mutating=True, name=(str, "orders"), orders=(int, 100_000, Limit(1, 20_000_000)), seed=(int, 1))
async def demo_data(ctx: CommandContext, name: str, orders: int, seed: int) -> dict[str, Any]:
    """Write a reproducible sample into the pipeline's landing folder, made by the generator its file names
    (``demo_data:``; the shipped ``orders`` makes ``orders`` orders with every kind of bad row)."""
    return await _pipelines(ctx).demo_data(name, orders, seed)


@command("pipeline_report", name=(str, ...), run_id=(str, ""))
async def pipeline_report(ctx: CommandContext, name: str, run_id: str) -> dict[str, Any]:
    """A run's report, the latest without run_id: ``{"name", "run_id", "html": str|None, "json": dict|None}``."""
    if run_id and not run_id.replace("-", "").replace("_", "").isalnum():
        raise CommandError(f"no such run: {run_id!r}")
    service = _pipelines(ctx)
    stem = run_id or "latest"

    def read(suffix: str) -> str | None:
        path = service.report_path(name, stem + suffix)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    html, body = await asyncio.to_thread(read, ".html"), await asyncio.to_thread(read, ".json")
    return {"name": name, "run_id": run_id or None, "html": html, "json": json.loads(body) if body else None}


# configuration management lives in its own module; importing it registers its commands
