"""Ingest writes bronze by column name (issue 18, newcomer): a bronze table declared in ``setup.sql`` with its
columns in any order receives exactly the rows the default layout (``bronze_ddl``) receives, for every
reader's SQL (CSV and JSON lines through ``build_ingest_sql``, Parquet through ``build_parquet_sql``).
In-process DuckDB; the whole ingest step with a real worker is covered in tests/process/pipeline."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.ingest import bronze_ddl, build_ingest_sql, build_parquet_sql

DECLARED = ["event_id", "kind", "amount"]
BOOKKEEPING = [
    ("_row_id", "BIGINT NOT NULL"),
    ("_batch_id", "VARCHAR NOT NULL"),
    ("_source_file", "VARCHAR NOT NULL"),
    ("_source_sha256", "VARCHAR NOT NULL"),
    ("_source_line", "BIGINT NOT NULL"),
    ("_ingested_at", "TIMESTAMPTZ NOT NULL"),
    ("_raw_line", "VARCHAR"),
    ("_parse_error", "VARCHAR"),
]
COLUMNS = BOOKKEEPING + [(c, "VARCHAR") for c in DECLARED]
NOW = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
SOURCE = "(SELECT * FROM unnest($lines::VARCHAR[]) WITH ORDINALITY AS x(line, n))"

field = st.text(alphabet='ab1," ', max_size=6)
csv_line = st.one_of(st.lists(field, min_size=1, max_size=4).map(",".join), st.just(""))
json_line = st.one_of(
    st.fixed_dictionaries({}, optional={c: st.one_of(field, st.integers(-5, 5)) for c in DECLARED}).map(json.dumps),
    st.sampled_from(["[1]", "{", ""]),
)


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    names = ", ".join(name for name, _ in COLUMNS)
    return con.execute(f"SELECT {names} FROM {table} ORDER BY _row_id").fetchall()


def _both(order: list[int], sql: str, params: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """Rows written by ``sql`` into the default layout and into a table with the columns in ``order``."""
    con = duckdb.connect()
    con.execute(bronze_ddl("b.raw", DECLARED).replace("b.raw", "b.canonical"))
    shuffled = ", ".join(f"{COLUMNS[i][0]} {COLUMNS[i][1]}" for i in order)
    con.execute(f"CREATE TABLE b.raw ({shuffled})")
    con.execute(sql.replace("INTO b.raw", "INTO b.canonical"), params)
    con.execute(sql, params)
    return _rows(con, "b.canonical"), _rows(con, "b.raw")


def _params(**extra: Any) -> dict[str, Any]:
    return {"base": 10, "batch": "run-1", "path": "/in/f", "sha": "ab" * 32, "now": NOW, **extra}


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(COLUMNS))), lines=st.lists(csv_line, max_size=6))
def test_csv_lines_land_by_name_whatever_the_column_order(order: list[int], lines: list[str]) -> None:
    sql = build_ingest_sql("b.raw", DECLARED, "csv", ["amount", "event_id", "kind"], SOURCE)
    canonical, shuffled = _both(order, sql, _params(lines=["amount,event_id,kind", *lines]))
    assert shuffled == canonical and len(canonical) == len(lines)


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(COLUMNS))), lines=st.lists(json_line, max_size=6))
def test_json_lines_land_by_name_whatever_the_column_order(order: list[int], lines: list[str]) -> None:
    sql = build_ingest_sql("b.raw", DECLARED, "jsonl", None, SOURCE)
    canonical, shuffled = _both(order, sql, _params(lines=lines))
    assert shuffled == canonical and len(canonical) == len(lines)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(COLUMNS))), n=st.integers(0, 5), missing=st.sampled_from(DECLARED))
def test_parquet_rows_land_by_name_whatever_the_column_order(
    tmp_path: Path, order: list[int], n: int, missing: str
) -> None:
    file = tmp_path / "in.parquet"
    present = [c for c in DECLARED if c != missing]
    duckdb.sql(
        f"COPY (SELECT {', '.join(f'range * 2 AS {c.upper()}' for c in present)} FROM range({n}))"
        f" TO '{file}' (FORMAT parquet)"
    )
    have = {c: c.upper() for c in present}  # the file's own spelling of each column
    canonical, shuffled = _both(order, build_parquet_sql("b.raw", DECLARED, have), _params(file=str(file)))
    assert shuffled == canonical and len(canonical) == n
    assert all(row[[name for name, _ in COLUMNS].index(missing)] is None for row in canonical)
