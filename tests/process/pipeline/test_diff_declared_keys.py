"""A step's declared ``keys`` (tablekeys.py) in a real worker: the snapshot records the key and whether it
repeats, and ``pipeline diff`` (and the rollback preview) pairs rows by it: changed counted per key. A key that
repeats in the data, or names a column the table lacks, makes the diff compare that table as whole rows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml
from helpers.pipeline import RunnerFactory

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.spec import load_pipeline

STEP_SQL = """
CREATE OR REPLACE TABLE k.items AS
SELECT CAST(id AS INTEGER) AS id, name, CAST(price AS DECIMAL(10, 2)) AS price
FROM read_csv(getvariable('reference_dir') || '/items.csv', header = true, all_varchar = true);
CREATE OR REPLACE TABLE k.sizes AS SELECT name, count(*) AS n FROM k.items GROUP BY name;
CREATE OR REPLACE TABLE k.copies AS SELECT id, price FROM k.items UNION ALL SELECT id, price FROM k.items WHERE id = 1;
SELECT count(*) AS rows_in, count(*) AS rows_out FROM k.items;
"""


def keyed_pipeline(tmp_path: Path) -> Path:
    """Pipeline ``kp``: step ``build`` makes ``k.items`` (keyed by id) from ``reference/items.csv``, ``k.sizes``
    (keyed by a column it lacks) and ``k.copies`` (keyed by id, which repeats there)."""
    (tmp_path / "reference").mkdir()
    (tmp_path / "setup.sql").write_text("CREATE SCHEMA IF NOT EXISTS k;\n")
    (tmp_path / "build.sql").write_text(STEP_SQL)
    doc = {
        "name": "kp",
        "folders": {"landing": "land", "reference": "reference", "warehouse": "w.duckdb"},
        "schemas": ["k"],
        "setup": "setup.sql",
        "steps": [
            {
                "name": "build",
                "sql": "build.sql",
                "keys": {"k.items": ["id"], "k.sizes": ["size"], "k.copies": ["id"]},
            }
        ],
    }
    (tmp_path / "kp.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "kp.yaml"


def items(tmp_path: Path, rows: list[tuple[int, str, str]]) -> None:
    lines = ["id,name,price", *(f"{i},{n},{p}" for i, n, p in rows)]
    (tmp_path / "reference" / "items.csv").write_text("\n".join(lines) + "\n")


async def run(runner: Any) -> str:
    record = await asyncio.wait_for(runner.run("kp"), 120)
    assert record.status is RunStatus.SUCCEEDED, record.to_dict()
    return str(record.run_id)


async def test_diff_pairs_rows_by_the_declared_key_and_falls_back_to_whole_rows_when_it_cannot(
    tmp_path: Path, runners: RunnerFactory
) -> None:
    spec = load_pipeline(keyed_pipeline(tmp_path))
    runner = await runners.open([spec], tmp_path / "state")
    first = [(i, f"n{i % 3}", f"{i}.50") for i in range(1, 21)]
    items(tmp_path, first)
    r1 = await run(runner)
    # ids 2, 3 and 4 change (a name, a price, both), 5 and 6 leave, 21 to 23 come
    second = [r for r in first if r[0] not in (5, 6)] + [(i, "new", "1.00") for i in (21, 22, 23)]
    second = [
        (i, "renamed", p) if i == 2 else (i, n, "9.99") if i == 3 else (i, "x", "0.01") if i == 4 else (i, n, p)
        for i, n, p in second
    ]
    items(tmp_path, second)
    r2 = await run(runner)

    manifest = json.loads((runner.snapshot_folder("kp") / r2 / "_manifest.json").read_text())["tables"]
    assert (manifest["k.items"]["key"], manifest["k.items"]["unique_key"]) == (["id"], True)
    assert (manifest["k.copies"]["key"], manifest["k.copies"]["unique_key"]) == (["id"], False)
    assert (manifest["k.sizes"]["key"], manifest["k.sizes"]["unique_key"]) == (["size"], False)  # snapshot kept

    by_table = {t["table"]: t for t in (await runner.diff(r1, r2))["tables"]}
    assert by_table["k.items"]["match"] == {"by": "key", "columns": ["id"]}
    assert (by_table["k.items"]["added"], by_table["k.items"]["removed"], by_table["k.items"]["changed"]) == (3, 2, 3)
    copies = by_table["k.copies"]  # id 1 twice on both sides: rows cannot be paired by id
    assert copies["match"]["by"] == "whole_rows" and copies["match"]["key_repeats"] == ["id"]
    # whole (id, price) rows: 3 new ids and ids 3 and 4 priced anew come, ids 3 to 6 as they were go
    assert (copies["added"], copies["removed"], copies["changed"]) == (5, 4, None)
    assert by_table["k.sizes"]["match"]["by"] == "whole_rows"  # its key names no column of it

    plan = await runner.rollback("kp", r1, apply=False)  # the live tables against run 1: the same pairing
    live = {t["table"]: t for t in plan["changes"]}["k.items"]
    assert live["match"] == {"by": "key", "columns": ["id"]}
    assert (live["added"], live["removed"], live["changed"]) == (2, 3, 3)
