"""Delta Lake takes dates and timestamps only within the years 1 to 9999: the publish gate counts the others
before anything is written (publishtypes.check_fit) instead of deltalake failing midway in its own words
(the hostile tester's DATE 'infinity' made it panic). Parquet keeps them exactly: never refused there."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.worker.publish import gated_select

TYPES = ["DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMPTZ"]
FAR = ["'infinity'", "'-infinity'", "'10000-01-01'", "'5881580-07-10'", "'0001-01-01 (BC)'"]
NEAR = ["'0001-01-01'", "'9999-12-31'", "'1970-01-01'", "NULL"]
CON = duckdb.connect()


@given(st.sampled_from(TYPES), st.lists(st.sampled_from(FAR + NEAR), min_size=1, max_size=6))
def test_delta_refuses_exactly_the_values_outside_its_years_and_parquet_none(kind: str, values: list[str]) -> None:
    rows = " UNION ALL ".join(f"SELECT CAST({v} AS {kind}) AS at" for v in values)
    try:
        CON.execute(f"CREATE OR REPLACE TABLE t AS {rows}")
    except duckdb.Error:
        return  # a value this type cannot hold at all (a TIMESTAMP_S of year 5881580): nothing to publish
    far = sum(v in FAR for v in values)
    gated_select(CON, "s.t", "t", "parquet")
    if not far:
        gated_select(CON, "s.t", "t", "delta")
        return
    with pytest.raises(QueryRefusedError, match=rf"column 'at' is .*, and {far} of its values are infinite"):
        gated_select(CON, "s.t", "t", "delta")


#: ways a column holds its dates: (SQL of the column from a row's list ``v`` of values, what it is)
SHAPES = [
    ("{v}", "a list"),
    ("{v}[1]", "the value alone"),
    ("{{'a': {v}[1], 'b': 1}}", "a struct"),
    ("[{{'inner': {v}}}]", "a list of structs of lists"),
    ("{{'x': {{'y': {v}}}}}", "structs nested"),
    ("CAST({v} AS {kind}[4])", "an array"),
    ("MAP {{1: {v}}}", "a map's value"),
    ("MAP {{{v}[1]: 'k'}}", "a map's key"),
]


@given(
    st.sampled_from(TYPES),
    st.sampled_from(SHAPES),
    st.lists(st.lists(st.sampled_from(FAR + NEAR), min_size=4, max_size=4), min_size=1, max_size=5),
)
def test_delta_refuses_a_far_date_at_any_depth_and_counts_the_rows_holding_one(
    kind: str, shape: tuple[str, str], rows: list[list[str]]
) -> None:
    """The hostile tester's DATE 'infinity' inside a STRUCT or a LIST reached deltalake and failed the publish in
    its words: the gate now follows every member of a nested column."""
    template, _ = shape
    if "MAP" in template and kind in ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS"):
        return  # deltalake cannot write a naive timestamp in a map: refused by type before any value is read
    selects = []
    for values in rows:
        as_list = "[" + ", ".join(f"CAST({v} AS {kind})" for v in values) + "]"
        selects.append(f"SELECT {template.format(v=as_list, kind=kind)} AS at")
    try:
        CON.execute(f"CREATE OR REPLACE TABLE t AS {' UNION ALL '.join(selects)}")
    except duckdb.Error:
        return  # a value this type cannot hold, or a map key that is NULL or repeated: nothing to publish
    used = [values if template.count("{v}[1]") == 0 else values[:1] for values in rows]
    far = sum(any(v in FAR for v in values) for values in used)
    gated_select(CON, "s.t", "t", "parquet")
    if not far:
        gated_select(CON, "s.t", "t", "delta")
        return
    told = rf"column 'at' is .*, and {far} of its values (are|hold a date or timestamp that is) infinite"
    with pytest.raises(QueryRefusedError, match=told):
        gated_select(CON, "s.t", "t", "delta")
