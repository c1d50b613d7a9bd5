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
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.worker.ingest import bronze_ddl, build_ingest_sql, build_parquet_sql, check_bronze

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


# a declared type as written, and the type DuckDB makes of it
DECLARABLE = {
    "VARCHAR": "VARCHAR",
    "TEXT": "VARCHAR",
    "STRING": "VARCHAR",
    "VARCHAR(12)": "VARCHAR",
    "BIGINT": "BIGINT",
    "INT8": "BIGINT",
    "INTEGER": "INTEGER",
    "DOUBLE": "DOUBLE",
    "DECIMAL(10,2)": "DECIMAL(10,2)",
    "DATE": "DATE",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
    "TIMESTAMP": "TIMESTAMP",
    "BLOB": "BLOB",
}
WRITTEN = {name: ("VARCHAR" if "VARCHAR" in t else t.split()[0]) for name, t in COLUMNS}
WRITTEN["_ingested_at"] = "TIMESTAMP WITH TIME ZONE"
CHECKED = duckdb.connect()  # one database for every example (a connection costs more than the check)
CHECKED.execute("CREATE SCHEMA b")


@given(st.fixed_dictionaries({name: st.sampled_from(sorted(DECLARABLE)) for name, _ in COLUMNS}))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_declared_bronze_passes_only_with_the_types_ingest_writes(declared: dict[str, str]) -> None:
    """Any types a ``setup.sql`` gives the columns ingest writes: the check passes exactly when each is the type
    ingest writes (by whatever alias), else it names every other one with both types; never a run's cast."""
    con = CHECKED
    con.execute(f"CREATE OR REPLACE TABLE b.raw ({', '.join(f'{c} {t}' for c, t in declared.items())}, extra INTEGER)")
    wrong = {c: DECLARABLE[t] for c, t in declared.items() if DECLARABLE[t] != WRITTEN[c]}
    if not wrong:
        check_bronze(con, "b.raw", DECLARED)
        return
    with pytest.raises(ValueError, match="of another type than ingest writes") as refused:
        check_bronze(con, "b.raw", DECLARED)
    for column, made in wrong.items():
        assert f"{column} is {made}, not {WRITTEN[column]}" in str(refused.value)


BASE = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)


@pytest.mark.parametrize(
    ("declared", "refused"),
    [
        (f"{BASE}", None),
        (f"{BASE}, extra INTEGER NOT NULL DEFAULT 0, note VARCHAR COLLATE NOCASE", None),  # theirs, fillable
        (BASE.replace("kind VARCHAR", "kind VARCHAR CHECK (kind IN ('a', 'b'))"), "a CHECK on kind"),
        (BASE.replace("amount VARCHAR", "amount VARCHAR NOT NULL"), "amount is NOT NULL"),
        (BASE.replace("event_id VARCHAR", "event_id VARCHAR UNIQUE"), "a UNIQUE on event_id"),
        (f"{BASE}, PRIMARY KEY (_row_id)", "a PRIMARY KEY on _row_id"),
        (f"{BASE}, extra INTEGER NOT NULL", "extra is NOT NULL without a DEFAULT"),
        (
            BASE.replace("amount VARCHAR", "amount VARCHAR GENERATED ALWAYS AS (kind || 'x')"),
            "amount is a generated column",
        ),
    ],
)
def test_a_declared_bronze_that_would_refuse_a_line_is_refused_before_any_run(
    declared: str, refused: str | None
) -> None:
    """Bronze keeps every line as it arrived: a constraint, a NOT NULL or a generated column that ingest's
    rows could break fails the check (ingest and validate) naming each, not a run in DuckDB's words."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA b")
    con.execute(f"CREATE TABLE b.raw ({declared})")
    if refused is None:
        check_bronze(con, "b.raw", DECLARED)
        return
    with pytest.raises(ValueError, match="refuses rows ingest may write") as found:
        check_bronze(con, "b.raw", DECLARED)
    assert refused in str(found.value)


def test_a_view_named_as_the_bronze_table_is_refused() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA b")
    con.execute(bronze_ddl("b.real", DECLARED))
    con.execute("CREATE VIEW b.raw AS SELECT * FROM b.real")
    with pytest.raises(ValueError, match="is a view, not a table"):
        check_bronze(con, "b.raw", DECLARED)


@given(
    drop=st.sets(st.sampled_from([name for name, _ in COLUMNS]), max_size=3),
    retype=st.sets(st.sampled_from([name for name, _ in COLUMNS]), max_size=3),
    constrained=st.booleans(),
)
@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
def test_every_mistake_of_a_declared_bronze_is_told_at_once(
    drop: set[str], retype: set[str], constrained: bool
) -> None:
    """A fresh tester's find: a bronze lacking columns and with a column of another type was told one mistake
    per ``validate``. Any mix of lacking columns, other types and a constraint: each told in one refusal."""
    kept = [(c, "INTEGER" if c in retype and WRITTEN[c] != "INTEGER" else t) for c, t in COLUMNS if c not in drop]
    extra = ", CHECK (extra > 0)" if constrained else ""
    CHECKED.execute(f"CREATE OR REPLACE TABLE b.raw ({', '.join(f'{c} {t}' for c, t in kept)}, extra INTEGER{extra})")
    lacking = [c for c, _ in COLUMNS if c in drop]
    retyped = [c for c, t in kept if c in retype and WRITTEN[c] != "INTEGER"]
    if not (lacking or retyped or constrained):
        check_bronze(CHECKED, "b.raw", DECLARED)
        return
    with pytest.raises(ValueError) as refused:
        check_bronze(CHECKED, "b.raw", DECLARED)
    told = str(refused.value)
    assert ("lacks the column(s) ingest writes" in told) == bool(lacking), told
    assert all(c in told.split("lacks the column(s) ingest writes: ")[1] for c in lacking)
    assert ("of another type than ingest writes" in told) == bool(retyped), told
    assert all(f"{c} is INTEGER, not {WRITTEN[c]}" in told for c in retyped), told
    assert ("a CHECK on extra" in told) == constrained, told
