"""The files of one table in a run snapshot, the worker's half: copied whole, hard-linked from the run's
published file, or, for a table that only grew since the previous snapshot, that snapshot's files
hard-linked plus one new file with the new rows ("by reference where possible", issue 18).

When a table only grew: DuckDB keeps a table's rows in the order they were inserted (deleted rows leave
gaps, updated rows keep their place, inserted rows come last), so a table that rows were only appended to
since the previous snapshot reads, in that order, as the previous snapshot's files in their order, then the
new rows. That is checked, never assumed: the first ``n`` rows of the table (``n`` the rows of the previous
files, never more than the table's) are compared with the files row by row (a POSITIONAL JOIN a chunk of
rows at a time, each column with ``IS DISTINCT FROM``, and as text for types whose equality is looser than
identity: floats (``-0.0 = 0.0``), intervals (``1 month = 30 days``), collated text, nested types). Any
difference, another column list, fewer rows, a file gone or that cannot be linked: the table is copied
whole, as before. So a snapshot's files read in order are always the table's rows, and two snapshots that
list one same file (one inode) hold the same rows there, which lets a diff skip comparing them
(diff.py).

Every data file gets its statistics file (snapshotstats.py) when it is written or linked from the
published set; linked from a previous snapshot, it brings its statistics file along. Each file's entry
records the SHA-256 of its Parquet footer and of its statistics file, which every later reader checks
(snapshotfiles.py); the previous snapshot's files pass that check before they are linked, and a
previous snapshot that fails it is not linked from (the table is copied whole).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from foss_supervisor.pipeline.errors import QueryRefusedError, SnapshotError
from foss_supervisor.pipeline.worker.export import EXPORT_FORMATS
from foss_supervisor.pipeline.worker.snapshotfiles import checked_files, file_sha256, footer_sha256
from foss_supervisor.pipeline.worker.snapshothashes import hashes_file, link_or_write_hashes, write_hashes
from foss_supervisor.pipeline.worker.snapshotstats import file_stats_sql, parquet_list, quoted, stats_file

__all__ = ["CHUNK_ROWS", "CHUNK_VALUES", "copy_table", "extend_previous", "link_published", "write_stats"]

#: the values (rows x columns) of one chunk of the check that a table only grew, and its least and most rows
CHUNK_VALUES = 8_000_000
CHUNK_ROWS = (8192, 1_000_000)
#: DuckDB types whose IS DISTINCT FROM is identity (a VARCHAR only without a collation)
_EXACT = frozenset(
    {
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "VARCHAR",
        "DATE",
        "TIME",
        "TIMESTAMP",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP_S",
        "TIMESTAMP_MS",
        "TIMESTAMP_NS",
        "UUID",
        "BLOB",
    }
)


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _file(path: Path, rows: int, *, linked: bool, hashes: dict[str, Any] | None) -> dict[str, Any]:
    """A snapshot file entry: its name in the snapshot, rows, size, whether it cost no new bytes, the
    digests of its footer and statistics file (written before: every file has one) and, for a table with a
    key, its row hashes' entry (snapshothashes.py). Raises QueryRefusedError (a footer past what a reader
    would digest), OSError."""
    try:
        footer = footer_sha256(path)
    except ValueError as exc:
        raise QueryRefusedError(f"snapshot file {path.name}: {exc}") from None
    return {
        "file": path.name,
        "rows": rows,
        "bytes": path.stat().st_size,
        "linked": linked,
        "footer_sha256": footer,
        "stats_sha256": file_sha256(stats_file(path)),
    } | ({"hashes": hashes} if hashes else {})


def _free(dest: Path) -> Path:
    if dest.exists() or dest.is_symlink():  # two tables whose file names meet: never overwrite one
        raise QueryRefusedError(f"snapshot file {dest.name} would be written twice (table names too alike)")
    return dest


def write_stats(cursor: Any, data_file: Path) -> None:
    """Write ``data_file``'s statistics file from the file as DuckDB reads it back (snapshotstats.py)."""
    source = parquet_list([data_file])
    described = cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608 (a checked path)
    columns = {str(r[0]): str(r[1]) for r in described}
    target = stats_file(data_file)
    target.parent.mkdir(exist_ok=True)
    cursor.execute(f"COPY ({file_stats_sql(columns, source)}) TO {_literal(target)} ({EXPORT_FORMATS['parquet']})")


def copy_table(cursor: Any, source: str, dest: Path, key: list[str] | None = None) -> list[dict[str, Any]]:
    """Write all of ``source`` (a quoted table) to ``dest``, its statistics and its row hashes for ``key``:
    the table's one file."""
    copy = f"COPY (SELECT * FROM {source}) TO {_literal(_free(dest))} ({EXPORT_FORMATS['parquet']})"  # noqa: S608
    rows = int(cursor.execute(copy).fetchone()[0])
    write_stats(cursor, dest)
    return [_file(dest, rows, linked=False, hashes=write_hashes(cursor, dest, key))]


def _link(src: Path, dest: Path) -> bool:
    """Hard-link ``src`` to ``dest``; False when the filesystem cannot (another one, no links, too many)."""
    try:
        os.link(src, _free(dest))
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            return False
        raise
    return True


def link_published(cursor: Any, folder: Path, dest: Path, key: list[str] | None = None) -> list[dict[str, Any]] | None:
    """Hard-link the one file of an unpartitioned published table (``folder``) and write its statistics and
    row hashes for ``key``; None when there is none (not published, partitioned) or the link is impossible
    (the table is copied)."""
    part = folder / "part-0.parquet"
    if not part.is_file() or sorted(p.name for p in folder.iterdir()) != ["part-0.parquet"]:
        return None
    if not _link(part, dest):
        return None
    write_stats(cursor, dest)
    rows = int(cursor.execute(f"SELECT count(*) FROM {parquet_list([dest])}").fetchone()[0])  # noqa: S608
    return [_file(dest, rows, linked=True, hashes=write_hashes(cursor, dest, key))]


def _differs(columns: list[dict[str, str]], collated: bool) -> str:
    """The condition on ``x`` (the table) and ``y`` (the files) that some column of a row differs."""
    terms = []
    for column in columns:
        name, type_name = quoted(column["name"]), column["type"].upper()
        terms.append(f"x.{name} IS DISTINCT FROM y.{name}")
        loose = type_name not in _EXACT and not type_name.startswith("DECIMAL")
        if loose or (collated and type_name == "VARCHAR"):
            as_text = "CAST({0} AS BLOB)" if type_name == "VARCHAR" else "CAST({0} AS VARCHAR)"
            terms.append(f"{as_text.format('x.' + name)} IS DISTINCT FROM {as_text.format('y.' + name)}")
    return " OR ".join(terms)


def _same_rows(cursor: Any, source: str, files: list[Path], counts: list[int], differs: str, width: int) -> bool:
    """Whether the table ``source`` starts with the rows of ``files`` (``counts`` rows each), in their order.

    Compared a chunk at a time: the table's rows of a rowid range (rowids ascend in the table's order; rows
    deleted long ago leave gaps) against the same number of the files' rows by row number; both skip to the
    chunk, so nothing is read twice. A POSITIONAL JOIN holds one side in memory: a chunk of at most about 8M
    values (``width`` columns a row), never a whole 10M-row table (1M rows of bronze: 0.35 s).
    """
    step = max(CHUNK_ROWS[0], min(CHUNK_ROWS[1], CHUNK_VALUES // max(width, 1)))
    chunks = cursor.execute(f"SELECT rowid // {step} AS g, count(*) FROM {source} GROUP BY g ORDER BY g").fetchall()  # noqa: S608
    todo = [(path, n) for path, n in zip(files, counts, strict=True) if n]
    row = 0  # in todo[0]
    for group, size in chunks:
        taken = 0
        while taken < size and todo:
            path, n = todo[0]
            k = min(size - taken, n - row)
            x = (
                f"SELECT * FROM {source} WHERE rowid >= {group * step} AND rowid < {(group + 1) * step}"  # noqa: S608
                f" LIMIT {k} OFFSET {taken}"
            )
            y = (
                f"SELECT * EXCLUDE (file_row_number) FROM read_parquet({_literal(path)}, file_row_number = true)"  # noqa: S608
                f" WHERE file_row_number >= {row} AND file_row_number < {row + k}"
            )
            if cursor.execute(f"SELECT 1 FROM ({x}) x POSITIONAL JOIN ({y}) y WHERE {differs} LIMIT 1").fetchone():  # noqa: S608
                return False
            taken, row = taken + k, row + k
            if row == n:
                todo, row = todo[1:], 0
        if not todo:
            return True
    return not todo


def extend_previous(
    cursor: Any,
    table: str,
    source: str,
    schema: list[dict[str, str]],
    previous: dict[str, Any] | None,
    *,
    stage: Path,
    root: Path,
    new_name: str,
    key: list[str] | None = None,
) -> list[dict[str, Any]] | None:
    """The previous snapshot's files of ``table`` hard-linked into ``stage`` plus, when rows were appended,
    ``stage/new_name`` with them; None (nothing left in ``stage`` for it) when the table did not only grow
    since (see the module docstring). ``previous`` is the previous manifest's entry (files absolute, under
    ``root``), ``schema`` the table's columns now, ``key`` the key its row hashes are for (a linked file's
    hashes file is linked along when it is for that key, else written anew: snapshothashes.py). Raises
    duckdb.Error, OSError, QueryRefusedError."""
    if previous is None or [dict(c) for c in previous.get("schema") or ()] != schema:
        return None
    if {c["name"].lower() for c in schema} & {"rowid", "file_row_number"}:
        return None  # the names the check below uses for positions
    try:
        files, stats_checked = checked_files(cursor, table, previous, root=root)
    except SnapshotError:
        return None  # not the files its manifest describes: nothing is linked from them
    counts = [int(f["rows"]) for f in previous["files"]]  # checked against the files' footers just now
    known = sum(counts)
    total = int(cursor.execute(f"SELECT count(*) FROM {source}").fetchone()[0])  # noqa: S608
    if total < known:
        return None
    schema_name, _, name = table.partition(".")
    sql = cursor.execute(
        "SELECT sql FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema_name, name]
    ).fetchone()
    collated = sql is not None and "COLLATE" in str(sql[0]).upper()
    if not _same_rows(cursor, source, files, counts, _differs(schema, collated), len(schema)):
        return None
    out: list[dict[str, Any]] = []
    for src, src_entry in zip(files, previous["files"], strict=True):
        dest = stage / src.name
        if not _link(src, dest):
            for entry in out:  # leave nothing of this table behind: it is copied whole instead
                (stage / entry["file"]).unlink(missing_ok=True)
                stats_file(stage / entry["file"]).unlink(missing_ok=True)
                hashes_file(stage / entry["file"]).unlink(missing_ok=True)
            return None
        if stats_checked:
            stats_file(dest).parent.mkdir(exist_ok=True)
            os.link(stats_file(src), stats_file(dest))
        else:  # a snapshot from before statistics files, or before their digests: written anew
            write_stats(cursor, dest)
        rows = int(cursor.execute(f"SELECT count(*) FROM {parquet_list([dest])}").fetchone()[0])  # noqa: S608
        hashes = link_or_write_hashes(cursor, {**src_entry, "file": str(src)}, dest, key)
        out.append(_file(dest, rows, linked=True, hashes=hashes))
    if total > known:
        dest = _free(stage / new_name)
        copy = f"COPY (SELECT * FROM {source} OFFSET {known}) TO {_literal(dest)} ({EXPORT_FORMATS['parquet']})"  # noqa: S608
        rows = int(cursor.execute(copy).fetchone()[0])
        write_stats(cursor, dest)
        out.append(_file(dest, rows, linked=False, hashes=write_hashes(cursor, dest, key)))
    return out
