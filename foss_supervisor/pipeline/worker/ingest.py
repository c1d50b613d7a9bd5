"""The shipped ``ingest`` step, generic: every new landing file of the pipeline's ledger into a bronze table,
line by line, each line kept with its file, its physical line number and its content hash.

Lines are read by DuckDB's CSV reader in "one column per line" mode (fast and parallel) with their physical
line numbers; files DuckDB would misread (CR line ends, invalid UTF-8, NUL bytes) go through a slower
Python reader instead, so no line is ever dropped or renumbered. CSV, JSON lines and their gzipped forms;
the columns are the step's ``params.columns`` (``params.table`` the bronze table). Used by ``orders`` and
``trips``. A file's content hash and reader are :func:`~foss_supervisor.pipeline.worker.filescan.scan_file`'s
(filescan.py), which ``discover`` (ledger.py) and ``release`` (hold.py) use too.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.pipeline.worker.context import StepContext
from foss_supervisor.pipeline.worker.filescan import LINE_DELIM, open_raw, scan_file
from foss_supervisor.pipeline.worker.ledger import new_content_fate, pending_files, set_file_status

__all__ = [
    "bronze_ddl",
    "build_ingest_sql",
    "build_parquet_sql",
    "check_bronze",
    "ingest",
    "read_header",
]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_QUALIFIED = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")

#: the bookkeeping columns of a parsed line (``n``, ``line``, ``parse_error``), by name: ``INSERT ... BY NAME``
#: lets a bronze table declared in ``setup.sql`` order its columns as it likes
_BOOKKEEPING = (
    "$base + n AS _row_id, $batch AS _batch_id, $path AS _source_file, $sha AS _source_sha256, n AS _source_line,"
    " $now AS _ingested_at, CASE WHEN parse_error IS NOT NULL THEN line END AS _raw_line,"
    " parse_error AS _parse_error"
)


_BOOKKEEPING_COLUMNS = (
    "_row_id",
    "_batch_id",
    "_source_file",
    "_source_sha256",
    "_source_line",
    "_ingested_at",
    "_raw_line",
    "_parse_error",
)


def bronze_ddl(table: str, columns: Sequence[str]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of an ingest table (and its schema): the eight bookkeeping columns,
    then one VARCHAR per declared column. Ingest runs it itself, so a pipeline need not declare it."""
    if not _QUALIFIED.match(table) or not all(_IDENT.match(c) for c in columns):
        raise ValueError("table and columns must be plain lower-case identifiers")
    return (
        f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]};\n"
        f"CREATE TABLE IF NOT EXISTS {table} (_row_id BIGINT NOT NULL, _batch_id VARCHAR NOT NULL,"
        " _source_file VARCHAR NOT NULL, _source_sha256 VARCHAR NOT NULL, _source_line BIGINT NOT NULL,"
        " _ingested_at TIMESTAMPTZ NOT NULL, _raw_line VARCHAR, _parse_error VARCHAR"
        + "".join(f", {c} VARCHAR" for c in columns)
        + ")"
    )


def build_ingest_sql(table: str, columns: Sequence[str], fmt: str, header: Sequence[str] | None, source: str) -> str:
    """SQL that appends every line of one file to the bronze table, parsed into text columns.

    ``source`` yields (line, n) with n the physical line number. The raw line is kept only when it could
    not be parsed (otherwise its fields are the line, as text; keeping both doubled the bronze write
    cost). Parameters: $base (row id offset),
    $batch, $path, $sha, $now. CSV lines without quotes are split on commas; quoted lines are split by a
    regex whose matches must cover the whole line, so a stray quote marks the line malformed instead of
    silently shifting fields.
    """
    if not _QUALIFIED.match(table) or not all(_IDENT.match(c) for c in columns):
        raise ValueError("table and columns must be plain lower-case identifiers")
    if fmt == "csv":
        assert header is not None
        positions = {name: i + 1 for i, name in reversed(list(enumerate(header)))}
        select_fields = ", ".join(
            f"f[{positions[c]}] AS {c}" if c in positions else f"NULL::VARCHAR AS {c}" for c in columns
        )
        ncols = len(header)
        field_re = r'("(?:[^"]|"")*"|[^,"]*)(?:,|$)'
        return f"""
INSERT INTO {table} BY NAME
SELECT {_BOOKKEEPING},
       {", ".join(f"CASE WHEN parse_error IS NULL THEN {c} END AS {c}" for c in columns)}
FROM (
    SELECT n, line, {select_fields},
        CASE WHEN line IS NULL OR trim(line) = '' THEN 'blank line'
             WHEN f IS NULL THEN 'unbalanced or misplaced quotes'
             WHEN len(f) <> {ncols} THEN 'expected {ncols} fields, found ' || len(f)
        END AS parse_error
    FROM (
        SELECT n, line,
            CASE WHEN line IS NULL THEN NULL
                 WHEN NOT contains(line, '"') THEN string_split(line, ',')
                 WHEN array_to_string(regexp_extract_all(line, '{field_re}', 0), '') <> line THEN NULL
                 ELSE list_transform(
                        regexp_extract_all(line, '{field_re}', 1)[1:len(list_filter(
                            regexp_extract_all(line, '{field_re}', 0), lambda x: ends_with(x, ','))) + 1],
                        lambda x: CASE WHEN starts_with(x, '"') THEN replace(x[2:-2], '""', '"') ELSE x END)
            END AS f
        FROM {source}
        WHERE n > 1
    )
)"""  # noqa: S608 (identifiers checked above)
    if fmt == "jsonl":
        paths = ", ".join(f"'$.\"{c}\"'" for c in columns)
        select_fields = ", ".join(f"f[{i + 1}] AS {c}" for i, c in enumerate(columns))
        return f"""
INSERT INTO {table} BY NAME
SELECT {_BOOKKEEPING},
       {", ".join(columns)}
FROM (
    SELECT n, line, parse_error, {select_fields}
    FROM (
        SELECT n, line, parse_error,
               CASE WHEN parse_error IS NULL THEN json_extract_string(line, [{paths}]) END AS f
        FROM (
            SELECT n, line,
                CASE WHEN line IS NULL OR trim(line) = '' THEN 'blank line'
                     WHEN NOT coalesce(json_valid(line), false) THEN 'invalid JSON'
                     WHEN json_type(line) <> 'OBJECT' THEN 'not a JSON object'
                END AS parse_error
            FROM (SELECT n, CASE WHEN n = 1 THEN ltrim(line, chr(65279)) ELSE line END AS line FROM {source})
        )
    )
)"""  # noqa: S608
    raise ValueError(f"unknown format {fmt!r}")


def build_parquet_sql(table: str, columns: Sequence[str], have: Mapping[str, str]) -> str:
    """SQL that appends every row of one Parquet file (``$file``) to the bronze table, each declared column
    cast to text (NULL when the file has none). ``have`` maps a lower-case column name to the file's own
    spelling. Parameters: $base, $batch, $path, $sha, $now, $file."""
    if not _QUALIFIED.match(table) or not all(_IDENT.match(c) for c in columns):
        raise ValueError("table and columns must be plain lower-case identifiers")
    quoted = {c: '"' + name.replace('"', '""') + '"' for c, name in have.items()}
    fields = ", ".join(
        f"CAST({quoted[c]} AS VARCHAR) AS {c}" if c in quoted else f"NULL::VARCHAR AS {c}" for c in columns
    )
    return (  # by name: a bronze declared in setup.sql may order its columns as it likes
        f"INSERT INTO {table} BY NAME SELECT $base + file_row_number + 1 AS _row_id, $batch AS _batch_id,"  # noqa: S608
        " $path AS _source_file, $sha AS _source_sha256, file_row_number + 1 AS _source_line,"
        f" $now AS _ingested_at, NULL AS _raw_line, NULL AS _parse_error, {fields}"
        " FROM read_parquet($file, file_row_number = true)"
    )


#: the bookkeeping columns bronze_ddl makes NOT NULL (ingest always writes them); no other column may be
_BOOKKEEPING_NOT_NULL = frozenset(
    {"_row_id", "_batch_id", "_source_file", "_source_sha256", "_source_line", "_ingested_at"}
)
#: the type of each bookkeeping column as bronze_ddl makes it (DuckDB's names); a declared column is VARCHAR
_BOOKKEEPING_TYPES = {
    "_row_id": "BIGINT",
    "_source_line": "BIGINT",
    "_ingested_at": "TIMESTAMP WITH TIME ZONE",
}


def check_bronze(cur: Any, table: str, columns: Sequence[str]) -> None:
    """Refuse a bronze table (declared in ``setup.sql``) that lacks a column ingest writes, or declares one of
    another type, naming them: its columns may come in any order and it may have more (ingest inserts by
    name), but each column ingest writes has the type :func:`bronze_ddl` gives it: a declared column is
    VARCHAR, as bronze keeps values as they arrived (an INTEGER column would fail a run on the first ``abc``
    in words of the generated SQL, or turn ``007`` into 7 without a word). Names compare without case, as
    DuckDB binds them (``duckdb_columns()`` keeps the case as written). The one check of both the ingest step
    and ``pipeline validate``. Raises ValueError."""
    schema, name = table.split(".")
    where = " WHERE lower(schema_name) = lower(?) AND lower(table_name) = lower(?)"
    rows = cur.execute(
        f"SELECT column_name, data_type, is_generated, is_nullable, column_default FROM duckdb_columns(){where}",  # noqa: S608 (constant text)
        [schema, name],
    ).fetchall()
    have = {str(r[0]).lower(): str(r[1]) for r in rows}
    tables = f"SELECT count(*) FROM duckdb_tables(){where}"  # noqa: S608 (constant text; names are parameters)
    if rows and not cur.execute(tables, [schema, name]).fetchone()[0]:
        raise ValueError(f"bronze table {table} (declared in setup.sql) is a view, not a table: ingest appends to it")
    wanted = (*_BOOKKEEPING_COLUMNS, *columns)
    told: list[str] = []  # every mistake of the declaration at once (a fresh tester fixed them one per validate)
    lacking = [c for c in wanted if c.lower() not in have]
    if lacking:
        told.append(
            f"lacks the column(s) ingest writes: {', '.join(lacking)}"
            f" (needed: the bookkeeping columns {', '.join(_BOOKKEEPING_COLUMNS)} and the declared columns)"
        )
    retyped = [
        f"{c} is {have[c.lower()]}, not {_BOOKKEEPING_TYPES.get(c, 'VARCHAR')}"
        for c in wanted
        if c.lower() in have and have[c.lower()] != _BOOKKEEPING_TYPES.get(c, "VARCHAR")
    ]
    if retyped:
        told.append(
            f"has column(s) of another type than ingest writes: {'; '.join(retyped)} (bronze keeps values as they"
            " arrived, as text: parse them in a view or step)"
        )
    written = {c.lower() for c in wanted}
    refused = [f"{r[0]} is a generated column" for r in rows if r[2] and str(r[0]).lower() in written]
    refused += [  # a JSON line without the field, a CSV line of fewer fields: NULL, which bronze keeps
        f"{r[0]} is NOT NULL" + ("" if str(r[0]).lower() in written else " without a DEFAULT")
        for r in rows
        if not r[3]
        and not r[2]
        and str(r[0]).lower() not in _BOOKKEEPING_NOT_NULL
        and (str(r[0]).lower() in written or r[4] is None)
    ]
    refused += [
        f"a {kind} on {', '.join(cols)}"
        for kind, cols in cur.execute(
            f"SELECT constraint_type, constraint_column_names FROM duckdb_constraints(){where}"  # noqa: S608
            " AND constraint_type IN ('CHECK', 'UNIQUE', 'PRIMARY KEY', 'FOREIGN KEY')",
            [schema, name],
        ).fetchall()
    ]
    if refused:
        told.append(
            f"refuses rows ingest may write: {'; '.join(refused)}"
            " (bronze keeps every line as it arrived: constraints belong to silver)"
        )
    if told:
        raise ValueError(f"bronze table {table} (declared in setup.sql) " + "; and it ".join(told))


def read_header(path: Path) -> list[str]:
    with io.TextIOWrapper(open_raw(path), encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline().lstrip("\ufeff").rstrip("\r\n")
    try:
        row = next(csv.reader([first]))
    except (StopIteration, csv.Error):
        row = []
    return [h.strip().lower() for h in row]


def ingest(ctx: StepContext) -> Mapping[str, int | float]:
    """Append every line (Parquet: every row) of every pending file of this pipeline's ledger to bronze,
    then mark the file ingested (one transaction).

    A pipeline that declares ``partition:`` keeps one content per landing path of a partition: once a file's
    lines are in, the bronze rows earlier runs took from that path are deleted and the path's older contents
    are marked ``changed``, so a file fixed and landed again under its name replaces its rows rather than
    adding to them. A whole run takes the newest pending content of each such path. A partition's run
    (``ctx.partition``, a backfill: engine/partition.py) takes that partition's paths whatever their ledger status
    (ingested ones again); a file gone from the landing folder keeps its rows, with a warning.
    Metrics: rows_in, rows_out (lines ingested), files; for a partitioned pipeline also rows_replaced (bronze
    rows deleted).
    """
    cur = ctx.cursor
    if "table" not in ctx.params or "columns" not in ctx.params:
        raise ValueError("the ingest step needs params.table (schema.table) and params.columns (a list of names)")
    table: str = ctx.params["table"]
    columns: Sequence[str] = ctx.params["columns"]
    if not _QUALIFIED.match(table) or not all(_IDENT.match(c) for c in columns):
        raise ValueError("table and columns must be plain lower-case identifiers")
    cur.execute(bronze_ddl(table, columns))
    check_bronze(cur, table, columns)
    now = dt.datetime.now(dt.UTC)
    if ctx.partition_key is None:
        chosen: list[tuple[tuple[Any, ...], tuple[str, ...], bool]] = [
            (row, (), False) for row in pending_files(cur, ctx.ledger)
        ]
    else:
        chosen = _partitioned_files(ctx)
    lines_total = files_done = replaced = 0
    for row, older, replaces in chosen:
        n = _ingest_file(ctx, table, columns, row, now)
        if n is None:
            continue
        lines_total += n
        files_done += 1
        if replaces:
            replaced += _replace_earlier(ctx, table, row[1], older)
    metrics = {"rows_in": lines_total, "rows_out": lines_total, "files": files_done}
    return metrics if ctx.partition_key is None else metrics | {"rows_replaced": replaced}


def _partitioned_files(ctx: StepContext) -> list[tuple[tuple[Any, ...], tuple[str, ...], bool]]:
    """What a partitioned pipeline's run ingests, by path: (the ledger row as pending_files gives it, the
    sha256 of the path's older contents, whether it replaces the path's earlier rows). A partition's run: the
    newest content of each of its paths. A whole run: the newest content of each partition's path when it is
    pending, and every pending content of a path in no partition (appended, as in any pipeline)."""
    key = ctx.partition_key
    assert key is not None  # the caller's condition
    rows = ctx.cursor.execute(
        f"SELECT sha256, path, format, reader, size_bytes, mtime_ns, status FROM {ctx.ledger}.files"  # noqa: S608
        " WHERE status IN ('pending', 'ingested') ORDER BY path, discovered_at, sha256"
    ).fetchall()
    by_path: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_path.setdefault(row[1], []).append(row)
    out: list[tuple[tuple[Any, ...], tuple[str, ...], bool]] = []
    for path, found in sorted(by_path.items()):
        value = key.value_of(Path(path).name)
        newest, older = found[-1][:6], tuple(r[0] for r in found[:-1])
        if ctx.partition is not None:
            if value == ctx.partition:
                out.append((newest, older, True))
        elif value is None:
            out.extend((r[:6], (), False) for r in found if r[6] == "pending")
        elif found[-1][6] == "pending":
            out.append((newest, older, True))
        else:  # its newest content is in: a pending older one is stale, never to be ingested
            for r in found[:-1]:
                if r[6] == "pending":
                    set_file_status(ctx.cursor, ctx.ledger, r[0], "changed", note="a newer content was ingested")
    if ctx.partition is not None:
        ctx.log(f"partition {ctx.partition}: {len(out)} files")
    return out


def _replace_earlier(ctx: StepContext, table: str, path: str, older: Sequence[str]) -> int:
    """Delete the rows earlier runs took from ``path`` (this run's stay) and mark its ``older`` contents
    ``changed``; returns how many rows were deleted."""
    cur = ctx.cursor
    where = f"FROM {table} WHERE _source_file = $path AND _batch_id <> $batch"
    params = {"path": path, "batch": ctx.run_id}
    gone: int = cur.execute(f"SELECT count(*) {where}", params).fetchone()[0]
    cur.execute(f"DELETE {where}", params)
    for sha in older:
        note = f"replaced by a newer content of the file in run {ctx.run_id}"
        set_file_status(cur, ctx.ledger, sha, "changed", note=note)
    return gone


def _ingest_file(
    ctx: StepContext, table: str, columns: Sequence[str], row: tuple[Any, ...], now: dt.datetime
) -> int | None:
    """Ingest one ledger file (a pending_files row) into ``table`` and mark it ingested; its line count, or
    None when it vanished or changed since discovery (marked so, with a warning)."""
    cur = ctx.cursor
    sha, path_s, fmt, reader, size, mtime_ns = row
    path = Path(path_s)
    try:
        st = path.stat()
    except FileNotFoundError:
        set_file_status(cur, ctx.ledger, sha, "missing", note="file vanished before ingest")
        kept = "; its earlier rows are kept" if ctx.partition_key is not None else ""
        ctx.warn(f"{path.name} vanished before it was ingested{kept}")
        return None
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns) and (held_now := scan_file(path).sha256) != sha:
        set_file_status(cur, ctx.ledger, sha, "changed", note="content changed after discovery")
        fate = new_content_fate(cur, ctx.ledger, ctx.pipeline, ctx.run_id, held_now)
        ctx.warn(f"{path.name} changed after discovery; {fate}")
        return None
    header = read_header(path) if fmt == "csv" else None
    base = cur.execute(f"SELECT coalesce(max(_row_id), 0) FROM {table}").fetchone()[0]  # noqa: S608
    params: dict[str, Any] = {"base": base, "batch": ctx.run_id, "path": str(path), "sha": sha, "now": now}
    if fmt == "parquet":
        params["file"] = str(path)
        have = {
            r[0].lower(): r[0]
            for r in cur.execute("DESCRIBE SELECT * FROM read_parquet($file)", {"file": str(path)}).fetchall()
        }
        sql = build_parquet_sql(table, columns, have)
    elif reader == "duckdb":
        params["file"] = str(path)
        source = (
            f"read_csv($file, columns = {{'line': 'VARCHAR'}}, header = false, delim = '{LINE_DELIM}',"
            " quote = '', escape = '', auto_detect = false, strict_mode = false) WITH ORDINALITY AS x(line, n)"
        )
    else:
        with open_raw(path) as raw:
            text = raw.read().decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        params["lines"] = [ln.removesuffix("\r").replace("\x00", "\ufffd") or None for ln in lines]
        source = "(SELECT * FROM unnest($lines::VARCHAR[]) WITH ORDINALITY AS x(line, n))"
    if fmt == "csv" and not header:
        ctx.warn(f"{path.name} has no header line")
    if fmt != "parquet":
        sql = build_ingest_sql(table, columns, fmt, header or [], source)
    cur.execute(sql, params)
    n = cur.execute(
        f"SELECT count(*) FROM {table} WHERE _source_sha256 = ? AND _batch_id = ?",  # noqa: S608
        [sha, ctx.run_id],
    ).fetchone()[0]
    # its rows are new: no step has checked them yet (hold.py), also when a backfill ingests it again
    set_file_status(cur, ctx.ledger, sha, "ingested", ingested_run=ctx.run_id, ingested_at=now, lines=n, checked_by=[])
    ctx.log(f"ingested {path.name}: {n} lines ({reader} reader)")
    return int(n)
