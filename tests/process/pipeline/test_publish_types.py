"""The publish type gate (publishtypes.py, issue 18): every column type, nested ones too, is published exactly or
refused. Hypothesis draws DuckDB types (scalars, and STRUCT / LIST / ARRAY / MAP of them) and values; each table
goes through the gate and the worker's own SELECT into a real Parquet file (DuckDB's COPY, as
pipeline/worker/publish.py) and a real Delta table (deltalake, as pipeline/worker/delta.py), read back by pyarrow
and deltalake, and every value must read back as the same text as DuckDB's own; or the gate refused, naming the
table, the column and its type, exactly when the type holds one the format cannot hold or a (U)HUGEINT value
wider than 38 digits. Then one pipeline with a real worker: a HUGEINT published as DECIMAL(38,0), and a value too
wide failing the publish."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from helpers.pipeline import RunnerFactory
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from test_publish_delta import delta_pipeline

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.worker.publishtypes import check_fit, published_columns, select_sql
from foss_supervisor.pipeline.worker.validate import validate_spec

#: the largest magnitude DECIMAL(38,0) holds
MAX38 = 10**38 - 1
#: leaf types each format refuses (the gate's contract, written out independently of it)
REFUSED = {
    "parquet": {"INTERVAL", "TIMETZ"},
    "delta": {"INTERVAL", "TIMETZ", "TIME", "TIMESTAMP_NS", "TIMESTAMP in a MAP"},
}
#: how a refusal names each (the type as DuckDB prints it, or the words of the MAP rule)
NAMED = {"TIMETZ": "TIME WITH TIME ZONE", "TIMESTAMP in a MAP": "a TIMESTAMP in a MAP"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ints(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(str)


_NS = st.tuples(st.datetimes(dt.datetime(1700, 1, 1), dt.datetime(2200, 1, 1)), st.integers(0, 999_999_999))
_TIME = st.times().map(lambda t: t.replace(microsecond=t.microsecond))
#: each scalar leaf: its DuckDB type and a strategy of SQL literals of it
LEAVES: dict[str, st.SearchStrategy[str]] = {
    "BOOLEAN": st.booleans().map(str),
    "TINYINT": _ints(-(2**7), 2**7 - 1),
    "SMALLINT": _ints(-(2**15), 2**15 - 1),
    "INTEGER": _ints(-(2**31), 2**31 - 1),
    "BIGINT": _ints(-(2**63), 2**63 - 1),
    "HUGEINT": st.one_of(_ints(-MAX38, MAX38), _ints(-(2**127), 2**127 - 1)),
    "UTINYINT": _ints(0, 2**8 - 1),
    "USMALLINT": _ints(0, 2**16 - 1),
    "UINTEGER": _ints(0, 2**32 - 1),
    "UBIGINT": _ints(0, 2**64 - 1),
    "UHUGEINT": st.one_of(_ints(0, MAX38), _ints(0, 2**128 - 1)),
    "DOUBLE": st.floats(allow_nan=False, allow_infinity=False).map(repr),
    "DECIMAL(18,3)": st.decimals(-(10**15) + 1, 10**15 - 1, places=3).map(lambda d: _quote(str(d))),
    "VARCHAR": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8).map(_quote),
    "BLOB": st.binary(max_size=6).map(lambda b: f"from_hex('{b.hex()}')"),
    "DATE": st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(lambda d: _quote(d.isoformat())),
    "TIMESTAMP": st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)).map(lambda d: _quote(str(d))),
    "TIMESTAMP_NS": _NS.map(lambda p: _quote(f"{p[0]:%Y-%m-%d %H:%M:%S}.{p[1]:09d}")),
    "TIME": _TIME.map(lambda t: _quote(t.isoformat())),
    "TIMETZ": st.tuples(_TIME, st.integers(-15, 15)).map(lambda p: _quote(f"{p[0].isoformat()}{p[1]:+03d}")),
    "INTERVAL": st.integers(-(10**12), 10**12).map(lambda n: f"to_microseconds({n})"),
}


@dataclasses.dataclass(frozen=True)
class Drawn:
    """A DuckDB type, the scalar leaf types it holds (and ``TIMESTAMP in a MAP`` when a map holds one), and how
    to draw SQL literals of it."""

    sql: str
    leaves: frozenset[str]
    values: Callable[[], st.SearchStrategy[str]]


def _leaf(name: str) -> Drawn:
    return Drawn(name, frozenset({name}), lambda: LEAVES[name].map(lambda v: f"CAST({v} AS {name})"))


def _nested(children: st.SearchStrategy[Drawn]) -> st.SearchStrategy[Drawn]:
    def struct(members: list[Drawn]) -> Drawn:
        sql = "STRUCT(" + ", ".join(f"f{i} {m.sql}" for i, m in enumerate(members)) + ")"
        values = lambda: st.tuples(*(m.values() for m in members)).map(  # noqa: E731
            lambda vs: "{" + ", ".join(f"'f{i}': {v}" for i, v in enumerate(vs)) + "}"
        )
        return Drawn(sql, frozenset().union(*(m.leaves for m in members)), values)

    def listed(inner: Drawn) -> Drawn:
        return Drawn(f"{inner.sql}[]", inner.leaves, lambda: st.lists(inner.values(), max_size=3).map(_list))

    def array(inner: Drawn) -> Drawn:
        return Drawn(
            f"{inner.sql}[2]", inner.leaves, lambda: st.lists(inner.values(), min_size=2, max_size=2).map(_list)
        )

    def mapped(inner: Drawn) -> Drawn:
        entries = lambda: st.dictionaries(st.integers(-5, 5), inner.values(), max_size=3)  # noqa: E731
        return Drawn(
            f"MAP(INTEGER, {inner.sql})",
            inner.leaves | ({"TIMESTAMP in a MAP"} if "TIMESTAMP" in inner.leaves else set()),
            lambda: entries().map(lambda d: "MAP {" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
        )

    return st.one_of(
        st.lists(children, min_size=1, max_size=3).map(struct),
        children.map(listed),
        children.map(array),
        children.map(mapped),
    )


def _list(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]"


TYPES = st.recursive(st.sampled_from(sorted(LEAVES)).map(_leaf), _nested, max_leaves=4)


def _too_wide(con: Any, column: str) -> bool:
    """Whether some (U)HUGEINT anywhere in ``column`` of ``t`` is wider than 38 digits (read by DuckDB)."""
    found = con.execute(f"SELECT {column}::VARCHAR FROM t").fetchall()
    digits = " ".join("".join(c if c.isdigit() else " " for c in str(row[0] or "")) for row in found)
    return any(len(run) > 38 for run in digits.split())


def _texts(con: Any, table: Any) -> list[tuple[Any, ...]]:
    """Each row of an Arrow table as DuckDB prints its values, by ``i``."""
    con.register("back", table)
    try:
        return list(con.execute("SELECT i, c::VARCHAR FROM back ORDER BY i").fetchall())
    finally:
        con.unregister("back")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), drawn=TYPES)
def test_every_published_type_reads_back_the_same_or_is_refused_by_name(data: st.DataObject, drawn: Drawn) -> None:
    note(drawn.sql)
    values = data.draw(st.lists(st.one_of(st.just("NULL"), drawn.values()), min_size=1, max_size=4))
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (i INTEGER, c {drawn.sql})")
    for i, value in enumerate(values):
        con.execute(f"INSERT INTO t VALUES ({i}, CAST({value} AS {drawn.sql}))")
    original = list(con.execute("SELECT i, c::VARCHAR FROM t ORDER BY i").fetchall())
    relation = con.sql("SELECT * FROM t")
    names, types = relation.columns, relation.types
    too_wide = bool(drawn.leaves & {"HUGEINT", "UHUGEINT"}) and _too_wide(con, "c")
    for fmt in ("parquet", "delta"):
        refused = drawn.leaves & REFUSED[fmt]
        try:
            columns = published_columns("s.t", names, types, fmt)
            check_fit(con, "s.t", "t", columns)
        except QueryRefusedError as exc:
            assert refused or too_wide, (fmt, drawn.sql, str(exc))
            assert str(exc).startswith(f"s.t: column 'c' is {types[1]}") and "CAST" in str(exc), str(exc)
            named = [NAMED.get(t, t) for t in refused] if refused else ["HUGEINT"]  # UHUGEINT too
            assert any(n in str(exc) for n in named), (named, str(exc))
            continue
        assert not refused and not too_wide, (fmt, drawn.sql)
        select = select_sql("t", columns)
        with tempfile.TemporaryDirectory() as folder:
            if fmt == "parquet":
                con.execute(f"COPY ({select}) TO '{folder}/part-0.parquet' (FORMAT parquet, COMPRESSION zstd)")
                back = pq.read_table(f"{folder}/part-0.parquet")
            else:
                write_deltalake(folder, con.cursor().sql(select), mode="overwrite")
                back = DeltaTable(folder).to_pyarrow_table()
            assert _texts(con, back) == original, (fmt, drawn.sql)


@pytest.mark.parametrize(
    ("sql", "fmt", "named"),
    [
        ("[INTERVAL '1 day']", "parquet", "INTERVAL[] (its INTERVAL)"),
        ("{'a': TIMETZ '10:00:00+01'}", "delta", "STRUCT(a TIME WITH TIME ZONE) (its TIME WITH TIME ZONE)"),
        ("union_value(a := 1)::UNION(a INTEGER, b VARCHAR)", "delta", "UNION(a INTEGER, b VARCHAR)"),
        ("'101'::BIT", "delta", "BIT"),
        ("'12345678901234567890123456789012345678901'::VARINT", "delta", "BIGNUM"),
    ],
)
def test_types_a_format_cannot_hold_exactly_are_refused(sql: str, fmt: str, named: str) -> None:
    relation = duckdb.sql(f"SELECT {sql} AS c")
    with pytest.raises(QueryRefusedError, match="fix: ") as refused:
        published_columns("s.t", relation.columns, relation.types, fmt)
    assert str(refused.value).startswith(f"s.t: column 'c' is {named}, which "), str(refused.value)


WIDE_SQL = """
CREATE SCHEMA IF NOT EXISTS dl_gold;
CREATE OR REPLACE TABLE dl_gold.items AS
SELECT CAST(range AS HUGEINT) * (SELECT max(n) FROM read_csv(getvariable('reference_dir') || '/size.csv')) AS big,
       {'n': CAST(range AS UHUGEINT)} AS nested
FROM range(3);
CREATE OR REPLACE TABLE dl_gold.daily AS SELECT DATE '2024-05-01' AS day, 1 AS n;
SELECT 0 AS rows_in, 3 AS rows_out;
"""


@pytest.mark.parametrize("publish_format", ["parquet", "delta"])
async def test_a_hugeint_is_published_exactly_as_decimal_38_or_the_publish_fails_naming_it(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory, publish_format: str
) -> None:
    # snapshot_keep: 0, as a snapshot refuses HUGEINT on its own (snapshottypes.py): this is about the publish
    path = delta_pipeline(tmp_path, workspace, publish_format=publish_format, snapshot_keep=0)
    (tmp_path / "gold.sql").write_text(WIDE_SQL)
    size = workspace["reference"] / "size.csv"
    size.write_text(f"n\n{10**37 + 7}\n")  # more than 2**53: a DOUBLE would round it
    spec = load_pipeline(path)
    assert {r.step: r.status for r in validate_spec(spec)}["_publish"] == "ok"
    runner = await runners.open([spec], workspace["state"])
    folder = runner.publish_dir / "dl"
    good = await asyncio.wait_for(runner.run("dl"), 60)
    assert good.status is RunStatus.SUCCEEDED, good.to_dict()
    manifest = json.loads((folder / "_manifest.json").read_text())
    entry = manifest["tables"]["dl_gold.items"]
    assert entry["schema"] == [
        {"name": "big", "type": "DECIMAL(38,0)"},
        {"name": "nested", "type": "STRUCT(n DECIMAL(38,0))"},
    ]
    if publish_format == "delta":
        table = DeltaTable(folder / "dl_gold.items").to_pyarrow_table()
    else:
        table = pa.concat_tables([pq.read_table(folder / f) for f in entry["files"]])
    assert table.schema.field("big").type == pa.decimal128(38, 0)
    assert sorted(table.column("big").to_pylist()) == [decimal.Decimal(n * (10**37 + 7)) for n in range(3)]
    assert sorted(r["n"] for r in table.column("nested").to_pylist()) == [0, 1, 2]

    size.write_text(f"n\n{10**37 * 6}\n")  # 2 * 6e37 = 1.2e38: 39 digits, more than DECIMAL(38,0) holds
    wide = await asyncio.wait_for(runner.run("dl"), 60)
    assert wide.status is RunStatus.SUCCEEDED_WITH_WARNINGS, wide.to_dict()
    assert wide.error is not None and wide.error.startswith(
        "publish failed: dl_gold.items: column 'big' is HUGEINT, published as DECIMAL(38,0), and 1 of its values"
        " do not fit 38 digits"
    ), wide.error
    assert "CAST it in the step's SQL" in wide.error
    assert json.loads((folder / "_manifest.json").read_text())["run_id"] == good.run_id

    # validate sees the types (not the values): an INTERVAL column is an error of _publish, naming it
    (tmp_path / "gold.sql").write_text(WIDE_SQL.replace("AS nested", "AS nested, INTERVAL 1 DAY AS lag"))
    report = {r.step: r for r in validate_spec(load_pipeline(path))}["_publish"]
    assert report.status == "error" and report.where == spec.at("publish"), report
    assert report.message.startswith("publish: dl_gold.items: column 'lag' is INTERVAL, which "), report.message
