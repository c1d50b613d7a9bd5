#!/usr/bin/env python3
"""What the egress redaction (foss_supervisor.base.redact) costs on the largest reply: ``status`` of a fleet.

Builds a status reply of ``--programs`` programs shaped as the command returns it (command line, env
with a URL password and a token, log path, probe detail), with ``--literals`` learned secrets, and
times ``Redactor.data`` on it: the first pass (every string new) and later passes (strings seen before
are remembered), against ``json.dumps`` of the same reply as a yardstick. Prints one JSON object.

    .venv/bin/python benchmarks/redact_bench.py --programs 1000 --literals 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from foss_supervisor.base.redact import Redactor


def status_reply(programs: int) -> dict[str, Any]:
    return {
        "daemon": {"pid": 1, "phase": "ready", "problems": [], "warnings": []},
        "programs": [
            {
                "name": f"web-{i}",
                "group": "web",
                "state": "RUNNING",
                "health": "healthy",
                "health_detail": f"GET http://127.0.0.1:{8000 + i}/healthz -> 200",
                "pid": 1000 + i,
                "exit_code": None,
                "completed": False,
                "uptime_s": 123.4 + i,
                "spawns": 1,
                "wanted": "running",
                "reason": "up for 1s",
                "next_attempt_at": None,
                "retry_in_s": None,
                "status_text": "",
                "command": ["/usr/bin/python3", "-m", "app", "--port", str(8000 + i), "--workers", "4"],
                "depends_on": ["db"],
                "dependency_conditions": {"db": "healthy"},
                "log_file": f"/var/log/web-{i}.log",
                "env": {
                    "DATABASE_URL": "postgres://u:pw@db/x",
                    "MODE": "prod",
                    "API_TOKEN": "abc",
                    "PORT": str(8000 + i),
                },
            }
            for i in range(programs)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--literals", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    reply = status_reply(args.programs)
    redactor = Redactor()
    redactor.learn({"secrets": [f"listed-secret-{i:04d}" for i in range(args.literals)]})
    t = time.perf_counter()
    redactor.data(reply)
    first_ms = (time.perf_counter() - t) * 1000
    later, dumps = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        redactor.data(reply)
        later.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        json.dumps(reply)
        dumps.append((time.perf_counter() - t) * 1000)
    print(
        json.dumps(
            {
                "programs": args.programs,
                "literals": args.literals,
                "first_ms": round(first_ms, 1),
                "later_median_ms": round(statistics.median(later), 1),
                "json_dumps_median_ms": round(statistics.median(dumps), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
