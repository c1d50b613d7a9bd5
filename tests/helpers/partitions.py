"""A partitioned pipeline for the backfill tests: ``sales``, one landing file per day (``sales_YYYY-MM-DD.csv``),
the shipped discover and ingest steps, and a silver step that replaces one day's rows by the partition's
value (``getvariable('partition')``) and fails on an amount that is not a number.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from helpers.pipeline import landing_steps

__all__ = ["FIRST_DAY", "SILVER_SQL", "day_rows", "sales_yaml", "write_day"]

FIRST_DAY = dt.date(2026, 1, 1)
SETUP_SQL = """
CREATE SCHEMA IF NOT EXISTS sales_silver;
CREATE TABLE IF NOT EXISTS sales_silver.sales (day DATE, item VARCHAR, amount INTEGER, _source_file VARCHAR);
"""
#: a whole run (partition NULL) rebuilds every day; a partition's run replaces that day's rows only
SILVER_SQL = """
DELETE FROM sales_silver.sales
WHERE getvariable('partition') IS NULL OR day = CAST(getvariable('partition') AS DATE);
INSERT INTO sales_silver.sales
SELECT CAST(day AS DATE), item, CAST(amount AS INTEGER), _source_file FROM sales_bronze.raw
WHERE _parse_error IS NULL AND (getvariable('partition') IS NULL OR day = getvariable('partition'));
SELECT
    (SELECT count(*) FROM sales_bronze.raw
     WHERE getvariable('partition') IS NULL OR day = getvariable('partition')) AS rows_in,
    (SELECT count(*) FROM sales_silver.sales
     WHERE getvariable('partition') IS NULL OR day = CAST(getvariable('partition') AS DATE)) AS rows_out;
"""


def day_rows(i: int) -> int:
    """How many data rows day ``i`` (0-based) holds: 2 to 6, so per-day counts differ."""
    return 2 + i % 5


def write_day(landing: Path, i: int, *, bad: bool = False) -> Path:
    """Land day ``i``'s file; with ``bad`` its last amount is not a number (silver's cast fails)."""
    day = (FIRST_DAY + dt.timedelta(days=i)).isoformat()
    n = day_rows(i)
    lines = ["day,item,amount"] + [f"{day},item{k},{10 + k}" for k in range(n)]
    if bad:
        lines[-1] = f"{day},item{n - 1},oops"
    path = landing / f"sales_{day}.csv"
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def sales_yaml(
    tmp_path: Path,
    landing: Path,
    reference: Path,
    warehouse: Path,
    *,
    extra_steps: list[dict[str, Any]] | None = None,
    **top: Any,
) -> Path:
    """The ``sales`` pipeline's YAML in ``tmp_path`` (partition ``day`` from the file name; ``extra_steps``
    after its own), its path."""
    (tmp_path / "sales_setup.sql").write_text(SETUP_SQL)
    (tmp_path / "sales_silver.sql").write_text(SILVER_SQL)
    doc: dict[str, Any] = {
        "name": "sales",
        "folders": {"landing": str(landing), "reference": str(reference), "warehouse": str(warehouse)},
        "schemas": ["sales_meta", "sales_bronze", "sales_silver"],
        "ledger": "sales_meta",
        "setup": "sales_setup.sql",
        "patterns": ["sales_*.csv"],
        "partition": {"key": "day", "from_file": r"^sales_(?P<day>\d{4}-\d{2}-\d{2})\.csv$", "date_format": "%Y-%m-%d"},
        "snapshot_keep": 0,
        "steps": [
            *landing_steps("sales_bronze.raw", ["day", "item", "amount"]),
            {"name": "silver", "sql": "sales_silver.sql", "depends_on": ["ingest"], "retries": 0},
            *(extra_steps or []),
        ],
        "checks": ["silver.rows_out == ingest.rows_out"],
        **top,
    }
    path = tmp_path / "sales.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path
