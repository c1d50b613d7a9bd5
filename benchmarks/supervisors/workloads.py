"""The workloads at 50 programs and fewer (crash, cold start, stop, RSS and idle CPU, status) and the run order."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .common import (
    FLEET_SIZE,
    LAUNCH_TIMEOUT_S,
    RESTART_TIMEOUT_S,
    STUBBORN_COUNT,
    BenchError,
    Env,
    Plan,
    Results,
    note,
)
from .observe import EventLog, cpu_seconds, kill_and_time, stop_leftovers, time_stop, timed_run
from .tools import Foss, Program, Supervisord, Tool, ToolFactory, session

__all__ = ["Baselines", "bench_cold", "bench_crash", "bench_idle", "bench_stop", "measure_idle", "measure_status"]


class Baselines:
    """Bare child start-up and the asyncio respawn floor: what no supervisor written in Python can beat.

    The floor process stays up for the whole crash workload and both baselines are sampled between the
    tools' runs, so they meet the same background load as the tools do on this shared machine.
    """

    def __init__(self, env: Env) -> None:
        self.env = env
        # its own folder each time: a full run samples baselines for the crash and the fleet workloads
        self.workdir = Path(tempfile.mkdtemp(prefix="baseline-", dir=env.workroot))
        self.events = self.workdir / "events.log"
        self.log = EventLog(self.events)
        self.floor: subprocess.Popen[bytes] | None = None
        self.spawns = 0

    def __enter__(self) -> Baselines:
        argv = [str(self.env.foss_python), "-I", str(self.env.floor_script), *self.env.child_argv(self.events, "floor")]
        with (self.workdir / "floor.out").open("wb") as out:
            self.floor = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self.log.wait_line(lambda ln: ln.name == "floor", LAUNCH_TIMEOUT_S, "floor child")
            self.spawn_once()  # a warm-up, not counted
        except BaseException:
            self.__exit__()  # a failed __enter__ gets no __exit__: stop the floor here
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.floor is not None:
            self.floor.kill()  # our own child: its PID cannot have been reused while we have not waited for it
            self.floor.wait(timeout=10)
        stop_leftovers(self.log)
        self.log.close()

    def spawn_once(self) -> float:
        """ms from Popen of the bare child to its line."""
        name = f"spawn-{self.spawns}"
        self.spawns += 1
        t0 = time.monotonic_ns()
        child = subprocess.Popen(
            self.env.child_argv(self.events, name), stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            line = self.log.wait_names([name], RESTART_TIMEOUT_S)[name]
        finally:
            child.kill()
            child.wait(timeout=10)
        return (line.t_ns - t0) / 1e6

    def sample(self, count: int, res: Results) -> None:
        for _ in range(count):
            res.add("spawn", "baseline", self.spawn_once())
            res.add("floor", "baseline", kill_and_time(self.log, "floor"))


def bench_crash(tool: Tool, reps: int, res: Results) -> None:
    """One program per repetition, each killed twice: a first crash after a stable start, then a second one
    as soon as the tool reports it RUNNING again (where a restart backoff, if any, shows)."""
    programs = [Program(f"crash-{i}") for i in range(reps)]
    with session(tool, programs) as log:
        log.wait_names([p.name for p in programs], LAUNCH_TIMEOUT_S)
        tool.wait_running([p.name for p in programs])
        for prog in programs:
            first = kill_and_time(log, prog.name, tool.tick_s)
            res.add("crash", tool.key, first)
            tool.wait_running([prog.name])
            second = kill_and_time(log, prog.name, tool.tick_s)
            res.add("crash2", tool.key, second)
            note(f"crash {tool.key} {prog.name}: {first:.1f} ms, again {second:.1f} ms")


def bench_cold(factories: dict[str, ToolFactory], env: Env, reps: int, res: Results) -> None:
    """Launch each daemon with 50 programs and time until the last of them has written its first line.

    The tools take turns, one launch each per round (a warm-up round first: page cache, .pyc files), so
    that a change in the machine's background load meets every tool alike: the ratios hold on a shared
    machine where a whole block of one tool's runs would not. A tool that fails is named and left out of
    the later rounds.
    """
    programs = [Program(f"cold-{i:02d}") for i in range(FLEET_SIZE)]
    failed: set[str] = set()
    for rep in range(reps + 1):
        floor = _cold_floor(env, rep)
        stack = _cold_floor(env, rep, STACK_IMPORTS)
        if rep:
            res.add("cold_floor", "baseline", floor)
            res.add("cold_floor_stack", "baseline", stack)
        note(f"cold floor {rep or 'warm-up'}: {floor:.3f} s, after the stack's imports {stack:.3f} s")
        for key, factory in factories.items():
            if key in failed:
                continue
            try:
                took, first = _cold_once(factory(env, env.workroot / key / f"cold-{rep}"), programs)
            except (BenchError, subprocess.SubprocessError, OSError) as exc:
                failed.add(key)
                res.say(f"FAILED cold {key}: {type(exc).__name__}: {exc}")
                continue
            if rep:
                res.add("cold", key, took)
                res.add("cold_first", key, first)
            note(f"cold {key} {rep or 'warm-up'}: {took:.3f} s")


#: what an asyncio daemon with a YAML config and structured logs imports before it can spawn anything (the
#: stack foss-supervisor is built on; supervisord and circus use others): the second cold floor
STACK_IMPORTS = "import asyncio, yaml, structlog\n"

# a bare interpreter that starts the fleet itself: what any supervisor written in Python starts from
_FLEET_LAUNCHER = (
    "import json, subprocess, sys\n"
    "for argv in json.loads(sys.argv[1]):\n"
    "    subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)\n"
)


def _cold_floor(env: Env, rep: int, imports: str = "") -> float:
    """Seconds from launching ``python -I`` that Popens the 50 children, one after the other, to the last
    first line: the floor of a cold start (the interpreter's own start-up included, as for every tool).
    ``imports``: Python run first (:data:`STACK_IMPORTS`: the floor of a daemon on that stack, which has
    not yet read its config or taken any lock)."""
    workdir = env.workroot / "baseline" / f"cold-floor-{rep}{'-stack' if imports else ''}"
    workdir.mkdir(parents=True)
    log = EventLog(workdir / "events.log")
    names = [f"floor-{i:02d}" for i in range(FLEET_SIZE)]
    argvs = [env.child_argv(log.path, name) for name in names]
    try:
        t0 = time.monotonic_ns()
        launcher = [str(env.foss_python), "-I", "-c", imports + _FLEET_LAUNCHER, json.dumps(argvs)]
        subprocess.run(launcher, check=True, timeout=60)
        firsts = log.wait_names(names, LAUNCH_TIMEOUT_S)
    finally:
        stop_leftovers(log)  # the children of a launcher that has exited: by their PIDs, as they reported them
        log.close()
    return (max(line.t_ns for line in firsts.values()) - t0) / 1e9


def _cold_once(tool: Tool, programs: Sequence[Program]) -> tuple[float, float]:
    """Seconds from launch to the last program's first line, and to the first program's."""
    with session(tool, programs) as log:
        firsts = log.wait_names([p.name for p in programs], LAUNCH_TIMEOUT_S)
        took = (max(line.t_ns for line in firsts.values()) - tool.launched_ns) / 1e9
        first = (min(line.t_ns for line in firsts.values()) - tool.launched_ns) / 1e9
    return took, first


def bench_stop(factory: ToolFactory, env: Env, key: str, reps: int, res: Results) -> None:
    """10 programs that ignore SIGTERM, 1 s stop timeout: stop them with the CLI, start them again, then
    SIGTERM the daemon; each time until all are dead (and, for SIGTERM, until the daemon has exited too)."""
    for rep in range(reps):
        by_cli, by_signal, exited = stop_twice(factory(env, env.workroot / key / f"stop-{rep}"))
        res.add("stop_cli", key, by_cli)
        res.add("stop_sig", key, by_signal)
        res.add("stop_exit", key, exited)
        note(f"stop {key} {rep + 1}/{reps}: CLI {by_cli:.3f} s, SIGTERM {by_signal:.3f} s, daemon gone {exited:.3f} s")
    if key == "supervisord":  # its shutdown stops one group at a time: say what one group would give
        by_cli, by_signal, exited = stop_twice(Supervisord(env, env.workroot / key / "stop-grouped", group="stubborn"))
        res.say(
            f"supervisord with the 10 programs in one [group:stubborn] (one run): CLI {by_cli:.3f} s, SIGTERM "
            f"{by_signal:.3f} s (daemon gone {exited:.3f} s); as 10 separate programs its shutdown stops them "
            "one group at a time"
        )


def stop_twice(tool: Tool) -> tuple[float, float, float]:
    """Seconds until all 10 SIGTERM-deaf programs are dead: after the CLI stop, then (restarted) after SIGTERM;
    and seconds from that SIGTERM until the daemon itself has exited."""
    names = [f"stubborn-{i}" for i in range(STUBBORN_COUNT)]
    programs = [Program(name, ignore_term=True) for name in names]

    def ask_cli() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            tool.stop_argv(names),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=tool.daemon_env(),
            cwd=tool.workdir,
        )

    def ask_signal() -> None:
        tool.send_shutdown()

    with session(tool, programs) as log:
        log.wait_names(names, LAUNCH_TIMEOUT_S)
        tool.wait_running(names)
        by_cli, _ = time_stop(log, names, ask_cli)
        mark = len(log.lines)
        started = tool.cli(tool.start_argv(names))
        if started.returncode != 0:
            note(f"{tool.key}: start after stop exited {started.returncode}: {started.stdout[-300:]}")
        log.wait_names(names, LAUNCH_TIMEOUT_S, after=mark)
        tool.wait_running(names)
        by_signal, exited = time_stop(log, names, ask_signal, daemon=tool.daemon_process())
    if exited is None:
        raise BenchError(f"{tool.key}: the daemon's exit was not seen")
    return by_cli, by_signal, exited


def measure_idle(tool: Tool, log: EventLog, window_s: float, res: Results) -> tuple[float, float, float]:
    """RSS (MiB) of the supervisor's own processes and of its daemon process alone, and their CPU (% of one
    core) over a quiet ``window_s``: (all its processes, the daemon process, CPU).

    foss-supervisor's dashboard is a process of its own (``@dashboard``) and always up: it serves one GET
    /health and one GET /api/status first, and the RSS before them goes into the notes; the notes also name
    every process counted. supervisord and circus are one process each. Two seconds of settling come
    before the window.
    """
    own = tool.supervisor_processes(log.pids())
    if isinstance(tool, Foss):
        before = sum(p.memory_info().rss for p in own) / 2**20
        tool.touch_dashboard()
        res.say(
            f"foss RSS before any dashboard request: {before:.1f} MiB with {len(log.pids())} children seen "
            "(reported figure is after one GET /health and one GET /api/status)"
        )
    time.sleep(2.0)  # let start-up work settle before the quiet window
    own = tool.supervisor_processes(log.pids())
    cpu0, t0 = cpu_seconds(own), time.monotonic()
    time.sleep(window_s)
    cpu1, t1 = cpu_seconds(own), time.monotonic()
    each = [(p, p.memory_info().rss / 2**20) for p in own]
    rss = sum(mib for _, mib in each)
    daemon = each[0][1]  # supervisor_processes lists the daemon first
    shown = ", ".join(f"{p.pid} {' '.join(p.cmdline()[1:5])[:70]!r} {mib:.1f} MiB" for p, mib in each)
    res.say(f"{tool.key}: the supervisor is {len(own)} process(es), {rss:.1f} MiB in all: {shown}")
    return rss, daemon, (cpu1 - cpu0) / (t1 - t0) * 100


def measure_status(tool: Tool, names: Sequence[str], runs: int) -> list[float]:
    """Wall times (ms) of ``runs`` CLI status calls, after one untimed call checked to list all ``names``."""
    argv = tool.status_argv()
    shown = tool.cli(argv).stdout
    missing = [n for n in names if n not in shown]
    if missing:
        raise BenchError(f"{tool.key}: status does not list {missing[:3]}...")
    return [timed_run(argv, tool.daemon_env(), tool.workdir) for _ in range(runs)]


def bench_idle(factory: ToolFactory, env: Env, key: str, plan: Plan, want: set[str], res: Results) -> None:
    """50 idle programs: the daemon's RSS and idle CPU over a quiet window, then the CLI status wall time."""
    programs = [Program(f"idle-{i:02d}") for i in range(FLEET_SIZE)]
    names = [p.name for p in programs]
    tool = factory(env, env.workroot / key / "idle")
    with session(tool, programs) as log:
        log.wait_names(names, LAUNCH_TIMEOUT_S)
        tool.wait_running(names)
        if "rss" in want:
            rss, daemon, cpu = measure_idle(tool, log, plan.cpu_window_s, res)
            res.add("cpu", key, cpu)
            res.add("rss", key, rss)
            res.add("rss_daemon", key, daemon)
            note(f"idle {key}: RSS {rss:.1f} MiB (daemon process {daemon:.1f} MiB), idle CPU {cpu:.2f} %")
        if "status" in want and key != "circus-fast":  # check_delay does not change what status costs
            for took in measure_status(tool, names, plan.status_runs):
                res.add("status", key, took)
            note(f"status {key}: {res.median('status', key):.1f} ms")
