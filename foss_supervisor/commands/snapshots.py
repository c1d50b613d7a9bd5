"""Commands on run snapshots (issue 18): the diff of two runs' tables and the rollback of a pipeline's tables
and published set to an earlier run (through PipelineService; pipeline/engine/runsnapshots.py does the work, in
the DuckDB worker).

Registered into :data:`foss_supervisor.commands.registry.COMMANDS` on import (``commands`` imports this module).
"""

from __future__ import annotations

from typing import Any

from foss_supervisor.commands.pipelines import _pipelines
from foss_supervisor.commands.registry import CommandContext, Limit, command
from foss_supervisor.errors import CommandError

__all__ = ["pipeline_diff", "pipeline_rollback"]

RUN_ID = Limit(size=100)  # a run id is ``YYYYmmddTHHMMSSZ-xxxxxx``; anything longer is no run


@command("pipeline_diff", run_a=(str, "", RUN_ID), run_b=(str, "", RUN_ID), name=(str, ""), timeout_s=(float, 60.0))
async def pipeline_diff(ctx: CommandContext, run_a: str, run_b: str, name: str, timeout_s: float) -> dict[str, Any]:
    """What changed in a pipeline's tables from run ``run_a`` to run ``run_b`` (both runs of one pipeline, each
    with its snapshot kept: see ``snapshot_keep``), computed in the worker and interrupted at ``timeout_s`` (at
    most 600). With ``name`` instead of the runs: pipeline ``name``'s last snapshot against the one before
    (what its last run changed; no ``tables`` and null runs while it has fewer than two).

    Returns ``{"pipeline", "run_a", "run_b", "truncated", "tables": [{table, status: added|dropped|kept,
    rows_a, rows_b, added, removed, changed, match, schema: {added, dropped, retyped}, columns: [{name, a: {null_rate,
    min, max}, b}]}]}``. Rows are matched by ``match.columns``: the table's key (``match.by`` ``key``: its
    PRIMARY KEY or UNIQUE constraint, else the key its ``deduplicate`` step declares), or whole rows over
    the columns both runs have (``whole_rows``; ``changed`` is then null: an edited row is one removed and
    one added). Refused with the reason when a run is unknown or its snapshot is gone or incomplete.
    """
    if not (run_a and run_b) and not (name and not (run_a or run_b)):
        raise CommandError("pipeline_diff needs two runs (run_a, run_b), or a pipeline's name alone")
    return await _pipelines(ctx).diff(run_a, run_b, name, max(0.1, min(timeout_s, 600.0)))


@command("pipeline_rollback", mutating=True, name=(str, ...), to=(str, ..., RUN_ID), yes=(bool, False))
async def pipeline_rollback(ctx: CommandContext, name: str, to: str, yes: bool) -> dict[str, Any]:
    """Restore pipeline ``name``'s layer tables to what run ``to`` left (its snapshot) and make that run's
    published set current again (``publish_format: delta``: each table restored to that run's version by a
    new commit; re-published from the restored tables when it is no longer kept), in one transaction: a
    failure leaves every table as it was. A daemon killed once that transaction committed finishes the
    published set and the snapshot at its next start (the run then ends ``succeeded_with_warnings`` saying
    so). The file ledger is not rolled back (files landed since stay ingested; ``pipeline reset`` ingests
    everything again).

    Without ``yes`` nothing changes: returns ``{"pipeline", "to", "applied": false, "published": "switch" |
    "restore" | "republish" | null, "changes": [per table as pipeline_diff gives it, live tables -> the
    snapshot]}``. With
    ``yes`` returns ``"applied": true``, ``"run_id"`` (the run, reason ``rollback``, that records it),
    ``"tables": [{table, rows}]`` and ``"dropped"`` (tables made since, removed). Refused while a run of the
    pipeline is in progress, and when run ``to``'s snapshot is gone (``snapshot_keep``) or incomplete.
    """
    return await _pipelines(ctx).rollback(name, to, yes)
