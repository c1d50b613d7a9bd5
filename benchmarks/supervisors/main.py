"""The command line: which workloads and tools, in which order, and where the report goes."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from .common import (
    FULL,
    LARGE_FLEET_SIZE,
    QUICK,
    REPO,
    RESULTS_DIR,
    WORKLOADS,
    BenchError,
    Env,
    Plan,
    Results,
    note,
    raise_nofile,
)
from .fleet import FLEET_TOOLS, bare_fleet, bench_large_fleet
from .install import ensure_bench_venv, make_env
from .report import fmt, machine_info, render
from .tools import TOOLS, Tool
from .workloads import Baselines, bench_cold, bench_crash, bench_idle, bench_stop

__all__ = ["main", "parse_args", "run_workloads"]

USAGE = """\
Benchmark foss-supervisor against supervisord and circus on the same workloads, side by side in one run.

Run it from the repository root with the repo's venv (it needs psutil):
    .venv/bin/python benchmarks/bench_supervisors.py              # full run
    .venv/bin/python benchmarks/bench_supervisors.py --quick      # fewer repetitions
    .venv/bin/python benchmarks/bench_supervisors.py --only fleet --fleet-size 200

supervisord and circus are installed from PyPI into benchmarks/.venv-bench (created by the first run,
reused after), with foss-supervisor from this checkout, all on the CPython that runs foss-supervisor.
The report goes to stdout and benchmarks/results/latest.md (every sample in latest.json); what each
workload measures: benchmarks/README.md.
"""


def guarded(res: Results, what: str, tool: Tool | None, run: Callable[[], None]) -> None:
    """Run one tool's workload; a failure is reported and the benchmark goes on with the others."""
    try:
        run()
    except (BenchError, subprocess.SubprocessError, OSError, psutil.Error) as exc:
        tail = f"; daemon output: {tool.daemon_output_tail()!r}" if tool is not None else ""
        res.say(f"FAILED {what}: {type(exc).__name__}: {exc}{tail}")


def background(res: Results, workload: str) -> None:
    """Record how busy the machine is before a workload: other people's test runs share these 2 cores."""
    busy = psutil.cpu_percent(interval=1.0)  # this script is idle during that second
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    res.say(f"{workload}: machine {busy:.0f} % busy over the second before it (load average {load})")


def run_workloads(env: Env, plan: Plan, only: set[str], tools: Sequence[str], fleet_size: int, res: Results) -> None:
    """Run the workloads in ``only`` for ``tools``, one tool after the other within each workload."""
    # check_delay only changes restart detection and idle cost: circus-fast runs crash and rss only
    plain = [k for k in tools if k != "circus-fast"]
    if "crash" in only:
        background(res, "crash")
        per_slot = max(2, plan.crash_reps // 2)
        with Baselines(env) as baselines:
            for key in tools:
                guarded(res, "baselines", None, partial(baselines.sample, per_slot, res))
                tool = TOOLS[key](env, env.workroot / key / "crash")
                guarded(res, f"crash {key}", tool, partial(bench_crash, tool, plan.crash_reps, res))
            guarded(res, "baselines", None, partial(baselines.sample, per_slot, res))
        note(
            f"baselines: spawn {fmt(res.median('spawn', 'baseline'), 'ms')}, "
            f"floor {fmt(res.median('floor', 'baseline'), 'ms')}"
        )
    if "cold" in only:
        background(res, "cold")
        factories = {key: TOOLS[key] for key in plain}
        guarded(res, "cold", None, partial(bench_cold, factories, env, plan.cold_reps, res))
    if "stop" in only:
        background(res, "stop")
        for key in plain:
            guarded(res, f"stop {key}", None, partial(bench_stop, TOOLS[key], env, key, plan.stop_reps, res))
    idle = only & {"rss", "status"}
    if idle:
        background(res, "/".join(sorted(idle)))
        for key in tools:
            if idle == {"status"} and key == "circus-fast":
                continue
            guarded(res, f"idle {key}", None, partial(bench_idle, TOOLS[key], env, key, plan, idle, res))
    if "fleet" in only:
        # circus-fast is left out: with 1,000 watchers its 0.1 s check_delay is circus' cost at 50 times over
        background(res, f"fleet of {fleet_size}")
        with Baselines(env) as baselines:  # the 1.3x-a-bare-spawn target needs the baseline in this run too
            for rep in range(plan.fleet_reps):
                guarded(res, "bare fleet", None, partial(bare_fleet, env, fleet_size, rep, res))
                for key in plain:
                    guarded(res, "baselines", None, partial(baselines.sample, 1, res))
                    tool = FLEET_TOOLS[key](env, env.workroot / key / f"fleet-{rep}")
                    run = partial(bench_large_fleet, tool, plan, fleet_size, rep, res)
                    guarded(res, f"fleet {key} {rep + 1}", tool, run)
    background(res, "end")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    known = ", ".join(WORKLOADS)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these workloads (repeat, or comma-separate): {known}",
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {', '.join(TOOLS)}")
    parser.add_argument(
        "--fleet-size",
        type=int,
        default=LARGE_FLEET_SIZE,
        help=f"programs in the fleet workload (default {LARGE_FLEET_SIZE})",
    )
    parser.add_argument(
        "--foss-python",
        type=Path,
        default=REPO / ".venv" / "bin" / "python",
        help="the interpreter the bench venv is built from (default: the repo's .venv)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory (configs, logs)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the random pauses and picks")
    args = parser.parse_args(argv)
    args.only = {w.strip() for item in args.only for w in item.split(",") if w.strip()} or set(WORKLOADS)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for name in args.only - set(WORKLOADS):
        parser.error(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    for name in set(args.tools) - set(TOOLS):
        parser.error(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
    if args.fleet_size < 1:
        parser.error("--fleet-size must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every workload was measured for every tool, 1 when one failed."""
    args = parse_args(argv)
    random.seed(args.seed)
    raise_nofile()  # this script holds a pidfd per program while it times a stop
    plan = QUICK if args.quick else FULL
    foss_python = args.foss_python.absolute()
    if not foss_python.exists():
        sys.exit(f"{foss_python} does not exist: create the repo's venv first (see README.md)")
    bench_bin = ensure_bench_venv(foss_python)
    workroot = Path(tempfile.mkdtemp(prefix="bench-supervisors-"))
    env = make_env(bench_bin, workroot)
    res = Results()
    started = time.monotonic()
    try:
        info = machine_info(env)
        for k, v in info.items():
            note(f"{k}: {v}")
        run_workloads(env, plan, args.only, args.tools, args.fleet_size, res)
    finally:
        if args.keep:
            note(f"work directory kept: {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    report = render(res, info, plan, time.monotonic() - started, args.tools, args.fleet_size)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(report)
    dump: dict[str, Any] = {
        "machine": info,
        "plan": str(plan),
        "fleet_size": args.fleet_size,
        "samples": res.samples,
        "notes": res.notes,
    }
    (RESULTS_DIR / "latest.json").write_text(json.dumps(dump, indent=1) + "\n")
    print(report)
    note(f"written to {RESULTS_DIR / 'latest.md'}")
    return 1 if any(n.startswith("FAILED") for n in res.notes) else 0
