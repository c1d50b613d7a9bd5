"""The diff's row counts (pipeline/worker/diff.py) against an independent Python computation over the whole class of
small tables: keyed tables (added/removed/changed by key, NULLs in values) and unkeyed ones (multisets
with duplicates), with columns added and dropped between the sides. The files are written by pyarrow, not
DuckDB; the diff runs on a real DuckDB connection as in the worker."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.worker.diff import diff_tables

_counter = itertools.count()

values = st.one_of(st.none(), st.integers(-3, 3))
keyed = st.dictionaries(st.integers(0, 12), st.tuples(values, st.sampled_from(["x", "y", None])), max_size=15)
unkeyed = st.lists(st.tuples(values, st.sampled_from(["x", "y"])), max_size=15)


def write(folder: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> dict[str, Any]:
    """A Parquet file of ``rows`` and its manifest entry (rows and size: what the diff checks it by)."""
    path = folder / f"t{next(_counter)}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return {"file": str(path), "rows": len(rows), "bytes": path.stat().st_size}


def run_diff(folder: Path, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    con = duckdb.connect()
    try:
        message = {"a": {"tables": {"s.t": a}}, "b": {"tables": {"s.t": b}}, "timeout_s": 30}
        return diff_tables(con.cursor(), message, snapshot_dir=folder, max_bytes=1 << 20)["tables"][0]
    finally:
        con.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=keyed, b=keyed, extra=st.booleans())
def test_keyed_diff_equals_python_sets(tmp_path: Path, a: dict[int, Any], b: dict[int, Any], extra: bool) -> None:
    schema_a = pa.schema([("k", pa.int64()), ("v", pa.int64()), ("w", pa.string())])
    schema_b = schema_a.append(pa.field("z", pa.float64())) if extra else schema_a
    rows_a = [{"k": k, "v": v, "w": w} for k, (v, w) in a.items()]
    rows_b = [{"k": k, "v": v, "w": w} | ({"z": 1.5} if extra else {}) for k, (v, w) in b.items()]
    got = run_diff(
        tmp_path,
        {"files": [write(tmp_path, rows_a, schema_a)], "key": ["k"]},
        {"files": [write(tmp_path, rows_b, schema_b)], "key": ["k"]},
    )
    both = a.keys() & b.keys()
    assert got["match"] == {"by": "key", "columns": ["k"]}
    assert got["added"] == len(b.keys() - a.keys())
    assert got["removed"] == len(a.keys() - b.keys())
    assert got["changed"] == sum(1 for k in both if a[k] != b[k])  # None == None: not a change
    assert [c["name"] for c in got["schema"]["added"]] == (["z"] if extra else [])
    v_nulls = [v for v, _ in b.values()]
    if v_nulls:
        rate = {c["name"]: c for c in got["columns"]}["v"]["b"]["null_rate"]
        assert rate == round(sum(v is None for v in v_nulls) / len(v_nulls), 6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=unkeyed, b=unkeyed, drop=st.booleans())
def test_unkeyed_diff_equals_python_multisets(
    tmp_path: Path, a: list[tuple[Any, str]], b: list[tuple[Any, str]], drop: bool
) -> None:
    schema_a = pa.schema([("v", pa.int64()), ("w", pa.string())])
    schema_b = pa.schema([("v", pa.int64())]) if drop else schema_a
    rows_a = [{"v": v, "w": w} for v, w in a]
    rows_b = [{"v": v} if drop else {"v": v, "w": w} for v, w in b]
    got = run_diff(
        tmp_path,
        {"files": [write(tmp_path, rows_a, schema_a)]},
        {"files": [write(tmp_path, rows_b, schema_b)]},
    )
    common = ["v"] if drop else ["v", "w"]
    ca = Counter(tuple(r[c] for c in common) for r in rows_a)
    cb = Counter(tuple(r[c] for c in common) for r in rows_b)
    assert got["match"] == {"by": "whole_rows", "columns": common}
    assert (got["added"], got["removed"], got["changed"]) == (sum((cb - ca).values()), sum((ca - cb).values()), None)
    assert [c["name"] for c in got["schema"]["dropped"]] == (["w"] if drop else [])
    assert (got["rows_a"], got["rows_b"]) == (len(a), len(b))


# rows of a keyed table whose key may repeat: NULL keys (a UNIQUE column may hold several) and copies
repeating = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4)), values), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=repeating, b=repeating)
def test_a_key_that_repeats_is_never_used_to_pair_rows(
    tmp_path: Path, a: list[tuple[Any, Any]], b: list[tuple[Any, Any]]
) -> None:
    """Where a key value (NULL counting as one) is on two rows of either side, the rows are compared whole (as
    multisets) and ``match`` names the repeating key; where it never repeats, by key as before. A diff of a
    run with itself is then all zeros, whatever the key holds (red-team finding: it said 2 changed)."""
    schema = pa.schema([("k", pa.int64()), ("v", pa.int64())])
    rows_a, rows_b = [{"k": k, "v": v} for k, v in a], [{"k": k, "v": v} for k, v in b]
    file_a, file_b = write(tmp_path, rows_a, schema), write(tmp_path, rows_b, schema)
    got = run_diff(tmp_path, {"files": [file_a], "key": ["k"]}, {"files": [file_b], "key": ["k"]})
    repeats = any(n > 1 for side in (a, b) for n in Counter(k for k, _ in side).values())
    ca, cb = Counter(a), Counter(b)
    if repeats:
        assert got["match"] == {"by": "whole_rows", "columns": ["k", "v"], "key_repeats": ["k"]}
        assert (got["added"], got["removed"], got["changed"]) == (
            sum((cb - ca).values()),
            sum((ca - cb).values()),
            None,
        )
    else:
        assert got["match"] == {"by": "key", "columns": ["k"]}
        ka, kb = dict(a), dict(b)
        changed = sum(1 for k in ka.keys() & kb.keys() if ka[k] != kb[k])
        assert (got["added"], got["removed"], got["changed"]) == (
            len(kb.keys() - ka.keys()),
            len(ka.keys() - kb.keys()),
            changed,
        )
    same = run_diff(tmp_path, {"files": [file_a], "key": ["k"]}, {"files": [file_a], "key": ["k"]})
    assert (same["added"], same["removed"]) == (0, 0) and same["changed"] in (0, None)


def _not_distinct(x: Any, y: Any) -> bool:
    """SQL's IS NOT DISTINCT FROM over Python values: NULL equals NULL, NaN equals NaN, -0.0 equals 0.0."""
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True
    return bool(x == y)


floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64), st.sampled_from([0.0, -0.0]))


small_ints = st.one_of(st.none(), st.integers(-2, 2))
whole_floats = st.one_of(st.none(), st.sampled_from([-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, 0.5, float("nan")]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), retyped=st.booleans())
def test_a_keyed_diff_counts_changes_as_sql_compares_them(tmp_path: Path, data: st.DataObject, retyped: bool) -> None:
    """By key, a row is changed exactly when a value IS DISTINCT FROM the other side's: NaN equals NaN, -0.0
    equals 0.0, NULL equals NULL, for the hashed comparison of columns of one type; and a column retyped
    between the sides (BIGINT -> DOUBLE) is compared by value, as IS DISTINCT FROM casts (1 = 1.0), not by
    its hash."""
    a = data.draw(st.dictionaries(st.integers(0, 9), small_ints if retyped else floats, max_size=10))
    b = data.draw(st.dictionaries(st.integers(0, 9), whole_floats if retyped else floats, max_size=10))
    schema_a = pa.schema([("k", pa.int64()), ("v", pa.int64() if retyped else pa.float64())])
    schema_b = pa.schema([("k", pa.int64()), ("v", pa.float64())])
    got = run_diff(
        tmp_path,
        {"files": [write(tmp_path, [{"k": k, "v": v} for k, v in a.items()], schema_a)], "key": ["k"]},
        {"files": [write(tmp_path, [{"k": k, "v": v} for k, v in b.items()], schema_b)], "key": ["k"]},
    )
    assert (got["added"], got["removed"]) == (len(b.keys() - a.keys()), len(a.keys() - b.keys())), got
    assert got["changed"] == sum(1 for k in a.keys() & b.keys() if not _not_distinct(a[k], b[k])), (a, b, got)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(floats, max_size=8))
def test_a_strict_diff_tells_apart_what_sql_calls_equal_and_finds_a_table_equal_to_itself(
    tmp_path: Path, values: list[Any]
) -> None:
    """``strict`` (snapshotsame.py: whether a run changed a table) compares rows by their values' text: a
    table against itself is unchanged, and one ``0.0`` turned ``-0.0`` is a row out and a row in, though SQL
    (and so the ordinary diff) calls them equal."""
    schema = pa.schema([("v", pa.float64())])
    rows = [{"v": v} for v in values]
    same = run_diff(
        tmp_path, {"files": [write(tmp_path, rows, schema)]}, {"files": [write(tmp_path, rows, schema)]} | {}
    )
    assert (same["added"], same["removed"]) == (0, 0), same
    signed = [{"v": -0.0 if v == 0.0 and str(v) == "0.0" else v} for v in values]
    flipped = sum(1 for v in values if v == 0.0 and str(v) == "0.0")
    for strict in (True, False):
        con = duckdb.connect()
        try:
            message = {
                "a": {"tables": {"s.t": {"files": [write(tmp_path, rows, schema)]}}},
                "b": {"tables": {"s.t": {"files": [write(tmp_path, signed, schema)]}}},
                "timeout_s": 30,
                "strict": strict,
            }
            got = diff_tables(con.cursor(), message, snapshot_dir=tmp_path, max_bytes=1 << 20)["tables"][0]
        finally:
            con.close()
        assert (got["added"], got["removed"]) == ((flipped, flipped) if strict else (0, 0)), (values, got)
