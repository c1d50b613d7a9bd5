"""What every module of the benchmark shares: paths, settings, the plan, the results, errors, progress."""

from __future__ import annotations

import os
import resource
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BENCH_VENV",
    "CIRCUS_DEFAULT_CHECK_DELAY_S",
    "CIRCUS_FAST_CHECK_DELAY_S",
    "CLI_TIMEOUT_S",
    "EVENT_POLL_S",
    "FLEET_SIZE",
    "FULL",
    "LARGE_FLEET_SIZE",
    "LAUNCH_TIMEOUT_S",
    "PYCACHE_PREFIX",
    "QUICK",
    "REPO",
    "RESTART_TIMEOUT_S",
    "RESULTS_DIR",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "STUBBORN_COUNT",
    "WORKLOADS",
    "BenchError",
    "Env",
    "Plan",
    "Results",
    "free_port",
    "median",
    "nofile_target",
    "note",
    "raise_nofile",
    "tool_env",
]

BENCHMARKS = Path(__file__).resolve().parent.parent
REPO = BENCHMARKS.parent
BENCH_VENV = BENCHMARKS / ".venv-bench"
RESULTS_DIR = BENCHMARKS / "results"
# Bytecode cache for every daemon and CLI under test. This machine's environment sets PYTHONDONTWRITEBYTECODE,
# so without it a daemon would recompile its modules on every start; a prefix outside the source tree gives
# all three tools the cached bytecode of a normal install without writing into the repo.
PYCACHE_PREFIX = BENCH_VENV / "pycache"

# Settings every tool gets, so that they do the same work. Both start timeouts are the tools' defaults
# (foss start_timeout 1 s, supervisord startsecs 1 s; circus has no such notion: a process is "active"
# once spawned). The stop timeout is 1 s everywhere (foss stop_timeout, supervisord stopwaitsecs,
# circus graceful_timeout): workload 3 is about it, and it keeps every shutdown short.
START_TIMEOUT_S = 1.0
STOP_TIMEOUT_S = 1.0
CIRCUS_DEFAULT_CHECK_DELAY_S = 5.0  # circus' own default, from circus/config.py
CIRCUS_FAST_CHECK_DELAY_S = 0.1  # the fastest setting we call reasonable: it already costs a few % of a core
FLEET_SIZE = 50
LARGE_FLEET_SIZE = 1000  # the fleet workload's default (--fleet-size)
STUBBORN_COUNT = 10
# Generous bounds on every wait, so a hung tool fails its workload instead of hanging the run.
LAUNCH_TIMEOUT_S = 60.0
RESTART_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 60.0
EVENT_POLL_S = 0.002
# Ceiling for the open-files soft limit when the hard limit is unlimited.
NOFILE_CEILING = 1 << 20

_T0 = time.monotonic()


@dataclass(frozen=True, slots=True)
class Plan:
    """How many repetitions each workload gets; ``fleet_*`` are for the large-fleet workload."""

    crash_reps: int
    cold_reps: int
    stop_reps: int
    cpu_window_s: float
    status_runs: int
    fleet_reps: int  # fleet sessions per tool: each gives one cold start and one full stop
    fleet_crash_reps: int  # kills in the first session, each of another program
    fleet_status_runs: int


FULL = Plan(
    crash_reps=7,
    cold_reps=5,
    stop_reps=4,
    cpu_window_s=10.0,
    status_runs=20,
    fleet_reps=3,
    fleet_crash_reps=5,
    fleet_status_runs=10,
)
QUICK = Plan(
    crash_reps=3,
    cold_reps=2,
    stop_reps=2,
    cpu_window_s=4.0,
    status_runs=6,
    fleet_reps=1,
    fleet_crash_reps=3,
    fleet_status_runs=4,
)
WORKLOADS = ("crash", "cold", "stop", "rss", "status", "fleet")  # "rss" is RSS and idle CPU


class BenchError(Exception):
    """A workload could not be measured (a tool misbehaved or a bound was hit)."""


def note(message: str) -> None:
    """Progress on stderr, so stdout stays the report."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def tool_env() -> dict[str, str]:
    """Our environment for the daemons and CLIs under test: no foss overrides, the shared bytecode cache."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FOSS_SUPERVISOR_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_PREFIX)
    return env


def nofile_target() -> int:
    """The open-files soft limit every daemon gets: the hard limit (capped when that is unlimited)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard


def raise_nofile() -> None:
    """Raise this process' open-files soft limit to ``nofile_target()``; a ``preexec_fn`` for every daemon.

    The common default soft limit, 1,024, is below what any of the three needs for 1,000 programs (pipes,
    pidfds, log files), and only supervisord raises its own (``minfds``, 1,024 by default): every daemon
    starts with the same raised limit, so none is measured against a limit another does not meet.
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile_target(), hard))


def free_port() -> int:
    """A free loopback TCP port (never 5000, which belongs to a real dashboard)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 5000:
            return port


def median(values: Sequence[float]) -> float:
    """The median of ``values`` as a float (``values`` must not be empty)."""
    return float(statistics.median(values))


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
