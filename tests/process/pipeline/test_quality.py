"""Declared quality rules (``kind: quality``): every rule, one reason per failed rule, incremental (located errors:
tests/unit/pipeline/test_quality_rules.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers.pipeline import QUALITY_RULES, RunnerFactory, dedupe_pipeline, quality_pipeline

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.worker.validate import validate_spec

BATCH1 = """id,kind,amount,code,zone,lim
1,a,10,AB,Z1,50
2,b,0,CD,Z2,50
,a,10,AB,Z1,50
3,c,10,AB,Z1,50
4,a,-1,AB,Z1,50
5,a,x,AB,Z1,50
6,a,10,abc,Z1,50
7,a,10,AB,Z9,50
8,a,60,AB,Z1,50
9,a,10,AB,Z1,50
9,b,10,AB,Z1,50
10,z,500,q,Z9,50
"""
BATCH2 = "id,kind,amount,code,zone,lim\n1,a,1,AB,Z1,5\n11,b,1,AB,Z2,5\n"


async def test_every_rule_gives_its_reason_and_runs_incrementally(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    spec = load_pipeline(quality_pipeline(tmp_path, ws, QUALITY_RULES))
    assert [r for r in validate_spec(spec) if r.status != "ok"] == []
    runner = await runners.open([spec], ws["state"])
    (ws["landing"] / "b1.csv").write_text(BATCH1)
    rec = await asyncio.wait_for(runner.run("q"), 60)
    # 2 of 12 kept: below the default threshold (warn under a 50 % pass rate), so the run is not green
    assert rec.status is RunStatus.SUCCEEDED_WITH_WARNINGS, rec.to_dict()
    assert rec.step("check").warnings == (
        "warn threshold of the step (default threshold): pass rate 16.7 % is below min_pass_rate 50 %",
    )
    m = rec.step("check").metrics
    assert (m["rows_in"], m["valid"], m["rejected"]) == (12, 2, 10)
    rows = (await runner.client.query("SELECT id, reasons FROM q_silver.bad_rejected ORDER BY _row_id")).rows
    assert [list(r) for r in rows] == [
        ["", ["id:not_null"]],
        ["3", ["kind:accepted_values"]],
        ["4", ["amount:accepted_range"]],
        ["5", ["amount:accepted_range", "amount_below_limit"]],  # not a number: the test is not true either
        ["6", ["code:pattern"]],
        ["7", ["zone:relationships"]],
        ["8", ["amount_below_limit"]],
        ["9", ["id:unique"]],
        ["9", ["id:unique"]],
        [
            "10",
            [
                "kind:accepted_values",
                "amount:accepted_range",
                "code:pattern",
                "zone:relationships",
                "amount_below_limit",
            ],
        ],
    ]
    assert sorted(r[0] for r in (await runner.client.query("SELECT id FROM q_silver.ok")).rows) == ["1", "2"]

    (ws["landing"] / "b2.csv").write_text(BATCH2)  # id 1 is already valid: unique fails; only new rows checked
    rec = await asyncio.wait_for(runner.run("q"), 60)
    assert (rec.step("check").metrics["rows_in"], rec.step("check").metrics["rejected"]) == (2, 1)
    assert sorted(r[0] for r in (await runner.client.query("SELECT id FROM q_silver.ok")).rows) == ["1", "11", "2"]


async def test_named_rules_unparsed_lines_and_replay_releasing_fixed_rows(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    rules = {
        "source": "q_bronze.raw",
        "valid": "q_silver.ok",
        "rejected": "q_silver.bad_rejected",
        "unparsed": {"column": "_parse_error", "reason": "malformed_line"},
        "columns": {
            "id": [{"not_null": {"name": "missing_id"}}],
            "zone": [
                {"not_null": {"name": "unknown_zone"}},  # missing or not in zones: one reason, once
                {"relationships": {"to": "q_ref.zones", "field": "zone", "name": "unknown_zone"}},
            ],
            "kind": [{"accepted_values": {"values": ["a", "b"], "name": "bad_kind"}}],
        },
    }
    spec = load_pipeline(quality_pipeline(tmp_path, ws, rules, thresholds=[]))  # mostly bad rows on purpose
    runner = await runners.open([spec], ws["state"])
    (ws["landing"] / "b1.csv").write_text(
        'id,kind,amount,code,zone,lim\n1,a,1,AB,Z1,5\n,c,1,AB, ,5\n2,a,1,AB,Z3,5\n"3,a,1,AB,Z1,5\n'
    )
    rec = await asyncio.wait_for(runner.run("q"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    m = rec.step("check").metrics
    assert (m["rows_in"], m["valid"], m["rejected"], m["replayed"], m["released"]) == (4, 1, 3, 0, 0)
    rejected = "SELECT _source_line, reasons FROM q_silver.bad_rejected ORDER BY _row_id"
    assert [list(r) for r in (await runner.client.query(rejected)).rows] == [
        [3, ["missing_id", "unknown_zone", "bad_kind"]],
        [4, ["unknown_zone"]],
        [5, ["malformed_line"]],
    ]

    # the reference data is fixed: a replay checks the rejected rows again and releases the one that passes
    (ws["reference"] / "zones.csv").write_text("zone\nZ1\nZ2\nZ3\n")
    rec = await asyncio.wait_for(runner.replay("q"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    m = rec.step("check").metrics
    assert (m["rows_in"], m["valid"], m["rejected"], m["replayed"], m["released"]) == (3, 1, 2, 3, 1)
    assert [r[0] for r in (await runner.client.query(rejected)).rows] == [3, 5]
    assert sorted(r[0] for r in (await runner.client.query("SELECT id FROM q_silver.ok")).rows) == ["1", "2"]


async def test_deduplicate_keeps_the_latest_row_per_key_across_batches(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    spec = load_pipeline(dedupe_pipeline(tmp_path, ws))
    assert [r for r in validate_spec(spec) if r.status != "ok"] == []
    runner = await runners.open([spec], ws["state"])

    async def table(name: str) -> list[list[str]]:
        return sorted([list(r) for r in (await runner.client.query(f"SELECT id, v FROM d_silver.{name}")).rows])

    (ws["landing"] / "1.csv").write_text(
        "id,grp,ts,v\n1,x,2024-01-01,a\n1,x,2024-01-03,b\n2,x,2024-01-02,c\n3,x,,d\n3,x,2024-01-01,e\n"
    )
    rec = await asyncio.wait_for(runner.run("d"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    m = rec.step("dedupe").metrics
    assert (m["rows_in"], m["kept"], m["replaced"], m["superseded"]) == (5, 3, 0, 2)
    assert await table("current") == [["1", "b"], ["2", "c"], ["3", "e"]]  # a missing ts loses

    (ws["landing"] / "2.csv").write_text("id,grp,ts,v\n1,x,2024-01-02,f\n2,x,2024-01-05,g\n4,x,2024-01-01,h\n")
    rec = await asyncio.wait_for(runner.run("d"), 60)
    m = rec.step("dedupe").metrics
    assert (m["rows_in"], m["kept"], m["replaced"], m["superseded"]) == (3, 2, 1, 2)
    assert await table("current") == [["1", "b"], ["2", "g"], ["3", "e"], ["4", "h"]]
    assert await table("old") == [["1", "a"], ["1", "f"], ["2", "c"], ["3", "d"]]
    lost = await runner.client.query("SELECT v, was, superseded_by FROM d_silver.old ORDER BY v")
    winner = {r[0]: r[1] for r in (await runner.client.query("SELECT v, _row_id FROM d_silver.current")).rows}
    assert [list(r) for r in lost.rows] == [
        ["a", "new", winner["b"]],
        ["c", "current", winner["g"]],
        ["d", "new", winner["e"]],
        ["f", "new", winner["b"]],
    ]

    rec = await asyncio.wait_for(runner.run("d"), 60)  # nothing new: no loser competes again
    assert rec.step("dedupe").metrics["rows_in"] == 0 and rec.step("dedupe").metrics["superseded"] == 0
