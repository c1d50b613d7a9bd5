"""The diff of two states of a pipeline's tables, computed in the worker: two run snapshots, or a snapshot
and the live warehouse (what a rollback would change). Per table: rows added, removed and changed by key,
schema changes, and each column's null rate and min/max on both sides.

How rows are matched: by the table's key when it has one (a PRIMARY KEY or UNIQUE constraint, else the key
the pipeline declares for it, e.g. a ``deduplicate`` step's ``key``): a key only in B is added, only in A
removed, in both with another value in any other common column changed. Without a key, whole rows over the
columns both sides have are compared as multisets (``EXCEPT ALL``): changed is then null, as an edited row
counts as one removed and one added, and ``match`` says so. Rows are matched by their 64-bit hash
(DuckDB's ``hash`` of every common column): two different rows with the same hash, about 3 in a million at
10M rows, would count as the same row.

Bounded like a query (query.py): the whole diff is interrupted at ``timeout_s``; at most
:data:`MAX_TABLES` tables and :data:`MAX_COLUMNS` columns a table are described, values are cut to
:data:`MAX_VALUE_CHARS`, and a reply over ``max_bytes`` loses its column statistics (``truncated``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.errors import QueryRefusedError, QueryTimeoutError
from foss_supervisor.pipeline.snapshots import snapshot_root
from foss_supervisor.pipeline.workersnapshots import layer_tables, quoted_table, restore_tables, snapshot_tables

__all__ = ["MAX_COLUMNS", "MAX_TABLES", "MAX_VALUE_CHARS", "diff_tables", "snapshot_task"]

MAX_TABLES = 200
MAX_COLUMNS = 200
MAX_VALUE_CHARS = 80
_NO_ORDER = ("STRUCT", "MAP", "UNION", "LIST")  # types whose min/max is not shown


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sources(cursor: Any, side: Mapping[str, Any], snapshot_dir: Path) -> dict[str, tuple[str, list[str] | None]]:
    """``{schema.table: (SQL source, key or None)}`` of one side: a snapshot's ``tables`` (files under
    ``snapshot_dir``) or, with ``live``, the base tables of ``schemas`` now."""
    if side.get("live"):
        keys: Mapping[str, Any] = side.get("keys") or {}
        tables = layer_tables(cursor, [str(s) for s in side.get("schemas") or ()])
        return {t: (quoted_table(t), list(keys[t]) if keys.get(t) else None) for t in tables}
    root = snapshot_dir.resolve()
    out: dict[str, tuple[str, list[str] | None]] = {}
    for table, entry in (side.get("tables") or {}).items():
        path = Path(str(entry["file"])).resolve()
        if not path.is_relative_to(root):
            raise QueryRefusedError(f"snapshot file {path} is outside {root}")
        out[str(table)] = ("read_parquet('" + str(path).replace("'", "''") + "')", entry.get("key"))
    return out


def _columns(cursor: Any, source: str) -> dict[str, str]:
    rows = cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608 (checked sources)
    return {str(r[0]): str(r[1]) for r in rows}


def _cut(value: Any) -> str | None:
    return None if value is None else str(value)[:MAX_VALUE_CHARS]


def _stats(cursor: Any, source: str, columns: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]]]:
    """Rows of ``source`` and per column ``{null_rate, min, max}`` (min/max as text, none for nested types)."""
    names = list(columns)[:MAX_COLUMNS]
    parts = ["count(*)"]
    for name in names:
        ordered = not columns[name].upper().startswith(_NO_ORDER) and not columns[name].endswith("]")
        parts.append(f"count({_q(name)})")
        parts += [f"CAST(min({_q(name)}) AS VARCHAR)", f"CAST(max({_q(name)}) AS VARCHAR)"] if ordered else ["NULL"] * 2
    row = cursor.execute(f"SELECT {', '.join(parts)} FROM {source}").fetchone()  # noqa: S608
    total = int(row[0])
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        non_null, low, high = row[1 + 3 * i : 4 + 3 * i]
        rate = round((total - int(non_null)) / total, 6) if total else None
        out[name] = {"null_rate": rate, "min": _cut(low), "max": _cut(high)}
    return total, out


def _table_diff(cursor: Any, table: str, a: tuple[str, Any] | None, b: tuple[str, Any] | None) -> dict[str, Any]:
    cols_a = _columns(cursor, a[0]) if a else {}
    cols_b = _columns(cursor, b[0]) if b else {}
    rows_a, stats_a = _stats(cursor, a[0], cols_a) if a else (0, {})
    rows_b, stats_b = _stats(cursor, b[0], cols_b) if b else (0, {})
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
    key = b[1] or a[1]
    if key and all(k in common for k in key):  # one full join: added, removed and changed in one pass
        on = " AND ".join(f"x.{_q(k)} IS NOT DISTINCT FROM y.{_q(k)}" for k in key)
        rest = [c for c in common if c not in key]
        moved = " OR ".join(f"x.{_q(c)} IS DISTINCT FROM y.{_q(c)}" for c in rest) or "false"
        counts = (
            f"SELECT count(*) FILTER (WHERE x._in_a IS NULL), count(*) FILTER (WHERE y._in_b IS NULL),"  # noqa: S608
            f" count(*) FILTER (WHERE x._in_a AND y._in_b AND ({moved}))"
            f" FROM (SELECT true AS _in_a, * FROM {a[0]}) x FULL JOIN (SELECT true AS _in_b, * FROM {b[0]}) y ON {on}"
        )
        out["added"], out["removed"], out["changed"] = (int(n) for n in cursor.execute(counts).fetchone())
        out["match"] = {"by": "key", "columns": list(key)}
    else:  # one aggregation of both sides by whole row: each row's count in A and in B (a multiset difference)
        # grouped by the row's 64-bit hash, not the row itself: 3x faster (1M rows of bronze: 0.30 s, not 0.91 s);
        # two different rows with one hash (odds about 3 in a million at 10M rows) would count as one
        row = f"hash({', '.join(_q(c) for c in common)})" if common else "true"
        counts = (
            "SELECT coalesce(sum(greatest(n_b - n_a, 0)), 0), coalesce(sum(greatest(n_a - n_b, 0)), 0) FROM ("  # noqa: S608
            "SELECT count(*) FILTER (WHERE _in_a) AS n_a, count(*) FILTER (WHERE NOT _in_a) AS n_b FROM ("
            f"SELECT true AS _in_a, {row} AS _row FROM {a[0]} UNION ALL SELECT false, {row} FROM {b[0]}) GROUP BY _row)"
        )
        out["added"], out["removed"] = (int(n) for n in cursor.execute(counts).fetchone())
        out["changed"] = None
        out["match"] = {"by": "whole_rows", "columns": common}
    return out


def diff_tables(cursor: Any, message: Mapping[str, Any], *, snapshot_dir: Path, max_bytes: int) -> dict[str, Any]:
    """The diff of side ``message["a"]`` to side ``message["b"]`` (each a snapshot's ``{tables}`` or
    ``{live: true, schemas, keys}``), in one read-only transaction, interrupted at ``message["timeout_s"]``.

    Returns ``{"tables": [{table, status: added|dropped|kept, rows_a, rows_b, added, removed, changed,
    match: {by: key|whole_rows, columns} | "table", schema: {added, dropped, retyped}, columns: [{name, a,
    b}]}], "truncated": bool}``, tables sorted by name, at most MAX_TABLES of them. Raises
    QueryRefusedError, QueryTimeoutError, duckdb.Error.
    """
    timeout_s = max(0.1, min(float(message.get("timeout_s", 60.0)), 600.0))
    timer = threading.Timer(timeout_s, cursor.interrupt)
    timer.start()
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        side_a = _sources(cursor, message.get("a") or {}, snapshot_dir)
        side_b = _sources(cursor, message.get("b") or {}, snapshot_dir)
        names = sorted({*side_a, *side_b})
        tables = [_table_diff(cursor, t, side_a.get(t), side_b.get(t)) for t in names[:MAX_TABLES]]
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
    """Serve an ``export`` request with ``task``: ``snapshot`` (workersnapshots.snapshot_tables), ``restore``
    (workersnapshots.restore_tables) or ``diff`` (:func:`diff_tables`), with the snapshot folder beside
    ``publish_dir`` (snapshots.snapshot_root). Raises QueryRefusedError for another task or no folder."""
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
