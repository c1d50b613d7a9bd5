#!/usr/bin/env python3
"""What keeping history costs the daemon (issue 19): CPU and RSS with the journal and the resource samples on
(the default) against ``history: {enabled: false}``, with a fleet that keeps restarting.

Each round starts one daemon per setting, in alternating order (so a drift of the machine's background load
meets both alike), with ``--programs`` programs that fail on a fixed schedule: each at its own phase of a
period of ``--programs / --restarts`` seconds (and at least 1 s after it started), so the fleet restarts
``--restarts`` programs a second, steadily. Once every program has started, the daemon's own CPU time (user
+ system, its process only: not its children, not the dashboard process) is measured over ``--window``
seconds, with its RSS at the end and the bytes the journal grew by. Prints one JSON object; a Markdown
table with ``--markdown``.

    .venv/bin/python benchmarks/history_cost.py                      # 1,000 programs, 10 restarts/s: ~6 min
    .venv/bin/python benchmarks/history_cost.py --programs 100 --restarts 1 --window 20 --rounds 1
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

import psutil

from foss_supervisor.base.poll import poll_until
from foss_supervisor.base.resources import control_socket_path
from foss_supervisor.control.client import call

# a program that fails at each time congruent to its phase modulo the period (at least 1 s after it started):
# with the phases spread over the period, the fleet restarts programs / period of them a second, steadily
CHILD = (
    "import sys, time\n"
    "period, phase = float(sys.argv[1]), float(sys.argv[2])\n"
    "wait = (phase - time.time()) % period\n"
    "time.sleep(wait if wait >= 1.0 else wait + period)\n"
    "sys.exit(1)\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(state: Path, programs: int, restarts_per_s: float, history: bool) -> str:
    period = programs / restarts_per_s

    def argv(i: int) -> str:
        return json.dumps([sys.executable, "-I", "-S", "-c", CHILD, f"{period:g}", f"{i * period / programs:.3f}"])

    lines = [
        f"state_dir: {state}",
        f"dashboard: {{port: {free_port()}}}",
        f"history: {{enabled: {'true' if history else 'false'}}}",
        "programs:",
    ]
    lines += [
        f"  p{i:04d}: {{command: {argv(i)}, start_timeout: 0.5s, autorestart: always, backoff: {{initial: 0.1s}}}}"
        for i in range(programs)
    ]
    return "\n".join(lines) + "\n"


def spawns(sock: Path) -> int:
    """Children the daemon has started so far, all programs together."""
    return sum(int(p["spawns"]) for p in call(sock, "status", timeout_s=60.0)["programs"])


def journal_bytes(state: Path) -> int:
    return sum(f.stat().st_size for f in (state / "history").glob("events-*.jsonl"))


def one(work: Path, programs: int, restarts_per_s: float, window_s: float, history: bool) -> dict[str, Any]:
    """One daemon with history on or off: its CPU over the window, RSS at its end, the restarts in it."""
    work.mkdir(parents=True)
    config = work / "config.yaml"
    config.write_text(config_text(work / "state", programs, restarts_per_s, history))
    argv = [sys.executable, "-m", "foss_supervisor", "start", "--foreground", "--config", str(config)]
    with (work / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    sock = control_socket_path(work / "state")
    try:

        def all_started() -> bool:
            try:
                states = [p["state"] for p in call(sock, "status", timeout_s=60.0)["programs"]]
            except Exception:  # not answering yet
                return False
            return len(states) == programs and all(s in ("RUNNING", "STARTING", "BACKOFF") for s in states)

        poll_until(all_started, 600.0, 0.5)
        proc = psutil.Process(daemon.pid)
        before_spawns, before_journal, before_cpu = spawns(sock), journal_bytes(work / "state"), proc.cpu_times()
        started = time.monotonic()
        time.sleep(window_s)  # the measurement window itself: the daemon runs its fleet meanwhile
        after_cpu, took = proc.cpu_times(), time.monotonic() - started
        after_spawns, rss = spawns(sock), proc.memory_info().rss
        cpu_s = (after_cpu.user - before_cpu.user) + (after_cpu.system - before_cpu.system)
        return {
            "history": history,
            "cpu_percent_of_a_core": round(100.0 * cpu_s / took, 2),
            "rss_mib": round(rss / 2**20, 1),
            "restarts_per_s": round((after_spawns - before_spawns) / took, 2),
            "journal_bytes_per_s": round((journal_bytes(work / "state") - before_journal) / took, 1),
        }
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--restarts", type=float, default=10.0, help="restarts per second across the fleet")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per daemon")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (on, off), order alternating")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.programs < 1 or args.restarts <= 0 or args.window <= 0 or args.rounds < 1:
        parser.error("--programs, --restarts, --window and --rounds must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="history-cost-"))
    runs = []
    for r in range(args.rounds):
        for history in (True, False) if r % 2 == 0 else (False, True):
            run = one(tmp / f"{r}-{'on' if history else 'off'}", args.programs, args.restarts, args.window, history)
            print(json.dumps(run), file=sys.stderr, flush=True)
            runs.append(run)

    def median(history: bool, key: str) -> float:
        return float(statistics.median(r[key] for r in runs if r["history"] is history))

    out = {
        "programs": args.programs,
        "target_restarts_per_s": args.restarts,
        "window_s": args.window,
        "runs": runs,
        "cpu_percent_on": median(True, "cpu_percent_of_a_core"),
        "cpu_percent_off": median(False, "cpu_percent_of_a_core"),
        "rss_mib_on": median(True, "rss_mib"),
        "rss_mib_off": median(False, "rss_mib"),
        "journal_bytes_per_s": median(True, "journal_bytes_per_s"),
    }
    out["cpu_cost_points"] = round(out["cpu_percent_on"] - out["cpu_percent_off"], 2)
    out["rss_cost_mib"] = round(out["rss_mib_on"] - out["rss_mib_off"], 1)
    print(json.dumps(out))
    if args.markdown:
        print(
            f"\n| history | daemon CPU (% of a core) | daemon RSS | restarts/s measured |\n|---|---|---|---|\n"
            f"| on (default) | {out['cpu_percent_on']:.2f} | {out['rss_mib_on']:.1f} MiB | "
            f"{median(True, 'restarts_per_s'):.1f} |\n"
            f"| off | {out['cpu_percent_off']:.2f} | {out['rss_mib_off']:.1f} MiB | "
            f"{median(False, 'restarts_per_s'):.1f} |\n"
            f"| cost | {out['cpu_cost_points']:+.2f} points | {out['rss_cost_mib']:+.1f} MiB | |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
