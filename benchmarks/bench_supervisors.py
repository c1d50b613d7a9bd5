#!/usr/bin/env python3
"""Benchmark foss-supervisor against supervisord and circus on the same workloads (issue 2).

Run it from the repository root with the repo's venv (foss-supervisor depends on psutil, which this
script needs too)::

    .venv/bin/python benchmarks/bench_supervisors.py              # full run, about 7.5 minutes
    .venv/bin/python benchmarks/bench_supervisors.py --quick      # fewer repetitions, about 3.5 minutes
    .venv/bin/python benchmarks/bench_supervisors.py --only crash --only status

supervisord and circus are installed from PyPI into ``benchmarks/.venv-bench`` (created by the first
run, reused after), built from the same CPython that runs foss-supervisor. Every daemon and child this
script starts is stopped by PID with bounded waits; daemons listen on free loopback ports and keep
their files in a temporary directory. The results go to stdout and ``benchmarks/results/latest.md``
(every sample in ``latest.json``). What each workload measures: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

try:
    import psutil
except ImportError:  # pragma: no cover - a hint beats a traceback
    sys.exit("psutil is missing: run this with the repo's venv: .venv/bin/python benchmarks/bench_supervisors.py")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCH_VENV = HERE / ".venv-bench"
RESULTS_DIR = HERE / "results"
# Bytecode cache for every daemon and CLI under test. This machine's environment sets PYTHONDONTWRITEBYTECODE
# and foss-supervisor is an editable install, so without it only foss-supervisor would recompile its own
# modules on every start while pip-installed supervisor and circus load .pyc files; a prefix outside the
# source tree gives all three the cached bytecode of a normal install without writing into the repo.
PYCACHE_PREFIX = BENCH_VENV / "pycache"
COMPETITOR_PACKAGES = ("supervisor", "circus", "psutil")

# Settings every tool gets, so that they do the same work. Both start timeouts are the tools' defaults
# (foss start_timeout 1 s, supervisord startsecs 1 s; circus has no such notion: a process is "active"
# once spawned). The stop timeout is 1 s everywhere (foss stop_timeout, supervisord stopwaitsecs,
# circus graceful_timeout): workload 3 is about it, and it keeps every shutdown short.
START_TIMEOUT_S = 1.0
STOP_TIMEOUT_S = 1.0
CIRCUS_DEFAULT_CHECK_DELAY_S = 5.0  # circus' own default, from circus/config.py
CIRCUS_FAST_CHECK_DELAY_S = 0.1  # the fastest setting we call reasonable: it already costs a few % of a core
FLEET_SIZE = 50
STUBBORN_COUNT = 10
# Generous bounds on every wait, so a hung tool fails its workload instead of hanging the run.
LAUNCH_TIMEOUT_S = 60.0
RESTART_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 60.0
EVENT_POLL_S = 0.002

# The supervised program of every workload: it appends "NAME PID MONOTONIC_NS" to a shared file as its
# first act (so a timestamp is taken in the child, on the clock this script reads too), then idles.
CHILD_SOURCE = '''\
"""Benchmark child: append "NAME PID MONOTONIC_NS" to EVENTS at start, then idle (optionally deaf to SIGTERM)."""
import os
import signal
import sys
import time

events, name = sys.argv[1], sys.argv[2]
if "--ignore-term" in sys.argv[3:]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, ("%s %d %d\\n" % (name, os.getpid(), time.monotonic_ns())).encode())
os.close(fd)
while True:
    signal.pause()
'''

# The floor for crash-to-restart: the least an asyncio supervisor can do.
FLOOR_SOURCE = '''\
"""The floor: spawn the child, wait for it to exit, spawn it again; nothing else."""
import asyncio
import sys


async def main(argv):
    while True:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
        await proc.wait()


asyncio.run(main(sys.argv[1:]))
'''

_T0 = time.monotonic()


def tool_env() -> dict[str, str]:
    """Our environment for the daemons and CLIs under test: no foss overrides, the shared bytecode cache."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FOSS_SUPERVISOR_") and k != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_PREFIX)
    return env


class BenchError(Exception):
    """A workload could not be measured (a tool misbehaved or a bound was hit)."""


def note(message: str) -> None:
    """Progress on stderr, so stdout stays the report."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A free loopback TCP port (never 5000, which belongs to a real dashboard)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 5000:
            return port


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# ------------------------------------------------------------------------------------------ plan and results


@dataclass(frozen=True, slots=True)
class Plan:
    """How many repetitions each workload gets."""

    crash_reps: int
    cold_reps: int
    stop_reps: int
    cpu_window_s: float
    status_runs: int


FULL = Plan(crash_reps=7, cold_reps=5, stop_reps=4, cpu_window_s=10.0, status_runs=20)
QUICK = Plan(crash_reps=3, cold_reps=2, stop_reps=2, cpu_window_s=4.0, status_runs=6)
WORKLOADS = ("crash", "cold", "stop", "rss", "status")  # "rss" is RSS and idle CPU


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table; ``scale`` turns stored samples into the shown unit."""

    key: str
    label: str
    unit: str
    source: str = ""  # a derived row shows another row's samples
    scale: float = 1.0


ROWS = (
    Row("crash", "crash → restart: SIGKILL → new child's first line", "ms"),
    Row("crash2", "… same program killed again once RUNNING again (backoff)", "ms"),
    Row("cold", f"cold start of {FLEET_SIZE}: launch → all first lines", "s"),
    Row("cold_first", "… of which launch → first program's line", "s"),
    Row("stop_cli", f"stop {STUBBORN_COUNT} SIGTERM-deaf programs via CLI (1 s timeout)", "s"),
    Row("stop_cli_x", "… ÷ stop timeout", "x", source="stop_cli", scale=1 / STOP_TIMEOUT_S),
    Row("stop_sig", f"stop {STUBBORN_COUNT} SIGTERM-deaf programs: SIGTERM to daemon", "s"),
    Row("stop_sig_x", "… ÷ stop timeout", "x", source="stop_sig", scale=1 / STOP_TIMEOUT_S),
    Row("rss", f"daemon RSS, {FLEET_SIZE} idle programs", "MiB"),
    Row("cpu", f"daemon idle CPU, {FLEET_SIZE} idle programs", "% core"),
    Row("status", f"CLI status wall time, {FLEET_SIZE} programs", "ms"),
)
BASELINE_ROWS = (
    Row("spawn", "bare child: Popen → its first line", "ms"),
    Row("floor", "bare asyncio loop (create_subprocess_exec + wait + respawn): SIGKILL → first line", "ms"),
)
COLUMNS = {
    "foss": "foss-supervisor",
    "supervisord": "supervisord",
    "circus": f"circus (default: check_delay {CIRCUS_DEFAULT_CHECK_DELAY_S:g} s)",
    "circus-fast": f"circus (check_delay {CIRCUS_FAST_CHECK_DELAY_S:g} s)",
}


@dataclass
class Results:
    """Every sample by row and column, plus free-form notes for the report."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: str, column: str, value: float) -> None:
        self.samples.setdefault(row, {}).setdefault(column, []).append(value)

    def median(self, row: str, column: str) -> float | None:
        values = self.samples.get(row, {}).get(column)
        return median(values) if values else None

    def say(self, message: str) -> None:
        note(message)
        self.notes.append(message)


# ------------------------------------------------------------------------------------------ environment


@dataclass(frozen=True, slots=True)
class Env:
    """The interpreters and executables under test, and the one child program they all run."""

    foss_python: Path
    bench_bin: Path
    workroot: Path
    child_script: Path
    floor_script: Path

    def child_argv(self, events: Path, name: str, ignore_term: bool = False) -> list[str]:
        """The same command line for every tool; ``-I -S`` keeps the child's own start-up small."""
        argv = [str(self.foss_python), "-I", "-S", str(self.child_script), str(events), name]
        return [*argv, "--ignore-term"] if ignore_term else argv


def ensure_bench_venv(python: Path) -> Path:
    """Create ``benchmarks/.venv-bench`` with supervisor and circus from PyPI and this checkout, or reuse it.

    It is built from the interpreter that runs foss-supervisor, so all three daemons run on the same CPython.
    """
    bin_dir = BENCH_VENV / "bin"
    bench_python = bin_dir / "python"
    if not bench_python.exists():
        note(f"creating {BENCH_VENV} from {python}")
        subprocess.run([str(python), "-m", "venv", str(BENCH_VENV)], check=True, timeout=300)
    probe = subprocess.run([str(bench_python), "-c", "import supervisor, circus, psutil"],
                           capture_output=True, timeout=120)  # fmt: skip
    if probe.returncode != 0:
        note(f"installing {', '.join(COMPETITOR_PACKAGES)} into {BENCH_VENV} with pip")
        subprocess.run([str(bench_python), "-m", "pip", "install", "--quiet", *COMPETITOR_PACKAGES],
                       check=True, timeout=900)  # fmt: skip
    # foss-supervisor too, as users install it (a regular wheel, not the repo's editable install, whose
    # import hook costs every CLI call ~25 ms), refreshed from the working tree on every run
    note(f"installing foss-supervisor from {REPO} into {BENCH_VENV} (regular install)")
    subprocess.run([str(bench_python), "-m", "pip", "install", "--quiet", str(REPO)], check=True, timeout=900)
    subprocess.run([str(bench_python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
                    str(REPO)], check=True, timeout=900)  # fmt: skip
    for exe in ("supervisord", "supervisorctl", "circusd", "circusctl", "foss-supervisor"):
        if not (bin_dir / exe).exists():
            raise BenchError(f"{bin_dir / exe} is missing after the install")
    return bin_dir


# ------------------------------------------------------------------------------------------ observing children


@dataclass(frozen=True, slots=True)
class Line:
    """One child's start: its name, PID and the CLOCK_MONOTONIC time (ns) it took as its first act."""

    name: str
    pid: int
    t_ns: int


class EventLog:
    """Tails the file every child appends its start line to; remembers each child for clean-up."""

    def __init__(self, path: Path) -> None:
        path.touch()
        self._file = path.open("rb")
        self._partial = b""
        self.lines: list[Line] = []
        self._procs: dict[int, psutil.Process] = {}

    def poll(self) -> None:
        data = self._partial + self._file.read()
        *complete, self._partial = data.split(b"\n")
        for raw in complete:
            name, pid, t_ns = raw.decode().split()
            line = Line(name, int(pid), int(t_ns))
            self.lines.append(line)
            with contextlib.suppress(psutil.Error):  # it may already be gone: nothing to clean up then
                self._procs[line.pid] = psutil.Process(line.pid)

    def wait_line(self, match: Callable[[Line], bool], timeout_s: float, what: str) -> Line:
        """The first line that matches, waiting up to ``timeout_s`` for it."""
        deadline = time.monotonic() + timeout_s
        checked = 0
        while True:
            self.poll()
            for line in self.lines[checked:]:
                if match(line):
                    return line
            checked = len(self.lines)
            if time.monotonic() > deadline:
                raise BenchError(f"no {what} within {timeout_s:g}s")
            time.sleep(EVENT_POLL_S)

    def wait_names(self, names: Collection[str], timeout_s: float, after: int = 0) -> dict[str, Line]:
        """The first line of each of ``names`` among lines ``after`` onwards, waiting for the missing ones."""
        deadline = time.monotonic() + timeout_s
        wanted = set(names)
        while True:
            self.poll()
            firsts: dict[str, Line] = {}
            for line in self.lines[after:]:
                if line.name in wanted:
                    firsts.setdefault(line.name, line)
            if len(firsts) == len(wanted):
                return firsts
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(firsts)} of {len(wanted)} programs started within {timeout_s:g}s")
            time.sleep(EVENT_POLL_S)

    def latest(self, name: str) -> Line:
        self.poll()
        for line in reversed(self.lines):
            if line.name == name:
                return line
        raise BenchError(f"{name} never started")

    def process(self, line: Line) -> psutil.Process:
        proc = self._procs.get(line.pid)
        if proc is None or not proc.is_running():
            raise BenchError(f"{line.name} (pid {line.pid}) is not running")
        return proc

    def pids(self) -> set[int]:
        self.poll()
        return {line.pid for line in self.lines}

    def processes(self) -> list[psutil.Process]:
        self.poll()
        return list(self._procs.values())

    def close(self) -> None:
        self._file.close()


class DeathWatch:
    """pidfds on processes that are not our children: poll() tells the moment each one exits."""

    def __init__(self, procs: Sequence[psutil.Process]) -> None:
        self._fds: list[int] = []
        try:
            for proc in procs:
                fd = os.pidfd_open(proc.pid)
                self._fds.append(fd)
                if not proc.is_running():  # checked after opening, so the pidfd is that very process
                    raise BenchError(f"pid {proc.pid} exited before the measurement")
        except BaseException:
            self.close()
            raise

    def wait(self, timeout_s: float) -> int:
        """Block until every process has exited; return the CLOCK_MONOTONIC time (ns) of the last exit."""
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, select.POLLIN)
        pending = set(self._fds)
        last = time.monotonic_ns()
        deadline = time.monotonic() + timeout_s
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{len(pending)} processes still alive after {timeout_s:g}s")
            for fd, _ in poller.poll(remaining * 1000):
                if fd in pending:
                    last = time.monotonic_ns()
                    pending.discard(fd)
                    poller.unregister(fd)
        return last

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


def kill_and_time(log: EventLog, name: str, tick_s: float = 0.3) -> float:
    """SIGKILL the current child of ``name`` through a pidfd (no PID reuse race); ms until its successor starts.

    The pause before the kill is uniform over ``tick_s``, the period of the supervisor's own loop, so the
    kill lands at a random phase of it: the previous restart happened on a tick, and a fixed pause would
    always measure the same, worst or best, part of the period.
    """
    line = log.latest(name)
    time.sleep(random.uniform(0.05, 0.05 + tick_s))
    fd = os.pidfd_open(line.pid)
    try:
        log.process(line)  # still the child that wrote the line (checked after opening the pidfd)
        t0 = time.monotonic_ns()
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
    new = log.wait_line(lambda ln: ln.name == name and ln.t_ns > t0, RESTART_TIMEOUT_S, f"restart of {name}")
    return (new.t_ns - t0) / 1e6


# ------------------------------------------------------------------------------------------ the tools


@dataclass(frozen=True, slots=True)
class Program:
    """A supervised program: every one runs the benchmark child under its own name."""

    name: str
    ignore_term: bool = False


class Tool(ABC):
    """One supervisor under test: writes its config, runs its daemon and its CLI, and cleans up by PID."""

    key = ""
    tick_s = 0.3  # the period of a loop that restarts programs on a tick, if the tool has one

    def __init__(self, env: Env, workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.events = workdir / "events.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.launched_ns = 0
        self._shutdown_sent = False

    # ---------------------------------------------------------------- what differs between tools

    @abstractmethod
    def configure(self, programs: Sequence[Program]) -> None:
        """Write the config file for ``programs``."""

    @abstractmethod
    def daemon_argv(self) -> list[str]:
        """Run the daemon in the foreground (it is our child, so we can time and stop it)."""

    @abstractmethod
    def status_argv(self) -> list[str]: ...

    @abstractmethod
    def stop_argv(self, names: Sequence[str]) -> list[str]:
        """Stop ``names`` and return once they are stopped, the daemon staying up."""

    @abstractmethod
    def start_argv(self, names: Sequence[str]) -> list[str]: ...

    @abstractmethod
    def running_names(self) -> set[str]:
        """Programs the tool itself reports as running (past its start timeout), asked through its CLI."""

    def before_teardown(self) -> None:
        """Speed up an unmeasured shutdown, where a tool is slow at it for reasons already measured."""
        return None

    def daemon_env(self) -> dict[str, str]:
        return tool_env()

    # ---------------------------------------------------------------- shared

    def program_argv(self, program: Program) -> list[str]:
        return self.env.child_argv(self.events, program.name, program.ignore_term)

    def launch(self) -> None:
        with (self.workdir / "daemon.out").open("wb") as out:
            self.launched_ns = time.monotonic_ns()
            self.proc = subprocess.Popen(self.daemon_argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.daemon_env(), cwd=self.workdir,
                                         start_new_session=True)  # fmt: skip

    def send_shutdown(self) -> None:
        """SIGTERM to the daemon: all three stop their programs, then exit."""
        if self.proc is not None and not self._shutdown_sent:
            self._shutdown_sent = True
            self.proc.send_signal(signal.SIGTERM)

    def cli(self, argv: Sequence[str], timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=self.daemon_env(),
                              cwd=self.workdir, stdin=subprocess.DEVNULL)  # fmt: skip

    def wait_running(self, names: Collection[str], timeout_s: float = LAUNCH_TIMEOUT_S) -> None:
        """Poll the tool's own status until all ``names`` are running, so a kill is a crash, not a failed start."""
        deadline = time.monotonic() + timeout_s
        while not set(names) <= self.running_names():
            if time.monotonic() > deadline:
                raise BenchError(f"{self.key}: not all of {len(names)} programs RUNNING after {timeout_s:g}s")
            time.sleep(0.1)

    def supervisor_processes(self, program_pids: set[int]) -> list[psutil.Process]:
        """The daemon and its descendants that are part of the supervisor itself (not programs or theirs)."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        out = [root]
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.pid not in program_pids and not {p.pid for p in child.parents()} & program_pids:
                    out.append(child)
        return out

    def daemon_output_tail(self, chars: int = 1500) -> str:
        path = self.workdir / "daemon.out"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def terminate(self, log: EventLog) -> None:
        """Stop the daemon (SIGTERM, bounded wait, SIGKILL), then kill by PID any child it left behind."""
        known = log.processes()
        if self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            known += psutil.Process(self.proc.pid).children(recursive=True)
        if self.proc.poll() is None:
            if not self._shutdown_sent:
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self.before_teardown()
            self.send_shutdown()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                note(f"{self.key}: daemon {self.proc.pid} ignored SIGTERM for 30 s; SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        leftovers = []
        for proc in known:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    leftovers.append(proc)
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()  # psutil checks the PID still names the same process before signalling
        psutil.wait_procs(leftovers, timeout=5)
        if leftovers:
            note(f"{self.key}: killed {len(leftovers)} processes the daemon left behind: "
                 f"{sorted(p.pid for p in leftovers)}")  # fmt: skip


class Foss(Tool):
    """foss-supervisor from the repo's venv: ``python -m foss_supervisor start --foreground``."""

    key = "foss"

    def __init__(self, env: Env, workdir: Path) -> None:
        super().__init__(env, workdir)
        self.config = workdir / "foss.yaml"
        self.state_dir = workdir / "state"
        self.port = free_port()
        self.exe = str(env.foss_python.parent / "foss-supervisor")

    def configure(self, programs: Sequence[Program]) -> None:
        doc = {
            "state_dir": str(self.state_dir),
            "dashboard": {"host": "127.0.0.1", "port": self.port},
            "programs": {
                p.name: {
                    "command": self.program_argv(p),
                    "start_timeout": f"{START_TIMEOUT_S:g}s",
                    "stop_timeout": f"{STOP_TIMEOUT_S:g}s",
                }
                for p in programs
            },
        }
        self.config.write_text(json.dumps(doc, indent=1) + "\n")  # JSON is YAML

    def daemon_env(self) -> dict[str, str]:
        env = super().daemon_env()
        env["FOSS_SUPERVISOR_PORT"] = str(self.port)
        env["FOSS_SUPERVISOR_STATE_DIR"] = str(self.state_dir)
        return env

    def daemon_argv(self) -> list[str]:
        return [str(self.env.foss_python), "-m", "foss_supervisor", "start", "--foreground", "--config",
                str(self.config)]  # fmt: skip

    def status_argv(self) -> list[str]:
        return [self.exe, "status", "--config", str(self.config)]

    def stop_argv(self, names: Sequence[str]) -> list[str]:
        return [self.exe, "ctl", "stop", *names, "--config", str(self.config)]

    def start_argv(self, names: Sequence[str]) -> list[str]:
        return [self.exe, "ctl", "start", *names, "--config", str(self.config)]

    def running_names(self) -> set[str]:
        done = self.cli([self.exe, "status", "--json", "--config", str(self.config)])
        if done.returncode != 0:
            return set()
        return {p["name"] for p in json.loads(done.stdout)["programs"] if p["state"] == "RUNNING"}

    def touch_dashboard(self) -> None:
        """GET /health and /api/status once, so the RSS is that of a dashboard that has served requests."""
        for path in ("health", "api/status"):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{path}", timeout=10).close()


class Supervisord(Tool):
    """supervisord 4.x: ``supervisord -n -c conf``, controlled with supervisorctl over a Unix socket."""

    key = "supervisord"
    tick_s = 1.0  # its main loop polls with a 1 s timeout

    def __init__(self, env: Env, workdir: Path, group: str = "") -> None:
        super().__init__(env, workdir)
        self.group = group  # put every program in one [group:x]: supervisord shuts groups down one at a time
        self.conf = workdir / "supervisord.conf"
        self.ctl = [str(env.bench_bin / "supervisorctl"), "-c", str(self.conf)]

    def configure(self, programs: Sequence[Program]) -> None:
        (self.workdir / "childlogs").mkdir()
        sock = self.workdir / "supervisor.sock"
        lines = [
            "[unix_http_server]", f"file={sock}", "",
            "[supervisord]", f"logfile={self.workdir / 'supervisord.log'}",
            f"pidfile={self.workdir / 'supervisord.pid'}", f"childlogdir={self.workdir / 'childlogs'}",
            "nodaemon=true", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{sock}", "",
        ]  # fmt: skip
        for p in programs:
            command = shlex.join(self.program_argv(p))
            assert "%" not in command, "supervisord expands %(...)s in commands"
            lines += [f"[program:{p.name}]", f"command={command}", f"startsecs={START_TIMEOUT_S:g}",
                      f"stopwaitsecs={STOP_TIMEOUT_S:g}", ""]  # fmt: skip
        if self.group:
            lines += [f"[group:{self.group}]", f"programs={','.join(p.name for p in programs)}", ""]
        self.conf.write_text("\n".join(lines))

    def daemon_argv(self) -> list[str]:
        return [str(self.env.bench_bin / "supervisord"), "-n", "-c", str(self.conf)]

    def status_argv(self) -> list[str]:
        return [*self.ctl, "status"]

    def stop_argv(self, names: Sequence[str]) -> list[str]:
        return [*self.ctl, "stop", "all"]

    def start_argv(self, names: Sequence[str]) -> list[str]:
        return [*self.ctl, "start", "all"]

    def running_names(self) -> set[str]:
        done = self.cli(self.status_argv())  # exits 3 while some program is not RUNNING
        rows = (ln.split() for ln in done.stdout.splitlines())
        return {f[0].rpartition(":")[2] for f in rows if len(f) > 1 and f[1] == "RUNNING"}  # "group:name"

    def before_teardown(self) -> None:
        """Stop all programs at once: its shutdown would stop them one group at a time (~1 s each)."""
        self.cli([*self.ctl, "stop", "all"])


class Circus(Tool):
    """circus: ``circusd conf.ini``, controlled with circusctl over ZeroMQ on loopback TCP ports."""

    def __init__(self, env: Env, workdir: Path, check_delay_s: float | None) -> None:
        super().__init__(env, workdir)
        self.key = "circus" if check_delay_s is None else "circus-fast"
        self.check_delay_s = check_delay_s
        self.tick_s = CIRCUS_DEFAULT_CHECK_DELAY_S if check_delay_s is None else check_delay_s
        self.conf = workdir / "circus.ini"
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.ctl = [str(env.bench_bin / "circusctl"), "--endpoint", self.endpoint, "--timeout", "30"]

    def configure(self, programs: Sequence[Program]) -> None:
        lines = [
            "[circus]", f"endpoint = {self.endpoint}", f"pubsub_endpoint = tcp://127.0.0.1:{free_port()}",
            "statsd = False",
            # an empty value turns off cluster discovery, which would otherwise join a UDP multicast group
            # on every interface: this benchmark talks to loopback only
            "multicast_endpoint =",
        ]  # fmt: skip
        if self.check_delay_s is not None:
            lines.append(f"check_delay = {self.check_delay_s:g}")
        lines.append("")
        for p in programs:
            lines += [f"[watcher:{p.name}]", f"cmd = {shlex.join(self.program_argv(p))}", "numprocesses = 1",
                      f"graceful_timeout = {STOP_TIMEOUT_S:g}", ""]  # fmt: skip
        self.conf.write_text("\n".join(lines))

    def daemon_argv(self) -> list[str]:
        return [str(self.env.bench_bin / "circusd"), "--log-output", str(self.workdir / "circusd.log"),
                str(self.conf)]  # fmt: skip

    def status_argv(self) -> list[str]:
        return [*self.ctl, "status"]

    def stop_argv(self, names: Sequence[str]) -> list[str]:
        return [*self.ctl, "stop", "--waiting"]

    def start_argv(self, names: Sequence[str]) -> list[str]:
        return [*self.ctl, "start", "--waiting"]

    def running_names(self) -> set[str]:
        done = self.cli(self.status_argv())
        fields = (ln.split(":", 1) for ln in done.stdout.splitlines())
        return {f[0].strip() for f in fields if len(f) == 2 and f[1].strip() == "active"}


ToolFactory = Callable[[Env, Path], Tool]
TOOLS: dict[str, ToolFactory] = {
    "foss": Foss,
    "supervisord": Supervisord,
    "circus": lambda env, wd: Circus(env, wd, None),
    "circus-fast": lambda env, wd: Circus(env, wd, CIRCUS_FAST_CHECK_DELAY_S),
}


@contextlib.contextmanager
def session(tool: Tool, programs: Sequence[Program]) -> Iterator[EventLog]:
    """Configure and launch ``tool``; whatever happens, stop its daemon and every child it started."""
    tool.configure(programs)
    log = EventLog(tool.events)
    try:
        tool.launch()
        yield log
    finally:
        try:
            tool.terminate(log)
        finally:
            log.close()


# ------------------------------------------------------------------------------------------ workloads


class Baselines:
    """Bare child start-up and the asyncio respawn floor: what no supervisor written in Python can beat.

    The floor process stays up for the whole crash workload and both baselines are sampled between the
    tools' runs, so they meet the same background load as the tools do on this shared machine.
    """

    def __init__(self, env: Env) -> None:
        self.env = env
        self.workdir = env.workroot / "baseline"
        self.workdir.mkdir()
        self.events = self.workdir / "events.log"
        self.log = EventLog(self.events)
        self.floor: subprocess.Popen[bytes] | None = None
        self.spawns = 0

    def __enter__(self) -> Baselines:
        argv = [str(self.env.foss_python), "-I", str(self.env.floor_script), *self.env.child_argv(self.events, "floor")]
        with (self.workdir / "floor.out").open("wb") as out:
            self.floor = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)  # fmt: skip
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
        child = subprocess.Popen(self.env.child_argv(self.events, name), stdin=subprocess.DEVNULL,
                                 start_new_session=True)  # fmt: skip
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


def stop_leftovers(log: EventLog) -> None:
    """Kill, by PID, every child in ``log`` that still runs."""
    alive = [p for p in log.processes() if p.is_running()]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


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


def bench_cold(factory: ToolFactory, env: Env, key: str, reps: int, res: Results) -> None:
    """Launch the daemon with 50 programs and time until the last of them has written its first line."""
    programs = [Program(f"cold-{i:02d}") for i in range(FLEET_SIZE)]
    for rep in range(reps + 1):  # the first is a warm-up (page cache, .pyc files)
        tool = factory(env, env.workroot / key / f"cold-{rep}")
        with session(tool, programs) as log:
            firsts = log.wait_names([p.name for p in programs], LAUNCH_TIMEOUT_S)
            took = (max(line.t_ns for line in firsts.values()) - tool.launched_ns) / 1e9
            first = (min(line.t_ns for line in firsts.values()) - tool.launched_ns) / 1e9
        if rep:
            res.add("cold", key, took)
            res.add("cold_first", key, first)
        note(f"cold {key} {rep or 'warm-up'}: {took:.3f} s")


def time_stop(log: EventLog, names: Sequence[str], ask: Callable[[], subprocess.Popen[bytes] | None]) -> float:
    """Seconds from ``ask()`` (a stop request) until every child of ``names`` has exited."""
    procs = [log.process(log.latest(name)) for name in names]
    watch = DeathWatch(procs)
    cli: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.monotonic_ns()
        cli = ask()
        last = watch.wait(STOP_TIMEOUT_S * 10 + 30)
        if cli is not None:
            cli.wait(timeout=CLI_TIMEOUT_S)
            if cli.returncode != 0:
                note(f"stop command {cli.args!r} exited {cli.returncode}")
    finally:
        watch.close()
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)
    return (last - t0) / 1e9


def bench_stop(factory: ToolFactory, env: Env, key: str, reps: int, res: Results) -> None:
    """10 programs that ignore SIGTERM, 1 s stop timeout: stop them with the CLI, start them again, then
    SIGTERM the daemon; each time until all are dead."""
    for rep in range(reps):
        by_cli, by_signal = stop_twice(factory(env, env.workroot / key / f"stop-{rep}"))
        res.add("stop_cli", key, by_cli)
        res.add("stop_sig", key, by_signal)
        note(f"stop {key} {rep + 1}/{reps}: CLI {by_cli:.3f} s, SIGTERM {by_signal:.3f} s")
    if key == "supervisord":  # its shutdown stops one group at a time: say what one group would give
        by_cli, by_signal = stop_twice(Supervisord(env, env.workroot / key / "stop-grouped", group="stubborn"))
        res.say(f"supervisord with the 10 programs in one [group:stubborn] (one run): CLI {by_cli:.3f} s, SIGTERM "
                f"{by_signal:.3f} s; as 10 separate programs its shutdown stops them one group at a time")  # fmt: skip


def stop_twice(tool: Tool) -> tuple[float, float]:
    """Seconds until all 10 SIGTERM-deaf programs are dead: after the CLI stop, then (restarted) after SIGTERM."""
    names = [f"stubborn-{i}" for i in range(STUBBORN_COUNT)]
    programs = [Program(name, ignore_term=True) for name in names]

    def ask_cli() -> subprocess.Popen[bytes]:
        return subprocess.Popen(tool.stop_argv(names), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=tool.daemon_env(), cwd=tool.workdir)  # fmt: skip

    def ask_signal() -> None:
        tool.send_shutdown()

    with session(tool, programs) as log:
        log.wait_names(names, LAUNCH_TIMEOUT_S)
        tool.wait_running(names)
        by_cli = time_stop(log, names, ask_cli)
        mark = len(log.lines)
        started = tool.cli(tool.start_argv(names))
        if started.returncode != 0:
            note(f"{tool.key}: start after stop exited {started.returncode}: {started.stdout[-300:]}")
        log.wait_names(names, LAUNCH_TIMEOUT_S, after=mark)
        tool.wait_running(names)
        by_signal = time_stop(log, names, ask_signal)
    return by_cli, by_signal


def timed_run(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one command in ms, from Popen to its exit, seen through a pidfd.

    Not ``subprocess.run(timeout=...)``: ``Popen.wait(timeout)`` polls with sleeps that grow to 50 ms,
    which rounds every measurement up to the next step.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, cwd=cwd)  # fmt: skip
    fd = os.pidfd_open(proc.pid)  # our unreaped child: the PID is still its own
    try:
        exited = bool(select.select([fd], [], [], CLI_TIMEOUT_S)[0])
        took = (time.perf_counter() - t0) * 1000
    finally:
        os.close(fd)
        if proc.poll() is None and not exited:
            proc.kill()
        proc.wait(timeout=10)
    if not exited:
        raise BenchError(f"{argv[0]} did not exit within {CLI_TIMEOUT_S:g}s")
    if proc.returncode not in (0, 3):  # supervisorctl status exits 3 when any program is not RUNNING
        raise BenchError(f"{shlex.join(argv)} exited {proc.returncode}")
    return took


def cpu_seconds(procs: Sequence[psutil.Process]) -> float:
    """User + system CPU time of ``procs`` themselves (not of their reaped children)."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def bench_fleet(factory: ToolFactory, env: Env, key: str, plan: Plan, want: set[str], res: Results) -> None:
    """50 idle programs: the daemon's RSS and idle CPU over a quiet window, then the CLI status wall time."""
    programs = [Program(f"idle-{i:02d}") for i in range(FLEET_SIZE)]
    names = [p.name for p in programs]
    tool = factory(env, env.workroot / key / "fleet")
    with session(tool, programs) as log:
        log.wait_names(names, LAUNCH_TIMEOUT_S)
        tool.wait_running(names)
        if "rss" in want:
            own = tool.supervisor_processes(log.pids())
            if isinstance(tool, Foss):
                before = sum(p.memory_info().rss for p in own) / 2**20
                tool.touch_dashboard()
                res.say(f"foss RSS before any dashboard request: {before:.1f} MiB (reported figure is after one "
                        "GET /health and one GET /api/status)")  # fmt: skip
            time.sleep(2.0)  # let start-up work settle before the quiet window
            own = tool.supervisor_processes(log.pids())
            cpu0, t0 = cpu_seconds(own), time.monotonic()
            time.sleep(plan.cpu_window_s)
            cpu1, t1 = cpu_seconds(own), time.monotonic()
            rss = sum(p.memory_info().rss for p in own) / 2**20
            res.add("cpu", key, (cpu1 - cpu0) / (t1 - t0) * 100)
            res.add("rss", key, rss)
            res.say(f"{key}: the supervisor is {len(own)} process(es): "
                    f"{', '.join(f'{p.pid} {p.name()}' for p in own)}")  # fmt: skip
            note(f"fleet {key}: RSS {rss:.1f} MiB, idle CPU {res.median('cpu', key):.2f} %")
        if "status" in want and key != "circus-fast":  # check_delay does not change what status costs
            argv = tool.status_argv()
            shown = tool.cli(argv).stdout
            missing = [n for n in names if n not in shown]
            if missing:
                raise BenchError(f"{key}: status does not list {missing[:3]}...")
            for _ in range(plan.status_runs):
                res.add("status", key, timed_run(argv, tool.daemon_env(), tool.workdir))
            note(f"status {key}: {res.median('status', key):.1f} ms")


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


def run_workloads(env: Env, plan: Plan, only: set[str], tools: Sequence[str], res: Results) -> None:
    if "crash" in only:
        background(res, "crash")
        per_slot = max(2, plan.crash_reps // 2)
        with Baselines(env) as baselines:
            for key in tools:
                guarded(res, "baselines", None, partial(baselines.sample, per_slot, res))
                tool = TOOLS[key](env, env.workroot / key / "crash")
                guarded(res, f"crash {key}", tool, partial(bench_crash, tool, plan.crash_reps, res))
            guarded(res, "baselines", None, partial(baselines.sample, per_slot, res))
        note(f"baselines: spawn {fmt(res.median('spawn', 'baseline'), 'ms')}, "
             f"floor {fmt(res.median('floor', 'baseline'), 'ms')}")  # fmt: skip
    # check_delay only changes restart detection and idle cost: circus-fast runs crash and rss only
    plain = [k for k in tools if k != "circus-fast"]
    if "cold" in only:
        background(res, "cold")
        for key in plain:
            guarded(res, f"cold {key}", None, partial(bench_cold, TOOLS[key], env, key, plan.cold_reps, res))
    if "stop" in only:
        background(res, "stop")
        for key in plain:
            guarded(res, f"stop {key}", None, partial(bench_stop, TOOLS[key], env, key, plan.stop_reps, res))
    fleet = only & {"rss", "status"}
    if fleet:
        background(res, "/".join(sorted(fleet)))
        for key in tools:
            if fleet == {"status"} and key == "circus-fast":
                continue
            guarded(res, f"fleet {key}", None, partial(bench_fleet, TOOLS[key], env, key, plan, fleet, res))
    background(res, "end")


# ------------------------------------------------------------------------------------------ report


def machine_info(env: Env) -> dict[str, str]:
    """What the figures depend on: cores, CPU, kernel, interpreters, tool versions, the commit measured."""

    def out(argv: Sequence[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"? ({exc})"
        return (done.stdout or done.stderr).strip()

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor() or "?")  # fmt: skip
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


def render(res: Results, info: dict[str, str], plan: Plan, elapsed_s: float, tools: Sequence[str]) -> str:
    """The Markdown report: machine, results with ratios, baselines, the issue's targets, notes."""
    cols = [k for k in COLUMNS if k in tools]
    md = ["# Supervisor benchmark", "", "## Machine", ""]
    md += [f"- **{k}**: {v}" for k, v in info.items()]
    md += ["", f"Plan: {plan}; the run took {elapsed_s:.0f} s. Medians. Every figure is a cost, so a ratio "
           "(foss-supervisor ÷ the other) below 1 favours foss-supervisor.", ""]  # fmt: skip
    others = [k for k in cols if k != "foss"]
    md.append("| workload | " + " | ".join(COLUMNS[k] for k in cols) + " | "
              + " | ".join(f"foss/{k}" for k in others) + " |")  # fmt: skip
    md.append("|---" * (1 + len(cols) + len(others)) + "|")
    for row in ROWS:
        cells = [fmt(value(res, row, k), row.unit) for k in cols]
        ratios = [ratio(value(res, row, "foss"), value(res, row, k)) for k in others]
        if any(c != "-" for c in cells):
            md.append(f"| {row.label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    md += ["", "## Baselines", "", "| baseline | median |", "|---|---|"]
    md += [f"| {row.label} | {fmt(value(res, row, 'baseline'), row.unit)} |" for row in BASELINE_ROWS]
    md += ["", "## Targets from issue 2 (foss-supervisor)", "", "| target | measured | met |", "|---|---|---|"]
    for target, measured, met in targets(res):
        md.append(f"| {target} | {measured} | {met} |")
    md += ["", "## Notes", ""] + [f"- {n}" for n in res.notes]
    md += ["", "## All samples", ""]
    for row in (*ROWS, *BASELINE_ROWS):
        for column, values in res.samples.get(row.key, {}).items():
            md.append(f"- {row.key} / {column}: " + ", ".join(f"{v:.4g}" for v in values))
    return "\n".join(md) + "\n"


def targets(res: Results) -> list[tuple[str, str, str]]:
    """The issue's targets, checked against this run's medians."""

    def check(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "**no**")

    m = res.median
    spawn, crash = m("spawn", "baseline"), m("crash", "foss")
    out = [(f"crash → restart ≤ 2 x bare spawn ({fmt(2 * spawn, 'ms') if spawn else '?'} here; ~30 ms in the issue)",
            fmt(crash, "ms"), check(None if crash is None or spawn is None else crash <= 2 * spawn))]  # fmt: skip
    cold, circus_cold = m("cold", "foss"), m("cold", "circus")
    out.append(("cold start of 50 ≤ circus", f"{fmt(cold, 's')} vs {fmt(circus_cold, 's')}",
                check(None if cold is None or circus_cold is None else cold <= circus_cold)))  # fmt: skip
    for key, how in (("stop_cli", "CLI"), ("stop_sig", "SIGTERM to daemon")):
        stop = m(key, "foss")
        out.append((f"stop ≤ 1.15 x the 1 s timeout ({how})", fmt(stop, "s"),
                    check(None if stop is None else stop <= 1.15 * STOP_TIMEOUT_S)))  # fmt: skip
    cpu = m("cpu", "foss")
    out.append(("idle CPU < 0.2 % with 50 programs", fmt(cpu, "% core"), check(None if cpu is None else cpu < 0.2)))
    st, sup = m("status", "foss"), m("status", "supervisord")
    out.append(("`foss-supervisor status` ≤ `supervisorctl status`", f"{fmt(st, 'ms')} vs {fmt(sup, 'ms')}",
                check(None if st is None or sup is None else st <= sup)))  # fmt: skip
    rss = m("rss", "foss")
    out.append(("daemon RSS < 60 MB with the dashboard up", fmt(rss, "MiB"),
                check(None if rss is None else rss * 2**20 < 60e6)))  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these workloads (repeat, or comma-separate): {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {', '.join(TOOLS)}")
    parser.add_argument("--foss-python", type=Path, default=REPO / ".venv" / "bin" / "python",
                        help="the interpreter with foss-supervisor installed (default: the repo's .venv)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory (configs, logs)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the random pauses before each kill")
    args = parser.parse_args(argv)  # fmt: skip
    args.only = {w.strip() for item in args.only for w in item.split(",") if w.strip()} or set(WORKLOADS)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for name in args.only - set(WORKLOADS):
        parser.error(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    for name in set(args.tools) - set(TOOLS):
        parser.error(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)
    plan = QUICK if args.quick else FULL
    foss_python = args.foss_python.absolute()
    if not foss_python.exists():
        sys.exit(f"{foss_python} does not exist: create the repo's venv first (see README.md)")
    bench_bin = ensure_bench_venv(foss_python)
    workroot = Path(tempfile.mkdtemp(prefix="bench-supervisors-"))
    env = Env(foss_python=bench_bin / "python", bench_bin=bench_bin, workroot=workroot,
              child_script=workroot / "child.py", floor_script=workroot / "floor.py")  # fmt: skip
    env.child_script.write_text(CHILD_SOURCE)
    env.floor_script.write_text(FLOOR_SOURCE)
    res = Results()
    started = time.monotonic()
    try:
        info = machine_info(env)
        for k, v in info.items():
            note(f"{k}: {v}")
        run_workloads(env, plan, args.only, args.tools, res)
    finally:
        if args.keep:
            note(f"work directory kept: {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    report = render(res, info, plan, time.monotonic() - started, args.tools)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(report)
    dump: dict[str, Any] = {"machine": info, "plan": str(plan), "samples": res.samples, "notes": res.notes}
    (RESULTS_DIR / "latest.json").write_text(json.dumps(dump, indent=1) + "\n")
    print(report)
    note(f"written to {RESULTS_DIR / 'latest.md'}")
    return 1 if any(n.startswith("FAILED") for n in res.notes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
