"""Declared quality rules (``kind: quality``): every rule, one reason per failed rule, incremental, located errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_helpers import RunnerFactory

from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.spec import load_pipeline
from foss_supervisor.pipeline.states import RunStatus
from foss_supervisor.pipeline.validate import validate_spec

pytest_plugins = ("pipeline_fixtures",)

RULES: dict[str, Any] = {
    "source": "q_bronze.raw",
    "valid": "q_silver.ok",
    "rejected": "q_silver.bad_rejected",
    "columns": {
        "id": ["not_null", "unique"],
        "kind": [{"accepted_values": ["a", "b"]}],
        "amount": [{"accepted_range": {"min_value": 0, "max_value": 100}}],
        "code": [{"pattern": "^[A-Z]{2}$"}],
        "zone": [{"relationships": {"to": "q_ref.zones", "field": "zone"}}],
    },
    "tests": [{"name": "amount_below_limit", "expression": "try_cast(amount AS DOUBLE) <= try_cast(lim AS DOUBLE)"}],
}
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


def pipeline(tmp_path: Path, ws: dict[str, Path], rules: dict[str, Any]) -> Path:
    (ws["reference"] / "zones.csv").write_text("zone\nZ1\nZ2\n")
    (tmp_path / "setup.sql").write_text(
        "CREATE SCHEMA IF NOT EXISTS q_ref; CREATE SCHEMA IF NOT EXISTS q_silver;\n"
        "CREATE OR REPLACE TABLE q_ref.zones AS SELECT * FROM read_csv(getvariable('reference_dir') || '/zones.csv');"
    )
    doc = {
        "name": "q",
        "folders": {"landing": str(ws["landing"]), "reference": str(ws["reference"]), "warehouse": str(ws["db"])},
        "schemas": ["q_meta", "q_ref", "q_bronze", "q_silver"],
        "setup": "setup.sql",
        "steps": [
            {"name": "discover", "kind": "python", "callable": "foss_supervisor.pipeline.ledger:discover"},
            {
                "name": "ingest",
                "kind": "python",
                "callable": "foss_supervisor.pipeline.orders_steps:ingest",
                "depends_on": ["discover"],
                "params": {"table": "q_bronze.raw", "columns": ["id", "kind", "amount", "code", "zone", "lim"]},
            },
            {"name": "check", "kind": "quality", "depends_on": ["ingest"], "params": rules},
        ],
        "checks": ["check.rows_in == check.valid + check.rejected"],
    }
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "q.yaml"


async def test_every_rule_gives_its_reason_and_runs_incrementally(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    spec = load_pipeline(pipeline(tmp_path, ws, RULES))
    assert [r for r in validate_spec(spec) if r.status != "ok"] == []
    runner = await runners.open([spec], ws["state"])
    (ws["landing"] / "b1.csv").write_text(BATCH1)
    rec = await asyncio.wait_for(runner.run("q"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    m = rec.step("check").metrics
    assert (m["rows_in"], m["valid"], m["rejected"]) == (12, 2, 10)
    rows = (await runner.query("SELECT id, reasons FROM q_silver.bad_rejected ORDER BY _row_id")).rows
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
        ["10", ["kind:accepted_values", "amount:accepted_range", "code:pattern", "zone:relationships",
                "amount_below_limit"]],
    ]  # fmt: skip
    assert sorted(r[0] for r in (await runner.query("SELECT id FROM q_silver.ok")).rows) == ["1", "2"]

    (ws["landing"] / "b2.csv").write_text(BATCH2)  # id 1 is already valid: unique fails; only new rows checked
    rec = await asyncio.wait_for(runner.run("q"), 60)
    assert (rec.step("check").metrics["rows_in"], rec.step("check").metrics["rejected"]) == (2, 1)
    assert sorted(r[0] for r in (await runner.query("SELECT id FROM q_silver.ok")).rows) == ["1", "11", "2"]


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"columns": {"id": ["not_nul"]}}, "steps.check.params.columns.id", "rules are not_null"),
        ({"columns": {"id": [{"accepted_values": []}]}}, "steps.check.params.columns.id", "non-empty list"),
        ({"columns": {"id": [{"pattern": "(["}]}}, "steps.check.params.columns.id", "not a regular expression"),
        ({"valid": "ok"}, "steps.check.params.valid", "schema.table"),
        ({"tests": [{"name": "t", "expression": "1; DROP TABLE x"}]}, "steps.check.params.tests[0].expression", "';'"),
    ],
)
def test_rule_errors_name_the_key_and_line(
    tmp_path: Path, workspace: dict[str, Path], change: dict[str, Any], key: str, reason: str
) -> None:
    path = pipeline(tmp_path, workspace, {**RULES, **change})
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path)
    assert info.value.key == key and reason in info.value.reason and info.value.line is not None, info.value
