"""Held files: the landing files of a batch that failed an error threshold, set aside in the file ledger.

Why: a quality step checks every bronze row it has not checked yet (quality.py). Before files could be
held, a batch below an error threshold stayed in bronze, so every later run checked it again together
with the new files and failed again: good data never got through until the operator deleted files by
hand. Now, when a step fails by crossing an ``error`` threshold in a whole run (mode ``run``, no
partition), the runner has the worker hold the batch, in one transaction of its own:

- the batch is every ledger file the failing step has not checked yet (status ``ingested`` and the step
  not in the file's ``checked_by``: :func:`mark_checked` adds a step with an error threshold to the files
  in bronze each time it commits, in any run (a quality step checks every bronze row it has not checked,
  also in a replay or a partition's run); ingest empties it (the file's rows are new); files of a ledger
  made before files could be held count as checked by every step, ``'*'``);
- their rows leave the ingest tables (the rows with the file's ``_source_sha256`` and its ingest's
  ``_batch_id``; no step after ingest has read them: the failing step's writes rolled back);
- each becomes ``held`` with ``held_run`` (the failing run), ``held_at`` and ``note`` (the threshold's
  message); ``lines`` keeps how many lines it had.

A held file is not discovered again (its content is known) nor ingested: later runs go on with the files
that land after it. A held file whose content changes is a new file (a new sha256). ``pipeline release``
(:func:`release_files`) makes held files ``pending`` again: the next run ingests them anew. A run that
fails for another reason (an SQL error, a timeout, a cancel) holds nothing: its files are checked again by
the next run. These are the ``kind: python`` steps the runner sends as ``_hold`` and ``_release``
(engine/holding.py), run in the worker like any step (one transaction, the pipeline's access).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.pipeline.worker.context import StepContext
from foss_supervisor.pipeline.worker.filescan import scan_file

__all__ = [
    "EVERY_STEP",
    "HOLD_CALLABLE",
    "INGEST_CALLABLE",
    "RELEASE_CALLABLE",
    "held_files_sql",
    "hold_files",
    "holds_files",
    "mark_checked",
    "release_files",
    "unchecked_files",
]

_QUALIFIED = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")  # an ingest table, as ingest.py checks it
#: the shipped ingest step's callable (ingest.py): the steps whose rows a hold sets aside, whose lines a run ingested
INGEST_CALLABLE = "foss_supervisor.pipeline.worker.ingest:ingest"
HOLD_CALLABLE = "foss_supervisor.pipeline.worker.hold:hold_files"
RELEASE_CALLABLE = "foss_supervisor.pipeline.worker.hold:release_files"
#: ``checked_by`` of a file a ledger held before files could be held: checked by every step, never held
EVERY_STEP = "*"


def holds_files(kind: str, message: str, mode: str, partition: str | None) -> bool:
    """The rule: a step failure holds its batch only when an ``error`` threshold was crossed (kind
    ``quality_failed``, message of :func:`~foss_supervisor.pipeline.thresholds.crossed`) in a whole run
    (mode ``run``, no partition). A threshold that names a metric the step lacks is a fault of the
    pipeline, not of the data; an SQL error, a timeout or a cancel is retried with the files by the next run."""
    return kind == "quality_failed" and message.startswith("error threshold of ") and mode == "run" and not partition


def mark_checked(cursor: Any, ledger: str, step: str) -> None:
    """Inside the transaction of step ``step`` (which has an error threshold), before COMMIT: every ledger file
    in bronze is now checked by it (``checked_by`` gets ``step``)."""
    cursor.execute(
        f"UPDATE {ledger}.files SET checked_by = list_append(coalesce(checked_by, []), ?)"  # noqa: S608
        " WHERE status = 'ingested' AND NOT list_contains(coalesce(checked_by, []), ?)"
        " AND NOT list_contains(coalesce(checked_by, []), ?)",
        [step, step, EVERY_STEP],
    )


def unchecked_files(cursor: Any, ledger: str, step: str) -> list[tuple[Any, ...]]:
    """(sha256, path, ingested_run, lines) of the files in bronze that step ``step`` has not checked, by path."""
    rows: list[tuple[Any, ...]] = cursor.execute(
        f"SELECT sha256, path, ingested_run, lines FROM {ledger}.files"  # noqa: S608
        " WHERE status = 'ingested' AND NOT list_contains(coalesce(checked_by, []), ?)"
        " AND NOT list_contains(coalesce(checked_by, []), ?) ORDER BY path, sha256",
        [step, EVERY_STEP],
    ).fetchall()
    return rows


def held_files_sql(ledger: str) -> str:
    """The read-only query of a ledger's held contents, by path, then oldest held first: ``(path, sha256, held_run,
    held_at, lines, note)`` rows (``held_at`` as ISO 8601 text)."""
    return (
        f"SELECT path, sha256, held_run, strftime(held_at, '%Y-%m-%dT%H:%M:%SZ'), lines, note FROM {ledger}.files"  # noqa: S608
        " WHERE status = 'held' ORDER BY path, held_at, discovered_at, sha256"
    )


def hold_files(ctx: StepContext) -> Mapping[str, Any]:
    """Hold the batch that step ``params.step`` failed with ``params.reason`` (see the module docstring):
    its rows leave the ingest tables ``params.tables`` (those that exist). Metrics: rows_in (files held),
    rows_out (bronze rows removed), files, ``held``: ``[[path, lines]]``, and ``own_rows``: the removed rows this
    run's own ingest took in (``_batch_id`` the run; the others an earlier run ingested)."""
    cur, ledger = ctx.cursor, ctx.ledger
    step, reason = str(ctx.params["step"]), str(ctx.params["reason"])
    tables: Sequence[str] = [
        t
        for t in ctx.params.get("tables") or []
        if _QUALIFIED.fullmatch(t)
        and cur.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name || '.' || table_name = ?", [t]
        ).fetchone()[0]
    ]
    now = dt.datetime.now(dt.UTC)
    removed = own = 0
    held: list[list[Any]] = []
    for sha, path, ingested_run, lines in unchecked_files(cur, ledger, step):
        for table in tables:
            where = f"FROM {table} WHERE _source_sha256 = ? AND _batch_id = ?"  # table: checked above
            n = int(cur.execute(f"SELECT count(*) {where}", [sha, ingested_run]).fetchone()[0])
            removed += n
            own += n if ingested_run == ctx.run_id else 0
            cur.execute(f"DELETE {where}", [sha, ingested_run])
        cur.execute(
            f"UPDATE {ledger}.files SET status = 'held', held_run = ?, held_at = ?, note = ?,"  # noqa: S608
            " ingested_run = NULL, ingested_at = NULL WHERE sha256 = ?",
            [ctx.run_id, now, f"held by step {step} of run {ctx.run_id}: {reason}", sha],
        )
        held.append([path, lines])
    ctx.log(f"held {len(held)} files ({removed} bronze rows set aside)")
    return {"rows_in": len(held), "rows_out": removed, "files": len(held), "held": held, "own_rows": own}


def release_files(ctx: StepContext) -> Mapping[str, Any]:
    """Make the held files ``params.sha256`` (a list) pending again: the next run ingests them (their note says
    when, and which run held them). Metrics: rows_in, rows_out and files (how many were released), and
    ``stale``: ``[[path, sha256, "changed" | "missing"]]`` of the released contents the landing file no longer
    holds (re-landed with other content, or deleted): the next run cannot ingest those, it marks them so."""
    cur, ledger = ctx.cursor, ctx.ledger
    shas = [str(s) for s in ctx.params.get("sha256") or []]
    now = dt.datetime.now(dt.UTC)
    released = 0
    stale: list[list[str]] = []
    for sha in shas:
        found = cur.execute(
            f"UPDATE {ledger}.files SET status = 'pending', checked_by = [],"  # noqa: S608
            " note = 'released at ' || ? || ' (held by run ' || coalesce(held_run, '?') || ')'"
            " WHERE sha256 = ? AND status = 'held' RETURNING path, size_bytes, mtime_ns",
            [f"{now:%Y-%m-%dT%H:%M:%SZ}", sha],
        ).fetchall()
        released += len(found)
        for path, size, mtime_ns in found:
            if (why := _no_longer_held(Path(path), sha, size, mtime_ns)) is not None:
                stale.append([path, sha, why])
    return {"rows_in": released, "rows_out": released, "files": released, "stale": stale}


def _no_longer_held(path: Path, sha: str, size: int, mtime_ns: int) -> str | None:
    """``missing`` when the landing file is gone, ``changed`` when it holds another content than ``sha`` (as
    ingest tells: hashed only when its size or mtime differ), else None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    if (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
        return None
    try:
        return None if scan_file(path).sha256 == sha else "changed"
    except OSError:
        return "missing"
