"""Load on the dashboard while programs are supervised and a pipeline runs (issue 9's benchmark).

Starts a real daemon (``--programs`` sleepers and the orders pipeline with demo data, rerun every few
seconds), then for ``--seconds`` drives ``--clients`` concurrent keep-alive clients at one path and
reports requests/s and latency percentiles; also the bytes of ``/``, and a program's restart latency
idle and under that load. Prints one JSON object.

    .venv/bin/python benchmarks/web_load.py --clients 100 --seconds 10 --programs 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

import aiohttp

from foss_supervisor.control.client import call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_daemon(tmp: Path, port: int, programs: int) -> subprocess.Popen[bytes]:
    lines = [f"state_dir: {tmp / 'state'}", f"dashboard: {{port: {port}}}", "warehouse: {watch_interval: 0.5s}",
             "pipelines:", "  orders: {every: 5s, demo_data: true}", "programs:"]  # fmt: skip
    sleeper = [sys.executable, "-c", "import time; time.sleep(100000)"]
    lines += [f"  p{i:02d}: {{command: {json.dumps(sleeper)}, start_timeout: 0.1}}" for i in range(programs)]
    (tmp / "config.yaml").write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "foss_supervisor", "start", "--foreground", "--config", str(tmp / "config.yaml")]
    log = (tmp / "daemon.stderr").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    sock = tmp / "state" / "control.sock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if call(sock, "ping", timeout_s=2)["phase"] == "ready":
                return proc
        time.sleep(0.2)
    raise RuntimeError("daemon not ready: " + (tmp / "daemon.stderr").read_text()[-2000:])


async def drive(url: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status >= 500 and resp.status != 503:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.monotonic() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed),
            "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2)}  # fmt: skip


def restart_latency_ms(sock: Path, name: str, times: int = 5) -> float:
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        call(sock, "restart", timeout_s=30, names=[name], wait_s=10.0)
        out.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(out), 1)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--programs", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp, port = Path(d), free_port()
        proc = start_daemon(tmp, port, args.programs)
        sock = tmp / "state" / "control.sock"
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s, s.get(base + "/", headers={"Accept": "text/html"}) as r:
                page_bytes = len(await r.read())
            idle_restart = await asyncio.to_thread(restart_latency_ms, sock, "p00")
            health = asyncio.create_task(drive(base + "/health", args.clients, args.seconds))
            await asyncio.sleep(args.seconds / 3)
            loaded_restart = await asyncio.to_thread(restart_latency_ms, sock, "p01")
            health_result = await health
            overview = await drive(base + "/", min(args.clients, 20), args.seconds / 2)
            runs = call(sock, "pipeline_runs", name="orders", limit=500)
            print(json.dumps({"clients": args.clients, "programs": args.programs, "cpus": os.cpu_count(),
                              "health": health_result, "overview": overview, "overview_bytes": page_bytes,
                              "restart_ms_idle": idle_restart, "restart_ms_under_load": loaded_restart,
                              "pipeline_runs_during": len(runs)}, indent=2))  # fmt: skip
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    asyncio.run(main())
