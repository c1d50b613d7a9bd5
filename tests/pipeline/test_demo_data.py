"""The demo generator is reproducible and feeds the pipeline every kind of bad row and re-send."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline_helpers import RunnerFactory, orders_spec

from foss_supervisor.pipeline.callables import load_callable
from foss_supervisor.pipeline.spec import default_pipelines_dir
from foss_supervisor.pipeline.states import RunStatus

#: the orders pipeline's generator, from its folder (as the daemon loads it)
generate = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:generate")
write_reference = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:write_reference")

#: the workspace and runners fixtures (not in a conftest.py: see pipeline_fixtures)
pytest_plugins = ("pipeline_fixtures",)

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


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", orders=3000, seed=7, files=3)
    b = generate(tmp_path / "b", orders=3000, seed=7, files=3)
    assert [p.name for p in a.files] == [p.name for p in b.files]
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(a.files, b.files, strict=True))
    c = generate(tmp_path / "c", orders=3000, seed=8, files=3)
    assert a.files[0].read_bytes() != c.files[0].read_bytes()
    assert not list((tmp_path / "a").glob(".*"))  # no temporary files left behind


def test_shipped_reference_matches_generator(tmp_path: Path) -> None:
    write_reference(tmp_path)
    shipped = Path(__file__).resolve().parents[2] / "configs" / "reference"
    for name in ("products.csv", "countries.csv", "fx_rates.csv"):
        assert (tmp_path / name).read_text() == (shipped / name).read_text()


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
