"""The dashboard's 7 d chart from the journal: a week of samples for 50 programs, read and answered.

Writes a synthetic journal exactly as the daemon writes it (``history_bench.write_journal``: one
ResourcesSampled line a minute holding every program's tree and the host, plus exits and commands), then
times :meth:`foss_supervisor.web.journalcharts.JournalCharts.chart` as the dashboard process runs it:
the first answer (every file read and rolled up), a later one (nothing new to read), and the rollup's memory.

    .venv/bin/python benchmarks/chart_bench.py [--days 7] [--programs 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from history_bench import write_journal  # the same synthetic journal as the schema's benchmark

from foss_supervisor.web.journalcharts import JournalCharts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--programs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines, size = write_journal(folder, args.days, args.programs, seed=7)
        charts = JournalCharts(folder, budget_s=600.0)
        t0 = time.perf_counter()
        first = charts.chart("7d")
        cold = time.perf_counter() - t0
        tracemalloc.start()  # the rollup's memory, measured on a second reading (tracing slows it)
        JournalCharts(folder, budget_s=600.0).chart("7d")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        warm = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            charts.chart("7d")
            warm.append(time.perf_counter() - t0)
        newest = max(folder.glob("events-*.jsonl"))
        with newest.open("a") as f:  # a minute later: one more sample, the buckets computed anew
            f.write(newest.read_text().splitlines()[-1] + "\n")
        t0 = time.perf_counter()
        charts.chart("7d")
        grown = time.perf_counter() - t0
        t0 = time.perf_counter()
        one = charts.chart("7d", program="p007")
        single = time.perf_counter() - t0
        points = sum(v is not None for v in first["cpu"])
        print(f"journal: {args.days} days, {args.programs} programs, {lines:,} lines, {size / 2**20:.1f} MiB")
        print(f"7 d chart, first answer (reads every file): {cold:.2f} s, rollup peak {peak / 2**20:.1f} MiB traced")
        print(
            f"7 d chart, later answers (nothing new), median of {args.repeat}: {statistics.median(warm) * 1000:.0f} ms"
        )
        print(f"7 d chart of one program: {single * 1000:.0f} ms; {points} host points of 300")
        sizes = len(json.dumps(first)) / 1024, len(json.dumps(one)) / 1024
        print(f"answer size: {sizes[0]:.0f} KiB (all programs), {sizes[1]:.0f} KiB (one)")
        print(f"7 d chart after one more sample (a minute later): {grown * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
