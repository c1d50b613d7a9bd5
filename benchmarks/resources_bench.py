#!/usr/bin/env python3
"""What the ``resources`` command costs a daemon with a fleet: its latency with and without the programs, the
latency of ``status`` beside it, and the supervision loop's largest lag over a minute idle and over a minute
with ``resources`` asked every 1.1 s (what ``top`` asks; the dashboard asks every 5 s). Prints one JSON object.

    .venv/bin/python benchmarks/resources_bench.py --programs 1000          # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/resources_bench.py --programs 200 --no-lag  # latencies only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from foss_supervisor.base.resources import control_socket_path
from foss_supervisor.control.client import call


def timed_ms(sock: Path, cmd: str, **args: Any) -> float:
    started = time.perf_counter()
    call(sock, cmd, timeout_s=60.0, **args)
    return (time.perf_counter() - started) * 1000


def max_lag_ms(sock: Path, every_s: float | None) -> float:
    """The loop's largest lag over the next minute, while asking ``resources`` every ``every_s`` (None: idle)."""
    until = time.monotonic() + 62.0
    while time.monotonic() < until:
        if every_s is not None:
            call(sock, "resources", timeout_s=60.0)
        time.sleep(every_s or 1.0)
    return float(call(sock, "status", timeout_s=60.0)["daemon"]["loop"]["max_lag_s"]) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--no-lag", action="store_true", help="skip the two minutes of loop-lag measurement")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="resources-bench-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    programs = "".join(f"  p{i}: {{command: [sleep, '100000'], start_timeout: 0.1}}\n" for i in range(args.programs))
    config = tmp / "config.yaml"
    config.write_text(f"state_dir: {tmp}/state\ndashboard: {{port: {port}}}\nprograms:\n{programs}")
    argv = [sys.executable, "-m", "foss_supervisor", "start", "--foreground", "--config", str(config)]
    with (tmp / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    sock = control_socket_path(tmp / "state")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                status = call(sock, "status", timeout_s=30.0)
                if sum(p["state"] == "RUNNING" for p in status["programs"]) == args.programs:
                    break
            except Exception:  # not up yet
                pass
            time.sleep(0.5)
        else:
            raise SystemExit(f"the programs did not all run; see {tmp / 'daemon.log'}")
        full = []
        for _ in range(8):
            full.append(timed_ms(sock, "resources"))
            time.sleep(1.1)  # past the one-second window: each call measures afresh
        light = [timed_ms(sock, "resources", programs=False) for _ in range(5)]
        status_ms = [timed_ms(sock, "status") for _ in range(5)]
        out: dict[str, Any] = {
            "programs": args.programs,
            "resources_ms": {"median": round(statistics.median(full), 1), "max": round(max(full), 1)},
            "resources_without_programs_ms": round(statistics.median(light), 1),
            "status_ms": round(statistics.median(status_ms), 1),
        }
        if not args.no_lag:
            out["loop_max_lag_ms"] = {"idle": round(max_lag_ms(sock, None), 1)}
            out["loop_max_lag_ms"]["resources_every_1.1s"] = round(max_lag_ms(sock, 1.1), 1)
        print(json.dumps(out))
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
