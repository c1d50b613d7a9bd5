#!/usr/bin/env python3
"""Load on the dashboard while programs are supervised and a pipeline runs (issue 9's benchmark).

Starts a real daemon (``--programs`` supervised children and the orders pipeline on demo data, rerun
every few seconds), then drives ``--clients`` concurrent keep-alive connections at ``/api/v1/health``
and at ``/`` (as a browser asks for it), each for ``--seconds``, with ``wrk`` (C, one thread: the
other core stays for the daemon; a Python client would measure itself). While each load runs, it
kills supervised children with SIGKILL and times crash -> restart exactly as bench_supervisors does (the
child stamps CLOCK_MONOTONIC as its first act), each followed by a bare spawn of the same child by this
script: the floor under the same load, since on 2 busy cores the child itself waits for a CPU. The same
is measured idle first. For each phase, the CPU (% of one core) and RSS of each of the daemon's processes,
named: ``daemon`` (supervision, the control socket), ``dashboard`` (the web app, a process of its own
since issue 15) and ``pipeline_worker`` (DuckDB). Prints one JSON object; the README's table comes from it.

    apt-get install wrk        # once
    .venv/bin/python benchmarks/web_load.py --clients 100 --seconds 20 --programs 50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the supervisors package beside this script

from supervisors.common import free_port
from supervisors.install import CHILD_SOURCE
from supervisors.observe import EventLog, kill_and_time

from foss_supervisor.control.client import call

# wrk counts answers by status code with this script (a 503 is an answer too: /health says 503 while a
# program is not as wanted)
STATUS_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("codes")) do io.write(string.format("status %d %d\\n", code, n)) end
  end
end
"""
PAGE_HEADERS = {"Accept": "text/html", "Accept-Encoding": "gzip, deflate"}  # what a browser sends for /


def child_argv(tmp: Path) -> list[str]:
    """The supervised child's command line but its name: it stamps its start into ``tmp/events``."""
    return [sys.executable, "-I", "-S", str(tmp / "child.py"), str(tmp / "events")]


def start_daemon(tmp: Path, port: int, programs: int) -> tuple[subprocess.Popen[bytes], EventLog]:
    """A foreground daemon with ``programs`` children (:func:`child_argv`) and the orders pipeline."""
    (tmp / "child.py").write_text(CHILD_SOURCE)
    events = tmp / "events"
    lines = [
        f"state_dir: {tmp / 'state'}",
        f"dashboard: {{port: {port}}}",
        "warehouse: {watch_interval: 0.5s}",
        "pipelines:",
        "  orders: {every: 5s, demo_data: true}",
        "programs:",
    ]
    for i in range(programs):
        argv = [*child_argv(tmp), f"p{i:02d}"]
        lines.append(f"  p{i:02d}: {{command: {json.dumps(argv)}, start_timeout: 0.1}}")
    (tmp / "config.yaml").write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "foss_supervisor", "start", "--foreground", "--config", str(tmp / "config.yaml")]
    log = (tmp / "daemon.stderr").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    sock = tmp / "state" / "control.sock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if call(sock, "ping", timeout_s=2)["phase"] == "ready":
                watch = EventLog(events)
                watch.wait_names([f"p{i:02d}" for i in range(programs)], 60)
                return proc, watch
        except Exception:  # not up yet: the socket is missing or the daemon still starting
            pass
        time.sleep(0.2)
    raise RuntimeError("daemon not ready: " + (tmp / "daemon.stderr").read_text()[-2000:])


def spawn_ms(watch: EventLog, child: list[str], n: int) -> float:
    """The floor: ms from Popen of the same child, by this script, to its start line."""
    name = f"bare-{n}"
    t0 = time.monotonic_ns()
    proc = subprocess.Popen([*child, name], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        line = watch.wait_line(lambda ln: ln.name == name, 30, f"start of {name}")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return (line.t_ns - t0) / 1e6


def restarts_ms(watch: EventLog, names: list[str], child: list[str], until: float | None = None) -> dict[str, Any]:
    """Crash -> restart (ms) of each of ``names`` once, each followed by a bare spawn of the same child (the
    floor under the same load: the child needs the CPU too); spread evenly until ``until`` if given.

    Each program is killed once only: a second crash soon after is a crash loop, which the restart policy
    answers with a backoff delay (and /health with 503), and that is policy, not latency.
    """
    restarts: list[float] = []
    spawns: list[float] = []
    for i, name in enumerate(names):
        if until is not None:  # pace the kills over the load's duration
            time.sleep(max(0.0, (until - time.monotonic()) / (len(names) - i + 1)))
        restarts.append(kill_and_time(watch, name, tick_s=0.1))
        spawns.append(spawn_ms(watch, child, len(watch.lines)))
    med_r, med_s = statistics.median(restarts), statistics.median(spawns)
    return {
        "restart_ms_median": round(med_r, 1),
        "restart_ms_p90": round(statistics.quantiles(restarts, n=10)[8], 1),
        "restart_ms_max": round(max(restarts), 1),
        "bare_spawn_ms_median": round(med_s, 1),
        "restart_over_spawn": round(med_r / med_s, 2),
        "restarts": len(restarts),
    }


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), answers by status, non-2xx answers and socket errors (in all, and by
    wrk's kinds: ``connect``, ``read`` (the connection ended before the answer), ``write``, ``timeout``) from
    ``wrk --latency`` run with :data:`STATUS_LUA`."""
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m is None:
            raise RuntimeError(f"no {pct}% latency in wrk's output:\n{text}")
        return round(float(m.group(1)) * unit[m.group(2)], 2)

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    codes = {m.group(1): int(m.group(2)) for m in re.finditer(r"^status (\d+) (\d+)$", text, re.M)}
    kinds = dict(zip(("connect", "read", "write", "timeout"), map(int, errs.groups()), strict=True)) if errs else {}
    return {
        "rps": round(float(rps.group(1))),
        "requests": int(total.group(1)),
        "p50_ms": ms("50"),
        "p90_ms": ms("90"),
        "p99_ms": ms("99"),
        "by_status": codes,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(kinds.values()),
        "socket_errors_by_kind": kinds,
    }


class Usage:
    """CPU (% of one core) and RSS (MB) of the daemon, the dashboard process and the pipeline worker, each
    named, over a phase: the dashboard is a process of its own (``@dashboard``), so its load shows apart from
    the daemon's, which supervises."""

    def __init__(self, sock: Path, daemon_pid: int) -> None:
        status = call(sock, "status")
        dash = next(s for s in status["services"] if s["name"] == "@dashboard")
        worker = (status.get("pipelines") or {}).get("worker") or {}
        pids = {"daemon": daemon_pid, "dashboard": dash["pid"], "pipeline_worker": worker.get("pid")}
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self._spawns = dash["spawns"]
        self._sock = sock
        self._t0 = time.monotonic()
        self._cpu0 = {name: self._cpu(proc) for name, proc in self._procs.items()}

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    def done(self) -> dict[str, Any]:
        """``{name: {cpu_pct, rss_mb}}`` since this was made, and ``dashboard_restarts`` meanwhile."""
        took = time.monotonic() - self._t0
        figures: dict[str, Any] = {}
        for name, proc in self._procs.items():
            try:
                cpu, rss = self._cpu(proc) - self._cpu0[name], proc.memory_info().rss
            except psutil.Error:  # exited meanwhile (a restarted dashboard or worker): said below
                continue
            figures[name] = {"cpu_pct": round(100 * cpu / took, 1), "rss_mb": round(rss / 2**20, 1)}
        dash = next(s for s in call(self._sock, "status")["services"] if s["name"] == "@dashboard")
        figures["dashboard_restarts"] = dash["spawns"] - self._spawns
        return figures


def load(
    url: str,
    clients: int,
    seconds: float,
    watch: EventLog,
    names: list[str],
    child: list[str],
    script: Path,
    usage: Usage,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """wrk on ``url`` for ``seconds`` while children of ``names`` are killed and timed; ``usage`` is read at
    its end."""
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "--timeout", "5s", "-s", str(script)]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    started = time.monotonic()
    wrk = subprocess.Popen([*argv, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(min(1.0, seconds / 5))  # let the load settle before the first kill
        restarts = restarts_ms(watch, names, child, until=started + seconds)
        out, _ = wrk.communicate(timeout=seconds + 30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    return {**parse_wrk(out), **restarts, "processes": usage.done()}


def page_bytes(url: str, headers: dict[str, str]) -> dict[str, int]:
    """Bytes of ``url`` on the wire (as a browser asks: gzip accepted) and uncompressed."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
        wire = resp.read()
        encoding = resp.headers.get("Content-Encoding", "")
    if encoding == "gzip":
        import gzip

        return {"wire": len(wire), "uncompressed": len(gzip.decompress(wire))}
    return {"wire": len(wire), "uncompressed": len(wire)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--programs", type=int, default=50)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("web_load.py needs wrk on PATH (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as d:
        tmp, port = Path(d), free_port()
        proc, watch = start_daemon(tmp, port, args.programs)
        sock = tmp / "state" / "control.sock"
        names = [f"p{i:02d}" for i in range(args.programs)]
        try:
            base = f"http://127.0.0.1:{port}"
            # every read needs a token: the owner's for the page, none for the probe (its summary)
            page = {**PAGE_HEADERS, "Authorization": "Bearer " + (tmp / "state" / "api-token").read_text().strip()}
            child = child_argv(tmp)
            third = len(names) // 3  # each program is killed once: a third idle, a third under each load
            usage = Usage(sock, proc.pid)
            idle = {**restarts_ms(watch, names[:third], child), "processes": usage.done()}
            script = tmp / "status.lua"
            script.write_text(STATUS_LUA)
            health = load(
                base + "/api/v1/health",
                args.clients,
                args.seconds,
                watch,
                names[third : 2 * third],
                child,
                script,
                Usage(sock, proc.pid),
            )
            overview = load(
                base + "/",
                args.clients,
                args.seconds,
                watch,
                names[2 * third :],
                child,
                script,
                Usage(sock, proc.pid),
                page,
            )
            runs = call(sock, "pipeline_runs", name="orders", limit=500)
            print(
                json.dumps(
                    {
                        "clients": args.clients,
                        "programs": args.programs,
                        "cpus": os.cpu_count(),
                        "seconds": args.seconds,
                        "idle": idle,
                        "health": health,
                        "overview": overview,
                        "overview_bytes": page_bytes(base + "/", page),
                        "pipeline_runs_during": len(runs),
                    },
                    indent=2,
                )
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            watch.close()


if __name__ == "__main__":
    main()
