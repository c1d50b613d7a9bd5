"""The ``supervision`` schema: the daemon's event journal as tables beside the pipelines' layers (worker side).

The daemon appends its events to ``<state_dir>/history/events-YYYY-MM-DD.jsonl`` (``core/eventjournal.py``);
the worker, which owns DuckDB, copies what is new into the warehouse before a query that names
``supervision`` (at most once a second). What it keeps:

=========================  ==============================================================================
``supervision.events``     every event: ``ts`` (TIMESTAMPTZ), ``type``, ``boot``, ``seq``, ``name`` (the
                           program or service, when it is about one), ``data`` (the whole event, JSON)
``supervision.samples``    one row per process tree per resource sample: ``ts``, ``kind`` (program,
                           service, daemon, worker), ``name``, ``pid``, ``processes``, ``rss_bytes``,
                           ``cpu_percent`` (of one core), ``fds``, ``read_bytes_per_s``,
                           ``write_bytes_per_s`` (storage I/O), ``health`` (a program's probes then)
``supervision.host``       one row per sample: ``ts``, ``cpu_percent`` (all cores), ``memory_percent``,
                           ``memory_available_bytes``, ``load1``, ``disk_percent``, ``disk_free_bytes``
``state_changes`` (view)   ``ts``, ``name``, ``old``, ``new``, ``pid``, ``exit_code``, ``reason``
``exits`` (view)           one row per exit of a child: ``ts``, ``name``, ``exit_code``, ``signal`` (when
                           killed by one), ``state_after``, ``reason``, ``ran_s``, ``last_lines``
``commands`` (view)        the audit: ``ts``, ``command``, ``ok``, ``error``, ``via``, ``uid``, ``pid``, ``args``
``runs`` (view)            pipeline runs that ended: ``ts``, ``pipeline``, ``run_id``, ``status``, ``data``
``steps`` (view)           each step's end in a run: ``ts``, ``pipeline``, ``run_id``, ``step``, ``state``,
                           ``attempt``, ``rows_in``, ``rows_out``, ``duration_s``, ``error``, and the
                           worker's ``cpu_s``, ``peak_rss_bytes``, ``read_bytes``, ``write_bytes`` (its
                           figures over the step; null unless it succeeded)
``probes`` (view)          each change of a program's probe verdict: ``ts``, ``name``, ``old``, ``new``,
                           ``detail`` (the periodic verdicts are ``samples.health``)
=========================  ==============================================================================

How: the journal is read here from where the last copy stopped (byte offsets per file, kept in
``supervision.journal_files``), only whole lines; the new bytes are written to a file in this worker's own
ingest folder (an allowed directory of the sandbox, which nothing else uses) and loaded with DuckDB's
``read_json_objects`` in one transaction with the new offsets, so a crash copies a line once or not at all.
Rows older than the retention the daemon passes (``history.retention_days``) are deleted as they are copied.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from foss_supervisor.base.processstates import AFTER_EXIT_STATES, SIGNALLABLE_STATES

__all__ = ["MAX_COPY_BYTES", "SupervisionTables", "ingest_dir_for", "open_supervision"]

MAX_COPY_BYTES = 256 * 2**20  # copied per pass at most: the rest comes with the next query
MIN_INTERVAL_S = 1.0  # between two copies

#: the exit edges (base/processstates.is_exit_edge) as SQL lists: what supervision.exits counts, one row per exit
_CHILD_UP = ", ".join(f"'{state}'" for state in sorted(SIGNALLABLE_STATES))
_AFTER_EXIT = ", ".join(f"'{state}'" for state in sorted(AFTER_EXIT_STATES))

_SETUP = f"""
CREATE SCHEMA IF NOT EXISTS supervision;
CREATE TABLE IF NOT EXISTS supervision.journal_files (file VARCHAR PRIMARY KEY, copied_bytes BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS supervision.events (
    ts TIMESTAMPTZ, type VARCHAR, boot VARCHAR, seq BIGINT, name VARCHAR, data JSON);
CREATE TABLE IF NOT EXISTS supervision.samples (
    ts TIMESTAMPTZ, kind VARCHAR, name VARCHAR, pid BIGINT, processes BIGINT, rss_bytes BIGINT, cpu_percent DOUBLE);
ALTER TABLE supervision.samples ADD COLUMN IF NOT EXISTS fds BIGINT;
ALTER TABLE supervision.samples ADD COLUMN IF NOT EXISTS read_bytes_per_s DOUBLE;
ALTER TABLE supervision.samples ADD COLUMN IF NOT EXISTS write_bytes_per_s DOUBLE;
ALTER TABLE supervision.samples ADD COLUMN IF NOT EXISTS health VARCHAR;
CREATE TABLE IF NOT EXISTS supervision.host (
    ts TIMESTAMPTZ, cpu_percent DOUBLE, memory_percent DOUBLE, memory_available_bytes BIGINT, load1 DOUBLE,
    disk_percent DOUBLE, disk_free_bytes BIGINT);
CREATE OR REPLACE VIEW supervision.state_changes AS
    SELECT ts, boot, seq, name, data->>'old' AS old, data->>'new' AS new, CAST(data->>'pid' AS BIGINT) AS pid,
           CAST(data->>'exit_code' AS INTEGER) AS exit_code, data->>'reason' AS reason
    FROM supervision.events WHERE type = 'StateChanged';
CREATE OR REPLACE VIEW supervision.exits AS
    SELECT s.ts, s.boot, s.seq, s.name, s.exit_code, CASE WHEN s.exit_code < 0 THEN -s.exit_code END AS signal,
           s.new AS state_after, s.reason, CAST(e.data->>'ran_s' AS DOUBLE) AS ran_s,
           CAST(e.data->'last_lines' AS VARCHAR[]) AS last_lines
    FROM supervision.state_changes s JOIN supervision.events e ON e.boot = s.boot AND e.seq = s.seq
    WHERE s.exit_code IS NOT NULL AND s.old IN ({_CHILD_UP}) AND s.new IN ({_AFTER_EXIT});
CREATE OR REPLACE VIEW supervision.commands AS
    SELECT ts, data->>'command' AS command, CAST(data->>'ok' AS BOOLEAN) AS ok, data->>'error' AS error,
           data->>'via' AS via, CAST(data->>'uid' AS BIGINT) AS uid, CAST(data->>'pid' AS BIGINT) AS pid,
           data->'args' AS args
    FROM supervision.events WHERE type = 'CommandCompleted';
CREATE OR REPLACE VIEW supervision.steps AS
    SELECT ts, data->>'pipeline' AS pipeline, data->>'run_id' AS run_id, data->>'step' AS step,
           data->>'new' AS state, CAST(data->>'attempt' AS INTEGER) AS attempt,
           CAST(data->>'rows_in' AS BIGINT) AS rows_in, CAST(data->>'rows_out' AS BIGINT) AS rows_out,
           CAST(data->>'duration_s' AS DOUBLE) AS duration_s, data->>'error' AS error,
           CAST(data->'metrics'->>'worker_cpu_s' AS DOUBLE) AS cpu_s,
           CAST(data->'metrics'->>'worker_peak_rss_bytes' AS BIGINT) AS peak_rss_bytes,
           CAST(data->'metrics'->>'worker_read_bytes' AS BIGINT) AS read_bytes,
           CAST(data->'metrics'->>'worker_write_bytes' AS BIGINT) AS write_bytes
    FROM supervision.events
    WHERE type = 'StepStateChanged' AND data->>'new' IN
        ('succeeded', 'succeeded_with_warnings', 'failed', 'crashed', 'cancelled', 'upstream_failed', 'skipped');
CREATE OR REPLACE VIEW supervision.probes AS
    SELECT ts, name, data->>'old' AS old, data->>'new' AS new, data->>'detail' AS detail
    FROM supervision.events WHERE type = 'HealthChanged';
CREATE OR REPLACE VIEW supervision.runs AS
    SELECT ts, data->>'pipeline' AS pipeline, data->>'run_id' AS run_id, data->>'status' AS status, data
    FROM supervision.events WHERE type = 'RunFinished';
"""  # noqa: S608 (constants: the state names)

_TREE = (
    '{"name": "VARCHAR", "pid": "BIGINT", "processes": "BIGINT", "rss_bytes": "BIGINT", "cpu_percent": "DOUBLE", '
    '"fds": "BIGINT", "read_bytes_per_s": "DOUBLE", "write_bytes_per_s": "DOUBLE", "health": "VARCHAR"}'
)

_LOAD = f"""
CREATE TEMP TABLE new_lines AS
    SELECT json AS j, to_timestamp(CAST(json->>'at' AS DOUBLE)) AS ts
    FROM read_json_objects($file, format = 'newline_delimited', ignore_errors = true) WHERE json IS NOT NULL;
INSERT INTO supervision.events
    SELECT ts, j->>'type', j->>'boot', CAST(j->>'seq' AS BIGINT), j->>'name', j
    FROM new_lines WHERE j->>'type' IS DISTINCT FROM 'ResourcesSampled';
INSERT INTO supervision.samples BY NAME
    SELECT ts, kind, t.name, t.pid, t.processes, t.rss_bytes, t.cpu_percent, t.fds, t.read_bytes_per_s,
           t.write_bytes_per_s, t.health FROM (
        SELECT ts, 'program' AS kind, unnest(from_json(j->'programs', '[{_TREE}]')) AS t FROM new_lines
        WHERE j->>'type' = 'ResourcesSampled'
        UNION ALL
        SELECT ts, 'service', unnest(from_json(j->'services', '[{_TREE}]')) FROM new_lines
        WHERE j->>'type' = 'ResourcesSampled'
        UNION ALL
        SELECT ts, kind, from_json(j->kind, '{_TREE}') FROM new_lines, (VALUES ('daemon'), ('worker')) k(kind)
        WHERE j->>'type' = 'ResourcesSampled' AND json_type(j->kind) = 'OBJECT'
    );
INSERT INTO supervision.host
    SELECT ts, CAST(j->'host'->>'cpu_percent' AS DOUBLE), CAST(j->'host'->>'memory_percent' AS DOUBLE),
           CAST(j->'host'->>'memory_available_bytes' AS BIGINT), CAST(j->'host'->'load'->>0 AS DOUBLE),
           CAST(j->'host'->>'disk_percent' AS DOUBLE), CAST(j->'host'->>'disk_free_bytes' AS BIGINT)
    FROM new_lines WHERE j->>'type' = 'ResourcesSampled';
DROP TABLE new_lines;
"""  # noqa: S608 (constants; the one path in it, $file, is quoted by _load)


class SupervisionTables:
    """Keeps ``supervision.*`` up to date with the journal in ``history_dir`` (see the module docstring).

    ``ingest_dir`` is a folder of this worker's own inside the sandbox's allowed directories.
    """

    def __init__(self, con: Any, history_dir: Path, ingest_dir: Path, retention_days: int) -> None:
        self.con = con
        self.history_dir = history_dir
        self.ingest_dir = ingest_dir
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._last = 0.0

    def setup(self) -> None:
        """Create the schema, its tables and views (idempotent); the first query naming it copies the journal."""
        self.ingest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cursor = self.con.cursor()
        try:
            cursor.execute(_SETUP)
        finally:
            cursor.close()

    def refresh(self, force: bool = False) -> int:
        """Copy the journal's new whole lines (ts most :data:`MAX_COPY_BYTES`); return the bytes copied.
        Without ``force``, ts most once per :data:`MIN_INTERVAL_S`. Thread-safe (one copy ts a time)."""
        with self._lock:
            if not force and time.monotonic() - self._last < MIN_INTERVAL_S:
                return 0
            self._last = time.monotonic()
            cursor = self.con.cursor()
            try:
                return self._copy(cursor)
            finally:
                cursor.close()

    def _copy(self, cursor: Any) -> int:
        done = dict(cursor.execute("SELECT file, copied_bytes FROM supervision.journal_files").fetchall())
        try:
            names = sorted(p.name for p in self.history_dir.glob("events-*.jsonl"))
        except OSError:
            return 0
        chunk = self.ingest_dir / f"chunk-{os.getpid()}.jsonl"
        budget = MAX_COPY_BYTES
        offsets: dict[str, int] = {}
        with chunk.open("wb") as out:
            for name in names:
                start = int(done.get(name, 0))
                with contextlib.suppress(FileNotFoundError), (self.history_dir / name).open("rb") as f:
                    f.seek(start)
                    data = f.read(budget)
                    whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next pass
                    if whole:
                        out.write(whole)
                        offsets[name] = start + len(whole)
                        budget -= len(whole)
                if budget <= 0:
                    break
        copied = sum(offsets[n] - int(done.get(n, 0)) for n in offsets)
        try:
            if copied:
                cursor.execute("BEGIN TRANSACTION")
                self._load(cursor, chunk)
                cursor.executemany(
                    "INSERT OR REPLACE INTO supervision.journal_files VALUES (?, ?)", list(offsets.items())
                )
                self._trim(cursor, names)
                cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                chunk.unlink()
        return copied

    def _load(self, cursor: Any, chunk: Path) -> None:
        quoted = "'" + str(chunk).replace("'", "''") + "'"
        for statement in _LOAD.replace("$file", quoted).split(";"):
            if statement.strip():
                cursor.execute(statement)

    def _trim(self, cursor: Any, names: list[str]) -> None:
        """Rows older than the retention, and the offsets of files the journal no longer has."""
        cutoff = f"now() - INTERVAL {int(self.retention_days)} DAY"
        for table in ("events", "samples", "host"):
            cursor.execute(f"DELETE FROM supervision.{table} WHERE ts < {cutoff}")  # noqa: S608 (no input)
        cursor.execute("DELETE FROM supervision.journal_files WHERE NOT list_contains(?, file)", [names])


def ingest_dir_for(history_dir: Path | None, under: Path) -> Path | None:
    """The worker's own folder for the journal's new lines (created 0700; an allowed directory of the
    sandbox), under its temp dir; None without a journal."""
    if history_dir is None:
        return None
    folder = under / "supervision-ingest"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def open_supervision(
    con: Any, history_dir: Path | None, ingest_dir: Path | None, days: int
) -> SupervisionTables | None:
    """The schema set up on ``con``; None without a journal, or when it cannot be (said once on stderr: the
    pipelines work without it)."""
    if history_dir is None or ingest_dir is None:
        return None
    tables = SupervisionTables(con, history_dir, ingest_dir, days)
    try:
        tables.setup()
    except Exception as exc:  # duckdb.Error or OSError: not imported here for one except clause
        print(f"supervision schema unavailable: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return None
    return tables
