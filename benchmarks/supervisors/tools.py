"""The three supervisors under test behind one interface: config, daemon, CLI, and clean-up by PID."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import subprocess
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from .common import (
    CIRCUS_DEFAULT_CHECK_DELAY_S,
    CIRCUS_FAST_CHECK_DELAY_S,
    CLI_TIMEOUT_S,
    LAUNCH_TIMEOUT_S,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    BenchError,
    Env,
    free_port,
    note,
    raise_nofile,
    tool_env,
)
from .observe import EventLog

__all__ = ["TOOLS", "Circus", "Foss", "Program", "Supervisord", "Tool", "ToolFactory", "session"]


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

    def longest_loop_step_ms(self) -> float | None:
        """The daemon's longest loop step so far, in ms, where the tool reports one (None: it does not)."""
        return None

    def daemon_env(self) -> dict[str, str]:
        return tool_env()

    # ---------------------------------------------------------------- shared

    def program_argv(self, program: Program) -> list[str]:
        return self.env.child_argv(self.events, program.name, program.ignore_term)

    def launch(self) -> None:
        """Start the daemon in its own session, with the open-files soft limit raised as for every tool."""
        with (self.workdir / "daemon.out").open("wb") as out:
            self.launched_ns = time.monotonic_ns()
            self.proc = subprocess.Popen(
                self.daemon_argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.daemon_env(),
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=raise_nofile,
            )

    def send_shutdown(self) -> None:
        """SIGTERM to the daemon: all three stop their programs, then exit."""
        if self.proc is not None and not self._shutdown_sent:
            self._shutdown_sent = True
            self.proc.send_signal(signal.SIGTERM)

    def cli(self, argv: Sequence[str], timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self.daemon_env(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
        )

    def wait_running(self, names: Collection[str], timeout_s: float = LAUNCH_TIMEOUT_S, poll_s: float = 0.1) -> int:
        """Poll the tool's own status until all ``names`` are running, so a kill is a crash, not a failed start.

        Returns the CLOCK_MONOTONIC time (ns) the status answer that first listed them all came back.
        """
        deadline = time.monotonic() + timeout_s
        while not set(names) <= self.running_names():
            if time.monotonic() > deadline:
                raise BenchError(f"{self.key}: not all of {len(names)} programs RUNNING after {timeout_s:g}s")
            time.sleep(poll_s)
        return time.monotonic_ns()

    def daemon_process(self) -> psutil.Process:
        """The daemon we launched (our own unreaped child, so its PID is still its own)."""
        if self.proc is None:
            raise BenchError(f"{self.key}: the daemon was never launched")
        return psutil.Process(self.proc.pid)

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
            note(
                f"{self.key}: killed {len(leftovers)} processes the daemon left behind: "
                f"{sorted(p.pid for p in leftovers)}"
            )


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
        return [
            str(self.env.foss_python),
            "-m",
            "foss_supervisor",
            "start",
            "--foreground",
            "--config",
            str(self.config),
        ]

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

    def longest_loop_step_ms(self) -> float | None:
        """``status --json``'s heartbeat: ``daemon.loop.max_lag_ever_s`` (how late a 0.25 s beat ever woke)."""
        done = self.cli([self.exe, "status", "--json", "--config", str(self.config)])
        if not done.stdout:
            return None
        lag = json.loads(done.stdout).get("daemon", {}).get("loop", {}).get("max_lag_ever_s")
        return None if lag is None else float(lag) * 1000

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
            "[unix_http_server]",
            f"file={sock}",
            "",
            "[supervisord]",
            f"logfile={self.workdir / 'supervisord.log'}",
            f"pidfile={self.workdir / 'supervisord.pid'}",
            f"childlogdir={self.workdir / 'childlogs'}",
            "nodaemon=true",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{sock}",
            "",
        ]
        for p in programs:
            command = shlex.join(self.program_argv(p))
            assert "%" not in command, "supervisord expands %(...)s in commands"
            lines += [
                f"[program:{p.name}]",
                f"command={command}",
                f"startsecs={START_TIMEOUT_S:g}",
                f"stopwaitsecs={STOP_TIMEOUT_S:g}",
                "",
            ]
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
            "[circus]",
            f"endpoint = {self.endpoint}",
            f"pubsub_endpoint = tcp://127.0.0.1:{free_port()}",
            "statsd = False",
            # an empty value turns off cluster discovery, which would otherwise join a UDP multicast group
            # on every interface: this benchmark talks to loopback only
            "multicast_endpoint =",
        ]
        if self.check_delay_s is not None:
            lines.append(f"check_delay = {self.check_delay_s:g}")
        lines.append("")
        for p in programs:
            lines += [
                f"[watcher:{p.name}]",
                f"cmd = {shlex.join(self.program_argv(p))}",
                "numprocesses = 1",
                f"graceful_timeout = {STOP_TIMEOUT_S:g}",
                "",
            ]
        self.conf.write_text("\n".join(lines))

    def daemon_argv(self) -> list[str]:
        return [str(self.env.bench_bin / "circusd"), "--log-output", str(self.workdir / "circusd.log"), str(self.conf)]

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
