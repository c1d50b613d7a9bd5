"""Real daemons under test, run as subprocesses in the foreground (:class:`DaemonHandle`, the ``daemon``
fixture of tests/conftest.py), and the tokens a request to one needs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import psutil

from foss_supervisor.base.resources import control_socket_path
from foss_supervisor.control.client import call

from .system import PY, kill_recorded_children, kill_tree_by_pid, wait_for

__all__ = ["DaemonHandle", "owner_headers", "stranger", "viewer_headers", "write_graph_host"]


_STATE_DIRS: dict[int, Path] = {}  # dashboard port -> state dir of the daemon under test serving it


def config_literal(text: str) -> str:
    """What an operator writes in an interpolated config value (a command's argument, an env value, a
    ``secrets:`` entry) for ``text`` to arrive as it is: ``$`` doubled, and each run of ``%`` before ``(``."""
    return re.sub(r"%+(?=\()", lambda m: m.group() * 2, text).replace("$", "$$")


def owner_headers(port: int, file: str = "api-token") -> dict[str, str]:
    """The owner's token of the daemon under test on ``port`` as an ``Authorization`` header ({} if none)."""
    state_dir = _STATE_DIRS.get(port)
    if state_dir is None or not (state_dir / file).exists():
        return {}
    return {"Authorization": "Bearer " + (state_dir / file).read_text().strip()}


def viewer_headers(port: int) -> dict[str, str]:
    """The read-only token of the daemon under test on ``port`` as an ``Authorization`` header."""
    return owner_headers(port, "viewer-token")


class DaemonHandle:
    """A daemon under test, run in the foreground as a real subprocess."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.tmp = tmp
        self.port = port
        self.state_dir = tmp / "state"
        self.config_path = tmp / "config.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_pids: list[int] = []
        self.env = {**os.environ, "FOSS_SUPERVISOR_PORT": str(port)}
        self.env.pop("FOSS_SUPERVISOR_CONFIG", None)
        self.env.pop("FOSS_SUPERVISOR_STATE_DIR", None)

    def write_config(self, programs: str = "programs: {}", extra: str = "") -> Path:
        body = f"state_dir: {self.state_dir}\ndashboard: {{port: {self.port}}}\n{extra}\n"
        self.config_path.write_text(body + textwrap.dedent(programs))
        return self.config_path

    @property
    def socket_path(self) -> Path:
        return control_socket_path(self.state_dir)

    def cli(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the real CLI against this daemon's config."""
        argv = [PY, "-m", "foss_supervisor", *args[:1], "--config", str(self.config_path), *args[1:]]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=self.env)
        pid = self.read_pid()
        if pid and (not self.proc or pid != self.proc.pid) and pid not in self.extra_pids:
            self.extra_pids.append(pid)
        return result

    def read_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.state_dir / "foss-supervisor.pid").read_text())
        return None

    def start(
        self, *extra_args: str, wait_ready: bool = True, config: str | None = None, **popen: Any
    ) -> subprocess.Popen[bytes]:
        """``start --foreground`` on this daemon's config (spelled ``config`` when given, e.g. relative to a
        ``cwd``) in a session of its own, its output in ``daemon.stderr``; ``popen`` goes to ``Popen`` as is
        (``cwd``, ``preexec_fn``). Waits until it is ready unless ``wait_ready`` is False."""
        _STATE_DIRS[self.port] = self.state_dir
        spelled = str(self.config_path) if config is None else config
        argv = [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", spelled, *extra_args]
        self.log = (self.tmp / "daemon.stderr").open("ab")
        self.proc = subprocess.Popen(
            argv, stdout=self.log, stderr=self.log, env=self.env, start_new_session=True, **popen
        )
        if wait_ready:
            self.wait_ready()
        return self.proc

    def ping(self) -> dict[str, Any] | None:
        try:
            return call(self.socket_path, "ping", timeout_s=2.0)  # type: ignore[no-any-return]
        except Exception:
            return None

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.stderr()}")
            pong = self.ping()
            return bool(pong and pong["phase"] == "ready")

        wait_for(ready, timeout_s, "daemon ready")

    def call(self, cmd: str, **args: Any) -> Any:
        return call(self.socket_path, cmd, timeout_s=30.0, **args)

    def bearer(self) -> dict[str, str]:
        """The owner's token as an ``Authorization`` header: every HTTP read needs a token."""
        return owner_headers(self.port)

    def viewer(self) -> dict[str, str]:
        """The read-only token as an ``Authorization`` header."""
        return viewer_headers(self.port)

    def program(self, name: str) -> dict[str, Any]:
        status = self.call("status")
        return next(p for p in status["programs"] if p["name"] == name)

    def stderr(self) -> str:
        path = self.tmp / "daemon.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        pids = [p for p in ([self.proc.pid] if self.proc else []) + self.extra_pids]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_tree_by_pid(self.proc.pid)
                self.proc.wait(timeout=5)
        for pid in self.extra_pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).wait(timeout=15)
            kill_tree_by_pid(pid)
        kill_recorded_children(self.state_dir)
        if hasattr(self, "log"):
            self.log.close()


# a server on the port that looks like us in every way but the proof; SIGTERM is written down, not obeyed
_STRANGER = r"""
import fcntl, json, os, signal, socket, sys, threading, time
port, marks, lock_dir = sys.argv[1:4]
opens_lock, answers, locks_other = map(int, sys.argv[4:7])
signal.signal(signal.SIGTERM, lambda *a: open(marks, "a").write("SIGTERM\n"))
held = []
if opens_lock:  # our lock file's name, open, never locked
    held.append(open(os.path.join(lock_dir, "foss-supervisor.lock"), "a+"))
    held[-1].write("f" * 32 + "\n"); held[-1].flush()
if locks_other:  # a lock it does hold, on a file of another name
    held.append(open(os.path.join(lock_dir, "foss-supervisor.pid"), "a+"))
    fcntl.flock(held[-1], fcntl.LOCK_EX)
if answers:  # a control socket that answers anything with a forged pong
    unix = socket.socket(socket.AF_UNIX); unix.bind(os.path.join(lock_dir, "control.sock")); unix.listen()
    def serve():
        while True:
            conn, _ = unix.accept()
            conn.recv(65536)
            pong = {"pong": True, "pid": os.getpid(), "phase": "ready", "instance": "f" * 32}
            conn.sendall(json.dumps({"v": 1, "id": 1, "ok": True, "result": pong}).encode() + b"\n")
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(port))); s.listen(8)
print("up", flush=True)
while True:
    time.sleep(1)
"""


def stranger(
    tmp: Path, port: int, words: list[str], opens_lock: bool, answers: bool, locks_other: bool
) -> tuple[subprocess.Popen[str], Path]:
    """Start a server on ``port`` that looks like a daemon of ours in every way but the proof (its argv holds
    ``words``): it may hold our lock file's name open unlocked (``opens_lock``), answer pings on a control
    socket in ``tmp`` with a forged pong (``answers``), hold a lock on another file (``locks_other``).
    Returns it (up, in its own session; end it by PID) and the file where it writes each SIGTERM it ignores."""
    marks = tmp / "signals.txt"
    flags = [str(int(x)) for x in (opens_lock, answers, locks_other)]
    proc = subprocess.Popen(
        [PY, "-c", _STRANGER, str(port), str(marks), str(tmp), *flags, *words],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    return proc, marks


def write_graph_host(daemon: DaemonHandle) -> Path:
    """The graph tests' host: a collector feeding orders' landing folder, an api needing a gold table and
    depending on the collector, and both shipped pipelines (trips after orders), none running on its own.
    Returns the landing folder."""
    landing = daemon.tmp / "data" / "landing" / "orders"
    daemon.write_config(
        f"""
programs:
  collector: {{command: "sleep 1000", feeds: ["{landing}"]}}
  api: {{command: "sleep 1000", needs: [gold.daily_revenue], depends_on: [collector]}}
pipelines:
  orders: {{demo_data: false, on_new_files: false}}
  trips: {{demo_data: false, on_new_files: false, after: [orders]}}
""",
        extra=f"data_dir: {daemon.tmp / 'data'}",
    )
    return landing
