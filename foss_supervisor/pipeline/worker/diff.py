"""The diff of two states of a pipeline's tables, computed in the worker: two run snapshots, or a snapshot
and the live warehouse (what a rollback would change). Per table: rows added, removed and changed by key,
schema changes, and each column's null rate and min/max on both sides.

How rows are matched: by the table's key when it has one (a PRIMARY KEY or UNIQUE constraint, else the key
the pipeline declares for it: a ``deduplicate`` step's ``key``, or a step's ``keys``, engine/tablekeys.py): a key only
in B is added, only in A removed, in both with another value in any other common column changed. Without a
key, whole rows over the columns both sides have are compared as multisets (``EXCEPT ALL``): changed is then
null, as an edited row counts as one removed and one added, and ``match`` says so. Rows are matched by their
64-bit hash (DuckDB's ``hash`` of every common column), keys by the hash of their columns: two different rows
(or keys) with the same hash, about 3 in a million at 10M rows, would count as the same one. A snapshot
keeps those two hashes of each row of a table with a key (snapshothashes.py), so a keyed diff of two
sides with the same columns reads them instead of hashing every column again; they are DuckDB's same
``hash`` of the same values, so the counts and odds are the same either way.

What is not read (issue 18, segments.py): a file both snapshots list (one inode) is the same rows
on both sides. Without a key, shared files cancel out of the multiset difference, so a table that only
grew (or is unchanged) is counted from its new files' footers, unread, and otherwise only the files that
differ are compared. With a key, the same holds when the snapshots recorded that no key repeats on either
side (``unique_key``); otherwise every row is joined. A key that repeats on either side (NULL counting as
one value, as the join pairs them; a UNIQUE column may hold several NULLs, a declared key may hold copies)
cannot pair rows: such a table is compared as whole rows, and ``match`` names the key (``key_repeats``).
Row counts, null rates and min/max come from each file's statistics file (snapshotstats.py), so no file
is scanned for them either. Every snapshot file passes snapshotfiles.checked_files first: a file
replaced, rewritten, truncated or appended to, or an edited statistics file, refuses the diff (SnapshotError)
instead of counting other rows.

Bounded like a query (query.py): the whole diff is interrupted at ``timeout_s``; at most
:data:`MAX_TABLES` tables and :data:`MAX_COLUMNS` columns a table are described, values are cut to
:data:`MAX_VALUE_CHARS`, and a reply over ``max_bytes`` loses its column statistics (``truncated``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from foss_supervisor.pipeline.engine.snapshots import snapshot_root
from foss_supervisor.pipeline.errors import QueryRefusedError, QueryTimeoutError
from foss_supervisor.pipeline.worker import snapshothashes
from foss_supervisor.pipeline.worker.restore import restore_tables
from foss_supervisor.pipeline.worker.snapshotfiles import checked_files
from foss_supervisor.pipeline.worker.snapshots import layer_tables, quoted_table, snapshot_tables
from foss_supervisor.pipeline.worker.snapshotstats import (
    MAX_COLUMNS,
    MAX_VALUE_CHARS,
    combined_stats_sql,
    parquet_list,
    quoted,
    read_stats,
    scan_stats_sql,
    stats_columns,
    stats_file,
)

__all__ = ["MAX_COLUMNS", "MAX_TABLES", "MAX_VALUE_CHARS", "diff_tables", "snapshot_task"]

MAX_TABLES = 200


class _Side(NamedTuple):
    """One side of a table: its SQL source, its key, and, for a snapshot, its files in order."""

    source: str
    key: list[str] | None
    files: list[Path] | None
    unique: bool = False  # no two rows have the same key (recorded by the snapshot)
    stats: bool = False  # each file's statistics file is the one its manifest recorded (snapshotfiles.py)
    entries: tuple[Mapping[str, Any], ...] = ()  # a snapshot's manifest entries of its files (``file`` absolute)


def _sources(cursor: Any, side: Mapping[str, Any], snapshot_dir: Path) -> dict[str, _Side]:
    """``{schema.table: side}`` of one side: a snapshot's ``tables`` (files under ``snapshot_dir``) or,
    with ``live``, the base tables of ``schemas`` now."""
    if side.get("live"):
        keys: Mapping[str, Any] = side.get("keys") or {}
        tables = layer_tables(cursor, [str(s) for s in side.get("schemas") or ()])
        return {t: _Side(quoted_table(t), list(keys[t]) if keys.get(t) else None, None) for t in tables}
    out: dict[str, _Side] = {}
    for table, entry in (side.get("tables") or {}).items():
        files, stats = checked_files(cursor, str(table), entry, root=snapshot_dir)
        unique = bool(entry.get("unique_key"))
        out[str(table)] = _Side(parquet_list(files), entry.get("key"), files, unique, stats, tuple(entry["files"]))
    return out


def _columns(cursor: Any, source: str) -> dict[str, str]:
    rows = cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608 (checked sources)
    return {str(r[0]): str(r[1]) for r in rows}


def _stats(cursor: Any, side: _Side, columns: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]]]:
    """Rows of ``side`` and per column ``{null_rate, min, max}``: from its files' statistics files when each
    has one its manifest vouches for with the columns expected (snapshotstats.py), else by scanning it."""
    kept = [stats_file(f) for f in side.files or ()]
    if kept and side.stats and stats_columns(columns) <= set(_columns(cursor, parquet_list(kept))):
        return read_stats(cursor.execute(combined_stats_sql(columns, kept)).fetchone(), columns)
    return read_stats(cursor.execute(scan_stats_sql(columns, side.source)).fetchone(), columns)


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _unshared(files_a: list[Path], files_b: list[Path]) -> tuple[list[Path], list[Path]]:
    """The files of each side but those both sides list (one inode: the same rows, never compared)."""
    ids_a, ids_b = [_identity(f) for f in files_a], [_identity(f) for f in files_b]
    shared = Counter(ids_a) & Counter(ids_b)
    rest = []
    for files, ids in ((files_a, ids_a), (files_b, ids_b)):
        left = Counter(shared)
        kept = []
        for f, i in zip(files, ids, strict=True):
            if left[i] > 0:
                left[i] -= 1
            else:
                kept.append(f)
        rest.append(kept)
    return rest[0], rest[1]


def _count(cursor: Any, files: list[Path]) -> int:
    """Rows of ``files`` (from their Parquet footers: nothing is scanned)."""
    return int(cursor.execute(f"SELECT count(*) FROM {parquet_list(files)}").fetchone()[0]) if files else 0  # noqa: S608


def _whole_rows(
    cursor: Any, source_a: str, source_b: str, common: list[str], *, as_text: bool = False
) -> tuple[int, int]:
    """(added, removed): one aggregation of both sides by whole row, each row's count in A and in B (a
    multiset difference). Grouped by the row's 64-bit hash, not the row itself: 3x faster (1M rows of bronze:
    0.30 s, not 0.91 s); two different rows with one hash (odds about 3 in a million at 10M rows) would
    count as one."""
    cols = [f"CAST({quoted(c)} AS VARCHAR)" if as_text else quoted(c) for c in common]
    row = f"hash({', '.join(cols)})" if common else "true"
    counts = (
        "SELECT coalesce(sum(greatest(n_b - n_a, 0)), 0), coalesce(sum(greatest(n_a - n_b, 0)), 0) FROM ("  # noqa: S608
        "SELECT count(*) FILTER (WHERE _in_a) AS n_a, count(*) FILTER (WHERE NOT _in_a) AS n_b FROM ("
        f"SELECT true AS _in_a, {row} AS _row FROM {source_a} UNION ALL SELECT false, {row} FROM {source_b})"
        " GROUP BY _row)"
    )
    added, removed = cursor.execute(counts).fetchone()
    return int(added), int(removed)


def _hashed(table: str, side: _Side, key: list[str], common: list[str], stored: bool) -> str:
    """A query of ``side``'s two row hashes, ``_k`` (its key's) and ``_h`` (its other common columns'): read
    from the hashes its snapshot stored (snapshothashes.py) when ``stored`` (the common columns are all of
    both sides' columns, of one type each, in one order) and every file has them for ``key``, else computed."""
    found = snapshothashes.stored_hashes(table, side.entries, key) if stored and side.entries else None
    if found is not None:
        return f"SELECT k AS _k, h AS _h FROM {found}"  # noqa: S608 (checked files)
    return snapshothashes.row_hashes_sql(key, common, side.source, names=("_k", "_h"))


def _by_key(
    cursor: Any,
    table: str,
    a: _Side,
    b: _Side,
    key: list[str],
    common: list[str],
    *,
    same_types: bool,
    rows: tuple[int, int],
    stored: bool = False,
) -> tuple[int, int, int]:
    """(added, removed, changed) of two sides of ``rows`` (rows_a, rows_b) rows on neither of which ``key``
    repeats (:func:`_key_repeats`), in one pass. With ``same_types`` (each common column of one type on both
    sides) each side is first cut to two 64-bit hashes, of its key and of its other columns, and the sides
    are joined on the key's hash (one fixed-width column, not the key's text): the pairs found are the keys on
    both sides, those whose other columns' hash differs the changed ones; added is rows_b less the pairs,
    removed rows_a less them. With ``stored`` (both sides have the very same columns) a snapshot's hashes
    are read from its files' hashes files when it has them (:func:`_hashed`): two fixed-width columns,
    not every column hashed again (``silver.orders`` at 1M rows: 1.0-1.3 s -> 0.25 s; docs/pipelines.md).
    Cutting the sides to the key and one hash made the join 2.5x faster at 10M rows
    under the worker's memory limit (4.2-10.5 s -> 1.7-3.0 s, 1 GB); joining on the key's hash, not its
    text, in an inner join, took it from 3.1 to 2.7 s (``silver.orders`` of the 10M ``--updates`` benchmark,
    medians of 3 interleaved, on a busy machine: docs/pipelines.md).
    The odds are those of :func:`_whole_rows`: two keys of one hash (about 3 in a million at 10M rows) would
    pair, and a changed row keeping its hash would count as unchanged. DuckDB's hash agrees with IS DISTINCT
    FROM on NULL (one NULL key pairs with the other side's), NaN and -0.0."""
    others = [quoted(c) for c in common if c not in key]
    if same_types:
        side_a, side_b = (_hashed(table, s, key, common, stored) for s in (a, b))
        both, changed = cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE x._h <> y._h) FROM ({side_a}) x"  # noqa: S608
            f" JOIN ({side_b}) y ON x._k = y._k"
        ).fetchone()
        return max(rows[1] - int(both), 0), max(rows[0] - int(both), 0), int(changed)
    # a retyped column is compared by value (IS DISTINCT FROM casts), not by hash
    on = " AND ".join(f"x.{quoted(k)} IS NOT DISTINCT FROM y.{quoted(k)}" for k in key)
    moved = " OR ".join(f"x.{c} IS DISTINCT FROM y.{c}" for c in others) or "false"
    counts = (
        "SELECT count(*) FILTER (WHERE x._in_a IS NULL), count(*) FILTER (WHERE y._in_b IS NULL),"  # noqa: S608
        f" count(*) FILTER (WHERE x._in_a AND y._in_b AND ({moved}))"
        f" FROM (SELECT true AS _in_a, * FROM {a.source}) x FULL JOIN (SELECT true AS _in_b, * FROM {b.source}) y"
        f" ON {on}"
    )
    added, removed, changed = cursor.execute(counts).fetchone()
    return int(added), int(removed), int(changed)


def _table_diff(cursor: Any, table: str, a: _Side | None, b: _Side | None, strict: bool = False) -> dict[str, Any]:
    cols_a = _columns(cursor, a.source) if a else {}
    cols_b = _columns(cursor, b.source) if b else {}
    rows_a, stats_a = _stats(cursor, a, cols_a) if a else (0, {})
    rows_b, stats_b = _stats(cursor, b, cols_b) if b else (0, {})
    out: dict[str, Any] = {
        "table": table,
        "status": "added" if a is None else "dropped" if b is None else "kept",
        "rows_a": rows_a if a else None,
        "rows_b": rows_b if b else None,
        "schema": {
            "added": [{"name": c, "type": t} for c, t in cols_b.items() if c not in cols_a][:MAX_COLUMNS],
            "dropped": [{"name": c, "type": t} for c, t in cols_a.items() if c not in cols_b][:MAX_COLUMNS],
            "retyped": [
                {"name": c, "from": cols_a[c], "to": t} for c, t in cols_b.items() if c in cols_a and cols_a[c] != t
            ][:MAX_COLUMNS],
        },
        "columns": [
            {"name": c, "a": stats_a.get(c), "b": stats_b.get(c)}
            for c in [*cols_a, *(c for c in cols_b if c not in cols_a)][:MAX_COLUMNS]
        ],
    }
    if a is None or b is None:
        out |= {"added": rows_b if b else 0, "removed": rows_a if a else 0, "changed": 0, "match": "table"}
        return out
    common = [c for c in cols_a if c in cols_b]
    key = b.key or a.key
    # files both snapshots list (one inode) are the same rows: only the others are compared, when the
    # columns are the same on both sides (a shared file then holds rows of both tables as they are)
    same_columns = list(cols_a.items()) == list(cols_b.items())
    rest = _unshared(a.files, b.files) if a.files and b.files and same_columns else None
    if strict:  # values told apart by their text, as a snapshot keeps them: -0.0 is not 0.0 (engine/snapshotsame.py)
        out["added"], out["removed"] = _whole_rows(cursor, a.source, b.source, common, as_text=True)
        out["changed"], out["match"] = None, {"by": "whole_rows", "columns": common, "strict": True}
        return out
    keyed = bool(key) and all(k in common for k in (key or ()))
    repeats = keyed and _key_repeats(cursor, a, b, list(key or ()))
    if key and keyed and not repeats:
        unique = a.unique and b.unique and a.key == b.key == key
        if rest is not None and unique and (not rest[0] or not rest[1]):
            # one side is the other plus whole files, and no key repeats on either side: every row of the
            # smaller side matches itself, and the extra files' keys are on one side only
            out["added"], out["removed"], out["changed"] = _count(cursor, rest[1]), _count(cursor, rest[0]), 0
        else:  # no key repeats, but the snapshots did not record it: the whole tables are joined
            same_types = all(cols_a[c] == cols_b[c] for c in common)
            out["added"], out["removed"], out["changed"] = _by_key(
                cursor,
                table,
                a,
                b,
                list(key),
                common,
                same_types=same_types,
                rows=(rows_a, rows_b),
                stored=same_columns,
            )
        out["match"] = {"by": "key", "columns": list(key)}
        return out
    if rest is None:
        out["added"], out["removed"] = _whole_rows(cursor, a.source, b.source, common)
    elif not rest[0] or not rest[1]:  # one side is the other plus whole files: those files' rows, unread
        out["added"], out["removed"] = _count(cursor, rest[1]), _count(cursor, rest[0])
    else:  # a multiset difference: rows of shared files cancel out
        out["added"], out["removed"] = _whole_rows(cursor, parquet_list(rest[0]), parquet_list(rest[1]), common)
    out["changed"] = None
    out["match"] = {"by": "whole_rows", "columns": common} | ({"key_repeats": list(key or ())} if repeats else {})
    return out


def _key_repeats(cursor: Any, a: _Side, b: _Side, key: list[str]) -> bool:
    """Whether some value of ``key`` (NULL equal to NULL, as the join pairs them) is on two rows of either side:
    then rows cannot be paired by it (a join would pair every copy with every other) and are compared whole.
    A side whose snapshot recorded its key unique is not read."""
    cols = ", ".join(quoted(k) for k in key)
    for side in (a, b):
        if side.unique and side.key == key:
            continue
        found = cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {side.source} GROUP BY {cols} HAVING count(*) > 1)"  # noqa: S608
        ).fetchone()[0]
        if found:
            return True
    return False


def diff_tables(cursor: Any, message: Mapping[str, Any], *, snapshot_dir: Path, max_bytes: int) -> dict[str, Any]:
    """The diff of side ``message["a"]`` to side ``message["b"]`` (each a snapshot's ``{tables}`` or
    ``{live: true, schemas, keys}``), in one read-only transaction, interrupted at ``message["timeout_s"]``.

    Returns ``{"tables": [{table, status: added|dropped|kept, rows_a, rows_b, added, removed, changed,
    match: {by: key|whole_rows, columns} | "table", schema: {added, dropped, retyped}, columns: [{name, a,
    b}]}], "truncated": bool}``, tables sorted by name, at most MAX_TABLES of them. With ``message["strict"]``
    rows are compared whole by their values' text (``-0.0`` is not ``0.0``; engine/snapshotsame.py). Raises
    SnapshotError (a snapshot file is not what its manifest recorded), QueryRefusedError, QueryTimeoutError,
    duckdb.Error.
    """
    timeout_s = max(0.1, min(float(message.get("timeout_s", 60.0)), 600.0))
    timer = threading.Timer(timeout_s, cursor.interrupt)
    timer.start()
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        side_a = _sources(cursor, message.get("a") or {}, snapshot_dir)
        side_b = _sources(cursor, message.get("b") or {}, snapshot_dir)
        names = sorted({*side_a, *side_b})
        strict = message.get("strict") is True
        tables = [_table_diff(cursor, t, side_a.get(t), side_b.get(t), strict) for t in names[:MAX_TABLES]]
    except duckdb.InterruptException:
        raise QueryTimeoutError(f"diff interrupted after its time limit of {timeout_s:g} s") from None
    finally:
        timer.cancel()
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    truncated = len(names) > MAX_TABLES
    if len(json.dumps(tables)) > max_bytes:  # every value is already text, a number or null
        for t in tables:
            t["columns"] = []
        truncated = True
    return {"tables": tables, "truncated": truncated}


def snapshot_task(
    cursor: Any, message: Mapping[str, Any], *, publish_dir: Path | None, max_bytes: int
) -> dict[str, Any]:
    """Serve an ``export`` request with ``task``: ``snapshot`` (snapshots.snapshot_tables), ``restore``
    (restore.restore_tables) or ``diff`` (:func:`diff_tables`), with the snapshot folder beside
    ``publish_dir`` (engine.snapshots.snapshot_root). Raises QueryRefusedError for another task or no folder."""
    if publish_dir is None:
        raise QueryRefusedError("this worker has no publish folder, hence no snapshot folder")
    root = snapshot_root(publish_dir)
    task = message.get("task")
    if task == "snapshot":
        return snapshot_tables(cursor, message, snapshot_dir=root, publish_dir=publish_dir)
    if task == "restore":
        return restore_tables(cursor, message, snapshot_dir=root)
    if task == "diff":
        return diff_tables(cursor, message, snapshot_dir=root, max_bytes=max_bytes)
    raise QueryRefusedError(f"unknown task {task!r}")
