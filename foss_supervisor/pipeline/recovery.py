"""After a daemon that was killed: the steps of its abandoned run whose transaction committed are told as they were.

The history writes a run when it starts and when it ends (history.py); a daemon killed in between leaves a run
that only started, which the history reports ``abandoned`` with every step as it was at the start. Yet the
steps that committed before the kill are in the tables, and the worker's ledger says so: inside each step's own
transaction it keeps a row per committed attempt of the current run (ledger.record_commit). Once the worker is
up, the newest run of each pipeline, when it is such an abandoned run, gets those steps back as succeeded with
their rows and warnings, so that the history adds up with the tables (issue 18: "history says what happened").
A pipeline's later runs replace the ledger's rows, so only its newest run can be told; it is told once (its
error then names what had committed).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from foss_supervisor.pipeline.errors import PipelineError
from foss_supervisor.pipeline.history import ABANDONED_ERROR, RunHistory, RunRecord, StepRecord, metric_count
from foss_supervisor.pipeline.ledger import committed_steps_sql
from foss_supervisor.pipeline.spec import PipelineSpec
from foss_supervisor.pipeline.states import RunStatus, StepState
from foss_supervisor.pipeline.workerclient import WorkerClient

__all__ = ["recover_abandoned", "told_run"]

log = structlog.get_logger("foss_supervisor.pipeline.recovery")


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
        history.append(told_run(run, found.rows))
        told.append(run.run_id)
        log.info("pipeline_abandoned_run_told", run_id=run.run_id, committed=[str(r[0]) for r in found.rows])
    return told


def told_run(run: RunRecord, committed: Sequence[Sequence[Any]]) -> RunRecord:
    """``run`` with each step of ``committed`` (``(step, attempt, metrics JSON, warnings JSON)`` rows) succeeded
    with its rows, metrics and warnings, and an error that names them; its other steps as they were."""
    by_step = {str(row[0]): row for row in committed}
    steps = tuple(_succeeded(s, by_step[s.name]) if s.name in by_step else s for s in run.steps)
    names = [s.name for s in run.steps if s.name in by_step]
    said = f"; steps committed before it stopped: {', '.join(names)}" if names else "; no step had committed"
    return dataclasses.replace(run, steps=steps, error=ABANDONED_ERROR + said)


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
