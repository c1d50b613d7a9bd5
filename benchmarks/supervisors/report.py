"""The Markdown report: machine, medians and ratios per workload, baselines, the issue's targets, notes."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from .common import (
    CIRCUS_DEFAULT_CHECK_DELAY_S,
    CIRCUS_FAST_CHECK_DELAY_S,
    FLEET_SIZE,
    REPO,
    STOP_TIMEOUT_S,
    STUBBORN_COUNT,
    Env,
    Plan,
    Results,
    nofile_target,
)

__all__ = ["BASELINE_ROWS", "COLUMNS", "Row", "fmt", "machine_info", "render", "rows", "targets"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table; ``scale`` turns stored samples into the shown unit."""

    key: str
    label: str
    unit: str
    source: str = ""  # a derived row shows another row's samples
    scale: float = 1.0


def rows(fleet_size: int) -> tuple[Row, ...]:
    """The table's rows, in order; ``fleet_size`` is the large fleet's program count (1,000 by default)."""
    n = f"{fleet_size:,}"
    return (
        Row("crash", "crash → restart: SIGKILL → new child's first line", "ms"),
        Row("crash2", "… same program killed again once RUNNING again (backoff)", "ms"),
        Row("cold", f"cold start of {FLEET_SIZE}: launch → all first lines", "s"),
        Row("cold_first", "… of which launch → first program's line", "s"),
        Row("stop_cli", f"stop {STUBBORN_COUNT} SIGTERM-deaf programs via CLI (1 s timeout)", "s"),
        Row("stop_cli_x", "… ÷ stop timeout", "x", source="stop_cli", scale=1 / STOP_TIMEOUT_S),
        Row("stop_sig", f"stop {STUBBORN_COUNT} SIGTERM-deaf programs: SIGTERM to daemon", "s"),
        Row("stop_sig_x", "… ÷ stop timeout", "x", source="stop_sig", scale=1 / STOP_TIMEOUT_S),
        Row("stop_exit", "… full shutdown: SIGTERM → daemon exited", "s"),
        Row("stop_exit_x", "… ÷ stop timeout", "x", source="stop_exit", scale=1 / STOP_TIMEOUT_S),
        Row("rss_daemon", f"daemon process RSS, {FLEET_SIZE} idle programs (dashboard up)", "MiB"),
        Row("rss", "… all the supervisor's own processes (foss: daemon + dashboard process)", "MiB"),
        Row("cpu", f"idle CPU of its own processes, {FLEET_SIZE} idle programs", "% core"),
        Row("status", f"CLI status wall time, {FLEET_SIZE} programs", "ms"),
        Row("fleet_cold", f"{n} programs: launch → all first lines", "s"),
        Row("fleet_cold_cpu", "… daemon CPU time by then (its own, not its children's)", "s"),
        Row("fleet_running", f"{n} programs: launch → status lists all RUNNING", "s"),
        Row("fleet_lag", "… the daemon's longest loop step by then (its heartbeat's lag)", "ms"),
        Row("fleet_rss_daemon", f"daemon process RSS, {n} idle programs (dashboard up)", "MiB"),
        Row("fleet_rss", "… all the supervisor's own processes (foss: daemon + dashboard process)", "MiB"),
        Row("fleet_cpu", f"idle CPU of its own processes, {n} idle programs", "% core"),
        Row("fleet_status", f"CLI status wall time, {n} programs", "ms"),
        Row("fleet_crash", f"crash → restart with {n} programs supervised", "ms"),
        Row("fleet_stop", f"{n} programs: SIGTERM to daemon → all exited", "s"),
        Row("fleet_exit", "… → daemon exited", "s"),
    )


BASELINE_ROWS = (
    Row("spawn", "bare child: Popen → its first line", "ms"),
    Row("floor", "bare asyncio loop (create_subprocess_exec + wait + respawn): SIGKILL → first line", "ms"),
    Row("fleet_spawn", "bare fleet: the script Popens the fleet's children itself → all first lines", "s"),
    Row("cold_floor", f"cold floor: launch `python -I` that Popens {FLEET_SIZE} children → all first lines", "s"),
    Row("cold_floor_stack", "… the same after `import asyncio, yaml, structlog` (foss-supervisor's stack)", "s"),
)
COLUMNS = {
    "foss": "foss-supervisor",
    "supervisord": "supervisord",
    "circus": f"circus (default: check_delay {CIRCUS_DEFAULT_CHECK_DELAY_S:g} s)",
    "circus-fast": f"circus (check_delay {CIRCUS_FAST_CHECK_DELAY_S:g} s)",
}


def machine_info(env: Env) -> dict[str, str]:
    """What the figures depend on: cores, CPU, kernel, interpreters, tool versions, the commit measured."""

    def out(argv: Sequence[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"? ({exc})"
        return (done.stdout or done.stderr).strip()

    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor() or "?",
    )
    foss_code = "import sys, foss_supervisor; print(foss_supervisor.__version__, sys.version.split()[0])"
    foss = out([str(env.foss_python), "-c", foss_code]).split()
    bench_py = out([str(env.bench_bin / "python"), "-c", "import sys; print(sys.version.split()[0])"])
    pkgs_code = (
        "import importlib.metadata as m; "
        "print(', '.join(f'{p} {m.version(p)}' for p in ('supervisor', 'circus', 'pyzmq', 'tornado')))"
    )
    pkgs = out([str(env.bench_bin / "python"), "-c", pkgs_code])
    dirty = len(out(["git", "status", "--porcelain", "--", "foss_supervisor"]).splitlines())
    return {
        "nproc": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})",
        "cpu": model,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "python (foss-supervisor, children)": foss[1] if len(foss) > 1 else "?",
        "python (supervisord, circus)": bench_py,
        "foss-supervisor": f"{foss[0] if foss else '?'} at {out(['git', 'rev-parse', '--short', 'HEAD'])}"
        + (f" + {dirty} uncommitted file(s) in foss_supervisor/" if dirty else ""),
        "competitors": pkgs,
        "open-files soft limit of every daemon": f"{nofile_target()} (raised in the launcher; this shell's: "
        f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]})",
        "load average at start": "/".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "% core":
        return f"{value:.2f} %"
    return f"{value:.1f} {unit}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if b == 0:
        return "inf" if a else "-"
    return f"{a / b:.2f}"


def value(res: Results, row: Row, column: str) -> float | None:
    got = res.median(row.source or row.key, column)
    return None if got is None else got * row.scale


def render(
    res: Results, info: dict[str, str], plan: Plan, elapsed_s: float, tools: Sequence[str], fleet_size: int
) -> str:
    """The Markdown report: machine, results with ratios, baselines, the issue's targets, notes, samples."""
    cols = [k for k in COLUMNS if k in tools]
    table = rows(fleet_size)
    md = ["# Supervisor benchmark", "", "## Machine", ""]
    md += [f"- **{k}**: {v}" for k, v in info.items()]
    md += [
        "",
        f"Plan: {plan}; the run took {elapsed_s:.0f} s. Medians. Every figure is a cost, so a ratio "
        "(foss-supervisor ÷ the other) below 1 favours foss-supervisor.",
        "",
    ]
    others = [k for k in cols if k != "foss"]
    md.append(
        "| workload | " + " | ".join(COLUMNS[k] for k in cols) + " | " + " | ".join(f"foss/{k}" for k in others) + " |"
    )
    md.append("|---" * (1 + len(cols) + len(others)) + "|")
    for row in table:
        cells = [fmt(value(res, row, k), row.unit) for k in cols]
        ratios = [ratio(value(res, row, "foss"), value(res, row, k)) for k in others]
        if any(c != "-" for c in cells):
            md.append(f"| {row.label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    md += ["", "## Baselines", "", "| baseline | median |", "|---|---|"]
    md += [f"| {row.label} | {fmt(value(res, row, 'baseline'), row.unit)} |" for row in BASELINE_ROWS]
    md += ["", "## Targets (foss-supervisor)", "", "| issue | target | measured | met |", "|---|---|---|---|"]
    for issue, target, measured, met in targets(res, fleet_size):
        md.append(f"| {issue} | {target} | {measured} | {met} |")
    md += ["", "## Notes", ""] + [f"- {n}" for n in res.notes]
    md += ["", "## All samples", ""]
    for row in (*table, *BASELINE_ROWS):
        for column, values in res.samples.get(row.key, {}).items():
            md.append(f"- {row.key} / {column}: " + ", ".join(f"{v:.4g}" for v in values))
    return "\n".join(md) + "\n"


def _check(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def _at_most(measured: float | None, bound: float | None) -> str:
    return _check(None if measured is None or bound is None else measured <= bound)


def _times(a: float | None, b: float | None) -> str:
    return f" ({a / b:.2f}x)" if a is not None and b else ""


def _over_floor(ours: float | None, theirs: float | None, floor: float | None, stack: float | None) -> str:
    """What each cold start takes beyond the floor (a bare interpreter starting the same children), and
    where the floor of a daemon that has only imported foss-supervisor's stack stands against circus."""
    if ours is None or theirs is None or floor is None:
        return ""
    said = f"; floor {fmt(floor, 's')}: ours {fmt(ours - floor, 's')} over it, circus {fmt(theirs - floor, 's')}"
    if stack is None or not theirs:
        return said
    return f"{said}; the floor after the stack's imports alone {fmt(stack, 's')} = {stack / theirs:.2f}x circus"


def targets(res: Results, fleet_size: int) -> list[tuple[str, str, str, str]]:
    """The targets of issues 17 and 7, checked against this run's medians: (issue, target, measured, met)
    per line. Issue 17's replace issue 7's for crash -> restart and cold start; the rest of issue 7's stand."""
    m = res.median
    n = f"{fleet_size:,}"
    spawn = m("spawn", "baseline")
    bound = None if spawn is None else 1.25 * spawn
    here = f"{fmt(bound, 'ms')} here" if bound is not None else "no baseline"
    out = []
    for key, what in (("crash", "crash workload"), ("fleet_crash", f"with {n} programs")):
        crash = m(key, "foss")
        out.append(
            (
                "17",
                f"crash → restart ≤ 1.25x bare spawn, {what} ({here})",
                fmt(crash, "ms") + _times(crash, spawn),
                _at_most(crash, bound),
            )
        )
    cold, circus_cold, floor = m("cold", "foss"), m("cold", "circus"), m("cold_floor", "baseline")
    stack = m("cold_floor_stack", "baseline")
    out.append(
        (
            "17",
            f"cold start of {FLEET_SIZE} ≤ 0.75x circus",
            f"{fmt(cold, 's')} vs {fmt(circus_cold, 's')}"
            + _times(cold, circus_cold)
            + _over_floor(cold, circus_cold, floor, stack),
            _at_most(cold, None if circus_cold is None else 0.75 * circus_cold),
        )
    )
    daemon, everything = m("rss_daemon", "foss"), m("rss", "foss")
    out.append(
        (
            "17",
            f"daemon RSS ≤ 40 MB with the dashboard on ({FLEET_SIZE} programs): the daemon process",
            fmt(daemon, "MiB")
            + (f" = {daemon * 2**20 / 1e6:.1f} MB" if daemon else "")
            + (f"; with its dashboard process {fmt(everything, 'MiB')} in all" if everything else ""),
            _at_most(None if daemon is None else daemon * 2**20, 40e6),
        )
    )
    status, ctl = m("status", "foss"), m("status", "supervisord")
    out.append(
        (
            "17",
            f"`status` ≤ 0.3x supervisorctl ({FLEET_SIZE} programs)",
            f"{fmt(status, 'ms')} vs {fmt(ctl, 'ms')}" + _times(status, ctl),
            _at_most(status, None if ctl is None else 0.3 * ctl),
        )
    )
    full = m("stop_exit", "foss")
    out.append(
        (
            "7",
            f"full shutdown ≤ 1.15x the {STOP_TIMEOUT_S:g} s stop timeout ({STUBBORN_COUNT} SIGTERM-deaf, "
            "SIGTERM → daemon exited)",
            fmt(full, "s"),
            _at_most(full, 1.15 * STOP_TIMEOUT_S),
        )
    )
    running, bare = m("fleet_running", "foss"), m("fleet_spawn", "baseline")
    out.append(
        (
            "7",
            f"{n} programs all RUNNING ≤ 10 s on {len(os.sched_getaffinity(0))} cores",
            fmt(running, "s") + (f" (bare fleet: {fmt(bare, 's')})" if bare is not None else ""),
            _at_most(running, 10.0),
        )
    )
    fleet_status = m("fleet_status", "foss")
    out.append(("7", f"`status` ≤ 150 ms with {n} programs", fmt(fleet_status, "ms"), _at_most(fleet_status, 150.0)))
    cpu = m("fleet_cpu", "foss")
    out.append(
        ("7", f"idle CPU < 0.5 % with {n} programs", fmt(cpu, "% core"), _check(None if cpu is None else cpu < 0.5))
    )
    return out
