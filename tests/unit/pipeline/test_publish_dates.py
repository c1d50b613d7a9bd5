"""Delta Lake takes dates and timestamps only within the years 1 to 9999: the publish gate counts the others
before anything is written (publishtypes.check_fit) instead of deltalake failing midway in its own words
(the hostile tester's DATE 'infinity' made it panic). Parquet keeps them exactly: never refused there."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.workerpublish import gated_select

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
