"""The supervision schema at scale: 30 days of journal for 100 programs, copied into DuckDB and queried.

Writes a synthetic journal exactly as the daemon writes it (one ResourcesSampled line a minute holding every
program's tree and the host, exits and restarts of a tenth of the programs every ten minutes, an operator's
command an hour), copies it with the worker's own code (``pipeline/worker/supervision.py``) and times the example
queries of ``docs/history.md`` through the query gate the data browser uses
(``pipeline/worker/query.py``: ``run_query``).

    .venv/bin/python benchmarks/history_bench.py [--days 30] [--programs 100] [--repeat 5]

Prints the journal's size, the copy's time and each query's median; issue 19's target is under 1 s each.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from foss_supervisor.pipeline.worker.query import run_query
from foss_supervisor.pipeline.worker.supervision import SupervisionTables
from foss_supervisor.pipeline.worker.warehouse import open_database

DAY = 86400
QUERIES = {
    "restarts per program per day, last week": (
        "SELECT name, date_trunc('day', ts) AS day, count(*) AS exits FROM supervision.exits"
        " WHERE ts > now() - INTERVAL 7 DAY GROUP BY ALL ORDER BY day, exits DESC"
    ),
    "who stopped p007": (
        "SELECT ts, via, uid, pid, ok FROM supervision.commands"
        " WHERE command = 'stop' AND list_contains(CAST(args->'names' AS VARCHAR[]), 'p007')"
    ),
    "peak memory per program, last 24 h": (
        "SELECT name, max(rss_bytes) / 2^20 AS peak_mib FROM supervision.samples"
        " WHERE kind = 'program' AND ts > now() - INTERVAL 1 DAY GROUP BY name ORDER BY peak_mib DESC"
    ),
    "killed by a signal, not by a stop": (
        "SELECT name, signal, count(*) FROM supervision.exits"
        " WHERE signal IS NOT NULL AND reason NOT LIKE 'stop requested%' GROUP BY ALL"
    ),
    "host memory by hour": (
        "SELECT date_trunc('hour', ts) AS hour, min(memory_available_bytes) / 2^30 AS min_free_gib"
        " FROM supervision.host GROUP BY hour ORDER BY hour"
    ),
}


def write_journal(folder: Path, days: int, programs: int, seed: int) -> tuple[int, int]:
    """The journal of ``days`` days ending now; returns (lines, bytes)."""
    rng = random.Random(seed)
    names = [f"p{i:03d}" for i in range(programs)]
    flaky = names[: max(1, programs // 10)]
    now = time.time()
    start = now - days * DAY
    lines = written = 0
    seq = 0
    for day in range(days):
        t0 = start + day * DAY
        stamp = time.strftime("%Y-%m-%d", time.gmtime(t0 + 1))
        out = []
        for minute in range(24 * 60):
            at = t0 + minute * 60
            seq += 1
            trees = [
                {
                    "name": n,
                    "pid": 1000 + i,
                    "processes": 1,
                    "rss_bytes": rng.randrange(20, 400) << 20,
                    "cpu_percent": round(rng.random() * 50, 1),
                    "fds": rng.randrange(3, 200),
                    "read_bytes_per_s": round(rng.random() * 1e5, 1),
                    "write_bytes_per_s": round(rng.random() * 1e5, 1),
                    "health": rng.choice(("healthy", "unknown")),
                }
                for i, n in enumerate(names)
            ]
            host = {
                "cpu_percent": 12.5,
                "memory_percent": 40.0,
                "memory_available_bytes": rng.randrange(4, 16) << 30,
                "load": [0.5, 0.4, 0.3],
                "disk_percent": 51.0,
                "disk_free_bytes": 200 << 30,
            }
            out.append(
                {
                    "at": at,
                    "type": "ResourcesSampled",
                    "seq": seq,
                    "boot": "b",
                    "programs": trees,
                    "services": [],
                    "daemon": {"pid": 1, "processes": 1, "rss_bytes": 40 << 20, "cpu_percent": 0.1},
                    "worker": None,
                    "host": host,
                }
            )
            if minute % 10 == 0:
                for n in flaky:
                    code = rng.choice([1, 1, 1, -9])
                    for new in ("EXITED", "STARTING"):
                        seq += 1
                        out.append(
                            {
                                "at": at + 0.5,
                                "type": "StateChanged",
                                "seq": seq,
                                "boot": "b",
                                "name": n,
                                "old": "RUNNING" if new == "EXITED" else "EXITED",
                                "new": new,
                                "pid": None,
                                "exit_code": code if new == "EXITED" else None,
                                "reason": "died",
                                "retry_in_s": None,
                            }
                        )
            if minute % 60 == 30:
                seq += 1
                out.append(
                    {
                        "at": at,
                        "type": "CommandCompleted",
                        "seq": seq,
                        "boot": "b",
                        "command": "stop",
                        "ok": True,
                        "error": "",
                        "args": {"names": [rng.choice(names)]},
                        "via": "web",
                        "uid": 1000,
                        "pid": 4242,
                    }
                )
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in out)
        (folder / f"events-{stamp}.jsonl").write_text(text)
        lines += len(out)
        written += len(text)
    return lines, written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--programs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        history, ingest = root / "history", root / "ingest"
        history.mkdir()
        ingest.mkdir()
        t = time.perf_counter()
        lines, size = write_journal(history, args.days, args.programs, args.seed)
        print(
            f"journal: {args.days} days, {args.programs} programs: {lines:,} lines, {size / 2**20:.1f} MiB"
            f" (written in {time.perf_counter() - t:.1f} s)"
        )
        con = open_database(root / "w.duckdb", allow_dirs=[ingest])
        tables = SupervisionTables(con, history, ingest, retention_days=args.days + 1)
        tables.setup()
        t = time.perf_counter()
        copied = 0
        while step := tables.refresh(force=True):
            copied += step
        print(f"copy into DuckDB: {copied / 2**20:.1f} MiB in {time.perf_counter() - t:.1f} s")
        counts = con.execute(
            "SELECT (SELECT count(*) FROM supervision.events), (SELECT count(*) FROM supervision.samples)"
        ).fetchone()
        print(f"rows: {counts[0]:,} events, {counts[1]:,} samples")
        print(f"\n| query (issue 19's examples) | median of {args.repeat} | rows |\n|---|---|---|")
        for label, sql in QUERIES.items():
            times, rows = [], 0
            for _ in range(args.repeat):
                cursor = con.cursor()
                t = time.perf_counter()
                result = run_query(cursor, sql, database="w", max_rows=10_000, timeout_s=30.0)
                times.append(time.perf_counter() - t)
                rows = len(result["rows"])
                cursor.close()
            print(f"| {label} | {statistics.median(times) * 1000:.0f} ms | {rows} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
