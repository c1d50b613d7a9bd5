"""Column lineage (foss_supervisor.pipeline.worker.columns): the shipped pipelines' columns, read by hand from
configs/pipelines/, are what the worker's reader derives; what it cannot derive it says, never guesses.

The SQL is read as the worker reads it (``scan_scripts``: DuckDB's splitter, sqlglot, no database), in this
process; the types a warehouse gives: tests/process/pipeline/test_column_lineage_warehouse.py; through a real
worker it is tests/e2e/test_impact_daemon.py.
"""

from __future__ import annotations

import functools
from typing import Any

from helpers import REPO, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.worker.lineage import scan_scripts

E = "silver.orders_enriched"
T = "trips_silver.trips"
RAW = "trips_bronze.trips_raw"
#: silver.orders' columns (deduplicate keeps silver.orders_valid's, validate copies work.orders_parsed's)
ORDERS = [
    "order_id",
    "customer_id",
    "order_ts",
    "product_id",
    "quantity",
    "unit_price",
    "currency",
    "country",
    "status",
    "updated_at",
    "rate_to_usd",
    "amount_usd",
    "_row_id",
    "_batch_id",
    "_source_file",
    "_source_line",
    "product_key",
    "_raw_line",
    "_parse_error",
]

#: step -> written table -> column -> the warehouse columns it comes from (in written order), read by hand
EXPECTED_WRITES: dict[str, dict[str, dict[str, set[str]]]] = {
    "orders/aggregate": {
        "gold.daily_revenue": {
            "day": {f"{E}.order_ts"},
            "country": {f"{E}.country"},
            "orders": set(),  # count(*): no column
            "revenue_usd": {f"{E}.amount_usd"},
        },
        "gold.product_sales": {  # INSERT without names: by position onto the declared columns
            "product_id": {f"{E}.product_id"},
            "category": {f"{E}.category"},
            "units": {f"{E}.quantity"},
            "revenue_usd": {f"{E}.amount_usd"},
        },
        "gold.customer_ltv": {
            "customer_id": {f"{E}.customer_id"},
            "orders": set(),
            "revenue_usd": {f"{E}.amount_usd"},
            "first_order_ts": {f"{E}.order_ts"},
            "last_order_ts": {f"{E}.order_ts"},
        },
    },
    "orders/enrich": {
        E: {c: {f"silver.orders.{c}"} for c in ORDERS if c not in ("product_key", "_raw_line", "_parse_error")}
        | {"product_name": {"ref.products.name"}, "category": {"ref.products.category"}}
        | {"country_name": {"ref.countries.name"}},
    },
    "orders/deduplicate": {
        "silver.orders": {c: {f"silver.orders_valid.{c}"} for c in ORDERS},
        "silver.orders_superseded": {c: {f"silver.orders_valid.{c}", f"silver.orders.{c}"} for c in ORDERS}
        | {"was": set(), "superseded_by": {"silver.orders_valid._row_id", "silver.orders._row_id"}},
    },
    "orders/validate": {  # compiled from its quality block: every parsed column, split by the rules
        "silver.orders_valid": {c: {f"work.orders_parsed.{c}"} for c in ORDERS},
        "silver.orders_rejected": {c: {f"work.orders_parsed.{c}"} for c in ORDERS}
        | {"reasons": set(), "_raw_values": set()},  # to_json of a whole bronze row: not derived (see below)
    },
    "orders/quarantine": {  # the rejected rows' bronze text, with their reasons
        "silver.orders_quarantine": {c: {f"bronze.orders_raw.{c}"} for c in ["_row_id", "_source_file", "_source_line"]}
        | {"reasons": {"silver.orders_rejected.reasons"}}
        | {c: {f"bronze.orders_raw.{c}"} for c in ["_raw_line", "_parse_error", *ORDERS[:10]]}
        | {"quarantined_run": set()},  # getvariable('run_id')
    },
    "orders/reference": {  # from the reference files (read_csv): no warehouse column
        "ref.products": {"product_id": set(), "product_key": set(), "name": set(), "category": set()},
        "ref.countries": {"country_code": set(), "name": set()},
        "ref.fx_rates": {"currency": set(), "rate_to_usd": set()},
    },
    "trips/clean": {
        "trips_silver.trips_rejected": {
            "_row_id": {f"{RAW}._row_id"},
            "trip_id": {f"{RAW}.trip_id"},
            "reasons": {
                f"{RAW}.{c}" for c in ["_parse_error", "trip_id", "pickup_at", "dropoff_at", "distance_km", "fare"]
            }
            | {f"{RAW}.payment_type"},  # the zone rule reads the zones file: no warehouse column
        },
        T: {  # through the temporary tables _checked and _winners, back to bronze
            "trip_id": {f"{RAW}.trip_id"},
            "pickup_at": {f"{RAW}.pickup_at"},
            "dropoff_at": {f"{RAW}.dropoff_at"},
            "pickup_zone": {f"{RAW}.pickup_zone"},
            "zone_name": set(),  # from the zones file
            "distance_km": {f"{RAW}.distance_km"},
            "fare": {f"{RAW}.fare"},
            "payment_type": {f"{RAW}.payment_type"},
            "_row_id": {f"{RAW}._row_id"},
        },
    },
    "trips/daily": {
        "trips_gold.daily_zone": {
            "day": {f"{T}.pickup_at"},
            "pickup_zone": {f"{T}.pickup_zone"},
            "zone_name": {f"{T}.zone_name"},
            "trips": set(),
            "fare": {f"{T}.fare"},
            "distance_km": {f"{T}.distance_km"},
        }
    },
}
#: step -> table it reads -> the columns it reads there (in any clause)
EXPECTED_READS: dict[str, dict[str, set[str]]] = {
    "orders/aggregate": {
        E: set(["order_ts", "country", "amount_usd", "status", "product_id", "category", "quantity", "customer_id"])
    },
    "orders/enrich": {
        "silver.orders": {c for c in ORDERS if c not in ("product_key", "_raw_line", "_parse_error")},
        "ref.products": {"name", "category", "product_id"},
        "ref.countries": {"name", "country_code"},
    },
    "trips/daily": {T: {"pickup_at", "pickup_zone", "zone_name", "fare", "distance_km"}},
}
#: types a reader of the SQL can be sure of: declared by the target table, or a CAST
EXPECTED_TYPES = {
    ("orders/aggregate", "gold.daily_revenue", "day"): "DATE",
    ("orders/aggregate", "gold.daily_revenue", "revenue_usd"): "DECIMAL(18,2)",
    ("orders/aggregate", "gold.customer_ltv", "first_order_ts"): "TIMESTAMP WITH TIME ZONE",
    ("trips/daily", "trips_gold.daily_zone", "fare"): "DECIMAL(18,2)",
    ("trips/daily", "trips_gold.daily_zone", "trips"): None,  # count(*): not derived here
    ("trips/clean", T, "distance_km"): "DECIMAL(10,3)",
}


@functools.cache
def shipped() -> dict[str, Any]:
    specs = {n: load_pipeline(REPO / "configs" / "pipelines" / f"{n}.yaml") for n in ("orders", "trips")}
    scripts = {f"setup:{n}": s.setup_sql for n, s in specs.items() if s.setup_sql}
    scripts |= {f"step:{n}/{st.name}": st.sql for n, s in specs.items() for st in s.steps if st.sql}
    return {k.removeprefix("step:"): v["columns"] for k, v in scan_scripts(scripts)["scripts"].items()}


def test_each_written_column_comes_from_the_columns_the_files_say() -> None:
    found = shipped()
    for step, tables in EXPECTED_WRITES.items():
        if step.startswith("setup:"):
            continue
        writes = found[step]["writes"]
        assert set(writes) == set(tables), step
        for table, columns in tables.items():
            got = {c["name"]: set(c["from"]) for c in writes[table]["columns"]}
            assert got == columns, (step, table)
            assert [c["name"] for c in writes[table]["columns"]] == list(columns), (step, table)  # in order


def test_the_parsing_view_and_the_rejected_rows_are_traced_as_far_as_they_can_be() -> None:
    view = {c["name"]: set(c["from"]) for c in shipped()["setup:orders"]["writes"]["work.orders_parsed"]["columns"]}
    raw = "bronze.orders_raw"
    assert view["amount_usd"] == {f"{raw}.quantity", f"{raw}.unit_price", "ref.fx_rates.rate_to_usd"}
    assert view["product_id"] == {"ref.products.product_id"} and view["product_key"] == {f"{raw}.product_id"}
    assert view["order_ts"] == {f"{raw}.order_ts"} and list(view) == ORDERS
    rejected = shipped()["orders/validate"]["writes"]["silver.orders_rejected"]
    assert rejected["unknown"]  # its last INSERT's q.* beside COLUMNS(lambda ...): not expanded
    raw_values = next(c for c in rejected["columns"] if c["name"] == "_raw_values")
    assert raw_values["unknown"] and raw_values["type"] == "JSON"  # declared by the ALTER; its source not derived


def test_each_step_reads_the_columns_the_files_say() -> None:
    found = shipped()
    for step, tables in EXPECTED_READS.items():
        reads = {t: set(r["columns"]) for t, r in found[step]["reads"].items() if t not in found[step]["writes"]}
        assert reads == tables, step


def test_types_are_given_only_where_declared_or_cast() -> None:
    found = shipped()
    for (step, table, column), expected in EXPECTED_TYPES.items():
        col = next(c for c in found[step]["writes"][table]["columns"] if c["name"] == column)
        assert col["type"] == expected, (step, table, column)


def test_the_shipped_sql_is_read_whole() -> None:
    found = shipped()
    assert all(not v["unknown"] for v in found.values()), {k: v["unknown"] for k, v in found.items() if v["unknown"]}
    assert "orders/report" not in found and "trips/ingest" not in found  # Python: nothing to read


def test_what_cannot_be_derived_is_marked_unknown_not_guessed() -> None:
    scripts = {
        "step:p/star": "CREATE TABLE p_s.copy AS SELECT *, 1 AS one FROM elsewhere.unknown;",
        "step:p/fn": "CREATE TABLE p_s.mixed AS SELECT a.x + b.y AS z, count(*) FROM p_s.copy a, elsewhere.other b;",
        "step:p/into": "INSERT INTO elsewhere.other SELECT 1 AS y, 2 AS w;",  # by position: which is which?
        "step:p/bad": "CREATE TABLE p_s.t AS SELECT 1 AS a; SELECT 1 +;",
    }
    found = {k: v.get("columns") for k, v in scan_scripts(scripts)["scripts"].items()}
    star = found["step:p/star"]
    assert star is not None
    assert "not known" in star["writes"]["p_s.copy"]["unknown"]  # the * of a table whose columns are unknown
    assert [c["name"] for c in star["writes"]["p_s.copy"]["columns"]] == ["one"]
    assert "not known" in star["reads"]["elsewhere.unknown"]["unknown"]
    mixed = found["step:p/fn"]
    assert mixed is not None
    z = mixed["writes"]["p_s.mixed"]["columns"][0]
    assert z["name"] == "z" and "elsewhere.other.y" in z["from"] and "p_s.copy.x" in z["from"]
    assert [c["name"] for c in mixed["writes"]["p_s.mixed"]["columns"]] == ["z"]  # count(*) is DuckDB's to name
    assert "without a name" in mixed["writes"]["p_s.mixed"]["unknown"]
    into = found["step:p/into"]
    assert into is not None and into["writes"]["elsewhere.other"]["columns"] == []
    assert "by position" in into["writes"]["elsewhere.other"]["unknown"]
    assert found["step:p/bad"] is None  # DuckDB cannot split it: the table lineage's error says why


@functools.cache
def _statements() -> list[str]:
    """The shipped pipelines' statements, read once (every example samples from the same list)."""
    specs = [load_pipeline(REPO / "configs" / "pipelines" / f"{n}.yaml") for n in ("orders", "trips")]
    texts = [t for s in specs for t in (s.setup_sql, *(st.sql for st in s.steps)) if t]
    return [part.strip() + ";" for t in texts for part in t.split(";\n") if part.strip()]


@settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_any_mangled_statement_is_read_or_marked_unknown_and_never_loses_the_others(data: st.DataObject) -> None:
    """The shipped statements with a slice cut out or a fragment pasted in: the reader answers every script,
    in its shape, and the intact script beside it keeps its columns."""
    text = data.draw(st.sampled_from(_statements()))
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    paste = data.draw(st.sampled_from(["", "*", "(", ")", ",", " AS ", " FROM x.y ", "SELECT ", "'", "--", "\x00"]))
    mangled = text[:start] + paste + text[end:]
    intact = "CREATE OR REPLACE TABLE z_s.t AS SELECT a.k, a.v AS w FROM z_s.src a;"
    found = scan_scripts({"step:p/mangled": mangled, "step:p/intact": intact})["scripts"]
    for script in found.values():
        assert set(script) >= {"statements", "error"}
        if "columns" in script:
            assert set(script["columns"]) == {"writes", "reads", "unknown"}
            assert all(isinstance(u, str) for u in script["columns"]["unknown"])
    columns = found["step:p/intact"]["columns"]["writes"]["z_s.t"]["columns"]
    assert [(c["name"], c["from"]) for c in columns] == [("k", ["z_s.src.k"]), ("w", ["z_s.src.v"])]


def test_a_delete_or_update_reads_the_columns_it_uses() -> None:
    """A step that deletes by a column, or updates one, breaks when that column goes: it is a reader of it."""
    script = """CREATE TABLE s.t (k INT, a INT, b INT, c INT); CREATE TABLE s.o (k INT, d INT);
    CREATE TEMP TABLE _w AS SELECT k AS a FROM s.o;
    DELETE FROM s.t WHERE a IN (SELECT a FROM _w) AND b > 1;
    UPDATE s.t SET c = o.d + 1 FROM s.o AS o WHERE t.k = o.k;"""
    reads = scan_scripts({"step:p/s": script})["scripts"]["step:p/s"]["columns"]["reads"]
    assert {t: set(r["columns"]) for t, r in reads.items()} == {"s.t": {"a", "b", "c", "k"}, "s.o": {"k", "d"}}
