"""Watching children without being their parent: start lines, exits through pidfds, CPU time, CLI wall time."""

from __future__ import annotations

import contextlib
import os
import random
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from .common import CLI_TIMEOUT_S, EVENT_POLL_S, RESTART_TIMEOUT_S, STOP_TIMEOUT_S, BenchError, note

__all__ = [
    "DeathWatch",
    "EventLog",
    "Line",
    "cpu_seconds",
    "kill_and_time",
    "stop_leftovers",
    "time_stop",
    "timed_run",
]


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
        self.path = path
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

    def wait_names(
        self, names: Collection[str], timeout_s: float, after: int = 0, poll_s: float = EVENT_POLL_S
    ) -> dict[str, Line]:
        """The first line of each of ``names`` among lines ``after`` onwards, waiting for the missing ones.

        Each line is looked at once, so waiting for 1,000 programs costs this script little CPU beside the
        tool under test; ``poll_s`` only sets how soon the wait notices, never a measured time.
        """
        deadline = time.monotonic() + timeout_s
        wanted = set(names)
        firsts: dict[str, Line] = {}
        checked = after
        while True:
            self.poll()
            for line in self.lines[checked:]:
                if line.name in wanted:
                    firsts.setdefault(line.name, line)
            checked = max(checked, len(self.lines))
            if len(firsts) == len(wanted):
                return firsts
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(firsts)} of {len(wanted)} programs started within {timeout_s:g}s")
            time.sleep(poll_s)

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
    """pidfds on processes that are not our children: wait() tells the moment each one exits."""

    def __init__(self, procs: Sequence[psutil.Process]) -> None:
        self._fds: dict[int, int] = {}  # pidfd -> pid
        self.exited_ns: dict[int, int] = {}  # pid -> CLOCK_MONOTONIC time (ns) its exit was seen
        try:
            for proc in procs:
                fd = os.pidfd_open(proc.pid)
                self._fds[fd] = proc.pid
                if not proc.is_running():  # checked after opening, so the pidfd is that very process
                    raise BenchError(f"pid {proc.pid} exited before the measurement")
        except BaseException:
            self.close()
            raise

    def wait(self, timeout_s: float) -> int:
        """Block until every process has exited; return the CLOCK_MONOTONIC time (ns) of the last exit.

        Each exit time is also kept in ``exited_ns``. Raises ``BenchError`` after ``timeout_s``.
        """
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
                    self.exited_ns[self._fds[fd]] = last
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


def time_stop(
    log: EventLog,
    names: Sequence[str],
    ask: Callable[[], subprocess.Popen[bytes] | None],
    daemon: psutil.Process | None = None,
    timeout_s: float = STOP_TIMEOUT_S * 10 + 30,
) -> tuple[float, float | None]:
    """Seconds from ``ask()`` (a stop request) until every child of ``names`` has exited, and until ``daemon``
    has exited (``None`` without one). A CLI that ``ask()`` returns is waited for and must exit 0 (else noted)."""
    procs = [log.process(log.latest(name)) for name in names]
    watch = DeathWatch([*procs, daemon] if daemon is not None else procs)
    cli: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.monotonic_ns()
        cli = ask()
        watch.wait(timeout_s)
        if cli is not None:
            cli.wait(timeout=CLI_TIMEOUT_S)
            if cli.returncode != 0:
                note(f"stop command {cli.args!r} exited {cli.returncode}")
    finally:
        watch.close()
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)
    last = max(watch.exited_ns[p.pid] for p in procs)
    gone = None if daemon is None else (watch.exited_ns[daemon.pid] - t0) / 1e9
    return (last - t0) / 1e9, gone


def stop_leftovers(log: EventLog) -> None:
    """Kill, by PID, every child in ``log`` that still runs."""
    alive = [p for p in log.processes() if p.is_running()]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def timed_run(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one command in ms, from Popen to its exit, seen through a pidfd.

    Not ``subprocess.run(timeout=...)``: ``Popen.wait(timeout)`` polls with sleeps that grow to 50 ms,
    which rounds every measurement up to the next step.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
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
