"""The demo generator feeds the pipeline every kind of bad row and re-send (its bytes:
tests/unit/pipeline/test_demo_data_bytes.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers.pipeline import RunnerFactory, orders_spec

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir
from foss_supervisor.pipeline.worker.callables import load_callable

#: the orders pipeline's generator, from its folder (as the daemon loads it)
generate = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:generate")


ALL_REASONS = {
    "malformed_line",
    "missing_order_id",
    "missing_customer_id",
    "missing_product_id",
    "unknown_product",
    "invalid_order_ts",
    "invalid_updated_at",
    "invalid_quantity",
    "invalid_unit_price",
    "unknown_currency",
    "unknown_country",
    "invalid_status",
}


async def test_demo_data_through_the_pipeline(workspace: dict[str, Path], runners: RunnerFactory) -> None:
    ws = workspace
    summary = generate(ws["landing"], orders=6000, files=4)
    runner = await runners.open([orders_spec(ws)], ws["state"])
    rec = await asyncio.wait_for(runner.run("orders"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    assert rec.step("ingest").rows_out == summary.lines
    assert rec.step("deduplicate").metrics["superseded"] > 0
    res = await runner.client.query("SELECT DISTINCT unnest(reasons) FROM silver.orders_rejected")
    assert {r[0] for r in res.rows} == ALL_REASONS
    res = await runner.client.query("SELECT count(*) FROM gold.daily_revenue WHERE revenue_usd > 0")
    assert res.rows[0][0] > 100
