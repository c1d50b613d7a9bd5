"""A pipeline's file ledger and the shipped ``discover`` step that fills it.

Why one ledger per pipeline: with one shared queue, the first ingest to run took every pending file,
whoever's landing folder it came from (issue 8: ``orders`` ended with no rows, its files marked ingested).
Each pipeline now keeps its ledger in its own schema (``PipelineSpec.ledger``), created by the engine before
the pipeline's setup SQL, so a pipeline only ever sees the files its own discover registered::

    <ledger>.files      one row per distinct file content (sha256) this pipeline discovered:
                        sha256, path, format (csv | jsonl | parquet), reader (duckdb | python), size_bytes,
                        mtime_ns, status (pending | ingested | changed | missing | held), discovered_run,
                        discovered_at, ingested_run, ingested_at, lines, note, held_run, held_at (the run
                        that held it, hold.py), checked_by (the steps with an error threshold that have
                        checked its rows; '*' for a file in bronze before files could be held)
    <ledger>.file_seen  cache (path, size_bytes, mtime_ns) -> sha256, format, reader: unchanged files are
                        not hashed again
    <ledger>.step_commits  one row per step attempt of the current run that committed (run_id, step,
                        attempt, metrics and warnings as JSON), written in the step's own transaction: a
                        worker killed between COMMIT and its reply leaves the proof (see steps.py)
    <ledger>.rollbacks  the newest rollback whose restore committed (run_id, target run, started_at in epoch
                        seconds), written in the restore's own transaction: a daemon killed before it
                        switched the published set finishes that at its next start (engine/recovery.py); the
                        next step that commits removes it (the tables then hold more than the rollback)
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.pipeline.worker.context import StepContext
from foss_supervisor.pipeline.worker.filescan import scan_file
from foss_supervisor.pipeline.worker.hold import mark_checked

__all__ = [
    "committed_result_sql",
    "committed_steps_sql",
    "discover",
    "file_format",
    "landing_files",
    "ledger_ddl",
    "new_content_fate",
    "pending_files",
    "record_commit",
    "record_rollback",
    "rollbacks_sql",
    "set_file_status",
]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ledger_ddl(schema: str) -> str:
    """Idempotent DDL of the ledger tables in ``schema`` (a plain lower-case identifier)."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"ledger schema {schema!r} is not a plain identifier")
    return f"""
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.files (
    sha256 VARCHAR NOT NULL, path VARCHAR NOT NULL, format VARCHAR NOT NULL, reader VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, status VARCHAR NOT NULL, discovered_run VARCHAR NOT NULL,
    discovered_at TIMESTAMPTZ NOT NULL, ingested_run VARCHAR, ingested_at TIMESTAMPTZ, lines BIGINT, note VARCHAR,
    held_run VARCHAR, held_at TIMESTAMPTZ, checked_by VARCHAR[]
);
-- a ledger made before files could be held (hold.py): its files in bronze count as checked by every step
ALTER TABLE {schema}.files ADD COLUMN IF NOT EXISTS held_run VARCHAR;
ALTER TABLE {schema}.files ADD COLUMN IF NOT EXISTS held_at TIMESTAMPTZ;
ALTER TABLE {schema}.files ADD COLUMN IF NOT EXISTS checked_by VARCHAR[];
UPDATE {schema}.files SET checked_by = CASE WHEN status = 'pending' THEN []::VARCHAR[] ELSE ['*'] END
    WHERE checked_by IS NULL;
CREATE TABLE IF NOT EXISTS {schema}.file_seen (
    path VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, sha256 VARCHAR NOT NULL,
    format VARCHAR NOT NULL, reader VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.step_commits (
    run_id VARCHAR NOT NULL, step VARCHAR NOT NULL, attempt INTEGER NOT NULL, metrics VARCHAR NOT NULL,
    warnings VARCHAR NOT NULL
);
""" + _rollbacks_ddl(schema)  # noqa: S608 (a checked identifier)


def _rollbacks_ddl(schema: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {schema}.rollbacks"
        " (run_id VARCHAR NOT NULL, target VARCHAR NOT NULL, started_at DOUBLE NOT NULL);\n"
    )


def record_commit(cursor: Any, message: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    """Inside the step's transaction, just before COMMIT: note that this attempt (``message["attempt"]``, sent
    by a run's steps only) committed, with its result, in ``<ledger>.step_commits`` (the current run's rows
    only). The runner reads it when the worker died before its reply could say so (committed_result_sql)."""
    if message.get("attempt") is None:
        return
    table = f"{(message.get('access') or {}).get('ledger') or 'meta'}.step_commits"  # checked by the loader
    run_id, step = str(message["run_id"]), str(message["step"]["name"])
    cursor.execute(f"DELETE FROM {table} WHERE run_id <> ?", [run_id])  # noqa: S608
    # a step committed since the last rollback: its row no longer says what the tables hold (record_rollback)
    cursor.execute(f"DELETE FROM {table.removesuffix('.step_commits')}.rollbacks")  # noqa: S608
    cursor.execute(
        f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)",  # noqa: S608
        [run_id, step, int(message["attempt"]), json.dumps(result["metrics"]), json.dumps(result["warnings"])],
    )
    if any(t.get("severity") == "error" for t in message["step"].get("thresholds") or []):
        mark_checked(cursor, table.removesuffix(".step_commits"), step)  # the files it checked (hold.py)


def record_rollback(cursor: Any, message: Mapping[str, Any]) -> None:
    """Inside a rollback's restore transaction, just before COMMIT: note that run ``message["run_id"]`` rolled the
    tables back to run ``message["target"]`` (started at ``message["started_at"]``, epoch seconds), as the only
    row of ``<message["ledger"]>.rollbacks`` (made when an older ledger lacks it). Nothing without ``run_id``.
    Raises ValueError for a ledger that is not a plain identifier."""
    if message.get("run_id") is None:
        return
    ledger = str(message.get("ledger") or "")
    if not _SCHEMA.fullmatch(ledger):
        raise ValueError(f"ledger schema {ledger!r:.80} is not a plain identifier")
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {ledger}; " + _rollbacks_ddl(ledger))
    cursor.execute(f"DELETE FROM {ledger}.rollbacks")  # noqa: S608 (a checked identifier)
    cursor.execute(
        f"INSERT INTO {ledger}.rollbacks VALUES (?, ?, ?)",  # noqa: S608
        [str(message["run_id"]), str(message.get("target", "")), float(message.get("started_at") or 0.0)],
    )


def rollbacks_sql(ledgers: Sequence[str]) -> str:
    """The read-only query of the rollback row of each of ``ledgers`` (plain identifiers whose ``rollbacks``
    table exists): ``(ledger, run_id, target, started_at)`` rows."""
    return " UNION ALL ".join(
        f"SELECT '{ledger}' AS ledger, run_id, target, started_at FROM {ledger}.rollbacks"  # noqa: S608
        for ledger in ledgers
        if _SCHEMA.fullmatch(ledger)
    )


def committed_steps_sql(ledger: str, run_id: str) -> str:
    """The read-only query of every step of ``run_id`` that committed: ``(step, attempt, metrics, warnings)``
    rows, the last committed attempt of each (metrics and warnings as JSON)."""
    run = "'" + run_id.replace("'", "''") + "'"
    return (
        "SELECT step, max(attempt), arg_max(metrics, attempt), arg_max(warnings, attempt)"  # noqa: S608
        f" FROM {ledger}.step_commits WHERE run_id = {run} GROUP BY step"
    )


def committed_result_sql(ledger: str, run_id: str, step: str, attempt: int) -> str:
    """The read-only query that finds a committed attempt's result (metrics, warnings as JSON), if any."""

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return (
        f"SELECT metrics, warnings FROM {ledger}.step_commits"  # noqa: S608 (ledger: a checked identifier)
        f" WHERE run_id = {lit(run_id)} AND step = {lit(step)} AND attempt = {int(attempt)}"
    )


def file_format(path: Path) -> str | None:
    """csv, jsonl or parquet by the file's suffix (csv and jsonl also gzipped: ``.csv.gz``); None otherwise."""
    name = path.name.lower()
    if name.endswith(".gz"):
        inner = file_format(Path(name[:-3]))
        return inner if inner in ("csv", "jsonl") else None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    return None


def landing_files(landing: Path, patterns: Sequence[str]) -> list[Path]:
    """Files of ``landing`` matching any pattern, sorted; hidden and ``.tmp``/``.part`` names are left out, so
    a writer can land a file atomically by renaming it into place."""
    try:
        entries = list(landing.iterdir())
    except FileNotFoundError:
        return []
    return sorted(
        p
        for p in entries
        if not p.name.startswith(".")
        and not p.name.endswith((".tmp", ".part"))
        and any(fnmatch.fnmatch(p.name, pat) for pat in patterns)
        and p.is_file()
    )


def pending_files(cur: Any, ledger: str) -> list[tuple[Any, ...]]:
    """(sha256, path, format, reader, size_bytes, mtime_ns) of this ledger's pending files, by path."""
    rows: list[tuple[Any, ...]] = cur.execute(
        f"SELECT sha256, path, format, reader, size_bytes, mtime_ns FROM {ledger}.files"  # noqa: S608
        " WHERE status = 'pending' ORDER BY path, sha256"
    ).fetchall()
    return rows


def set_file_status(cur: Any, ledger: str, sha: str, status: str, **fields: Any) -> None:
    """Move one ledger file to ``status`` (ingested | changed | missing), setting ``fields`` too (held: hold.py)."""
    allowed = {"note", "ingested_run", "ingested_at", "lines", "checked_by"}
    if not set(fields) <= allowed:
        raise ValueError(f"unknown ledger fields: {sorted(set(fields) - allowed)}")
    sets = ", ".join(["status = ?", *(f"{k} = ?" for k in fields)])
    cur.execute(f"UPDATE {ledger}.files SET {sets} WHERE sha256 = ?", [status, *fields.values(), sha])  # noqa: S608


def discover(ctx: StepContext) -> Mapping[str, int | float]:
    """Register landing files whose content (sha256) this pipeline never saw; each is then ingested once.

    Files are those matching the pipeline's ``patterns`` (or this step's ``params.patterns``). A matching
    file of a format no shipped ingest reads is reported as a warning, never skipped silently. Unchanged
    files are recognised by (path, size, mtime) and not hashed again. Metrics: rows_in (files seen),
    rows_out and new_files (registered now), hashed.
    """
    cur = ctx.cursor
    ledger = ctx.ledger
    landing = ctx.folders.landing
    patterns: Sequence[str] = ctx.params.get("patterns") or ctx.patterns
    if not landing.is_dir():
        ctx.warn(f"landing folder {landing} does not exist")
        return {"rows_in": 0, "rows_out": 0, "files_seen": 0, "new_files": 0}
    files = landing_files(landing, patterns)
    seen = {
        (r[0], r[1], r[2]): (r[3], r[4], r[5])
        for r in cur.execute(
            f"SELECT path, size_bytes, mtime_ns, sha256, format, reader FROM {ledger}.file_seen"  # noqa: S608
        ).fetchall()
    }
    known = {r[0] for r in cur.execute(f"SELECT sha256 FROM {ledger}.files").fetchall()}  # noqa: S608
    now = dt.datetime.now(dt.UTC)
    new = hashed = 0
    for p in files:
        fmt = file_format(p)
        if fmt is None:
            ctx.warn(f"{p.name} matches the pipeline's patterns but no reader knows its format (csv, jsonl, parquet)")
            continue
        try:
            st = p.stat()
            key = (str(p), st.st_size, st.st_mtime_ns)
            if key in seen:
                sha, fmt, reader = seen[key]
            else:
                scan = scan_file(p)
                hashed += 1
                sha = scan.sha256
                reader = "python" if scan.python_reader_reason and fmt != "parquet" else "duckdb"
                cur.execute(f"DELETE FROM {ledger}.file_seen WHERE path = ?", [str(p)])  # noqa: S608
                cur.execute(
                    f"INSERT INTO {ledger}.file_seen VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                    [str(p), st.st_size, st.st_mtime_ns, sha, fmt, reader],
                )
        except OSError as exc:
            ctx.warn(f"cannot read {p.name}: {exc.strerror or exc}")
            continue
        if sha in known:
            continue
        known.add(sha)
        new += 1
        cur.execute(
            f"INSERT INTO {ledger}.files (sha256, path, format, reader, size_bytes, mtime_ns, status,"  # noqa: S608
            " discovered_run, discovered_at, checked_by) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, [])",
            [sha, str(p), fmt, reader, st.st_size, st.st_mtime_ns, ctx.run_id, now],
        )
    ctx.log(f"{len(files)} files in landing, {new} new, {hashed} hashed")
    return {"rows_in": len(files), "rows_out": new, "files_seen": len(files), "new_files": new, "hashed": hashed}


def new_content_fate(cursor: Any, ledger: str, pipeline: str, run_id: str, sha: str) -> str:
    """What becomes of content ``sha``, the one a landing file holds now in place of the content run ``run_id``
    meant to ingest (a released held content the file was re-landed over, or a file changed since discovery), as
    its row in ``ledger`` says: ingested by this run (discovered by it: pending or ingested in it), already in
    bronze (an earlier run's), held (by pipeline ``pipeline``), or, not yet discovered, picked up by the next run
    (tester of issue 18: the note said "next run" for a content this run took and held again)."""
    found = cursor.execute(
        f"SELECT status, ingested_run FROM {ledger}.files WHERE sha256 = ?",  # noqa: S608
        [sha],
    ).fetchone()
    status, ingested_run = found if found else (None, None)
    if status == "pending" or (status == "ingested" and ingested_run == run_id):
        return "its new content is ingested by this run"
    if status == "ingested":
        return "its new content is already in bronze"
    if status == "held":
        return f"its new content is held (`pipeline release {pipeline}` to ingest it)"
    return "its new content is picked up by the next run"
