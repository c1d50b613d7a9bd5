"""The cost of one evaluation of objectives and alerts (what the daemon's AlertWatch does per tick).

N programs, each with ``uptime: 99.5%``, ``feeds:`` one table and 100 restarts in its window; N tables with
``fresh_within: 1h``; then half of the programs stopped for two hours (late and violated). Times the first
evaluation (which opens the incidents and writes ``alerts.json``) and the median of the next ones.

    .venv/bin/python benchmarks/objectives_bench.py [--programs 250] [--repeat 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from foss_supervisor.alerting.alertwatch import AlertWatch
from foss_supervisor.alerting.objectives import Objectives, RunningLedger
from foss_supervisor.base.processstates import ProcessState as S
from foss_supervisor.config import parse_config
from foss_supervisor.core.events import EventBus, StateChanged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    n = args.programs
    tmp = Path(tempfile.mkdtemp())
    progs = "".join(f"  p{i}: {{command: [x], feeds: [bronze.t{i}], uptime: 99.5%}}\n" for i in range(n))
    tables = "".join(f"  bronze.t{i}: {{fresh_within: 1h}}\n" for i in range(n))
    cfg = parse_config(f"state_dir: {tmp}\nprograms:\n{progs}tables:\n{tables}", tmp / "c.yaml", {})
    now = [1e9]

    def clock() -> float:
        return now[0]

    ledger = RunningLedger(clock)
    objectives = Objectives(lambda: cfg, clock, ledger)
    watch = AlertWatch(lambda: cfg, objectives, EventBus(), clock, asyncio.sleep, state_dir=tmp)
    for i in range(n):
        for _ in range(100):
            for old, new in ((S.STOPPED, S.STARTING), (S.STARTING, S.RUNNING), (S.RUNNING, S.BACKOFF)):
                ledger.observe(StateChanged(name=f"p{i}", old=old, new=new))
                now[0] += 1
        ledger.observe(StateChanged(name=f"p{i}", old=S.BACKOFF, new=S.STARTING if i % 2 else S.STOPPED))
        if i % 2:
            ledger.observe(StateChanged(name=f"p{i}", old=S.STARTING, new=S.RUNNING))
    now[0] += 7200
    began = time.perf_counter()
    notices = watch.tick()
    first_ms = (time.perf_counter() - began) * 1000
    times = []
    for _ in range(args.repeat):
        now[0] += 1
        began = time.perf_counter()
        watch.tick()
        times.append((time.perf_counter() - began) * 1000)
    size = (tmp / "alerts.json").stat().st_size
    print(
        f"programs={n} tables={n}: first evaluation {first_ms:.1f} ms ({len(notices)} notices, alerts.json {size:,} B),"
        f" then median {statistics.median(times):.1f} ms"
    )


if __name__ == "__main__":
    main()
