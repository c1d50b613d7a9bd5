"""Whether a run changed any layer table since the previous snapshot (issue 18: runs with nothing new had each
kept a snapshot, pushing the real ones out of the retention and emptying the dashboard's last diff).

Asked of a staged snapshot before it is made whole (runsnapshots.RunSnapshots.keep_snapshot): the same set
of tables, each of the same columns, types and row count as in the previous snapshot, and each either made
of the previous snapshot's very files (the same inodes: the worker hard-linked them after checking the
table's rows against them, worker/segments.py) or of the same rows compared in the worker. That comparison
is strict: whole rows by the hash of each value's text, so ``-0.0`` differs from ``0.0`` and an interval of
``1 month`` from ``30 days``, though SQL calls them equal (worker/diff.py, ``strict``). A file the worker
linked from the run's own published set is new, and so compared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.pipeline.engine.workerclient import WorkerClient
from foss_supervisor.pipeline.errors import PipelineError

__all__ = ["COMPARE_TIMEOUT_S", "staged_unchanged", "unchanged_since"]

log = structlog.get_logger("foss_supervisor.pipeline")

#: how long the worker may compare a staged snapshot's tables with the previous one's (past it: changed)
COMPARE_TIMEOUT_S = 60.0


def unchanged_since(
    written: list[dict[str, Any]], previous: dict[str, Any], same_files: Callable[[str], bool]
) -> list[str] | None:
    """Whether a snapshot the worker wrote (``[{table, files: [{file, rows, linked}], rows, schema}]``) may
    hold the very tables of ``previous`` (a manifest's ``tables``): None when it cannot (another set of
    tables, a schema or a row count that differs), else the tables whose rows must still be compared: all
    but those for which ``same_files(table)`` (the previous snapshot's very files). ``[]``: the same tables."""
    if not previous or {str(t["table"]) for t in written} != set(previous):
        return None
    compare = []
    for t in written:
        before = previous[str(t["table"])]
        columns = [(c["name"], c["type"]) for c in t["schema"]]
        if columns != [(c["name"], c["type"]) for c in before["schema"]] or t["rows"] != before["rows"]:
            return None
        if not same_files(str(t["table"])):
            compare.append(str(t["table"]))
    return compare


def _inodes(paths: list[Path]) -> list[tuple[int, int]] | None:
    """The (device, inode) of each of ``paths``, sorted; None when one cannot be read."""
    try:
        return sorted((st.st_dev, st.st_ino) for st in (p.stat() for p in paths))
    except OSError:
        return None


async def staged_unchanged(
    client: WorkerClient, pipeline: str, stage: Path, written: list[dict[str, Any]], previous: dict[str, Any]
) -> bool:
    """Whether the snapshot staged in ``stage`` (the worker's ``written`` tables, files named in ``stage``)
    holds the tables of ``previous`` (see the module docstring). False when the comparison fails or takes
    longer than :data:`COMPARE_TIMEOUT_S` (the snapshot is then kept, as for a run that changed something)."""
    staged_files = {str(t["table"]): [stage / str(f["file"]) for f in t["files"]] for t in written}

    def same_files(table: str) -> bool:
        now = _inodes(staged_files[table])
        return now is not None and now == _inodes([Path(f["file"]) for f in previous[table]["files"]])

    compare = await asyncio.to_thread(unchanged_since, written, previous, same_files)
    if compare is None or not compare:
        return compare is not None
    staged = {str(t["table"]): t for t in written}
    b = {
        n: {**staged[n], "files": [{**f, "file": str(stage / f["file"])} for f in staged[n]["files"]]} for n in compare
    }
    a = {n: previous[n] for n in compare}
    request = {"task": "diff", "a": {"tables": a}, "b": {"tables": b}, "timeout_s": COMPARE_TIMEOUT_S, "strict": True}
    try:
        found = await client.task(
            request, timeout_s=COMPARE_TIMEOUT_S + 5.0, what=f"comparison of {pipeline}'s snapshot"
        )
    except PipelineError:
        return False
    same = all(t["added"] == 0 and t["removed"] == 0 and not t["changed"] for t in found["tables"])
    log.debug("pipeline_snapshot_compared", pipeline=pipeline, tables=compare, same=same)
    return same
