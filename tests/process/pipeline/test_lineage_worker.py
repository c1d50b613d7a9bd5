"""The worker's ``lineage`` request (pipeline/worker/lineage.py) through the real worker and its client: the tables
each statement reads and writes, a script DuckDB cannot split answered with its error, and a malformed or
oversized request refused as a bad request while the worker goes on answering."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers.pipeline import RunnerFactory, orders_spec

from foss_supervisor.pipeline.worker.lineage import MAX_SCRIPT_CHARS

SCRIPT = """
CREATE TEMP TABLE _new AS SELECT * FROM silver.orders WHERE id > 3;
DELETE FROM gold.totals;
INSERT INTO gold.totals SELECT o.country, sum(o.amount) FROM _new o JOIN ref.countries c USING (country) GROUP BY 1;
CREATE OR REPLACE VIEW gold.totals_view AS SELECT * FROM gold.totals;
CREATE OR REPLACE MACRO gold.twice(x) AS x * 2;
"""


async def test_the_worker_reads_each_statement_and_refuses_a_bad_request(
    workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    runner = await runners.open([orders_spec(workspace)], workspace["state"])
    scripts = {"step": SCRIPT, "broken": "SELEC 1 FROM (", "typed": "CREATE TABLE gold.n AS SELECT 1 + 1 AS two;"}
    found = await asyncio.wait_for(runner.client.lineage(scripts), 60)
    columns = found["step"].pop("columns")  # column lineage (pipeline/worker/columns.py)
    assert columns["writes"]["gold.totals"] == {
        "columns": [],
        "unknown": "inserted by position into a table whose columns are not known",
    }
    assert columns["reads"]["ref.countries"] == {"columns": ["country"], "unknown": ""}
    assert "not known" in columns["reads"]["silver.orders"]["unknown"]  # SELECT * of a table not declared here
    # the type DuckDB binds for a CREATE ... AS, asked of the worker's warehouse (DESCRIBE, rolled back)
    two = found["typed"]["columns"]["writes"]["gold.n"]["columns"]
    assert two == [{"name": "two", "type": "INTEGER", "from": [], "unknown": ""}]
    assert found["step"] == {
        "statements": [
            {"reads": ["silver.orders"], "writes": [], "object": "table"},  # a temporary table is no write
            {"reads": [], "writes": ["gold.totals"], "object": ""},
            {"reads": ["ref.countries"], "writes": ["gold.totals"], "object": ""},
            {"reads": ["gold.totals"], "writes": ["gold.totals_view"], "object": "view"},
            {"reads": [], "writes": ["gold.twice"], "object": "macro"},
        ],
        "error": "",
    }
    assert found["broken"]["statements"] == [] and "syntax error" in found["broken"]["error"].lower()

    channel = await runner.worker.ensure()
    for bad in (5, ["SELECT 1"], {"a": 1}, {"a": "x" * (MAX_SCRIPT_CHARS + 1)}):
        reply = await asyncio.wait_for(channel.request("lineage", {"scripts": bad}), 60)
        assert reply["ok"] is False and reply["error"]["kind"] == "bad_request", bad
    again = await asyncio.wait_for(runner.client.lineage({"x": "SELECT * FROM gold.daily_revenue"}), 60)
    assert again["x"]["statements"][0]["reads"] == ["gold.daily_revenue"]


@pytest.mark.parametrize("script", ["", "-- only a comment\n"])
async def test_an_empty_script_has_no_statements(
    workspace: dict[str, Path], runners: RunnerFactory, script: str
) -> None:
    runner = await runners.open([orders_spec(workspace)], workspace["state"])
    found = await asyncio.wait_for(runner.client.lineage({"s": script}), 60)
    empty = {"writes": {}, "reads": {}, "unknown": []}
    assert found == {"s": {"statements": [], "error": "", "columns": empty}}
