"""What the tests of every tier share: free ports, bounded waits, killing by PID, HTTP requests, and real
daemons run as subprocesses (:class:`DaemonHandle`).

Test modules import these (``from helpers import ...``; pyproject.toml puts ``tests/`` on the path); the
fixtures that use them live in ``tests/conftest.py``. Nothing here touches port 5000 or a real state dir,
so the suite can run beside a live daemon. Every process a test starts is cleaned up by PID (never
pkill/killall).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from foss_supervisor.base.resources import control_socket_path
from foss_supervisor.config import Config, parse_config
from foss_supervisor.control.client import call
from foss_supervisor.core.events import Event, EventBus, StateChanged, Subscription
from foss_supervisor.core.states import ProcessState
from foss_supervisor.core.statestore import StateStore
from foss_supervisor.core.supervisor import Supervisor

__all__ = [
    "PY",
    "REPO",
    "DaemonHandle",
    "Reply",
    "deep_dir",
    "free_port",
    "get",
    "is_gone",
    "kill_recorded_children",
    "kill_tree_by_pid",
    "make_config",
    "owner_headers",
    "py",
    "request",
    "state",
    "supervising",
    "until",
    "viewer_headers",
    "wait_for",
]

PY = sys.executable
#: the repository's root (tests/.. ): the package, configs/, docs/, README.md, benchmarks/
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Bounded poll with growing intervals; returns the first truthy value of ``check``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def deep_dir(tmp: Path, length: int) -> Path:
    """A folder under ``tmp`` whose path is ``length`` bytes long (not created)."""
    return tmp / ("d" * (length - len(os.fsencode(str(tmp))) - 1))


def is_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for its (re)parent to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_tree_by_pid(pid: int) -> None:
    """SIGKILL a process and every descendant we can still see (by PID, nothing else)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=5)


def kill_recorded_children(state_dir: Path) -> None:
    """Kill what a daemon recorded in children.json, checking the start time first."""
    path = state_dir / "children.json"
    if not path.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        for rec in json.loads(path.read_text()).values():
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, PermissionError):
                if abs(psutil.Process(rec["pid"]).create_time() - rec["create_time"]) < 0.01:
                    os.killpg(rec["pid"], signal.SIGKILL)


_STATE_DIRS: dict[int, Path] = {}  # dashboard port -> state dir of the daemon under test serving it


def owner_headers(port: int, file: str = "api-token") -> dict[str, str]:
    """The owner's token of the daemon under test on ``port`` as an ``Authorization`` header ({} if none)."""
    state_dir = _STATE_DIRS.get(port)
    if state_dir is None or not (state_dir / file).exists():
        return {}
    return {"Authorization": "Bearer " + (state_dir / file).read_text().strip()}


def viewer_headers(port: int) -> dict[str, str]:
    """The read-only token of the daemon under test on ``port`` as an ``Authorization`` header."""
    return owner_headers(port, "viewer-token")


# ------------------------------------------------------------------------------ a Supervisor in this process


def make_config(tmp: Path, programs: str) -> Config:
    """A parsed config with its state dir in ``tmp``; ``programs`` is the YAML under ``programs:`` (dedented)."""
    text = f"state_dir: {tmp / 'state'}\nprograms:\n" + textwrap.indent(textwrap.dedent(programs), "  ")
    return parse_config(text, tmp / "c.yaml", {})


def py(code: str) -> str:
    """A YAML flow list that runs ``code`` with this interpreter."""
    return f"[{PY!r}, '-c', {textwrap.dedent(code)!r}]"


@contextlib.asynccontextmanager
async def supervising(config: Config) -> AsyncIterator[tuple[Supervisor, Subscription]]:
    """A running :class:`Supervisor` of ``config`` and a subscription to its events; shut down (every program
    stopped, 30 s at most) on the way out."""
    bus = EventBus()
    sub = bus.subscribe(10_000)
    sup = Supervisor(config, bus, StateStore(config.state_dir))
    started, shutdown = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sup.run(started, shutdown))
    await asyncio.wait_for(started.wait(), 5)
    try:
        yield sup, sub
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 30)
        sub.close()


async def until(sub: Subscription, match: Callable[[Event], bool], timeout_s: float = 10.0) -> Event:
    """The first event of ``sub`` that ``match`` accepts; ``TimeoutError`` after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        async for event in sub:
            if match(event):
                return event
    raise AssertionError("the subscription ended")


def state(name: str, new: ProcessState) -> Callable[[Event], bool]:
    """Matches the event of program ``name`` entering ``new``."""
    return lambda e: isinstance(e, StateChanged) and e.name == name and e.new is new


# ------------------------------------------------------------------------------------------ HTTP


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: the status, the headers (names lower-cased) and the body's bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    target: str,
    body: bytes | str | Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 15.0,
) -> Reply:
    """One request to ``127.0.0.1:port`` on a connection of its own, sent as written.

    ``target`` goes on the request line unchanged (hostile paths stay hostile); no header is added but
    ``Host`` (unless ``headers`` has one) and ``Content-Length``. ``body``: bytes as they are, a str as
    UTF-8, anything else as JSON. An event stream's body never ends: for one, only the status and headers
    are read (``body`` is empty). Raises ``OSError`` when the connection fails or times out.
    """
    given = dict(headers or {})
    names = {k.lower() for k in given}
    data = body if isinstance(body, bytes) or body is None else body.encode() if isinstance(body, str) else None
    if data is None and body is not None:
        data = json.dumps(body).encode()
    if "content-length" not in names and (data is not None or method in ("POST", "PUT", "PATCH")):
        given["Content-Length"] = str(len(data or b""))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.putrequest(method, target, skip_host="host" in names, skip_accept_encoding=True)
        for key, value in given.items():
            conn.putheader(key, value)
        conn.endheaders(data)
        resp = conn.getresponse()
        got = {k.lower(): v for k, v in resp.getheaders()}
        streams = got.get("content-type", "").startswith("text/event-stream")
        return Reply(resp.status, got, b"" if streams else resp.read())
    finally:
        conn.close()


def get(port: int, target: str, headers: Mapping[str, str] | None = None, *, timeout_s: float = 15.0) -> Reply:
    """``GET target`` with the owner's token of the daemon under test on ``port`` (every read needs one);
    ``headers`` are added (and win)."""
    return request(port, "GET", target, headers={**owner_headers(port), **(headers or {})}, timeout_s=timeout_s)


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

    def start(self, *extra_args: str, wait_ready: bool = True) -> subprocess.Popen[bytes]:
        _STATE_DIRS[self.port] = self.state_dir
        argv = [PY, "-m", "foss_supervisor", "start", "--foreground", "--config", str(self.config_path), *extra_args]
        self.log = (self.tmp / "daemon.stderr").open("ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=self.env, start_new_session=True)
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
