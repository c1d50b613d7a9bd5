"""Benchmark: a backfill of N daily partitions (``sales``, tests/helpers/partitions.py) with 3 failing days,
then ``only_failed`` once they are fixed, through a real PipelineRunner and its DuckDB worker.

    .venv/bin/python benchmarks/backfill_bench.py [--days 30] [--rows 1000] [--workdir DIR]

Prints the time of the full backfill (per partition run too) and of the ``only_failed`` one, and the silver rows
against the files' rows (equal: no partition counted twice).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import structlog  # noqa: E402
from helpers.partitions import sales_yaml, write_day  # noqa: E402

from foss_supervisor.pipeline.engine.backfill import BackfillProgress, choose_partitions, run_partitions  # noqa: E402
from foss_supervisor.pipeline.engine.runner import PipelineRunner  # noqa: E402
from foss_supervisor.pipeline.engine.spec import load_pipeline  # noqa: E402


def _land(landing: Path, days: int, rows: int, bad: set[int]) -> None:
    for i in range(days):
        path = write_day(landing, i, bad=i in bad)
        if rows > 0:  # more rows than the test's few: repeat the data lines (same day, same amounts)
            lines = path.read_text().splitlines()
            body = (lines[1:] * (rows // max(1, len(lines) - 1) + 1))[:rows]
            if i in bad:
                body[-1] = lines[-1]
            path.write_text("\n".join([lines[0], *body]) + "\n")


async def main(days: int, rows: int, work: Path) -> None:
    landing, home = work / "landing", work / "home"
    landing.mkdir(parents=True)
    home.mkdir()
    bad = {days // 7, days // 2, days - 2}
    _land(landing, days, rows, bad)
    spec = load_pipeline(sales_yaml(home, landing, home, work / "wh.duckdb"))
    async with PipelineRunner([spec], state_dir=work / "state") as runner:
        chosen = choose_partitions(spec, [], "", "", only_failed=False)
        t0 = time.perf_counter()
        first = BackfillProgress("sales", chosen, time.time())
        await run_partitions(runner, first)
        full = time.perf_counter() - t0
        failed = sorted(v for v, s in first.done.items() if s == "failed")
        _land(landing, days, rows, set())
        t0 = time.perf_counter()
        failed_now = choose_partitions(spec, runner.runs("sales", 1000), "", "", only_failed=True)
        again = BackfillProgress("sales", failed_now, time.time())
        await run_partitions(runner, again)
        only = time.perf_counter() - t0
        counts = await runner.client.query("SELECT count(*), count(DISTINCT day) FROM sales_silver.sales", max_rows=1)
    print(f"{days} partitions x {rows} rows, {len(failed)} failing")
    print(f"full backfill: {full:.2f} s ({full / days * 1000:.0f} ms per partition run), failed {failed}")
    print(f"only_failed:   {only:.2f} s for {len(again.partitions)} partitions, all {set(again.done.values())}")
    print(f"silver rows {counts.rows[0][0]} over {counts.rows[0][1]} days (expected {days * rows} over {days})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--workdir", type=Path)
    a = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(a.days, a.rows, a.workdir or Path(tmp)))
