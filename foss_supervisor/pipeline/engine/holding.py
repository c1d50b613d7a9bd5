"""Held files, the runner's part: :class:`HeldFiles` is a base of the runner, which sets the attributes declared
below. What holding means and the worker's part: worker/hold.py.

- :meth:`HeldFiles.hold_batch`: after a step of a whole run failed by crossing an error threshold
  (hold.holds_files), the batch it checked is held in one worker transaction; the run's ``held`` and ``note``
  say which files.
- :meth:`HeldFiles.release`: ``pipeline release``: held files become pending, ingested by the next run.
- :meth:`HeldFiles.held`: a pipeline's held files as last read (at the runner's start, after each hold and
  release; forgotten by a reset), for ``pipelines`` (status) and the dashboard without a query.

A held *file* is a landing path: the ledger may hold several contents of one path (held in two runs, or re-landed
with other content that failed again). Every listing shows each path once (:func:`held_entries`: its newest held
content, with ``contents`` and every ``sha256s``), and a release by name or path releases every held content of
it, exactly what its entry stands for; a sha256 releases that one content (:func:`release_plan`). The reply and a
run's ``held`` name each path once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

import structlog

from foss_supervisor.base.pipelinestates import RunMode
from foss_supervisor.pipeline.engine.history import metric_count
from foss_supervisor.pipeline.engine.runstate import ActiveRun, access_payload, folders_payload
from foss_supervisor.pipeline.engine.spec import PipelineSpec, StepSpec
from foss_supervisor.pipeline.engine.workerclient import StepAttemptError, WorkerClient
from foss_supervisor.pipeline.errors import PipelineBusyError, PipelineError, UnknownPipelineError
from foss_supervisor.pipeline.worker.hold import HOLD_CALLABLE, INGEST_CALLABLE, RELEASE_CALLABLE, held_files_sql

__all__ = ["INGEST_CALLABLE", "HeldFiles", "held_entries", "ingest_tables", "release_plan"]

log = structlog.get_logger("foss_supervisor.pipeline")

HELD_SHOWN = 5  # file names a run's note lists (its ``held`` has them all)


def ingest_tables(spec: PipelineSpec) -> list[str]:
    """The bronze tables the shipped ingest steps of ``spec`` write (``params.table``; a step without one fails)."""
    return sorted({str(s.params["table"]) for s in spec.steps if s.callable == INGEST_CALLABLE and "table" in s.params})


def held_entries(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """One entry per held path from held_files_sql rows (by path, oldest held first): ``{path, name, sha256,
    held_run, held_at, note}`` of its newest held content, ``lines`` (all its held contents' lines, summed),
    ``contents`` (how many are held) and ``sha256s`` (all of them, oldest first). Paths in the rows' order."""
    by_path: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_path.setdefault(str(row[0]), []).append(row)
    out = []
    for path, found in by_path.items():
        _, sha, held_run, held_at, _, note = found[-1]
        counted = [int(r[4]) for r in found if r[4] is not None]
        out.append(
            {
                "path": path,
                "name": PurePath(path).name,
                "sha256": sha,
                "held_run": held_run,
                "held_at": held_at,
                "lines": sum(counted) if counted else None,
                "note": note,
                "contents": len(found),
                "sha256s": [r[1] for r in found],
            }
        )
    return out


def release_plan(
    entries: Sequence[dict[str, Any]], files: Sequence[str], every: bool
) -> tuple[list[str], list[str], list[str]]:
    """What a release of ``files`` (names, paths or sha256; all with ``every``) of the held ``entries``
    (:func:`held_entries`) does: ``(sha256 to release, their paths (each once, in the entries' order), what
    of files is not held)``. A name or path stands for every held content of its paths, a sha256 for its one."""
    wanted = set(files)
    shas: list[str] = []
    paths: list[str] = []
    for e in entries:
        chosen = e["sha256s"] if every or {e["name"], e["path"]} & wanted else [s for s in e["sha256s"] if s in wanted]
        if chosen:
            shas.extend(chosen)
            paths.append(e["path"])
    unknown = [f for f in dict.fromkeys(files) if not any(f in (e["name"], e["path"], *e["sha256s"]) for e in entries)]
    return shas, paths, unknown


class HeldFiles:
    """Holds and releases landing files through the worker; the runner sets the attributes below."""

    _specs: dict[str, PipelineSpec]
    client: WorkerClient
    _step_lock: asyncio.Lock
    _run_locks: dict[str, asyncio.Lock]
    _closed: bool
    _held: dict[str, list[dict[str, Any]]]

    def held(self, pipeline: str) -> list[dict[str, Any]]:
        """The held files of ``pipeline`` as last read, one per path (:func:`held_entries`; empty before the
        first read)."""
        return list(self._held.get(pipeline, ()))

    async def refresh_held(self, spec: PipelineSpec) -> list[dict[str, Any]]:
        """Read ``spec``'s held files from its ledger (none when the ledger cannot be read: logged)."""
        try:
            found = await self.client.query(held_files_sql(spec.ledger), max_rows=100_000, timeout_s=30.0)
        except PipelineError as exc:  # no ledger yet (never run), or one made before files could be held
            log.debug("pipeline_held_files_not_read", pipeline=spec.name, error=str(exc))
            self._held.pop(spec.name, None)
            return []
        rows = held_entries(found.rows)
        self._held[spec.name] = rows
        return rows

    def _payload(
        self, spec: PipelineSpec, run_id: str, name: str, callable_: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "pipeline": spec.name,
            "run_id": run_id,
            "mode": RunMode.RUN.value,
            "require_metrics": False,
            "folders": folders_payload(spec),
            "access": access_payload(spec),
            "step": {"name": name, "kind": "python", "callable": callable_, "params": params},
        }

    async def hold_batch(self, run: ActiveRun, step: StepSpec, reason: str) -> None:
        """Hold the files step ``step`` of ``run`` failed on (hold.hold_files); sets ``run.held`` and ``run.note``.
        A failure to hold is logged and said in the note: the files are then checked again by the next run. A
        pipeline without the shipped ingest step holds nothing."""
        tables = ingest_tables(run.spec)
        if not tables:  # files another step ingested: their rows cannot be told apart, so nothing is held
            return
        params = {"step": step.name, "reason": reason, "tables": tables}
        payload = self._payload(run.spec, run.run_id, "_hold", HOLD_CALLABLE, params)
        try:
            async with self._step_lock:
                result = await self.client.attempt(payload, timeout_s=300.0, on_log=None)
        except (PipelineError, StepAttemptError) as exc:
            log.warning("pipeline_files_not_held", run_id=run.run_id, pipeline=run.spec.name, error=str(exc))
            run.note = f"the files of the failed batch could not be held ({exc}): the next run checks them again"
            return
        by_path: dict[str, int] = {}  # one path may have had two contents in the batch (re-landed): named once
        for p, n in result["metrics"].get("held") or []:
            by_path[str(p)] = by_path.get(str(p), 0) + int(n or 0)
        held = list(by_path.items())
        run.held = tuple(by_path)
        run.held_rows = metric_count(result["metrics"].get("rows_out"))
        run.held_own = metric_count(result["metrics"].get("own_rows")) or 0
        if held:
            names = ", ".join(PurePath(p).name for p, _ in held[:HELD_SHOWN])
            more = f" and {len(held) - HELD_SHOWN} more" if len(held) > HELD_SHOWN else ""
            lines = sum(n for _, n in held)
            run.note = (
                f"held {len(held)} file(s) ({lines} lines) below the error threshold of step {step.name}:"
                f" {names}{more}; later runs go on without them until `pipeline release {run.spec.name}`"
            )
        log.info("pipeline_files_held", run_id=run.run_id, pipeline=run.spec.name, files=len(held))
        await self.refresh_held(run.spec)  # before the run's end is told: ``pipelines`` shows them with it

    async def release(self, pipeline: str, files: Sequence[str] = (), *, every: bool = False) -> dict[str, Any]:
        """Make held files of ``pipeline`` pending again, so its next run ingests them: ``files`` (each a held
        file's name, path or sha256), or all of them with ``every``. Returns ``{"pipeline", "released": [path],
        "held": [the held files left], "stale": [{"path", "sha256", "why": "changed" | "missing"}]}``: ``stale``,
        the released contents their landing file no longer holds (the next run marks them so, not ingests them).

        Raises PipelineError naming what is not held (and what is) or when neither or both of ``files`` and
        ``every`` are given, PipelineBusyError while a run of it is in progress, StepAttemptError if DuckDB
        refuses. ``released`` names each path once; ``contents`` counts the held contents released (a path held
        with two contents: one path, two contents; see the module docstring)."""
        spec = self._specs.get(pipeline)
        if spec is None:
            raise UnknownPipelineError(f"no pipeline named {pipeline!r} (known: {', '.join(sorted(self._specs))})")
        if bool(files) == every:
            raise PipelineError("release needs held files (names, paths or sha256) or all of them, not both")
        lock = self._run_locks[pipeline]
        if lock.locked() or self._closed:
            raise PipelineBusyError(f"pipeline {pipeline!r} is running; release its held files once the run ends")
        async with lock:
            held = await self.refresh_held(spec)
            shas, paths, unknown = release_plan(held, files, every)
            if unknown:
                have = ", ".join(h["name"] for h in held) or "none"
                raise PipelineError(f"not held in {pipeline}: {', '.join(unknown)} (held: {have})")
            stale: list[dict[str, str]] = []
            if shas:
                payload = self._payload(spec, "release", "_release", RELEASE_CALLABLE, {"sha256": shas})
                async with self._step_lock:
                    result = await self.client.attempt(payload, timeout_s=300.0, on_log=None)
                found = result["metrics"].get("stale") or []
                stale = [{"path": str(p), "sha256": str(s), "why": str(w)} for p, s, w in found]
            left = await self.refresh_held(spec)
        log.info("pipeline_files_released", pipeline=pipeline, files=len(paths), contents=len(shas))
        return {"pipeline": pipeline, "released": paths, "contents": len(shas), "held": left, "stale": stale}
