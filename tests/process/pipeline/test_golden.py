"""Golden test: the handmade data set through the real worker, compared with the pure-Python model,
plus hand-checked numbers, idempotent reruns, exactly-once files and quarantine replay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from golden_data import FILES_BATCH1, FILES_BATCH2, model, write_files
from helpers.pipeline import RunnerFactory, dump_tables, orders_spec

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.runner import PipelineRunner


async def gold(runner: PipelineRunner) -> dict[str, list[list[str]]]:
    q = {
        "daily_revenue": "SELECT CAST(day AS VARCHAR), country, CAST(orders AS VARCHAR), CAST(revenue_usd AS VARCHAR)"
        " FROM gold.daily_revenue ORDER BY ALL",
        "product_sales": "SELECT product_id, category, CAST(units AS VARCHAR), CAST(revenue_usd AS VARCHAR)"
        " FROM gold.product_sales ORDER BY ALL",
        "customer_ltv": "SELECT customer_id, CAST(orders AS VARCHAR), CAST(revenue_usd AS VARCHAR),"
        " CAST(first_order_ts AS VARCHAR), CAST(last_order_ts AS VARCHAR)"
        " FROM gold.customer_ltv ORDER BY ALL",
    }
    out = {}
    for name, sql in q.items():
        res = await runner.client.query(sql)
        out[name] = [list(r) for r in res.rows]
    return out


async def run_ok(runner: PipelineRunner, **kw: object) -> None:
    rec = await asyncio.wait_for(runner.run("orders", **kw), 60)  # type: ignore[arg-type]
    assert rec.status in (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED_WITH_WARNINGS), rec.to_dict()
    return None


async def test_golden_two_batches_idempotent_and_replay(workspace: dict[str, Path], runners: RunnerFactory) -> None:

    ws = workspace
    runner = await runners.open([orders_spec(ws)], ws["state"])

    write_files(ws["landing"], FILES_BATCH1)
    rec1 = await asyncio.wait_for(runner.run("orders"), 60)
    assert rec1.status is RunStatus.SUCCEEDED, rec1.to_dict()
    v = rec1.step("validate").metrics
    # hand count: a_orders.csv has 28 data lines (incl. the blank one), b_orders.jsonl 7 lines
    assert rec1.step("ingest").rows_out == 35
    assert (v["rows_in"], v["valid"], v["rejected"]) == (35, 15, 20)
    d = rec1.step("deduplicate").metrics
    # A10 tie inside a_orders (later line wins), A11 older re-send in jsonl, A1 equal-instant tie in jsonl
    assert (d["kept"], d["superseded"]) == (12, 3)

    exp1 = model([FILES_BATCH1], ws["reference"])
    assert (exp1["valid"], len(exp1["rejected"]), exp1["superseded"]) == (15, 20, 3)
    assert await gold(runner) == {k: exp1[k] for k in ("daily_revenue", "product_sales", "customer_ltv")}

    # every rejection reason, per line, as the model sees it
    res = await runner.client.query(
        "SELECT regexp_extract(_source_file, '[^/]+$'), _source_line, reasons"
        " FROM silver.orders_rejected ORDER BY _row_id"
    )
    assert [[r[0], r[1], r[2]] for r in res.rows] == [[n, ln, rs] for n, ln, rs in exp1["rejected"]]
    reasons = {ln: rs for n, ln, rs in exp1["rejected"] if n == "a_orders.csv"}
    assert reasons[21] == ["missing_customer_id", "invalid_order_ts", "invalid_quantity", "invalid_unit_price"]
    assert reasons[22] == ["invalid_order_ts", "invalid_updated_at"]

    # winners of the ties: A10 keeps the later line (quantity 4), A1 the later-ingested JSON version (3)
    res = await runner.client.query(
        "SELECT order_id, quantity FROM silver.orders WHERE order_id IN ('A1', 'A10') ORDER BY 1"
    )
    assert [list(r) for r in res.rows] == [["A1", 3], ["A10", 4]]
    # a known figure by hand: US on 2024-03-02 = 12.00 + 3 x 0.005 = 12.015 -> 12.02 (rounded after summing)
    assert ["2024-03-02", "US", "4", "12.02"] in exp1["daily_revenue"]

    # --- rerun with no new files: nothing changes
    before = await dump_tables(runner)
    await run_ok(runner)
    assert await dump_tables(runner) == before

    # --- second batch: re-sends update through dedup; a renamed copy of a file is not ingested again
    write_files(ws["landing"], FILES_BATCH2)
    rec2 = await asyncio.wait_for(runner.run("orders"), 60)
    assert rec2.status is RunStatus.SUCCEEDED, rec2.to_dict()
    assert rec2.step("discover").metrics["new_files"] == 1
    assert rec2.step("ingest").rows_out == 5
    exp2 = model([FILES_BATCH1, FILES_BATCH2], ws["reference"])
    assert await gold(runner) == {k: exp2[k] for k in ("daily_revenue", "product_sales", "customer_ltv")}
    res = await runner.client.query(
        "SELECT order_id, status, quantity FROM silver.orders WHERE order_id IN ('A2','A3','A4','J2') ORDER BY 1"
    )
    assert [list(r) for r in res.rows] == [
        ["A2", "shipped", 1],
        ["A3", "shipped", 3],
        ["A4", "refunded", 1],
        ["J2", "shipped", 1],
    ]
    totals = await runner.client.query(
        "SELECT (SELECT count(*) FROM bronze.orders_raw), (SELECT count(*) FROM silver.orders_rejected),"
        " (SELECT count(*) FROM silver.orders), (SELECT count(*) FROM silver.orders_superseded WHERE was = 'new')"
    )
    bronze, rejected, silver, _lost = totals.rows[0]
    assert bronze == rejected + exp2["valid"]
    assert silver == len(exp2["silver_orders"])

    # --- report files exist and carry the KPIs
    report = json.loads((ws["reports"] / "orders" / f"{rec2.run_id}.json").read_text())
    assert report["layers"]["silver.orders"] == silver
    assert not [t for t in report["layers"] if t.startswith("meta.")]  # the ledger's bookkeeping is no layer
    assert report["top_rejection_reasons"][0]["rows"] >= 1
    assert (ws["reports"] / "orders" / "latest.html").read_text().startswith("<!doctype html>")

    # --- replay: fix the reference data (add P999), re-validate the quarantine
    with (ws["reference"] / "products.csv").open("a") as f:
        f.write("P999,Late Catalogue Item,Coffee\n")
    rec3 = await asyncio.wait_for(runner.replay("orders"), 60)
    assert rec3.status is RunStatus.SUCCEEDED, rec3.to_dict()
    assert rec3.step("discover").state is StepState.SKIPPED
    assert rec3.step("quarantine").metrics["released"] == 1
    exp3 = model([FILES_BATCH1, FILES_BATCH2], ws["reference"])
    assert len(exp3["rejected"]) == rejected - 1
    assert await gold(runner) == {k: exp3[k] for k in ("daily_revenue", "product_sales", "customer_ltv")}
    res = await runner.client.query("SELECT count(*) FROM silver.orders_rejected")
    assert res.rows[0][0] == rejected - 1

    # history survives a restart of the runner
    await runner.aclose()
    again = await runners.open([orders_spec(ws)], ws["state"])
    ids = [r.run_id for r in again.runs("orders")]
    assert ids[:3] == [rec3.run_id, rec2.run_id, ids[2]] and rec1.run_id in ids
