"""Golden test of the second shipped example, ``trips`` (YAML and SQL only, Parquet input), run beside
``orders`` in one warehouse; the expected gold table is computed here in plain Python."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from golden_data import FILES_BATCH1, write_files
from helpers.pipeline import RunnerFactory, orders_spec

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.spec import FolderOverrides, default_pipelines_dir, load_pipeline

TRIPS_YAML = default_pipelines_dir() / "trips.yaml"
COLUMNS = ["trip_id", "pickup_at", "dropoff_at", "pickup_zone", "distance_km", "fare", "payment_type"]

BATCH1 = [
    ["T1", "2024-05-01 08:00:00+00", "2024-05-01 08:20:00+00", "Z01", "12.5", "30.10", "card"],
    ["T2", "2024-05-01 09:00:00+00", "2024-05-01 09:10:00+00", "z02", "2.0", "8.00", "CASH"],
    ["T3", "2024-05-01 23:50:00+00", "2024-05-02 00:10:00+00", "Z02", "4.25", "12.40", "card"],
    ["T4", "2024-05-02 10:00:00+00", "2024-05-02 09:00:00+00", "Z03", "1.0", "5.00", "card"],  # ends before it starts
    ["T5", "2024-05-02 10:00:00+00", "2024-05-02 10:05:00+00", "Z99", "1.0", "5.00", "card"],  # unknown zone
    ["", "2024-05-02 10:00:00+00", "2024-05-02 10:05:00+00", "Z01", "1.0", "5.00", "card"],  # no id
    ["T6", "2024-05-02 11:00:00+00", "2024-05-02 11:30:00+00", "Z03", "-3", "20.00", "bitcoin"],  # two reasons
    ["T1", "2024-05-01 08:00:00+00", "2024-05-01 08:25:00+00", "Z01", "13.0", "31.00", "card"],  # corrects T1
]
BATCH2 = [
    ["T2", "2024-05-01 09:00:00+00", "2024-05-01 09:12:00+00", "Z02", "2.5", "9.50", "card"],  # corrects T2
    ["T7", "2024-05-02 12:00:00+00", "2024-05-02 12:40:00+00", "Z04", "20", "55.55", "cash"],
]


def write_parquet(path: Path, rows: list[list[str]]) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({', '.join(f'{c} VARCHAR' for c in COLUMNS)})")
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' for _ in COLUMNS)})", rows)
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    con.close()


def expected_gold(batches: list[list[list[str]]], zones_csv: Path) -> list[list[str]]:
    """The rules of clean.sql and daily.sql, in Python: later rows of a trip id win."""
    with zones_csv.open() as f:
        zones = {r["zone"].strip().upper(): r["name"].strip() for r in csv.DictReader(f)}
    trips: dict[str, dict[str, Any]] = {}
    for rows in batches:
        for r in rows:
            d = dict(zip(COLUMNS, r, strict=True))
            start = dt.datetime.fromisoformat(d["pickup_at"])
            end = dt.datetime.fromisoformat(d["dropoff_at"])
            zone = d["pickup_zone"].strip().upper()
            ok = (
                d["trip_id"].strip()
                and end >= start
                and zone in zones
                and Decimal(d["distance_km"]) >= 0
                and Decimal(d["fare"]) >= 0
                and d["payment_type"].strip().lower() in ("card", "cash")
            )
            if ok:
                trips[d["trip_id"].strip()] = {
                    "day": start.astimezone(dt.UTC).date(),
                    "zone": zone,
                    "fare": Decimal(d["fare"]),
                    "km": Decimal(d["distance_km"]),
                }
    out: dict[tuple[Any, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for t in trips.values():
        acc = out[(t["day"], t["zone"])]
        acc[0] += 1
        acc[1] += t["fare"]
        acc[2] += t["km"]
    return sorted(
        [str(day), zone, zones[zone], str(n), f"{fare:.2f}", f"{km:.3f}"] for (day, zone), (n, fare, km) in out.items()
    )


async def gold(runner: Any) -> list[list[str]]:
    res = await runner.client.query(
        "SELECT CAST(day AS VARCHAR), pickup_zone, zone_name, CAST(trips AS VARCHAR), CAST(fare AS VARCHAR),"
        " CAST(distance_km AS VARCHAR) FROM trips_gold.daily_zone ORDER BY ALL"
    )
    return sorted([list(r) for r in res.rows])


async def test_trips_beside_orders_exact_and_incremental(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    ws = workspace
    landing = tmp_path / "trips_landing"
    landing.mkdir()
    trips = load_pipeline(
        TRIPS_YAML, folders=FolderOverrides(landing=landing, warehouse=ws["db"], reports=ws["reports"])
    )
    runner = await runners.open([orders_spec(ws), trips], ws["state"])
    write_files(ws["landing"], FILES_BATCH1)

    empty = await asyncio.wait_for(runner.run("trips"), 60)  # nothing landed yet: succeeds, zero rows
    assert empty.status is RunStatus.SUCCEEDED, empty.to_dict()
    assert empty.step("daily").rows_out == 0

    write_parquet(landing / "trips-1.parquet", BATCH1)
    rec = await asyncio.wait_for(runner.run("trips"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    clean = rec.step("clean").metrics
    assert (clean["rows_in"], clean["valid"], clean["rejected"]) == (8, 4, 4)
    zones = default_pipelines_dir() / "trips" / "reference" / "zones.csv"
    assert await gold(runner) == expected_gold([BATCH1], zones)

    orders = await asyncio.wait_for(runner.run("orders"), 60)
    assert orders.status is RunStatus.SUCCEEDED and orders.step("ingest").rows_out == 35

    write_parquet(landing / "trips-2.parquet", BATCH2)
    shutil.copy(landing / "trips-1.parquet", landing / "copy-of-1.parquet")  # same content: not ingested again
    rec2 = await asyncio.wait_for(runner.run("trips"), 60)
    assert rec2.status is RunStatus.SUCCEEDED and rec2.step("ingest").rows_out == len(BATCH2)
    assert await gold(runner) == expected_gold([BATCH1, BATCH2], zones)
    rejected = await runner.client.query("SELECT trip_id, reasons FROM trips_silver.trips_rejected ORDER BY _row_id")
    assert [list(r) for r in rejected.rows] == [
        ["T4", ["invalid_dropoff_at"]],
        ["T5", ["unknown_zone"]],
        [None, ["missing_trip_id"]],
        ["T6", ["invalid_distance", "invalid_payment_type"]],
    ]
    assert (await runner.client.query("SELECT count(*) FROM bronze.orders_raw")).rows[0][0] == 35  # orders untouched

    # gold is published as Parquet after each good run, readable while the worker holds the warehouse
    published = ws["db"].parent / "published" / "trips"
    manifest = json.loads((published / "_manifest.json").read_text())
    assert manifest["run_id"] == rec2.run_id and list(manifest["tables"]) == ["trips_gold.daily_zone"]
    con = duckdb.connect()
    rows = con.execute(
        "SELECT CAST(day AS VARCHAR), pickup_zone, zone_name, CAST(trips AS VARCHAR), CAST(fare AS VARCHAR),"
        f" CAST(distance_km AS VARCHAR) FROM '{published / 'current' / 'trips_gold.daily_zone' / '*.parquet'}'"
    ).fetchall()
    con.close()
    assert sorted(list(r) for r in rows) == expected_gold([BATCH1, BATCH2], zones)
