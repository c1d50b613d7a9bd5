"""Benchmark: publishing the shipped ``orders`` pipeline's gold tables as Parquet and as Delta Lake (issue 18),
against DuckDB's own ``COPY ... TO`` of the same tables in the same warehouse.

    .venv/bin/python benchmarks/publish_bench.py --orders 1000000 [--repeat 3] [--workdir DIR]

It generates ``--orders`` orders (seeded), runs ``orders`` once, then times, ``--repeat`` times each and
alternating: ``PipelineRunner.publish`` with ``publish_format: parquet`` (the worker's COPY of every gold
table into a partial folder, the manifest and the switch), the same with ``publish_format: delta`` (one
``write_deltalake`` commit per table from DuckDB's Arrow stream, the manifest, the vacuum), and a plain
``export`` of each gold table to Parquet (DuckDB's COPY alone: the floor). Prints one JSON object: the
median seconds of each, the gold rows and bytes, and each publish's speed as a fraction of COPY's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from snapshot_bench import spec_in  # noqa: E402

from foss_supervisor.pipeline.engine.runner import PipelineRunner  # noqa: E402
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir  # noqa: E402
from foss_supervisor.pipeline.worker.callables import load_callable  # noqa: E402

GOLD = ("gold.customer_ltv", "gold.daily_revenue", "gold.product_sales")


async def copy_gold(runner: PipelineRunner) -> int:
    """DuckDB's own COPY of each gold table to a Parquet file (the export folder), removed after; its bytes."""
    written = 0
    for table in GOLD:
        out = await runner.client.export(table, "parquet")
        written += int(out["bytes"])
        Path(out["path"]).unlink()
    return written


async def main(orders: int, repeat: int, work: Path) -> dict[str, Any]:
    generate = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:generate")
    (work / "landing").mkdir(parents=True)
    parquet = spec_in(work)
    delta = dataclasses.replace(parquet, publish_format="delta")
    generate(work / "landing", orders=orders, seed=1, prefix="bench")
    out: dict[str, Any] = {"orders": orders, "repeat": repeat}
    async with PipelineRunner([parquet], state_dir=work / "state") as runner:
        t0 = time.perf_counter()
        rec = await runner.run("orders")
        assert rec.status.value == "succeeded", rec.to_dict()
        out["run_s"] = round(time.perf_counter() - t0, 3)
        times: dict[str, list[float]] = {"parquet": [], "delta": [], "copy": []}
        manifests: dict[str, dict[str, Any]] = {}
        for i in range(repeat):
            for fmt, spec in (("parquet", parquet), ("delta", delta)):
                await runner.replace_pipelines([spec])
                t0 = time.perf_counter()
                manifests[fmt] = await runner.publish("orders", f"bench-{fmt}-{i}")
                times[fmt].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out["copy_bytes"] = await copy_gold(runner)
            times["copy"].append(time.perf_counter() - t0)
        for fmt, seconds in times.items():
            out[f"{fmt}_s"] = round(statistics.median(seconds), 3)
        for fmt, manifest in manifests.items():
            tables = manifest["tables"].values()
            out[f"{fmt}_rows"] = sum(t["rows"] for t in tables)
            out[f"{fmt}_bytes"] = sum(t["bytes"] for t in tables)
            out[f"{fmt}_speed_vs_copy"] = round(out["copy_s"] / out[f"{fmt}_s"], 2)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where to work (default: a temporary folder, removed)")
    args = parser.parse_args()
    if args.workdir:
        print(json.dumps(asyncio.run(main(args.orders, args.repeat, args.workdir)), indent=1))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(main(args.orders, args.repeat, Path(tmp))), indent=1))
