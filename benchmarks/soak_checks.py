"""The soak's view of the world: the daemon it drives, the invariants it checks, the load it makes.

:class:`Fleet` starts and stops one daemon through the real CLI and checks, after every fault, that
no process is a zombie or an orphan, that no program runs twice, and that every wanted program is
RUNNING again within its backoff. Processes are recognised by the spawn tag every program inherits
(``<daemon instance>/<program>/<spawn>``) and only this fleet's instances count (other daemons on
the machine are left alone). :class:`HttpLoad` GETs the dashboard in a bounded loop;
:func:`hold_connections` opens idle and slow (trickling) connections. Loopback only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from foss_supervisor.base.poll import poll_until
from foss_supervisor.base.procinfo import all_stats, read_stat
from foss_supervisor.control.client import call
from foss_supervisor.core.containment import spawn_tag

__all__ = ["Fleet", "HttpLoad", "SoakError", "hold_connections"]

RECOVERY_BOUND_S = 15.0  # backoff max (2 s) + start timeout + a generous margin for a loaded 2-core host


class SoakError(Exception):
    """An invariant broke, or a fault was not survived."""


def _wait(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    value = poll_until(check, timeout_s)
    if not value:
        raise SoakError(f"timed out after {timeout_s:g} s waiting for {what}")
    return value


class Fleet:
    """One daemon (restarted as the faults demand) with its state folder, port and config."""

    def __init__(self, state: Path, port: int, config: Path) -> None:
        self.state = state
        self.port = port
        self.config = config
        self.socket = state / "control.sock"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FOSS_SUPERVISOR_")}
        self.env["FOSS_SUPERVISOR_PORT"] = str(port)
        self.instances: set[str] = set()
        self.instance = ""
        self.lost = {"programs not back in time": 0, "programs running twice": 0, "orphans": 0, "zombies": 0}
        self._since = read_stat(os.getpid()).start_ticks  # type: ignore[union-attr]
        self._samples: list[tuple[int, int]] = []

    # ------------------------------------------------------------------ driving the daemon

    def cli(self, *args: str, timeout_s: float = 180.0) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "foss_supervisor", args[0], "--config", str(self.config), *args[1:]]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=self.env)

    def start(self) -> None:
        result = self.cli("start")
        if not self.answers():
            raise SoakError(f"start failed (rc {result.returncode}): {(result.stdout + result.stderr)[-800:]}")
        self._samples = []

    def answers(self) -> bool:
        with contextlib.suppress(Exception):
            return call(self.socket, "ping", timeout_s=5.0).get("phase") == "ready"  # type: ignore[no-any-return]
        return False

    def daemon_pid(self) -> int:
        return int((self.state / "foss-supervisor.pid").read_text())

    def wait_daemon_gone(self) -> None:
        """Until the killed daemon is gone and its port free (a zombie leader may still have threads exiting)."""
        pid = self.daemon_pid()
        _wait(lambda: (st := read_stat(pid)) is None or st.zombie, 15, f"daemon {pid} gone")
        _wait(lambda: _port_free(self.port), 15, f"port {self.port} released by the killed daemon")

    def stop(self) -> None:
        """The real ``stop``; then anything of this fleet still alive is killed by PID (and counted)."""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.cli("stop", timeout_s=120)
        with contextlib.suppress(OSError, ValueError):
            pid = self.daemon_pid()
            if (st := read_stat(pid)) is not None and not st.zombie:
                os.kill(pid, 9)
        for st in self._tagged():
            with contextlib.suppress(OSError):
                os.kill(st.pid, 9)

    def recover(self, wanted: set[str]) -> None:
        """After a fault that was not survived: bring the daemon back so the next fault has a fleet."""
        if not self.answers():
            with contextlib.suppress(OSError, ValueError):
                os.kill(self.daemon_pid(), 9)
            self.start()
        self.check(wanted)

    # ------------------------------------------------------------------ looking at it

    def status(self) -> dict[str, Any]:
        return call(self.socket, "status", timeout_s=30.0)  # type: ignore[no-any-return]

    def program_pids(self) -> dict[str, int]:
        return {p["name"]: p["pid"] for p in self.status()["programs"] if p["state"] == "RUNNING" and p["pid"]}

    def problems(self) -> list[str]:
        """What the daemon shows as wrong: its problems (unhealthy) and warnings (degraded: a full disk)."""
        daemon = self.status()["daemon"]
        return [*daemon["problems"], *daemon["warnings"]]

    def wait_problems_cleared(self) -> None:
        seen: list[str] = []

        def cleared() -> bool:
            seen[:] = self.problems()
            return not seen

        try:
            _wait(cleared, 30, "daemon problems cleared")
        except SoakError as exc:  # say which, so a failed soak can be read without running it again
            raise SoakError(f"{exc}; still shown: {'; '.join(seen)[:600]}") from None

    def stderr_size(self) -> int:
        with contextlib.suppress(OSError):
            return (self.state / "foss-supervisor.stderr").stat().st_size
        return 0

    def wait_worker(self) -> int:
        def worker() -> int | None:
            for child in psutil.Process(self.daemon_pid()).children():
                with contextlib.suppress(psutil.Error):
                    if "foss_supervisor.pipeline.worker.server" in " ".join(child.cmdline()):
                        return child.pid
            return None

        return int(_wait(worker, 30, "the pipeline worker"))

    def wait_run_finished(self, run_id: str) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = call(self.socket, "pipeline_run_info", run_id=run_id, timeout_s=30.0)
            return run if run.get("finished_at") is not None else None

        return _wait(finished, 180, f"run {run_id} finished")  # type: ignore[no-any-return]

    def wait_step_running(self, run_id: str, skip: int = 0) -> bool:
        """Wait (bounded) until a step of the run is running, the ``skip``-th one or later; False if it ended first."""
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            run = call(self.socket, "pipeline_run_info", run_id=run_id, timeout_s=30.0)
            if run.get("finished_at") is not None:
                return False
            states = [s["state"] for s in run["steps"]]
            if "running" in states and states.index("running") >= min(skip, len(states) - 1):
                return True
            time.sleep(0.01)
        return False

    @property
    def resources(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(first, last) descriptors and RSS of the daemon's current life, from the checks' samples."""
        if not self._samples:
            return (0, 0), (0, 0)
        return (self._samples[0][0], self._samples[-1][0]), (self._samples[0][1], self._samples[-1][1])

    # ------------------------------------------------------------------ invariants

    def _tagged(self) -> list[Any]:
        """Live processes carrying a spawn tag of one of this fleet's daemon instances."""
        out = []
        for st in all_stats():
            if st.zombie or st.start_ticks < self._since:
                continue
            tag = spawn_tag(st.pid)
            if tag and tag.split("/")[0] in self.instances:
                out.append((st, tag))
        return out

    def check(self, wanted: set[str], replaced: frozenset[int] | set[int] = frozenset()) -> float:
        """Wait until every wanted program RUNNING (with a new PID where ``replaced``); then the invariants.

        Returns the seconds until all were back; raises :class:`SoakError` (and counts it in
        :attr:`lost`) when a program is not back within :data:`RECOVERY_BOUND_S`, runs twice, a
        process of an earlier daemon is left (orphan), or a zombie stays unreaped.
        """
        t0 = time.monotonic()

        def back() -> bool:
            pids = self.program_pids()
            return all(n in pids and pids[n] not in replaced for n in wanted)

        try:
            _wait(back, RECOVERY_BOUND_S, "every wanted program RUNNING")
        except SoakError:
            self.lost["programs not back in time"] += 1
            raise
        took = time.monotonic() - t0
        pids = self.program_pids()
        tag = spawn_tag(pids[min(wanted)]) or ""  # the daemon instance that runs the programs now
        self.instance = tag.split("/")[0]
        self.instances.add(self.instance)
        self._check_processes()
        daemon = psutil.Process(self.daemon_pid())
        self._samples.append((daemon.num_fds(), daemon.memory_info().rss))
        return took

    def _check_processes(self) -> None:
        def settled() -> list[str]:
            found = []
            leaders: dict[str, int] = {}
            for st, tag in self._tagged():
                instance, program = tag.split("/")[:2]
                if instance != self.instance:
                    found.append(f"orphan {st.pid} of an earlier daemon ({tag})")
                elif st.pid == st.pgid and "/probe" not in tag:
                    leaders[program] = leaders.get(program, 0) + 1
            found += [f"{p} runs {n} times" for p, n in leaders.items() if n > 1]
            zombies = [c.pid for c in psutil.Process(self.daemon_pid()).children() if _zombie(c)]
            found += [f"zombie {z}" for z in zombies]
            return found

        problems = settled()
        deadline = time.monotonic() + 5.0
        while problems and time.monotonic() < deadline:  # exits and reaping are asynchronous: a bounded grace
            time.sleep(0.1)
            problems = settled()
        for p in problems:
            key = (
                "orphans"
                if p.startswith("orphan")
                else "zombies"
                if p.startswith("zombie")
                else "programs running twice"
            )
            self.lost[key] += 1
        if problems:
            raise SoakError("; ".join(problems[:5]))

    def check_nothing_left(self) -> None:
        """No process of any of this fleet's daemons is alive (after a refused start)."""
        try:
            _wait(lambda: not self._tagged(), 15, "no process of a dead daemon left")
        except SoakError:
            self.lost["orphans"] += len(self._tagged())
            raise


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _zombie(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.status() == psutil.STATUS_ZOMBIE
    return False


class HttpLoad:
    """A thread GETting dashboard pages in a loop, bounded in count; counts answers and failures."""

    PATHS = ("/health", "/api/status", "/", "/metrics")

    def __init__(self, port: int, token_file: Path, max_requests: int = 2_000_000) -> None:
        self.port = port
        self.token_file = token_file  # every read needs the token: read once the daemon wrote it
        self._token = ""
        self.max_requests = max_requests
        self.ok = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="http-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def get(self, path: str, timeout_s: float = 5.0) -> int:
        if not self._token:
            with contextlib.suppress(OSError):
                self._token = self.token_file.read_text().strip()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            conn.request("GET", path, headers={"Accept": "application/json", "Authorization": f"Bearer {self._token}"})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def _loop(self) -> None:
        for i in range(self.max_requests):
            if self._stop.is_set():
                return
            try:
                self.get(self.PATHS[i % len(self.PATHS)])
                self.ok += 1
            except (OSError, http.client.HTTPException):
                self.failed += 1
                self._stop.wait(0.2)  # the daemon may be down (a kill or the port fault): do not spin
            self._stop.wait(0.01)


@contextlib.contextmanager
def hold_connections(port: int, idle: int, slow: int, hold_s: float = 3.0) -> Iterator[Callable[[], int]]:
    """Open ``idle`` silent and ``slow`` header-trickling connections for ``hold_s``; yields an open-count."""
    socks: list[socket.socket] = []
    trickling: list[socket.socket] = []
    stop = threading.Event()
    try:
        for i in range(idle + slow):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.settimeout(None)  # blocking: a MSG_DONTWAIT peek answers at once (a timeout would poll first)
            socks.append(s)
            if i >= idle:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                trickling.append(s)

        def trickle() -> None:
            for n in range(int(hold_s / 0.25) + 1):  # bounded
                if stop.wait(0.25):
                    return
                for s in trickling:
                    with contextlib.suppress(OSError):
                        s.sendall(f"X-Slow-{n}: 1\r\n".encode())

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()

        def still_open() -> int:
            n = 0
            for s in socks:
                try:
                    n += s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
                except BlockingIOError:
                    n += 1
                except OSError:
                    pass
            return n

        stop.wait(hold_s / 2)
        yield still_open
        stop.wait(hold_s / 2)
    finally:
        stop.set()
        for s in socks:
            s.close()
