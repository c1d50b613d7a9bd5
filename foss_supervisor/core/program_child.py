"""The OS edge of one program: spawn its child, watch it, signal it, stop it, reap it, follow a forked main PID.

:class:`ProgramChild` is the real :class:`~foss_supervisor.core.process.ChildEdge`; the restart policy in
:mod:`foss_supervisor.core.process` reaches the operating system only through it, so the policy can be
tested with a fake edge on virtual time. A death is noticed at once: the loop's child watcher reaps
our own child and calls ``process_exited`` on its protocol. (``asyncio.subprocess.Process.wait()`` is
not enough: it also waits for the pipes to close, which a grandchild holding stdout can delay
forever.) Every descendant carries the spawn's tag (:mod:`foss_supervisor.core.containment`), so what
escapes the process group is found and ended too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

import structlog

from foss_supervisor.base.procinfo import ProcStat, read_stat
from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.config import RLIM_INFINITY, HealthConfig, ProgramConfig
from foss_supervisor.config.interpolate import read_env_file
from foss_supervisor.config.programs import user_account
from foss_supervisor.core.child import Child, reap_stragglers, signal_group, spawn, stop_group
from foss_supervisor.core.containment import SPAWN_ENV, Containment, kill_all, spawn_tag, tree_of
from foss_supervisor.core.health import probe
from foss_supervisor.core.logsink import LogSink, OutputTail, StreamWriter
from foss_supervisor.core.readiness import LogLineWatch, NotifyListener
from foss_supervisor.systemd.notify import without_systemd_environ

__all__ = [
    "MainPidExit",
    "ProgramChild",
    "child_argv",
    "child_environment",
    "halted_tree",
    "read_env_file",
]

log = structlog.get_logger("foss_supervisor.core.process")

# process states (/proc/PID/stat) in which a program cannot answer anything, whatever its probe asks
_HALTED = {"T": "stopped", "t": "stopped by a debugger", "Z": "a zombie", "X": "dead"}
#: a leader that lived less than this is looked after once more, RELOOK_S later, when nothing it left was
#: seen: the kernel's list of the daemon's children can miss an orphan that is being re-parented to it at the
#: moment it is read (a program that daemonizes itself exits at once, while its fork is re-parented)
SHORT_LIFE_S = 0.5
RELOOK_S = 0.05


def halted_tree(main: ProcStat, members: Iterable[ProcStat]) -> str:
    """Why a program cannot answer, judged on its whole process tree, or "".

    It is halted when its main process is (stopped by SIGSTOP or a debugger, a zombie, dead) *and* no
    other process of the program (``members``: its main's subtree and its escaped descendants) runs:
    a main that exited or stopped while its workers still serve is not halted.
    """
    if main.state not in _HALTED:
        return ""
    if any(m.pid != main.pid and m.state not in _HALTED for m in members):
        return ""
    return f"process {main.pid} is {_HALTED[main.state]} (state {main.state}): it cannot answer"


def _account(user: str) -> pwd.struct_passwd:
    """The passwd entry a ``user:`` program runs as (by name or numeric uid)."""
    try:
        return user_account(user)
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
    import, the child watcher); ``prlimit(2)`` on the PID after spawn races with the program's own
    start. util-linux's ``prlimit`` sets them and then execs the command in the same process, so the
    PID we watch is the program's and the limits hold before its first instruction. (``umask`` needs
    no helper: it is a ``Popen`` argument applied in the child by the C fork code.)
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


class MainPidExit:
    """Watches a main PID adopted through the subreaper (``pidfile:``) through its pidfd.

    ``exited`` resolves with its exit code (-1 when its own parent reaped it first) and ``exited_at``
    (monotonic) is set just before, like :class:`~foss_supervisor.core.child.Child`'s.
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


class ProgramChild:
    """The real child edge of one program (see :class:`~foss_supervisor.core.process.ChildEdge` for the contract).

    ``wake`` is called when a readiness message arrives (the controller then looks at :attr:`ready`).
    """

    def __init__(
        self,
        cfg: ProgramConfig,
        *,
        log_path: Path,
        containment: Containment,
        wake: Callable[[], None],
        write_failures: WriteFailures | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.pid: int | None = None
        self._log_path = log_path
        self._contain = containment
        self._wake = wake
        self._child: Child | None = None
        self._notify: NotifyListener | None = None
        self._log_watch: LogLineWatch | None = None  # ready: {log: REGEX}
        self._sink: LogSink | None = None
        self._tail = OutputTail()  # the current (or last) spawn's last output
        self._write_failures = write_failures or WriteFailures()
        self._tag = ""  # this spawn's tag: inherited by every descendant, so escapees are found
        self._exit_watch: Child | MainPidExit | None = None  # the supervised PID: leader or main PID
        self._pgid = 0  # the group a stop signals: the leader's own, or the main PID's (pidfile:)
        self._spawned_mono = 0.0  # when the current spawn began (monotonic)
        self._serial = 0

    @property
    def ready(self) -> asyncio.Future[None] | None:
        """Resolves at READY=1 (``ready: notify``) or a matching line (``ready: {log: ...}``); None for the others."""
        if self._log_watch is not None:
            return self._log_watch.ready
        return self._notify.ready if self._notify is not None else None

    @property
    def status_text(self) -> str:
        """The last STATUS= the program sent, for status replies."""
        return self._notify.status if self._notify is not None else ""

    @property
    def watchdog_ping_at(self) -> float | None:
        """Monotonic seconds of the current spawn's last ``WATCHDOG=1`` (None: none yet)."""
        return self._notify.watchdog_ping_at if self._notify is not None else None

    @property
    def watchdog_triggered(self) -> bool:
        """The current spawn sent ``WATCHDOG=trigger``."""
        return self._notify is not None and self._notify.watchdog_triggered

    @property
    def tag(self) -> str:
        """This spawn's tag, which every descendant inherits (recorded for leftover clean-up)."""
        return self._tag

    async def spawn(self, serial: int) -> tuple[int, Child]:
        """Start spawn number ``serial``; return its PID and its exit watch. OSError/ValueError: not started."""
        cfg = self.cfg
        env = child_environment(cfg, os.environ)
        self._serial = serial
        self._tag = self._contain.tag(self.name, serial)
        env[SPAWN_ENV] = self._tag
        account = _account(cfg.user) if cfg.user else None
        if account is not None:
            env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
        if self._sink is None:
            self._sink = LogSink.shared(
                self._log_path,
                cfg.log.max_bytes,
                cfg.log.backups,
                cfg.log.timestamps,
                self._write_failures,
                owner=self.name,
            )
        self._log_watch = LogLineWatch(cfg.ready_log, self._wake) if cfg.ready == "log" else None
        try:
            if cfg.ready == "notify":
                self._notify = NotifyListener(self._wake)
                await self._notify.open(account.pw_uid if account else None)
                env["NOTIFY_SOCKET"] = str(self._notify.path)
                if cfg.watchdog_s is not None:
                    env["WATCHDOG_USEC"] = str(int(cfg.watchdog_s * 1_000_000))
            child = await spawn(
                child_argv(cfg),
                env=env,
                cwd=cfg.cwd,
                output=self._output(),
                account=account,
                umask=cfg.umask,
                pass_fds=cfg.pass_fds,
            )
        except BaseException:
            self._close_notify()
            raise
        self._child = child
        self._spawned_mono = time.monotonic()
        self.pid = self._pgid = child.pid
        if cfg.nice is not None:
            with contextlib.suppress(OSError):  # it may have exited already; its exit is seen as usual
                os.setpriority(os.PRIO_PROCESS, self.pid, cfg.nice)
        self._exit_watch = child
        return self.pid, child

    def _output(self) -> Callable[[int, bytes], None]:
        """The sink of this spawn's output: stdout and stderr into the program's log, as they arrive."""
        sink = self._sink
        assert sink is not None
        tail = self._tail = OutputTail()  # this spawn's: an exit quotes its own last lines
        stderr_label = "stderr: " if self.cfg.log.timestamps else ""
        writers = {1: StreamWriter(sink, "", tail), 2: StreamWriter(sink, stderr_label, tail)}
        watch = self._log_watch
        if watch is None:
            return lambda fd, data: writers[fd].feed(data, final=not data)

        def both(fd: int, data: bytes) -> None:
            writers[fd].feed(data, final=not data)
            watch.feed(fd, data)

        return both

    async def reap(self, exited: asyncio.Future[int], end_left: bool = True) -> list[ProcStat]:
        """Once it exited: end everything the spawn left running, close the pipes.

        Returns what was left running and (unless ``end_left`` is False) has now been killed:
        grandchildren must not outlive their program (Supervisor/supervisor#1101), not even those that
        left its process group.
        """
        await exited
        self._contain.reaper.disown(self.pid or 0)
        left = await self._contain.adopted_settled(self._tag)
        if not left and time.monotonic() - self._spawned_mono < SHORT_LIFE_S:
            await asyncio.sleep(RELOOK_S)
            left = await self._contain.adopted_settled(self._tag)
        if end_left:
            reap_stragglers(self._pgid, lambda: kill_all(left, signal.SIGKILL))
        if left and end_left:
            log.warning("left_processes_ended", program=self.name, pids=[e.pid for e in left[:20]], count=len(left))
        if self._child is not None:
            await self._child.release(drain_s=1.0)  # a process outside the group may hold the pipes
        self._child = None
        self._exit_watch = None
        self._close_notify()
        self.pid = None
        return left

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    async def stop(self, exited: asyncio.Future[int], abort: bool = False) -> None:
        """stop_signal to the group and to what escaped it, bounded wait, SIGKILL; returns once it exited.

        ``abort`` (a watchdog timeout, as systemd's ``WatchdogSignal=``) sends SIGABRT to the main process
        instead: a Python program with ``faulthandler`` enabled prints every thread's stack on the way out.
        """
        assert self.pid is not None
        if abort:
            await stop_group(
                self._pgid, exited, stop_signal=signal.SIGABRT, timeout_s=self.cfg.stop_timeout_s, group=False
            )
            return
        # processes that left the group get the polite signal too, so they can shut down cleanly
        escaped = [e for e in self._contain.tree(self._tag, self.pid) if e.pgid != self._pgid]
        kill_all(escaped, self.cfg.stop_signal)

        def timed_out() -> None:
            log.warning("stop_timeout_kill", program=self.name, pid=self.pid, timeout_s=self.cfg.stop_timeout_s)
            kill_all(escaped, signal.SIGKILL)

        await stop_group(
            self._pgid,
            exited,
            stop_signal=self.cfg.stop_signal,
            timeout_s=self.cfg.stop_timeout_s,
            group=self.cfg.kill_group,
            on_timeout=timed_out,
        )

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the running program (its group, or its main PID alone); False when none runs."""
        if self._exit_watch is None or self._exit_watch.exited.done() or not self._pgid:
            return False  # reaped: the PID may belong to someone else now
        return signal_group(self._pgid if self.cfg.kill_group else (self.pid or 0), sig, group=self.cfg.kill_group)

    def probe(self) -> Callable[[HealthConfig], Awaitable[tuple[bool, str]]]:
        """This spawn's probe, in its environment; an exec probe's tag lets what escapes it be ended too."""
        tag = self._contain.tag(self.name, f"{self._serial}/probe")
        env = {**child_environment(self.cfg, os.environ), SPAWN_ENV: tag}

        return functools.partial(probe, env=env, sweep=functools.partial(self._contain.sweep, tag))

    def last_lines(self, count: int = 2) -> tuple[str, ...]:
        """The last ``count`` lines the current (or last) spawn printed, from memory (see OutputTail)."""
        return self._tail.lines(count)

    def halted(self) -> str:
        """Why the supervised program cannot answer (see :func:`halted_tree`: its main process stopped or a
        zombie, and none of its other processes running), or ""."""
        entry = read_stat(self.pid) if self.pid else None
        if entry is None or entry.state not in _HALTED:
            return ""  # the common case, without walking the tree
        escaped = self._contain.adopted(self._tag) if self._tag else []
        return halted_tree(entry, [*tree_of(entry.pid), *escaped])

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
        entry = read_stat(pid)
        if entry is None or entry.zombie:
            return None, f"pidfile {self.cfg.pidfile} names PID {pid}, which is not running"
        if spawn_tag(pid) != self._tag and entry.ppid != os.getpid():
            return None, f"pidfile {self.cfg.pidfile} names PID {pid}, which this program did not start"
        return pid, ""

    async def follow_main_pid(self, deadline: float) -> tuple[int, MainPidExit] | str:
        """Type=forking: the leader exited cleanly; adopt the main PID it wrote, or say why not (monotonic deadline)."""
        # the pidfile may be written a moment after the leader exits: a bounded poll (no event exists)
        pid, why = self._read_main_pid()
        while pid is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            pid, why = self._read_main_pid()
        if pid is None:
            self._contain.sweep(self._tag)
            return why
        entry = read_stat(pid)
        self._pgid = entry.pgid if entry is not None and entry.pgid != os.getpgid(0) else 0
        self.pid = pid
        self._contain.reaper.own(pid)
        log.info("main_pid_followed", program=self.name, pid=pid, pidfile=str(self.cfg.pidfile))
        self._exit_watch = MainPidExit(pid)
        return pid, self._exit_watch
