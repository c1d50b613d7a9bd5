"""After a daemon that was killed: the steps of its abandoned run whose transaction committed are told as they were.

The history writes a run when it starts and when it ends (history.py); a daemon killed in between leaves a run
that only started, which the history reports ``abandoned`` with every step as it was at the start. Yet the
steps that committed before the kill are in the tables, and the worker's ledger says so: inside each step's own
transaction it keeps a row per committed attempt of the current run (ledger.record_commit). Once the worker is
up, the newest run of each pipeline, when it is such an abandoned run, gets those steps back as succeeded with
their rows and warnings, so that the history adds up with the tables (issue 18: "history says what happened").
A pipeline's later runs replace the ledger's rows, so only its newest run can be told; it is told once (its
error then names what had committed).

A rollback is such a run too (reason ``rollback``, runsnapshots.py): its restore writes a row to the ledger's
``rollbacks`` in its own transaction. When the daemon was killed after that commit, :func:`left_rollback` gives
the run to record (``succeeded_with_warnings``, saying the daemon stopped before the published set and the
snapshot were switched), and the runner finishes that switch before it records it
(``RunSnapshots.recover_rollbacks``). A rollback without that row had not committed: its tables are as before.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import structlog

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.engine.flowrun import ROLLED_BACK
from foss_supervisor.pipeline.engine.history import ABANDONED_ERROR, RunHistory, RunRecord, StepRecord, metric_count
from foss_supervisor.pipeline.engine.publish import RUN_ID
from foss_supervisor.pipeline.engine.spec import PipelineSpec
from foss_supervisor.pipeline.engine.workerclient import WorkerClient
from foss_supervisor.pipeline.errors import PipelineError
from foss_supervisor.pipeline.worker.hold import INGEST_CALLABLE
from foss_supervisor.pipeline.worker.ledger import committed_steps_sql

__all__ = ["ROLLBACK", "LeftRollback", "left_rollback", "recover_abandoned", "told_run"]

log = structlog.get_logger("foss_supervisor.pipeline.recovery")

#: the trigger (and reason, history.RUN_REASONS) of the run that records a rollback
ROLLBACK = "rollback"
#: what the run of a rollback whose daemon was killed after its restore committed says (with what came of it)
ROLLBACK_LEFT = (
    "the daemon stopped after the tables were rolled back and before the published set and the snapshot were"
    " switched to them; finished when it started again"
)


async def recover_abandoned(history: RunHistory, specs: Mapping[str, PipelineSpec], client: WorkerClient) -> list[str]:
    """Tell each pipeline's newest run, when the history found it abandoned and has not told it yet, which of its
    steps committed (read from the worker's ledger), appending the corrected record. Returns the run ids told.
    A ledger that cannot be read leaves that run as it was (logged), never raises for it."""
    told: list[str] = []
    for spec in specs.values():
        latest = history.list(spec.name, 1)
        if not latest or latest[0].status is not RunStatus.ABANDONED or latest[0].error != ABANDONED_ERROR:
            continue
        run = latest[0]
        try:
            found = await client.query(committed_steps_sql(spec.ledger, run.run_id), max_rows=1000, timeout_s=30.0)
        except PipelineError as exc:
            log.warning("pipeline_abandoned_run_not_checked", run_id=run.run_id, error=str(exc))
            continue
        ingest = {s.name for s in spec.steps if s.callable == INGEST_CALLABLE}
        history.append(told_run(run, found.rows, ingest_steps=ingest))
        told.append(run.run_id)
        log.info("pipeline_abandoned_run_told", run_id=run.run_id, committed=[str(r[0]) for r in found.rows])
    return told


def told_run(run: RunRecord, committed: Sequence[Sequence[Any]], *, ingest_steps: Collection[str] = ()) -> RunRecord:
    """``run`` with each step of ``committed`` (``(step, attempt, metrics JSON, warnings JSON)`` rows) succeeded
    with its rows, metrics and warnings, and an error that names them; its other steps as they were. Its
    ``ingested``: the ``rows_out`` of the committed ones among ``ingest_steps`` (the pipeline's shipped ``ingest``
    steps), summed, as a finished run counts them (runstate.ActiveRun.ingested); as it was when none committed."""
    by_step = {str(row[0]): row for row in committed}
    steps = tuple(_succeeded(s, by_step[s.name]) if s.name in by_step else s for s in run.steps)
    names = [s.name for s in run.steps if s.name in by_step]
    said = f"; steps committed before it stopped: {', '.join(names)}" if names else "; no step had committed"
    note = run.note
    if run.trigger == ROLLBACK:  # a rollback whose restore committed is told by left_rollback instead
        said = "; its restore had not committed: every table is as it was"
        note = f"rollback to run {note.rsplit(' ', 1)[-1]} not applied" if note else note  # the run it named
    counts = [s.rows_out for s in steps if s.name in by_step and s.name in ingest_steps and s.rows_out is not None]
    ingested = sum(counts) if counts else run.ingested
    return dataclasses.replace(run, steps=steps, error=ABANDONED_ERROR + said, note=note, ingested=ingested)


def _succeeded(step: StepRecord, row: Sequence[Any]) -> StepRecord:
    try:
        metrics = json.loads(row[2])
        warnings = json.loads(row[3])
    except (TypeError, ValueError):
        metrics, warnings = {}, []
    metrics = metrics if isinstance(metrics, dict) else {}
    warnings = tuple(str(w) for w in warnings) if isinstance(warnings, list) else ()
    return dataclasses.replace(
        step,
        state=StepState.SUCCEEDED_WITH_WARNINGS if warnings else StepState.SUCCEEDED,
        attempts=int(row[1]) if isinstance(row[1], int) else step.attempts,
        rows_in=metric_count(metrics.get("rows_in")),
        rows_out=metric_count(metrics.get("rows_out")),
        metrics=metrics,
        warnings=warnings,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class LeftRollback:
    """A rollback whose restore committed but whose run a killed daemon never recorded as finished."""

    record: RunRecord  # the run to record once the switch is done (its error then says how that went)
    target: str | None  # the run whose tables were restored; None when the ledger's row names no run id


def left_rollback(
    history: RunHistory, pipeline: str, steps: Sequence[str], row: Sequence[Any], *, now: float
) -> LeftRollback | None:
    """The rollback ``row`` (``(run_id, target, started_at)`` of ``<ledger>.rollbacks``, any values) records, when
    it is left to finish: its run is unknown to the history or was found abandoned there, and no run of
    ``pipeline`` started after it (its record then comes last, as it happened). None otherwise (told already, a
    row that names no run id, or later runs). Never raises."""
    cells = [*row, None, None, None][:3]
    run_id, target = (c if isinstance(c, str) else None for c in cells[:2])
    started = cells[2]
    if run_id is None or not RUN_ID.fullmatch(run_id):
        return None
    known = history.get(run_id)
    latest = history.list(pipeline, 1)
    if known is not None:
        if known.pipeline != pipeline or known.status is not RunStatus.ABANDONED or known.error != ABANDONED_ERROR:
            return None
        if latest[0].run_id != run_id:
            return None
        started_at = known.started_at
    else:
        if not isinstance(started, int | float) or isinstance(started, bool) or not math.isfinite(started):
            return None
        if latest and latest[0].started_at > started:
            return None
        started_at = float(started)
    named = target if target is not None and RUN_ID.fullmatch(target) else None
    record = RunRecord(
        run_id=run_id,
        pipeline=pipeline,
        mode=RunMode.RUN,
        trigger=ROLLBACK,
        status=RunStatus.SUCCEEDED_WITH_WARNINGS,
        started_at=started_at,
        finished_at=max(now, started_at),
        steps=known.steps if known is not None else tuple(StepRecord(name=s, state=StepState.SKIPPED) for s in steps),
        error=ROLLBACK_LEFT,
        note=f"{ROLLED_BACK}{named}" if named else "rolled back to a run its ledger row does not name",
    )
    return LeftRollback(record, named)
