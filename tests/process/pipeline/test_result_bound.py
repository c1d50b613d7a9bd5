"""The result bound of the query engine: whatever the shape of a result, its reply stays under the bound.

The gate is ``query.run_query`` (every query of the data browser, the CLI and the API passes it), run here
on a real in-memory DuckDB. Hypothesis generates the class: wide rows, many rows, huge cells, nested
lists and structs, maps, long and non-ASCII strings, blobs, NULLs, exact numbers, and bounds from 1 KiB.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.pipeline.engine.limits import MAX_RESULT_BYTES, MiB
from foss_supervisor.pipeline.errors import QueryFailedError
from foss_supervisor.pipeline.protocol import encode
from foss_supervisor.pipeline.worker.query import run_query

#: what a reply holds beside the result's names, types and rows: its keys, counts and the reason text
ENVELOPE = 512

#: characters whose JSON is 1 to 12 bytes: ASCII, a control character, 2-, 3- and 4-byte UTF-8
CHARS = ["x", "\x01", '"', "é", "€", "𝄞"]


@st.composite
def column(draw: st.DrawFn, max_n: int) -> str:
    """An SQL expression of one column over the row number ``i`` (BIGINT, 0..rows-1); cells of up to ``max_n``
    elements or characters."""
    n = min(max_n, draw(st.one_of(st.integers(0, 50), st.integers(0, 5000), st.sampled_from([100_000, 400_000]))))
    ch = draw(st.sampled_from(CHARS)).replace("'", "''")
    return draw(
        st.sampled_from(
            [
                "i",
                "i * 1000000000000000",
                "(i * 7)::HUGEINT * 100000000000000000000",
                "(i / 7)::DECIMAL(18, 3)",
                "i / 3",
                "NULL",
                f"repeat('{ch}', {n})",
                f"encode(repeat('{ch}', {n}))",
                f"range({n})",
                "[]::INT[]",
                f"list_transform(range({n // 10}), lambda x: [x, NULL])",
                f"[{{'a': i, 'b': repeat('{ch}', {n})}}]",
                f"{{'s': range({n}), 't': '{ch}', 'n': NULL::INT}}",
                f"map([i, i + 1], [repeat('{ch}', {n}), NULL])",
                f"list_transform(range({n // 50}), lambda x: {{'k': x::VARCHAR, 'v': [x, x]}})",
                "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i)",
                "DATE '2024-01-01' + i::INT",
                "INTERVAL 1 DAY * i",
                "'a'::ENUM('a', 'b')",
                "[1, 2]::INT[2]",
                f"CASE WHEN i % 2 = 0 THEN repeat('{ch}', {n}) END",
            ]
        )
    )


@st.composite
def result_shape(draw: st.DrawFn) -> str:
    rows = draw(st.one_of(st.integers(0, 5), st.integers(0, 3000)))
    # DuckDB builds a whole vector (2048 rows) at a time: keep that within a few hundred MB here
    columns = draw(st.lists(column(max_n=20_000_000 // max(rows, 1)), min_size=1, max_size=8))
    select = ", ".join(f"{expr} AS c{k}" for k, expr in enumerate(columns))
    return f"SELECT {select} FROM range({rows}) t(i) ORDER BY i"


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def reply_of(con: Any, sql: str, *, max_rows: int, max_bytes: int) -> dict[str, Any]:
    cursor = con.cursor()
    try:
        return run_query(cursor, sql, database="memory", max_rows=max_rows, timeout_s=60.0, max_bytes=max_bytes)
    finally:
        cursor.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sql=result_shape(), max_rows=st.integers(1, 5000), max_bytes=st.integers(1024, 256 * 1024))
def test_no_result_shape_makes_a_reply_over_the_bound(con: Any, sql: str, max_rows: int, max_bytes: int) -> None:
    try:
        result = reply_of(con, sql, max_rows=max_rows, max_bytes=max_bytes)
    except QueryFailedError as exc:  # only when the names and types alone would not fit
        assert "column names alone" in str(exc)
        return
    line = encode({"id": 123456, "ok": True, "result": result})
    assert len(line) <= max_bytes + ENVELOPE, (sql, len(line))
    assert len(result["rows"]) <= max_rows
    # the rows kept are exactly the first rows of the result, as the protocol writes them
    kept = len(result["rows"])
    expected = con.execute(f"SELECT * FROM ({sql}) LIMIT {kept}").fetchall()
    assert result["rows"] == [[jsonable(v, exact=True) for v in row] for row in expected]
    total = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    if not result["truncated"]:
        assert kept == total
    elif not result["truncated_reason"]:
        assert kept == max_rows < total


def test_a_huge_cell_is_never_converted_to_python(con: Any) -> None:
    """40M rows aggregated into one LIST would be gigabytes of Python objects: the bound stops it in DuckDB."""
    tracemalloc.start()
    try:
        result = reply_of(
            con, "SELECT 7 AS a, list(range) AS l FROM range(40000000)", max_rows=10, max_bytes=MAX_RESULT_BYTES
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["rows"] == [] and result["truncated"]
    assert "row 1 alone is about" in result["truncated_reason"]
    assert peak < 16 * MiB  # Python memory: the list was never fetched


def test_the_reply_of_a_full_bound_is_within_it(con: Any) -> None:
    sql = "SELECT repeat('é', 3000) AS wide FROM range(100000)"
    result = reply_of(con, sql, max_rows=100_000, max_bytes=MAX_RESULT_BYTES)
    assert result["truncated"] and result["truncated_reason"].startswith("result larger than 16 MiB")
    assert 0 < len(result["rows"]) < 100_000
    assert len(encode({"id": 1, "ok": True, "result": result})) <= MAX_RESULT_BYTES + ENVELOPE
    assert len(json.dumps(result["rows"])) > MAX_RESULT_BYTES // 2  # cut near the bound, not far below it
