"""One supervised program: its child process, its state machine, its restarts and its one stop path.

Each :class:`ManagedProcess` runs a controller coroutine (:meth:`ManagedProcess.run`) for its whole
life. Operators and the supervisor only change what is *wanted* and wake the controller; the
controller alone spawns, transitions and stops, so there is exactly one writer of the state.
A death is noticed at once: the loop's child watcher reaps our own child and calls
``process_exited`` on its protocol. (``asyncio.subprocess.Process.wait()`` is not enough: it also waits
for the pipes to close, which a grandchild holding stdout can delay forever.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.backoff import Backoff
from foss_supervisor.child import reap_stragglers, signal_group, stop_group
from foss_supervisor.config import ProgramConfig
from foss_supervisor.containment import SPAWN_ENV, Containment, ProcEntry, kill_all, proc_entry, spawn_tag
from foss_supervisor.events import EventBus, HealthChanged, StateChanged
from foss_supervisor.health import HealthMonitor, probe
from foss_supervisor.interpolate import read_env_file
from foss_supervisor.logsink import LogSink, StreamWriter
from foss_supervisor.readiness import NotifyListener
from foss_supervisor.sdnotify import without_systemd_environ
from foss_supervisor.states import Health, ProcessState, check_transition

__all__ = ["ManagedProcess", "child_environment", "read_env_file"]

log = structlog.get_logger("foss_supervisor.process")

S = ProcessState


def _account(user: str) -> pwd.struct_passwd:
    """The passwd entry a ``user:`` program runs as (by name or numeric uid)."""
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user: {user!r}") from None


def child_environment(cfg: ProgramConfig, base: Mapping[str, str]) -> dict[str, str]:
    """The environment a child gets: ours minus service-manager variables, then env_file, then env."""
    env = without_systemd_environ(base)  # the daemon's NOTIFY_SOCKET, WATCHDOG_*, LISTEN_* are not theirs
    if cfg.env_file is not None:
        env.update(read_env_file(cfg.env_file))
    env.update(cfg.env)
    env["FOSS_SUPERVISOR_PROGRAM"] = cfg.name
    if cfg.group != cfg.name:
        env["FOSS_SUPERVISOR_REPLICA"] = str(cfg.replica)
    return env


class MainPidExit:
    """Watches a main PID adopted through the subreaper (``pidfile:``) through its pidfd.

    ``exited`` resolves with its exit code (-1 when its own parent reaped it first) and ``exited_at``
    (monotonic) is set just before, like :class:`ChildProtocol`'s.
    """

    def __init__(self, pid: int) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = loop.create_future()
        self.exited_at = 0.0
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._done(-1)
            return

        def readable() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            code = -1
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
            self._done(code)

        loop.add_reader(fd, readable)

    def _done(self, code: int) -> None:
        if not self.exited.done():
            self.exited_at = time.monotonic()
            self.exited.set_result(code)


class ChildProtocol(asyncio.SubprocessProtocol):
    """Writes output chunks straight to the log sink and resolves ``exited`` the moment the child dies."""

    def __init__(self, sink: LogSink, stamp_stderr: bool) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._writers = {1: StreamWriter(sink, ""), 2: StreamWriter(sink, "stderr: " if stamp_stderr else "")}
        self._transport: asyncio.SubprocessTransport | None = None
        self.exited_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._writers[fd].feed(data if isinstance(data, bytes) else data.encode())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self._writers:
            self._writers[fd].feed(b"", final=True)

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        if not self.exited.done() and code is not None:
            self.exited_at = time.monotonic()
            self.exited.set_result(code)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class ManagedProcess:
    """A program under supervision. Mutate only through :meth:`start`, :meth:`stop`, :meth:`restart`."""

    def __init__(
        self,
        cfg: ProgramConfig,
        *,
        log_dir: Path,
        notify_dir: Path,
        bus: EventBus,
        dependencies_ready: Callable[[ProgramConfig], Awaitable[None]],
        on_spawn: Callable[[ManagedProcess], None] = lambda p: None,
        on_exit: Callable[[ManagedProcess], None] = lambda p: None,
        wanted: bool | None = None,
        containment: Containment | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.state = S.STOPPED
        self.health = Health.UNKNOWN
        self.health_detail = ""
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.started_at: float | None = None  # wall clock, for status
        self.spawns = 0
        self.reason = ""
        self.wanted = cfg.autostart if wanted is None else wanted
        self._bus = bus
        self._log_dir = log_dir
        self._notify_dir = notify_dir
        self._dependencies_ready = dependencies_ready
        self._on_spawn = on_spawn
        self._on_exit = on_exit
        self._backoff = Backoff(cfg.backoff)
        self._start_failures = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._restart_requested = False
        self._unhealthy = False
        self._transport: asyncio.SubprocessTransport | None = None
        self._protocol: ChildProtocol | None = None
        self._notify: NotifyListener | None = None
        self._sink: LogSink | None = None
        self._contain = containment or Containment()
        self._tag = ""  # this spawn's tag: inherited by every descendant, so escapees are found
        self._exit_watch: ChildProtocol | MainPidExit | None = None  # the supervised PID: leader or main PID
        self._pgid = 0  # the group a stop signals: the leader's own, or the main PID's (pidfile:)

    # ---------------------------------------------------------------- requests (any caller)

    @property
    def log_path(self) -> Path:
        return self.cfg.log.file or self._log_dir / f"{self.name}.log"

    def start(self) -> None:
        """Want it running; a FATAL program gets a fresh set of retries."""
        self.wanted = True
        self._start_failures = 0
        self._wake.set()

    def stop(self) -> None:
        """Want it stopped."""
        self.wanted = False
        self._wake.set()

    def restart(self) -> None:
        """Stop it if it runs, then start it again."""
        self.wanted = True
        self._start_failures = 0
        self._restart_requested = True
        self._wake.set()

    async def wait_settled(self, timeout_s: float) -> ProcessState:
        """Wait until the state matches what is wanted (RUNNING, or a stopped state); bounded."""
        async with asyncio.timeout(timeout_s):
            while not self._settled():
                self._changed.clear()
                await self._changed.wait()
        return self.state

    def _settled(self) -> bool:
        if self.wanted or self._restart_requested:
            return self.state is S.RUNNING and not self._restart_requested
        return self.state in (S.STOPPED, S.EXITED, S.FATAL)

    def snapshot(self) -> dict[str, Any]:
        """Plain data for status replies (no environment: it may hold secrets)."""
        now = time.time()
        return {
            "name": self.name,
            "group": self.cfg.group,
            "state": str(self.state),
            "health": str(self.health),
            "health_detail": self.health_detail,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "uptime_s": round(now - self.started_at, 3) if self.started_at and self.pid else None,
            "spawns": self.spawns,
            "wanted": "running" if self.wanted else "stopped",
            "reason": self.reason,
            "status_text": self._notify.status if self._notify is not None else "",
            "command": list(self.cfg.command),
            "depends_on": list(self.cfg.depends_on),
            "log_file": str(self.log_path),
        }

    # ---------------------------------------------------------------- the controller

    async def run(self) -> None:
        """Supervise until cancelled; on cancellation the child is stopped before this returns."""
        try:
            while True:
                self._wake.clear()
                if not self.wanted:
                    self._restart_requested = False
                    if self.state is S.BACKOFF:
                        self._transition(S.STOPPED, "stop requested while in backoff")
                    await self._wake.wait()
                    continue
                self._restart_requested = False
                if not await self._until_woken(self._dependencies_ready(self.cfg)):
                    continue
                await self._run_once()
        finally:
            if self._exit_watch is not None:
                await self._stop_child("daemon shutting down")

    def reset_after_error(self) -> None:
        """After a bug in this controller (run() raised; its ``finally`` stopped the child): back to STOPPED.

        The one move outside the transition table, on purpose: the state a crashed controller left
        behind may have no legal edge to where a fresh controller starts.
        """
        if self.state in (S.STOPPED, S.EXITED, S.FATAL):
            return
        old, self.state = self.state, S.STOPPED
        self.reason = "internal error in its controller; restarted"
        self._bus.publish(StateChanged(name=self.name, old=old, new=S.STOPPED, reason=self.reason))
        self._changed.set()

    async def _run_once(self) -> None:
        """Spawn once and supervise that child until it exits or is stopped."""
        self._transition(S.STARTING, "spawning")
        try:
            exited = await self._spawn_child()
        except (OSError, ValueError) as exc:
            self.exit_code = None
            await self._after_early_exit(f"spawn failed: {exc}")
            return
        probe_task: asyncio.Task[None] | None = None
        try:
            # STARTING: it must stay up for start_timeout_s (or send READY=1 within it) to count as RUNNING
            ready = self._notify.ready if self._notify is not None else None
            interrupt = await self._watch(exited, time.monotonic() + self.cfg.start_timeout_s, ready)
            if interrupt:
                await self._stop_child(f"{interrupt} while starting")
                return
            if exited.done() and self._exited_at - self._spawned_at < self.cfg.start_timeout_s:
                # a forking program's leader exits on purpose: what it started is its main PID, kept
                left = await self._reap(exited, end_left=self.cfg.pidfile is None)
                if self.cfg.pidfile is None:
                    await self._after_early_exit(f"exited with code {self.exit_code} during start", left)
                    return
                followed = await self._follow_pidfile()  # Type=forking: supervise the PID it wrote
                if followed is None:
                    return
                exited = followed
            if ready is not None and not ready.done():
                why = f"no READY=1 within {self.cfg.start_timeout_s:g}s"
                await self._stop_child(why, failed_start=True)
                await self._after_early_exit(why)
                return
            self._start_failures = 0
            became = "sent READY=1" if ready is not None else f"up for {self.cfg.start_timeout_s:g}s"
            self._transition(S.RUNNING, became)
            if self.cfg.health is not None:
                probe_task = asyncio.create_task(self._health_monitor().run())
            interrupt = await self._watch(exited, None)
            if probe_task is not None:
                probe_task.cancel()
            if interrupt:
                await self._stop_child(interrupt)
                if interrupt == "unhealthy":
                    self._unhealthy = False
                    await self._until_woken(asyncio.sleep(self._backoff.next_delay_s()))
                return
            ran_for = self._exited_at - self._spawned_at
            await self._reap(exited)
            self._backoff.observe_run(ran_for)
            self._transition(S.EXITED, f"exited with code {self.exit_code} after {ran_for:.3f}s")
            if self._should_restart():
                delay = self._backoff.next_delay_s()
                if delay:
                    await self._until_woken(asyncio.sleep(delay))
            else:
                self.wanted = False
        finally:
            if probe_task is not None:
                probe_task.cancel()

    async def _watch(self, exited: asyncio.Future[int], deadline: float | None,
                     ready: asyncio.Future[None] | None = None) -> str:  # fmt: skip
        """Wait for the child to exit, ``ready``, or ``deadline``; return why we must stop it instead, if so."""
        while not exited.done() and not (ready is not None and ready.done()):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return ""
            self._wake.clear()
            if not await self._until_woken(exited, timeout_s=remaining) and (reason := self._interrupt_reason()):
                return reason
        return ""

    def _interrupt_reason(self) -> str:
        if not self.wanted:
            return "stop requested"
        if self._unhealthy:
            return "unhealthy"
        if self._restart_requested:
            return "restart requested"
        return ""

    def _should_restart(self) -> bool:
        policy = self.cfg.autorestart
        if not self.wanted or policy == "never":
            return False
        return policy == "always" or self.exit_code not in self.cfg.exit_codes

    async def _after_early_exit(self, why: str, left: list[ProcEntry] | None = None) -> None:
        """A child that died in STARTING: BACKOFF and retry, or FATAL once retries are spent.

        A leader that exited cleanly but left processes running has daemonized itself: retrying would
        only start another copy, so it is FATAL at once (with what it left, already ended, named).
        """
        if left and self.exit_code in self.cfg.exit_codes:
            pids = ", ".join(str(e.pid) for e in left[:5])
            self._transition(S.BACKOFF, why)
            self.wanted = False
            self._transition(S.FATAL, f"daemonized itself: exited with code {self.exit_code} and left PID {pids} "
                             "running (ended); set `pidfile:` to supervise it (like systemd Type=forking) "
                             "or run it in the foreground")  # fmt: skip
            return
        self._start_failures += 1
        retries = self.cfg.start_retries
        if retries is not None and self._start_failures > retries:
            self._transition(S.BACKOFF, why)
            self.wanted = False  # given up: only an operator's start tries again
            self._transition(S.FATAL, f"{why}; gave up after {self._start_failures} attempts")
            return
        delay = self._backoff.next_delay_s()
        self._transition(S.BACKOFF, f"{why}; retry in {delay:.3f}s", retry_in_s=delay)
        await self._until_woken(asyncio.sleep(delay))

    async def _until_woken(self, aw: Awaitable[Any], timeout_s: float | None = None) -> bool:
        """Await ``aw`` unless a request wakes us first. True when ``aw`` finished (or timed out)."""
        task = asyncio.ensure_future(aw)
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({task, woken}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        if task in done or (not done and timeout_s is not None):
            if task in done and not task.cancelled():
                task.result()
            return True
        if not isinstance(aw, asyncio.Future):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return False

    # ---------------------------------------------------------------- the OS edge

    async def _spawn_child(self) -> asyncio.Future[int]:
        """Start the child; return the future that resolves with its exit code."""
        cfg = self.cfg
        env = child_environment(cfg, os.environ)
        self._tag = self._contain.tag(self.name, self.spawns + 1)
        env[SPAWN_ENV] = self._tag
        account = _account(cfg.user) if cfg.user else None
        if account is not None:
            env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
        if self._sink is None:
            self._sink = LogSink(self.log_path, cfg.log.max_bytes, cfg.log.backups, cfg.log.timestamps)
        try:
            if cfg.ready == "notify":
                self._notify = NotifyListener(self._notify_dir / f"{self.name}.sock", self._wake.set)
                await self._notify.open(account.pw_uid if account else None)
                env["NOTIFY_SOCKET"] = str(self._notify.path)
            self._spawned_at = time.monotonic()  # before the exec: a fast child may exit before it returns
            transport, protocol = await self._exec(env, account)
        except BaseException:
            self._close_notify()
            raise
        self._transport, self._protocol = transport, protocol
        self.started_at = time.time()
        self.pid = self._pgid = transport.get_pid()
        self.exit_code = None
        self.spawns += 1
        self._on_spawn(self)
        self._exit_watch = protocol
        return protocol.exited

    @property
    def _exited_at(self) -> float:
        return self._exit_watch.exited_at if self._exit_watch is not None else 0.0

    async def _exec(self, env: dict[str, str], account: pwd.struct_passwd | None
                    ) -> tuple[asyncio.SubprocessTransport, ChildProtocol]:  # fmt: skip
        cfg = self.cfg
        sink = self._sink
        assert sink is not None
        return await asyncio.get_running_loop().subprocess_exec(
            lambda: ChildProtocol(sink, cfg.log.timestamps),
            *cfg.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cfg.cwd,
            env=env,
            start_new_session=True,  # its own process group, so a stop reaches grandchildren
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=os.getgrouplist(account.pw_name, account.pw_gid) if account else None,
        )

    async def _reap(self, exited: asyncio.Future[int], end_left: bool = True) -> list[ProcEntry]:
        """Collect the exit code, end everything the spawn left running, close the pipes.

        Returns what was left running and (unless ``end_left`` is False) has now been killed:
        grandchildren must not outlive their program (Supervisor/supervisor#1101), not even those that
        left its process group.
        """
        self.exit_code = await exited
        self._contain.reaper.disown(self.pid or 0)
        left = self._contain.adopted(self._tag)
        if end_left:
            reap_stragglers(self._pgid, lambda: kill_all(left, signal.SIGKILL))
        if left and end_left:
            log.warning("left_processes_ended", program=self.name, pids=[e.pid for e in left[:20]], count=len(left))
        if self._transport is not None and self._protocol is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # let the pipes drain; a process outside the group may hold them
                    await asyncio.shield(self._protocol.closed)
            self._transport.close()
        self._transport = self._protocol = None
        self._exit_watch = None
        self._close_notify()
        self.pid = None
        self._on_exit(self)
        return left

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    async def _stop_child(self, reason: str, failed_start: bool = False) -> None:
        """The one stop path: stop_signal, bounded wait, SIGKILL to the group, reap.

        It runs in its own task and is awaited through a shield, so a caller that is cancelled
        (shutdown, reload) still waits for the child to be gone. A ``failed_start`` stop stays in
        STARTING (the caller moves on to BACKOFF) instead of passing through STOPPING and STOPPED.
        """
        task = asyncio.ensure_future(self._terminate(reason, failed_start))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
        task.result()
        if cancelled:
            raise asyncio.CancelledError

    async def _terminate(self, reason: str, failed_start: bool) -> None:
        assert self._exit_watch is not None and self.pid is not None
        exited = self._exit_watch.exited
        if not failed_start:
            self._transition(S.STOPPING, reason)
        # processes that left the group get the polite signal too, so they can shut down cleanly
        escaped = [e for e in self._contain.tree(self._tag, self.pid) if e.pgid != self._pgid]
        kill_all(escaped, self.cfg.stop_signal)

        def timed_out() -> None:
            log.warning("stop_timeout_kill", program=self.name, pid=self.pid, timeout_s=self.cfg.stop_timeout_s)
            kill_all(escaped, signal.SIGKILL)

        await stop_group(
            self._pgid, exited, stop_signal=self.cfg.stop_signal, timeout_s=self.cfg.stop_timeout_s,
            group=self.cfg.kill_group, on_timeout=timed_out,
        )  # fmt: skip
        await self._reap(exited)
        if not failed_start:
            self._transition(S.STOPPED, f"{reason}; exit code {self.exit_code}")

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the running program (its group, or its main PID alone); False when none runs."""
        if self._exit_watch is None or self._exit_watch.exited.done() or not self._pgid:
            return False  # reaped: the PID may belong to someone else now
        return signal_group(self._pgid if self.cfg.kill_group else (self.pid or 0), sig, group=self.cfg.kill_group)

    # ---------------------------------------------------------------- programs that fork (pidfile:)

    def _read_main_pid(self) -> tuple[int | None, str]:
        """The main PID from ``pidfile``, checked to be one this spawn started; or None and why not."""
        assert self.cfg.pidfile is not None
        try:
            text = self.cfg.pidfile.read_text(encoding="ascii", errors="replace").strip()
        except OSError as exc:
            return None, f"pidfile {self.cfg.pidfile} unreadable: {exc.strerror or exc}"
        if not text.isdigit():
            return None, f"pidfile {self.cfg.pidfile} holds {text[:40]!r}, not a PID"
        pid = int(text)
        entry = proc_entry(pid)
        if entry is None or entry.zombie:
            return None, f"pidfile {self.cfg.pidfile} names PID {pid}, which is not running"
        if spawn_tag(pid) != self._tag and entry.ppid != os.getpid():
            return None, f"pidfile {self.cfg.pidfile} names PID {pid}, which this program did not start"
        return pid, ""

    async def _follow_pidfile(self) -> asyncio.Future[int] | None:
        """Type=forking: the leader exited; supervise the main PID it wrote. None when that failed."""
        code = self.exit_code
        if code not in self.cfg.exit_codes:
            await self._after_early_exit(f"exited with code {code} before its pidfile named a main PID")
            return None
        # the pidfile may be written a moment after the leader exits: a bounded poll (no event exists)
        deadline = self._spawned_at + max(self.cfg.start_timeout_s, 1.0)
        pid, why = self._read_main_pid()
        while pid is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            pid, why = self._read_main_pid()
        if pid is None:
            kill_all(self._contain.adopted(self._tag), signal.SIGKILL)
            await self._after_early_exit(why)
            return None
        entry = proc_entry(pid)
        self._pgid = entry.pgid if entry is not None and entry.pgid != os.getpgid(0) else 0
        self.pid = pid
        self._contain.reaper.own(pid)
        self._on_spawn(self)
        log.info("main_pid_followed", program=self.name, pid=pid, pidfile=str(self.cfg.pidfile))
        self._exit_watch = MainPidExit(pid)
        return self._exit_watch.exited

    # ---------------------------------------------------------------- events

    def _transition(self, new: ProcessState, reason: str, retry_in_s: float | None = None) -> None:
        old = self.state
        check_transition(old, new)
        self.state = new
        self.reason = reason
        if new in (S.STOPPED, S.EXITED, S.FATAL, S.BACKOFF, S.STARTING):
            self.health = Health.UNKNOWN
            self.health_detail = ""
        event = StateChanged(
            name=self.name, old=old, new=new, pid=self.pid, exit_code=self.exit_code, reason=reason,
            retry_in_s=retry_in_s,
        )  # fmt: skip
        self._bus.publish(event)
        self._changed.set()

    def _health_monitor(self) -> HealthMonitor:
        """Probes for this spawn, in its environment; an exec probe's tag lets what escapes it be ended too."""
        assert self.cfg.health is not None
        tag = self._contain.tag(self.name, f"{self.spawns}/probe")
        env = {**child_environment(self.cfg, os.environ), SPAWN_ENV: tag}

        def sweep() -> int:
            return kill_all(self._contain.adopted(tag), signal.SIGKILL)

        return HealthMonitor(self.cfg.health, self._health_changed, functools.partial(probe, env=env, sweep=sweep))

    def _health_changed(self, health: Health, detail: str) -> None:
        old = self.health
        self.health, self.health_detail = health, detail
        self._bus.publish(HealthChanged(name=self.name, old=old, new=health, detail=detail))
        self._changed.set()
        if health is Health.UNHEALTHY:
            self._unhealthy = True
            self._wake.set()
