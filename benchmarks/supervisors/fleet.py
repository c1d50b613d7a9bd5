"""The large-fleet workload: 1,000 programs under one daemon, from cold start to full stop (issue 7)."""

from __future__ import annotations

import random
import subprocess
import time
from functools import partial

from .common import STOP_TIMEOUT_S, Env, Plan, Results, note
from .observe import EventLog, cpu_seconds, kill_and_time, time_stop
from .tools import TOOLS, Program, Supervisord, Tool, ToolFactory, session
from .workloads import measure_idle, measure_status

__all__ = ["FLEET_TOOLS", "bare_fleet", "bench_large_fleet"]

# Bounds for one fleet session: generous, so a tool that is slow with 1,000 programs is measured, not cut off.
FLEET_LAUNCH_TIMEOUT_S = 180.0
FLEET_STOP_TIMEOUT_S = 180.0
RUNNING_POLL_S = 0.25  # status is asked this often for "all RUNNING"; never while the programs start up

# supervisord gets its 1,000 programs in one [group:fleet]: on SIGTERM it stops one group per main-loop
# iteration, and with 1,000 one-program groups its shutdown takes minutes. The group changes nothing else:
# every program is still its own [program:x] section with the same settings, started in the same pass.
FLEET_TOOLS: dict[str, ToolFactory] = {**TOOLS, "supervisord": partial(Supervisord, group="fleet")}


def bench_large_fleet(tool: Tool, plan: Plan, size: int, rep: int, res: Results) -> None:
    """One fleet session of ``tool`` with ``size`` programs, from its launch to its SIGTERM.

    Every session times launch → all first lines (and takes the daemon's CPU time by then), launch → the
    tool's status lists all RUNNING (asked every ``RUNNING_POLL_S`` once all have started, so the polling
    never competes with the spawning), and SIGTERM → all programs exited → the daemon exited. The first
    session (``rep`` 0) also measures, in this order: RSS and idle CPU, the CLI status wall time, and
    crash → restart of ``plan.fleet_crash_reps`` programs picked at random. Samples go into ``res`` under
    the ``fleet_*`` rows.
    """
    names = [f"fleet-{i:04d}" for i in range(size)]
    key = tool.key
    with session(tool, [Program(n) for n in names]) as log:
        firsts = log.wait_names(names, FLEET_LAUNCH_TIMEOUT_S, poll_s=0.05)
        cold = (max(line.t_ns for line in firsts.values()) - tool.launched_ns) / 1e9
        res.add("fleet_cold_cpu", key, cpu_seconds(tool.supervisor_processes(log.pids())))
        running_ns = tool.wait_running(names, FLEET_LAUNCH_TIMEOUT_S, poll_s=RUNNING_POLL_S)
        running = (running_ns - tool.launched_ns) / 1e9
        res.add("fleet_cold", key, cold)
        res.add("fleet_running", key, running)
        if (lag := tool.longest_loop_step_ms()) is not None:  # the start's: nothing else has run yet
            res.add("fleet_lag", key, lag)
        note(f"fleet {key} {rep + 1}: all {size} started {cold:.2f} s, all RUNNING per status {running:.2f} s")
        if rep == 0:
            rss, daemon, cpu = measure_idle(tool, log, plan.cpu_window_s, res)
            res.add("fleet_rss", key, rss)
            res.add("fleet_rss_daemon", key, daemon)
            res.add("fleet_cpu", key, cpu)
            status = measure_status(tool, names, plan.fleet_status_runs)
            for took in status:
                res.add("fleet_status", key, took)
            shown = res.median("fleet_status", key)
            note(f"fleet {key}: RSS {rss:.1f} MiB, idle CPU {cpu:.2f} %, status {shown:.0f} ms")
            for name in random.sample(names, min(plan.fleet_crash_reps, size)):
                took = kill_and_time(log, name, tool.tick_s)
                res.add("fleet_crash", key, took)
                note(f"fleet crash {key} {name}: {took:.1f} ms")
        programs_s, daemon_s = time_stop(
            log, names, tool.send_shutdown, daemon=tool.daemon_process(), timeout_s=FLEET_STOP_TIMEOUT_S
        )
    res.add("fleet_stop", key, programs_s)
    if daemon_s is not None:
        res.add("fleet_exit", key, daemon_s)
    note(
        f"fleet {key} {rep + 1}: SIGTERM → all {size} exited {programs_s:.2f} s, daemon gone {daemon_s:.2f} s "
        f"(stop timeout {STOP_TIMEOUT_S:g} s)"
    )


def bare_fleet(env: Env, size: int, rep: int, res: Results) -> None:
    """The floor of a cold start: this script Popens ``size`` children itself, one after the other; seconds
    from the first Popen to the last first line (``fleet_spawn`` baseline). Every child is killed after."""
    workdir = env.workroot / "baseline" / f"bare-fleet-{rep}"
    workdir.mkdir(parents=True)
    log = EventLog(workdir / "events.log")
    names = [f"bare-{i:04d}" for i in range(size)]
    children: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.monotonic_ns()
        for name in names:
            children.append(
                subprocess.Popen(env.child_argv(log.path, name), stdin=subprocess.DEVNULL, start_new_session=True)
            )
        firsts = log.wait_names(names, FLEET_LAUNCH_TIMEOUT_S, poll_s=0.05)
    finally:
        for child in children:
            child.kill()  # our own children, not yet waited for: their PIDs are still theirs
        for child in children:
            child.wait(timeout=10)
        log.close()
    took = (max(line.t_ns for line in firsts.values()) - t0) / 1e9
    res.add("fleet_spawn", "baseline", took)
    note(f"bare fleet {rep + 1}: {size} children Popen'd by this script, all first lines in {took:.2f} s")
