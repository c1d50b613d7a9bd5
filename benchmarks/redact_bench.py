#!/usr/bin/env python3
"""What the egress redaction (foss_supervisor.base.redact) costs on the largest reply: ``status`` of a fleet.

Builds a status reply of ``--programs`` programs shaped as the command returns it (command line, env
with a URL password and a token, log path, probe detail), with ``--literals`` learned secrets, and
times ``Redactor.data`` on it: the first pass (every string new) and later passes (strings seen before
are remembered), against ``json.dumps`` of the same reply as a yardstick. Prints one JSON object.

    .venv/bin/python benchmarks/redact_bench.py --programs 1000 --literals 50

``--hostile`` times instead one 64 KB line made of a shape's head over and over (``token=token=...``), each
against a plain line of the same size: what a program printing such a line costs every reader of its log.
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


HOSTILE_KB = 64
HEADS = {
    "token=": "token=",
    "authorization: ": "authorization: ",
    "mysql -p ": "mysql -p ",
    "redis-cli -a ": "redis-cli -a ",
    "bearer ": "bearer ",
    "a/b@ (Oracle)": "a/b@",
    "password is ": "password is ",
    "--token ": "--token ",
    "https://u:p@h ": "https://u:p@h ",
    "eyJ (JWT parts)": "eyJhbGciOiJub25lIn0.eyJ ",
    "<password> (markup)": "<password>",
    'key="password" (pair)': 'key="password" ',
    "identified by (SQL)": "user a identified by ",
    "password ' (SQL)": "password '",
    "docker login -p ": "docker login -p ",
    "bearer '": "bearer '",
    "pass%77ord=": "pass%77ord=",
    "user[password]=": "user[password]=",
    "jsessionid=": "jsessionid=",
}


def hostile() -> None:
    """Milliseconds to redact one 64 KB line of each head repeated, and a plain line of the same size."""
    size = HOSTILE_KB * 1024
    lines = {name: (head * (size // len(head) + 1))[:size] for name, head in HEADS.items()}
    lines["plain words"] = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
    out = {}
    for name, line in lines.items():
        took = []
        for _ in range(3):
            t = time.perf_counter()
            Redactor().text(line)  # a fresh redactor: nothing cached
            took.append((time.perf_counter() - t) * 1000)
        out[name] = round(statistics.median(took), 1)
    print(json.dumps({"line_kb": HOSTILE_KB, "median_ms": out}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--literals", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--hostile", action="store_true", help="64 KB lines of repeated heads instead")
    args = parser.parse_args()
    if args.hostile:
        hostile()
        return
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
