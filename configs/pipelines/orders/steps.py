"""The orders pipeline's own Python steps (named in ``orders.yaml`` as ``orders/steps.py:report``).

Python for what SQL in the sandboxed worker may not do: the report writes files. Everything else of
``orders`` is SQL beside this file; discover and ingest are the engine's shipped generic steps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from foss_supervisor.pipeline.worker.context import StepContext
from foss_supervisor.pipeline.worker.report import build_report, write_report

__all__ = ["report"]


def report(ctx: StepContext) -> Mapping[str, int | float]:
    """The generic run report (foss_supervisor/pipeline/worker/report.py) plus the orders KPIs (``kpis``: revenue_usd,
    paid_or_shipped_orders, customers, average_order_usd), also kept in meta.run_reports."""
    cur = ctx.cursor
    doc = build_report(ctx)
    revenue, orders, customers = cur.execute(
        "SELECT coalesce(sum(revenue_usd), 0), coalesce(sum(orders), 0), "
        "(SELECT count(*) FROM gold.customer_ltv) FROM gold.daily_revenue"
    ).fetchone()
    doc["kpis"] = {
        "revenue_usd": float(revenue),
        "paid_or_shipped_orders": int(orders),
        "customers": int(customers),
        "average_order_usd": round(float(revenue) / int(orders), 2) if orders else None,
    }
    _, body = write_report(ctx, doc)
    cur.execute(
        "INSERT INTO meta.run_reports VALUES (?, ?, ?, ?)",
        [ctx.run_id, ctx.pipeline, dt.datetime.now(dt.UTC), body],
    )
    return {"rows_in": sum(doc["layers"].values()), "rows_out": 1}
