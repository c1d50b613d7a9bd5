"""One supervised program: its child process, its state machine, its restarts and its one stop path.

Each :class:`ManagedProcess` runs a controller coroutine (:meth:`ManagedProcess.run`) for its whole
life. Operators and the supervisor only change what is *wanted* and wake the controller; the
controller alone spawns, transitions and stops, so there is exactly one writer of the state.
A death is noticed at once: the loop's child watcher reaps our own child and calls
``process_exited`` on its protocol. (``asyncio.subprocess.Process.wait()`` is not enough: it also waits
for the pipes to close, which a grandchild holding stdout can delay forever.)

Restart policy is apart from the OS edge: the controller reaches the world only through its
:class:`Seams` (clock, wall clock, sleep, and a :class:`ChildEdge` that spawns, signals and reaps),
so tests drive the policy with a fake child on virtual time (``tests/test_policy.py``) beside the
real-process tier. The real edge is this module's ``_spawn_child``/``_exec``/``_signal``/``_reap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from foss_supervisor.backoff import Backoff
from foss_supervisor.config import RLIM_INFINITY, ProgramConfig
from foss_supervisor.events import EventBus, HealthChanged, StateChanged
from foss_supervisor.health import HealthMonitor
from foss_supervisor.logsink import LogSink, StreamWriter
from foss_supervisor.readiness import NotifyListener
from foss_supervisor.sdnotify import without_systemd_environ
from foss_supervisor.states import STOPPED_STATES, Health, ProcessState, check_transition

__all__ = ["ChildEdge", "ManagedProcess", "Seams", "child_argv", "child_environment", "read_env_file"]

log = structlog.get_logger("foss_supervisor.process")

S = ProcessState


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (``#`` comments, optional ``export`` and quotes), as docker/systemd do."""
    out: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


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


def child_argv(cfg: ProgramConfig) -> tuple[str, ...]:
    """The argv to exec: the command, behind ``prlimit(1)`` when the program sets resource limits.

    Limits must be set in the child between fork and exec. ``preexec_fn`` would do it, but it runs
    Python in the forked child, which is not safe while the daemon has threads (it does: the web
    import, DNS); ``prlimit(2)`` on the PID after spawn races with the program's own start. util-linux's
    ``prlimit`` sets them and then execs the command in the same process, so the PID we watch is the
    program's and the limits are in place before its first instruction. (``umask`` needs no helper:
    it is a ``Popen`` argument applied in the child by the C fork code.)
    """
    if not cfg.rlimits:
        return cfg.command
    tool = shutil.which("prlimit")
    if tool is None:
        raise FileNotFoundError("rlimits need the prlimit tool (util-linux) on the daemon's PATH")

    def value(v: int) -> str:
        return "unlimited" if v == RLIM_INFINITY else str(v)

    limits = [f"--{name}={value(soft)}:{value(hard)}" for name, (soft, hard) in sorted(cfg.rlimits.items())]
    return (tool, *limits, "--", *cfg.command)


class ChildEdge(Protocol):
    """The OS edge of one program: what the controller asks of a child, and nothing else."""

    async def spawn(self) -> tuple[int, asyncio.Future[int]]:
        """Start the child; return its PID and a future that resolves with its exit code (-N: signal N).

        Raises :class:`OSError` or :class:`ValueError` when it cannot be started.
        """
        ...

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child (to its group when the program says so); a no-op once it is reaped."""
        ...

    async def reap(self, exited: asyncio.Future[int]) -> None:
        """After ``exited`` resolves: end stragglers, close pipes and readiness sockets."""
        ...


@dataclass(frozen=True, slots=True)
class Seams:
    """Everything a :class:`ManagedProcess` takes from the world; tests swap in fakes.

    ``child`` builds the program's :class:`ChildEdge`; None means the real one (this module's
    ``_spawn_child``, ``_signal`` and ``_reap``). Clocks are in seconds.
    """

    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    child: Callable[[ManagedProcess], ChildEdge] | None = None


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
    """A program under supervision. Mutate only through :meth:`start`, :meth:`stop`, :meth:`restart`.

    ``blockers(cfg)`` names the dependencies not yet ready (e.g. ``["db (FATAL)"]``); ``changed()``
    returns once anything may have changed them. Both come from the supervisor.
    """

    def __init__(
        self,
        cfg: ProgramConfig,
        *,
        log_dir: Path,
        notify_dir: Path,
        bus: EventBus,
        blockers: Callable[[ProgramConfig], list[str]] = lambda cfg: [],
        changed: Callable[[], Awaitable[object]] | None = None,
        on_spawn: Callable[[ManagedProcess], None] = lambda p: None,
        on_exit: Callable[[ManagedProcess], None] = lambda p: None,
        wanted: bool | None = None,
        seams: Seams = Seams(),  # frozen, so one shared default is safe
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
        self.next_attempt_at: float | None = None  # wall clock of the next spawn while in BACKOFF
        self._seams = seams
        self._bus = bus
        self._log_dir = log_dir
        self._notify_dir = notify_dir
        self._blockers = blockers
        self._deps_changed = changed
        self._on_spawn = on_spawn
        self._on_exit = on_exit
        self._backoff = Backoff(cfg.backoff)
        self._start_failures = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._restart_requested = False
        self._unhealthy = False
        self._exited: asyncio.Future[int] | None = None  # set while a child of ours exists
        self._exited_at: float | None = None
        self._spawned_at = 0.0
        self._transport: asyncio.SubprocessTransport | None = None
        self._protocol: ChildProtocol | None = None
        self._notify: NotifyListener | None = None
        self._sink: LogSink | None = None
        edge = seams.child(self) if seams.child is not None else None
        self._spawn = edge.spawn if edge is not None else self._spawn_child
        self._send = edge.signal if edge is not None else self._signal
        self._reap_child = edge.reap if edge is not None else self._reap

    # ---------------------------------------------------------------- requests (any caller)

    @property
    def log_path(self) -> Path:
        return self.cfg.log.file or self._log_dir / f"{self.name}.log"

    def start(self) -> None:
        """Want it running; a FATAL program gets a fresh set of retries."""
        self.wanted = True
        self._fresh_retries()
        self._wake.set()

    def stop(self) -> None:
        """Want it stopped."""
        self.wanted = False
        self._wake.set()

    def restart(self) -> None:
        """Stop it if it runs, then start it again."""
        self.wanted = True
        self._fresh_retries()
        self._restart_requested = True
        self._wake.set()

    def _fresh_retries(self) -> None:
        self._start_failures = 0
        self._backoff.reset()

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
        return self.state in STOPPED_STATES

    @property
    def completed(self) -> bool:
        """It ran to its end, will not be restarted, and exited with an expected code (a one-shot job done)."""
        return self.state is S.EXITED and not self.wanted and self.exit_code in self.cfg.exit_codes

    def snapshot(self) -> dict[str, Any]:
        """Plain data for status replies (no environment: it may hold secrets).

        ``next_attempt_at`` (epoch seconds) and ``retry_in_s`` are set while a spawn is scheduled
        (BACKOFF); ``completed`` is true for a job that ended with an expected code and is not restarted.
        """
        now = self._seams.wall_clock()
        retry_in = None if self.next_attempt_at is None else round(max(0.0, self.next_attempt_at - now), 3)
        return {
            "name": self.name,
            "group": self.cfg.group,
            "state": str(self.state),
            "health": str(self.health),
            "health_detail": self.health_detail,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "completed": self.completed,
            "uptime_s": round(now - self.started_at, 3) if self.started_at and self.pid else None,
            "spawns": self.spawns,
            "wanted": "running" if self.wanted else "stopped",
            "reason": self.reason,
            "next_attempt_at": self.next_attempt_at,
            "retry_in_s": retry_in,
            "status_text": self._notify.status if self._notify is not None else "",
            "command": list(self.cfg.command),
            "depends_on": list(self.cfg.depends_on),
            "dependency_conditions": {d: self.cfg.condition_for(d) for d in self.cfg.depends_on},
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
                if not await self._dependencies_met():
                    continue
                await self._run_once()
        finally:
            if self._exited is not None:
                # a child exists only in STARTING or RUNNING; anything else is stopped without an edge
                await self._stop_child("daemon shutting down", quiet=self.state not in (S.STARTING, S.RUNNING))

    def reset_after_error(self) -> None:
        """After a bug in this controller (run() raised; its ``finally`` stopped the child): back to STOPPED.

        The one move outside the transition table, on purpose: the state a crashed controller left
        behind may have no legal edge to where a fresh controller starts.
        """
        self.next_attempt_at = None
        if self.state in STOPPED_STATES:
            return
        old, self.state = self.state, S.STOPPED
        self.reason = "internal error in its controller; restarted"
        self._bus.publish(StateChanged(name=self.name, old=old, new=S.STOPPED, reason=self.reason))
        self._changed.set()

    async def _dependencies_met(self) -> bool:
        """Wait until no dependency blocks us, showing what we wait for as the reason. False: woken first."""
        announced = False
        while blockers := self._blockers(self.cfg):
            why = f"waiting for {', '.join(blockers)}"
            if self.state is S.BACKOFF:  # no spawn is scheduled while we wait
                self._transition(S.STOPPED, why)
            elif why != self.reason:
                self.reason = why
                self._changed.set()
            if not announced:
                log.info("waiting_for_dependencies", program=self.name, blockers=blockers)
                announced = True
            self._wake.clear()
            assert self._deps_changed is not None, "a program with dependencies needs changed()"
            if not await self._until_woken(self._deps_changed()):
                return False
        return True

    async def _run_once(self) -> None:
        """Spawn once and supervise that child until it exits or is stopped."""
        self._transition(S.STARTING, "spawning")
        try:
            exited = await self._launch()
        except (OSError, ValueError) as exc:
            self.exit_code = None
            await self._after_failed_start(f"spawn failed: {exc}")
            return
        start_timeout = self.cfg.start_timeout_s
        probe_task: asyncio.Task[None] | None = None
        try:
            # STARTING: it must stay up for start_timeout_s (or send READY=1 within it) to count as RUNNING
            ready = self._notify.ready if self._notify is not None else None
            interrupt = await self._watch(exited, self._spawned_at + start_timeout, ready)
            if interrupt:
                await self._stop_child(f"{interrupt} while starting")
                return
            if exited.done() and self._ran_for() < start_timeout:
                await self._collect(exited)
                why = f"exited with code {self.exit_code} during start"
                if self._should_restart():
                    await self._after_failed_start(why)
                else:  # a one-shot job that is done (or a failed one its policy does not restart)
                    self.wanted = False
                    self._transition(S.EXITED, why)
                return
            if ready is not None and not ready.done():
                why = f"no READY=1 within {start_timeout:g}s"
                await self._stop_child(why, quiet=True)
                await self._after_failed_start(why)
                return
            self._start_failures = 0
            became = "sent READY=1" if ready is not None else f"up for {start_timeout:g}s"
            self._transition(S.RUNNING, became)
            if self.cfg.health is not None:
                monitor = HealthMonitor(self.cfg.health, self._health_changed, sleep=self._seams.sleep)
                probe_task = asyncio.create_task(monitor.run())
            interrupt = await self._watch(exited, None)
            if probe_task is not None:
                probe_task.cancel()
            if interrupt:
                await self._stop_child(interrupt)
                if interrupt == "unhealthy":
                    self._unhealthy = False
                    await self._backoff_wait("stopped as unhealthy")
                return
            ran_for = self._ran_for()
            await self._collect(exited)
            self._backoff.observe_run(ran_for)
            self._transition(S.EXITED, f"exited with code {self.exit_code} after {ran_for:.3f}s")
            if self._should_restart():
                await self._backoff_wait(f"exited with code {self.exit_code}")
            else:
                self.wanted = False
        finally:
            if probe_task is not None:
                probe_task.cancel()

    async def _watch(self, exited: asyncio.Future[int], deadline: float | None,
                     ready: asyncio.Future[None] | None = None) -> str:  # fmt: skip
        """Wait for the child to exit, ``ready``, or ``deadline``; return why we must stop it instead, if so."""
        while not exited.done() and not (ready is not None and ready.done()):
            remaining = None if deadline is None else deadline - self._seams.monotonic()
            if remaining is not None and remaining <= 0:
                return ""
            self._wake.clear()
            waiting = exited if remaining is None else self._exit_or_timeout(exited, remaining)
            if not await self._until_woken(waiting) and (reason := self._interrupt_reason()):
                return reason
        return ""

    async def _exit_or_timeout(self, exited: asyncio.Future[int], timeout_s: float) -> None:
        """Return when the child exits or ``timeout_s`` passes on the seams' clock, whichever is first."""
        timer = asyncio.ensure_future(self._seams.sleep(timeout_s))
        either: list[asyncio.Future[Any]] = [exited, timer]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()

    def _ran_for(self) -> float:
        end = self._exited_at if self._exited_at is not None else self._seams.monotonic()
        return end - self._spawned_at

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

    async def _after_failed_start(self, why: str) -> None:
        """A start that failed (died early, spawn failed, no READY): BACKOFF and retry, or FATAL once spent."""
        self._start_failures += 1
        retries = self.cfg.start_retries
        if retries is not None and self._start_failures > retries:
            self._transition(S.BACKOFF, why)
            self.wanted = False  # given up: only an operator's start tries again
            self._transition(S.FATAL, f"{why}; gave up after {self._start_failures} attempts")
            return
        await self._backoff_wait(why, force=True)

    async def _backoff_wait(self, why: str, force: bool = False) -> None:
        """Wait the next backoff delay in BACKOFF (a zero delay respawns at once unless ``force``)."""
        delay = self._backoff.next_delay_s()
        if not delay and not force:
            return
        self.next_attempt_at = self._seams.wall_clock() + delay
        self._transition(S.BACKOFF, f"{why}; retry in {delay:.3f}s", retry_in_s=delay)
        try:
            await self._until_woken(self._seams.sleep(delay))
        finally:
            self.next_attempt_at = None

    async def _until_woken(self, aw: Awaitable[Any]) -> bool:
        """Await ``aw`` unless a request wakes us first. True when ``aw`` finished."""
        task = asyncio.ensure_future(aw)
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        if task in done:
            if not task.cancelled():
                task.result()
            return True
        if not isinstance(aw, asyncio.Future):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return False

    # ---------------------------------------------------------------- child bookkeeping (policy side)

    async def _launch(self) -> asyncio.Future[int]:
        """Spawn through the edge and record the child; nothing after the spawn can lose it."""
        pid, exited = await self._spawn()
        self._exited, self._exited_at = exited, None
        exited.add_done_callback(self._note_exit)
        self._spawned_at = self._seams.monotonic()
        self.started_at = self._seams.wall_clock()
        self.pid = pid
        self.exit_code = None
        self.spawns += 1
        try:
            self._on_spawn(self)
        except Exception:  # recording it for leftover cleanup failed (disk full, EMFILE): it runs, tracked
            log.exception("spawn_record_failed", program=self.name, pid=pid)
        return exited

    def _note_exit(self, exited: asyncio.Future[int]) -> None:
        self._exited_at = self._seams.monotonic()

    async def _collect(self, exited: asyncio.Future[int]) -> None:
        """Reap through the edge, then record the exit code and forget the child."""
        await exited
        await self._reap_child(exited)
        self.exit_code = exited.result()
        self._exited = None
        self.pid = None
        self._on_exit(self)

    async def _stop_child(self, reason: str, quiet: bool = False) -> None:
        """The one stop path: stop_signal, bounded wait, SIGKILL to the group, reap.

        It runs in its own task and is awaited through a shield, so a caller that is cancelled
        (shutdown, reload) still waits for the child to be gone. A ``quiet`` stop (a failed start, or a
        child found in a state with no STOPPING edge) takes no edge: the caller decides the state.
        """
        task = asyncio.ensure_future(self._terminate(reason, quiet))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
        task.result()
        if cancelled:
            raise asyncio.CancelledError

    async def _terminate(self, reason: str, quiet: bool) -> None:
        exited = self._exited
        assert exited is not None
        if not quiet:
            self._transition(S.STOPPING, reason)
        self._send(self.cfg.stop_signal)
        await self._exit_or_timeout(exited, self.cfg.stop_timeout_s)
        if not exited.done():
            log.warning("stop_timeout_kill", program=self.name, pid=self.pid, timeout_s=self.cfg.stop_timeout_s)
            self._send(signal.SIGKILL)
        await self._collect(exited)
        if not quiet:
            self._transition(S.STOPPED, f"{reason}; exit code {self.exit_code}")

    # ---------------------------------------------------------------- the OS edge

    async def _spawn_child(self) -> tuple[int, asyncio.Future[int]]:
        """Start the child; return its PID and the future that resolves with its exit code."""
        cfg = self.cfg
        env = child_environment(cfg, os.environ)
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
            transport, protocol = await self._exec(env, account)
        except BaseException:
            self._close_notify()
            raise
        self._transport, self._protocol = transport, protocol
        return transport.get_pid(), protocol.exited

    async def _exec(self, env: dict[str, str], account: pwd.struct_passwd | None
                    ) -> tuple[asyncio.SubprocessTransport, ChildProtocol]:  # fmt: skip
        cfg = self.cfg
        sink = self._sink
        assert sink is not None
        return await asyncio.get_running_loop().subprocess_exec(
            lambda: ChildProtocol(sink, cfg.log.timestamps),
            *child_argv(cfg),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cfg.cwd,
            env=env,
            start_new_session=True,  # its own process group, so a stop reaches grandchildren
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=os.getgrouplist(account.pw_name, account.pw_gid) if account else None,
            umask=-1 if cfg.umask is None else cfg.umask,  # set by the C fork code, no Python in the child
        )

    async def _reap(self, exited: asyncio.Future[int]) -> None:
        """Once it exited: end stragglers in the group and close the pipes (the caller records the code)."""
        await exited
        if self.cfg.kill_group and self.pid is not None:
            # grandchildren must not outlive their program (Supervisor/supervisor#1101); the group id
            # cannot be reused while any member lives, so this never reaches a stranger
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        assert self._transport is not None and self._protocol is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):  # let the pipes drain; a process outside the group may hold them
                await asyncio.shield(self._protocol.closed)
        self._transport.close()
        self._transport = self._protocol = None
        self._close_notify()

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def _signal(self, sig: signal.Signals) -> None:
        transport = self._transport
        if transport is None or transport.get_returncode() is not None:
            return  # reaped: the PID may belong to someone else now
        with contextlib.suppress(ProcessLookupError):
            if self.cfg.kill_group:
                os.killpg(transport.get_pid(), sig)
            else:
                transport.send_signal(sig)

    # ---------------------------------------------------------------- events

    def _transition(self, new: ProcessState, reason: str, retry_in_s: float | None = None) -> None:
        old = self.state
        check_transition(old, new)
        self.state = new
        self.reason = reason
        if new not in (S.RUNNING, S.STOPPING):
            self.health = Health.UNKNOWN
            self.health_detail = ""
        event = StateChanged(
            name=self.name, old=old, new=new, pid=self.pid, exit_code=self.exit_code, reason=reason,
            retry_in_s=retry_in_s,
        )  # fmt: skip
        self._bus.publish(event)
        self._changed.set()

    def _health_changed(self, health: Health, detail: str) -> None:
        old = self.health
        self.health, self.health_detail = health, detail
        self._bus.publish(HealthChanged(name=self.name, old=old, new=health, detail=detail))
        self._changed.set()
        if health is Health.UNHEALTHY:
            self._unhealthy = True
            self._wake.set()
