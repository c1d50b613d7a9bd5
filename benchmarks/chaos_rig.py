"""The chaos suite's daemon under test and its steady observers: the killer, the CLI probe, health recovery.

- :func:`start_daemon`: a foreground daemon in a temporary state dir on a free port (never 5000), with
  ``programs`` copies of the benchmark child (it stamps ``CLOCK_MONOTONIC`` into a shared file as its first
  act, see ``supervisors/install.py``), under an open-files limit that sets the dashboard's connection cap;
- :class:`Killer`: SIGKILLs a random program every ``interval_s`` and times crash -> restart from the
  child's own stamp, as ``web_load.py`` does; a kill not followed by a restart is recorded as such;
- :class:`CliProbe`: ``foss-supervisor status --json`` every ``period_s``, wall time from launch to exit;
- :func:`health_back_s`: how long until ``/api/v1/health`` answers 200 again.

Every record carries the phase it was taken in (:class:`Phases`). :func:`stop_daemon` ends the daemon and
then kills, by PID, anything it started that is still there.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from supervisors.common import BenchError, free_port
from supervisors.install import CHILD_SOURCE
from supervisors.observe import EventLog, stop_leftovers

from foss_supervisor.control.client import call

__all__ = ["CliProbe", "Daemon", "Killer", "Phases", "health_back_s", "start_daemon", "stop_daemon"]

RESTART_TIMEOUT_S = 5.0  # a kill not followed by a restart within this is a failure
RESET_AFTER_S = 1.0  # the programs' backoff reset: a program that ran this long restarts at once
CLI_TIMEOUT_S = 10.0


class Phases:
    """The name of the phase now running, read by the observer threads as they record."""

    def __init__(self) -> None:
        self.name = "start"


@dataclass
class Daemon:
    """A daemon under test: where it lives and what it started."""

    tmp: Path
    port: int
    config: Path
    sock: Path
    proc: subprocess.Popen[bytes]
    watch: EventLog
    token: str
    names: list[str]
    services: dict[int, psutil.Process] = field(default_factory=dict)  # the dashboard processes seen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def dashboard(self) -> dict[str, Any]:
        """The ``@dashboard`` service of ``status`` (pid, spawns, state...), remembered for clean-up."""
        services = call(self.sock, "status", timeout_s=5)["services"]
        dash = next(s for s in services if s["name"] == "@dashboard")
        if dash.get("pid") and dash["pid"] not in self.services:
            with contextlib.suppress(psutil.Error):
                self.services[dash["pid"]] = psutil.Process(dash["pid"])
        return dict(dash)

    def footprint(self) -> dict[str, dict[str, float]]:
        """RSS (MB) and open descriptors of the daemon and of the dashboard process now, each named."""
        procs = {"daemon": psutil.Process(self.proc.pid)}
        pid = self.dashboard().get("pid")
        if pid in self.services:
            procs["dashboard"] = self.services[pid]
        figures = {}
        for name, proc in procs.items():
            with contextlib.suppress(psutil.Error):
                figures[name] = {"rss_mb": round(proc.memory_info().rss / 2**20, 1), "fds": proc.num_fds()}
        return figures

    def log_errors(self) -> dict[str, Any]:
        """ERROR-level lines of the daemon's and the dashboard's logs (JSON lines): how many, and each distinct
        (event, exception's last line) with its count and the first one's traceback tail."""
        found: dict[str, Any] = {}
        for name, path in (
            ("daemon", self.tmp / "daemon.stderr"),
            ("dashboard", self.tmp / "state/logs/@dashboard.log"),
        ):
            kinds: dict[str, dict[str, Any]] = {}
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            for line in lines:
                if '"level": "error"' not in line and '"level": "critical"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"event": line[:200]}
                trace = str(entry.get("exception") or "").strip()
                key = f"{entry.get('event')}: {trace.splitlines()[-1] if trace else ''}"
                kind = kinds.setdefault(key, {"count": 0, "first": trace[-1500:]})
                kind["count"] += 1
            found[name] = {"count": sum(k["count"] for k in kinds.values()), "kinds": kinds}
        return found


def _limit_nofile(nofile: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))


def start_daemon(tmp: Path, programs: int, nofile: int) -> Daemon:
    """Start the daemon (RLIMIT_NOFILE ``nofile``, soft and hard) and wait until every program has started."""
    (tmp / "child.py").write_text(CHILD_SOURCE)
    events = tmp / "events"
    port = free_port()
    names = [f"p{i:02d}" for i in range(programs)]
    lines = [f"state_dir: {tmp / 'state'}", f"dashboard: {{port: {port}}}", "programs:"]
    for name in names:
        argv = [sys.executable, "-I", "-S", str(tmp / "child.py"), str(events), name]
        lines.append(
            f"  {name}: {{command: {json.dumps(argv)}, start_timeout: 0.1, "
            f"backoff: {{reset_after: {RESET_AFTER_S:g}s}}}}"
        )
    config = tmp / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    argv = [sys.executable, "-m", "foss_supervisor", "start", "--foreground", "--config", str(config)]
    log = (tmp / "daemon.stderr").open("wb")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=log, start_new_session=True, preexec_fn=lambda: _limit_nofile(nofile)
    )
    sock = tmp / "state" / "control.sock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(Exception):  # not up yet: no socket, or still starting
            if call(sock, "ping", timeout_s=2)["phase"] == "ready":
                watch = EventLog(events)
                watch.wait_names(names, 60)
                daemon = Daemon(
                    tmp, port, config, sock, proc, watch, (tmp / "state/api-token").read_text().strip(), names
                )
                if health_back_s(daemon.port, time.monotonic(), 30) is None:
                    raise BenchError("the dashboard never answered /api/v1/health with 200")
                daemon.dashboard()
                return daemon
        time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=30)
    raise BenchError("daemon not ready: " + (tmp / "daemon.stderr").read_text()[-2000:])


def stop_daemon(daemon: Daemon) -> int | None:
    """SIGTERM the daemon (SIGKILL after 60 s), then kill by PID every program and dashboard process it left;
    returns the daemon's exit code (None when it had to be killed)."""
    code: int | None = None
    with contextlib.suppress(Exception):  # gone already: its PID is still ours to reap
        daemon.dashboard()
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
    try:
        code = daemon.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        daemon.proc.wait(timeout=30)
    stop_leftovers(daemon.watch)
    for proc in daemon.services.values():
        with contextlib.suppress(psutil.Error):
            if proc.is_running():  # the same process (psutil compares its start time), not a reused PID
                proc.kill()
    daemon.watch.close()
    return code


def health_back_s(port: int, since: float, timeout_s: float = 10.0) -> float | None:
    """Seconds from ``since`` (monotonic) until ``GET /api/v1/health`` answers 200; None if not within
    ``timeout_s``."""
    while time.monotonic() - since < timeout_s:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return time.monotonic() - since
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.02)
    return None


@dataclass(frozen=True, slots=True)
class Kill:
    """One kill: the phase, the program, crash -> restart in ms (None: no restart within the timeout), and the
    floor taken right after it: a bare spawn of the same child by this script, in ms."""

    phase: str
    name: str
    restart_ms: float | None
    floor_ms: float | None


class Killer(threading.Thread):
    """SIGKILL one random program every ``interval_s`` (uniform in the range) and time its restart, then
    a bare spawn of the same child: the floor under the same load (on 2 busy cores the child waits for a
    CPU too, whoever spawns it).

    Only programs that have run ``RESET_AFTER_S`` since their last start are picked: a shorter run would
    make the next crash a crash loop, which the restart policy answers with a backoff (policy, not latency).
    Kills wait while :attr:`paused` is set (while the dashboard's recovery is measured: a program restarting
    makes ``/api/v1/health`` say 503, which is the programs' health, not the dashboard's).
    """

    def __init__(self, daemon: Daemon, phases: Phases, interval_s: tuple[float, float], seed: int) -> None:
        super().__init__(name="chaos-killer", daemon=True)
        self._daemon, self._phases, self._interval_s = daemon, phases, interval_s
        self._rng = random.Random(seed)
        self.kills: list[Kill] = []
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()  # set while no kill is under way
        self.idle.set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.wait(self._rng.uniform(*self._interval_s)):
                if not self.paused.is_set():
                    self.idle.clear()
                    try:
                        self._kill_one()
                    finally:
                        self.idle.set()
        except BaseException as exc:  # reported by the suite, which then fails
            self.error = exc

    def _kill_one(self) -> None:
        watch = self._daemon.watch
        now = time.monotonic_ns()
        ready = [n for n in self._daemon.names if now - watch.latest(n).t_ns >= (RESET_AFTER_S + 0.2) * 1e9]
        if not ready:
            return
        name = self._rng.choice(ready)
        line = watch.latest(name)
        try:
            fd = os.pidfd_open(line.pid)
        except ProcessLookupError:
            return  # exited on its own since: not ours to time
        try:
            try:
                watch.process(line)  # still the child that wrote the line (checked after opening the pidfd)
            except BenchError:
                return
            phase = self._phases.name
            t0 = time.monotonic_ns()
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        finally:
            os.close(fd)
        try:
            new = watch.wait_line(lambda ln: ln.name == name and ln.t_ns > t0, RESTART_TIMEOUT_S, f"restart of {name}")
        except BenchError:
            self.kills.append(Kill(phase, name, None, None))
            return
        self.kills.append(Kill(phase, name, (new.t_ns - t0) / 1e6, self._floor_ms()))

    def _floor_ms(self) -> float | None:
        """ms from Popen of the same child, by this script, in a session of its own, to its start stamp."""
        name = f"floor-{len(self.kills)}"
        argv = [sys.executable, "-I", "-S", str(self._daemon.tmp / "child.py"), str(self._daemon.tmp / "events"), name]
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            line = self._daemon.watch.wait_line(lambda ln: ln.name == name, RESTART_TIMEOUT_S, f"start of {name}")
            return (line.t_ns - t0) / 1e6
        except BenchError:
            return None
        finally:
            proc.kill()
            proc.wait(timeout=10)


@dataclass(frozen=True, slots=True)
class Probe:
    """One ``status`` run: the phase, its wall time (s), exit code, the loop's lag it reported (s), and the
    daemon's own answer time to the same command sent from this process (s; None: no answer)."""

    phase: str
    wall_s: float
    code: int | None
    lag_s: float | None
    answer_s: float | None


class CliProbe(threading.Thread):
    """``foss-supervisor status --json`` every ``period_s``, timed from launch to exit; then the same command
    straight over the control socket from this process, which tells the daemon's share of the CLI's time
    from the CLI's own start-up (an interpreter and its imports, which wait for a CPU on a busy machine)."""

    def __init__(self, daemon: Daemon, phases: Phases, period_s: float = 0.5) -> None:
        super().__init__(name="chaos-cli-probe", daemon=True)
        cli = Path(sys.executable).with_name("foss-supervisor")
        base = [str(cli)] if cli.exists() else [sys.executable, "-m", "foss_supervisor"]
        self._argv = [*base, "status", "--json", "--config", str(daemon.config)]
        self._sock = daemon.sock
        self._phases, self._period_s = phases, period_s
        self.probes: list[Probe] = []
        self.stopping = threading.Event()
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopping.wait(self._period_s):
            phase = self._phases.name
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                self._argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            try:
                out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            wall = time.perf_counter() - t0
            lag = None
            if proc.returncode in (0, 3):  # 3: a program is not as wanted (one just killed)
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    lag = float(json.loads(out)["daemon"]["loop"]["lag_s"])
            elif len(self.failures) < 20:
                self.failures.append(f"{phase}: status exited {proc.returncode}: {err.decode(errors='replace')[-300:]}")
            answer: float | None = time.perf_counter()
            try:
                call(self._sock, "status", timeout_s=CLI_TIMEOUT_S)
                answer = time.perf_counter() - answer
            except Exception:  # counted as no answer: the CLI's run above says why
                answer = None
            self.probes.append(Probe(phase, wall, proc.returncode, lag, answer))
