"""Column lineage with a warehouse (foss_supervisor.pipeline.worker.lineage): an in-process DuckDB database gives the
types of what a ``CREATE ... AS`` writes, and is left as it was. The reading without a database is
tests/unit/pipeline/test_column_lineage.py.
"""

from __future__ import annotations

import duckdb
from helpers import REPO

from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.worker.lineage import describer, scan_scripts


def test_the_warehouse_gives_the_types_of_a_create_as_and_is_left_as_it_was() -> None:
    specs = {n: load_pipeline(REPO / "configs" / "pipelines" / f"{n}.yaml") for n in ("orders", "trips")}
    scripts = {f"setup:{n}": s.setup_sql for n, s in specs.items() if s.setup_sql}
    scripts |= {f"step:{n}/{st.name}": st.sql for n, s in specs.items() for st in s.steps if st.sql}
    con = duckdb.connect()
    setup = specs["trips"].setup_sql
    assert setup is not None
    con.execute(setup)  # trips' silver exists, orders' tables do not
    before = con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns").fetchall()
    found = scan_scripts(scripts, con)["scripts"]
    types = {
        c["name"]: c["type"] for c in found["step:trips/daily"]["columns"]["writes"]["trips_gold.daily_zone"]["columns"]
    }
    assert types["trips"] == "BIGINT"  # count(*): bound by DuckDB, not derivable from the text
    assert types["fare"] == "DECIMAL(18,2)" and types["day"] == "DATE"
    enriched = found["step:orders/enrich"]["columns"]["writes"]["silver.orders_enriched"]["columns"]
    assert next(c for c in enriched if c["name"] == "order_id")["type"] is None  # silver.orders not made yet
    assert con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns").fetchall() == before
    describe = describer(con.cursor())
    assert describe("SELECT 1 AS a") == [("a", "INTEGER")]
    assert describe("SELECT 1; DROP TABLE trips_silver.trips") is None  # one statement or nothing
    assert describe("SELECT * FROM nowhere.missing") is None
    assert con.execute("SELECT count(*) FROM trips_silver.trips").fetchone() == (0,)
