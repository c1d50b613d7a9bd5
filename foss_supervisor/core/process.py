"""One supervised program: its state machine, its restarts, its dependencies and its one stop path.

Each :class:`ManagedProcess` runs a controller coroutine (:meth:`ManagedProcess.run`) for its whole
life. Operators and the supervisor only change what is *wanted* and wake the controller; the
controller alone spawns, transitions and stops, so there is exactly one writer of the state.

Restart policy is apart from the OS edge: the controller reaches the world only through its
:class:`~foss_supervisor.core.seams.Seams` (clock, wall clock, sleep, and a
:class:`~foss_supervisor.core.seams.ChildEdge` that spawns, watches, signals, stops and reaps), so tests
drive the policy with a scripted child on virtual time (``tests/unit/test_policy.py``) beside the
real-process tier. The real edge is :class:`~foss_supervisor.core.program_child.ProgramChild`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.processstates import STOPPED_STATES, Health, ProcessState
from foss_supervisor.base.procinfo import ProcStat
from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.config import ProgramConfig
from foss_supervisor.core.actor import ACTOR
from foss_supervisor.core.backoff import Backoff
from foss_supervisor.core.containment import Containment
from foss_supervisor.core.events import EventBus, StateChanged
from foss_supervisor.core.health import HealthMonitor
from foss_supervisor.core.program_child import ProgramChild, child_environment, read_env_file
from foss_supervisor.core.program_record import ProgramRecord, exit_text
from foss_supervisor.core.seams import REAL_SEAMS, ChildEdge, ExitWatch, Seams

__all__ = ["ManagedProcess", "Seams", "child_environment", "exit_text", "read_env_file"]

log = structlog.get_logger("foss_supervisor.core.process")

S = ProcessState
WATCHDOG_TRIGGER_CHECK_S = 1.0  # a WATCHDOG=trigger is acted on within this


class ManagedProcess(ProgramRecord):
    """A program under supervision. Mutate only through :meth:`start`, :meth:`stop`, :meth:`restart`.

    ``blockers(cfg)`` names the dependencies not yet ready (e.g. ``["db (FATAL)"]``); ``changed()``
    returns once anything may have changed them. Both come from the supervisor.
    """

    def __init__(
        self,
        cfg: ProgramConfig,
        *,
        log_dir: Path,
        bus: EventBus,
        blockers: Callable[[ProgramConfig], list[str]] = lambda cfg: [],
        changed: Callable[[], Awaitable[object]] | None = None,
        on_spawn: Callable[[ManagedProcess], None] = lambda p: None,
        on_exit: Callable[[ManagedProcess], None] = lambda p: None,
        wanted: bool | None = None,
        containment: Containment | None = None,
        write_failures: WriteFailures | None = None,
        seams: Seams = REAL_SEAMS,
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
        self._blockers = blockers
        self._deps_changed = changed
        self._on_spawn = on_spawn
        self._on_exit = on_exit
        self._backoff = Backoff(cfg.backoff)
        self._monitor: HealthMonitor | None = None  # the current spawn's probes
        self._start_failures = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._restart_requested = False
        self._stop_asked = False  # an operator's stop, not yet acted on (it takes a FATAL program out)
        self._stopped_by = ""  # who asked for the last stop (see core.actor): " by uid 1000 via web"
        self._unhealthy = False
        self._watchdog_failed = False  # the unhealthiness is a missed watchdog: stopped with SIGABRT
        self._exit_watch: ExitWatch | None = None  # set while a supervised PID of ours exists
        self._spawned_at = 0.0
        if seams.child is not None:
            self._child: ChildEdge = seams.child(self)
        else:
            contain = containment or Containment()
            self._child = ProgramChild(
                cfg, log_path=self.log_path, containment=contain, wake=self.wake, write_failures=write_failures
            )

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
        """Want it stopped. A FATAL program is taken out: STOPPED, no longer a problem for /health."""
        self.wanted = False
        self._stop_asked = True
        self._stopped_by = ACTOR.get().phrase()  # who asked, for the reason STOPPED gives
        self._wake.set()

    def restart(self) -> None:
        """Stop it if it runs, then start it again."""
        self.wanted = True
        self._fresh_retries()
        self._restart_requested = True
        self._wake.set()

    def wake(self) -> None:
        """Have the controller look again: its child edge calls this when the child reports something
        (READY=1, a watchdog ping, a worker's ready line)."""
        self._wake.set()

    def _fresh_retries(self) -> None:
        self._start_failures = 0
        self._backoff.reset()

    async def wait_settled(self, timeout_s: float, stuck: Callable[[], bool] = lambda: False) -> ProcessState:
        """Wait until the state matches what is wanted (RUNNING, or a stopped state), or ``stuck()``; bounded."""
        async with asyncio.timeout(timeout_s):
            while not self._settled() and not stuck():
                self._changed.clear()
                await self._changed.wait()
        return self.state

    def _settled(self) -> bool:
        if self.wanted or self._restart_requested:
            return self.state is S.RUNNING and not self._restart_requested
        return self.state in STOPPED_STATES

    @property
    def crash_streak(self) -> int:
        """Failures in a row while it is being started again and has not yet run ``reset_after`` (0: not looping).

        Between two crashes a crash-looping program spends moments in STARTING and RUNNING; this keeps
        it a problem (for ``/health``) until a run lasts long enough to count as stable.
        """
        if self.state not in (S.STARTING, S.RUNNING) or self._backoff.failures < 2:
            return 0
        up_s = self._seams.monotonic() - self._spawned_at
        return self._backoff.failures if up_s < self.cfg.backoff.reset_after_s else 0

    @property
    def completed(self) -> bool:
        """It ran to its end, will not be restarted, and exited with an expected code (a one-shot job done)."""
        return self.state is S.EXITED and not self.wanted and self.exit_code in self.cfg.exit_codes

    @property
    def spawn_tag(self) -> str:
        """The current spawn's tag, inherited by all its descendants ("" before the first spawn)."""
        return self._child.tag

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
            # a probe failing below its threshold leaves health as it was, but says so here
            "health_detail": (self._monitor.last_detail if self._monitor is not None else "") or self.health_detail,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "completed": self.completed,
            "uptime_s": round(now - self.started_at, 3) if self.started_at and self.pid else None,
            "spawns": self.spawns,
            "wanted": "running" if self.wanted else "stopped",
            "disabled": self.cfg.disabled,  # started only when an operator names it
            "reason": self.reason,
            "next_attempt_at": self.next_attempt_at,
            "retry_in_s": retry_in,
            "status_text": self._child.status_text,
            "command": list(self.cfg.command),  # redacted where it leaves (commands.answer)
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
                        self._transition(S.STOPPED, f"stop requested{self._stopped_by} while in backoff")
                    elif self.state is S.FATAL and self._stop_asked:  # acknowledged: no longer a problem
                        self._transition(S.STOPPED, f"stopped by the operator after FATAL: {self.reason}")
                    self._stop_asked = False
                    await self._wake.wait()
                    continue
                self._restart_requested = False
                if not await self._dependencies_met():
                    continue
                await self._run_once()
        finally:
            if self._exit_watch is not None:
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
        watchdog_task: asyncio.Task[None] | None = None
        try:
            # STARTING: it must stay up for start_timeout_s (or send READY=1 within it) to count as RUNNING
            ready = self._child.ready
            interrupt = await self._watch(exited, self._spawned_at + start_timeout, ready)
            if interrupt:
                await self._stop_child(f"{interrupt} while starting")
                return
            if exited.done() and self._ran_for() < start_timeout:
                # a forking program's leader exits on purpose: what it started is its main PID, kept
                left = await self._collect(exited, end_left=self.cfg.pidfile is None)
                if self.cfg.pidfile is None:
                    await self._after_early_exit(left)
                    return
                followed = await self._follow_pidfile()  # Type=forking: supervise the PID it wrote
                if followed is None:
                    return
                exited = followed
            if ready is not None and not ready.done():
                awaited = f"line matching {self.cfg.ready_log!r}" if self.cfg.ready == "log" else "READY=1"
                why = f"no {awaited} within {start_timeout:g}s"
                await self._stop_child(why, quiet=True)
                await self._after_failed_start(why)
                return
            self._start_failures = 0
            became = f"up for {start_timeout:g}s"
            if ready is not None:
                became = "wrote a line matching its ready pattern" if self.cfg.ready == "log" else "sent READY=1"
            self._transition(S.RUNNING, became)
            if self.cfg.health is not None:
                monitor = self._monitor = HealthMonitor(
                    self.cfg.health, self._health_changed, self._child.probe(), self._seams.sleep, self._child.halted
                )
                probe_task = asyncio.create_task(monitor.run())
            if self.cfg.watchdog_s is not None and ready is not None:
                watchdog_task = asyncio.create_task(self._watchdog(self.cfg.watchdog_s))
            interrupt = await self._watch(exited, None)
            if probe_task is not None:
                probe_task.cancel()
            if watchdog_task is not None:
                watchdog_task.cancel()
            if interrupt:
                abort, self._watchdog_failed = self._watchdog_failed, False
                await self._stop_child(interrupt, abort=abort)
                if interrupt == "unhealthy":
                    self._unhealthy = False
                    await self._backoff_wait("stopped as unhealthy")
                return
            ran_for = self._ran_for()
            await self._collect(exited)
            self._backoff.observe_run(ran_for)
            self._transition(S.EXITED, f"{exit_text(self.exit_code)} after {ran_for:.3f}s")
            if self._should_restart():
                await self._backoff_wait(exit_text(self.exit_code))
            else:
                self.wanted = False
        finally:
            for task in (probe_task, watchdog_task):
                if task is not None:
                    task.cancel()

    async def _watchdog(self, interval_s: float) -> None:
        """systemd's ``WatchdogSec=``: a RUNNING program must send ``WATCHDOG=1`` at least every ``interval_s``
        (counted from READY=1 at first). A silent interval, or ``WATCHDOG=trigger``, makes it unhealthy: it
        is stopped with SIGABRT and started again as for any unhealthiness.
        """
        since = self._seams.monotonic()
        while True:
            last = self._child.watchdog_ping_at
            due = max(since, last or since) + interval_s
            if not self._child.watchdog_triggered and self._seams.monotonic() < due:
                await self._seams.sleep(min(due - self._seams.monotonic(), WATCHDOG_TRIGGER_CHECK_S))
                continue
            why = "sent WATCHDOG=trigger" if self._child.watchdog_triggered else f"no WATCHDOG=1 within {interval_s:g}s"
            log.warning("watchdog_timeout", program=self.name, pid=self.pid, detail=why)
            self._watchdog_failed = True
            self._health_changed(Health.UNHEALTHY, f"watchdog: {why}")
            return

    async def _watch(
        self, exited: asyncio.Future[int], deadline: float | None, ready: asyncio.Future[None] | None = None
    ) -> str:
        """Wait for the child to exit, ``ready``, or ``deadline``; return why we must stop it instead, if so."""
        while not exited.done() and not (ready is not None and ready.done()):
            remaining = None if deadline is None else deadline - self._seams.monotonic()
            if remaining is not None and remaining <= 0:
                return ""
            self._wake.clear()
            if reason := self._interrupt_reason():  # asked before the clear: that wake-up is gone, the ask is not
                return reason
            waiting = exited if remaining is None else self._exit_or_timeout(exited, remaining)
            if not await self._until_woken(waiting) and (reason := self._interrupt_reason()):
                return reason
        return ""

    def _interrupt_reason(self) -> str:
        if not self.wanted:
            return f"stop requested{self._stopped_by}"
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

    async def _after_early_exit(self, left: list[ProcStat]) -> None:
        """The child exited within start_timeout: a one-shot job done, a failed start, or a self-daemonizer.

        A leader that exited cleanly but left processes running has daemonized itself: retrying would
        only start another copy, so it is FATAL at once (with what it left, already ended, named).
        """
        why = f"{exit_text(self.exit_code)} during start"
        if left and self.exit_code in self.cfg.exit_codes:
            pids = ", ".join(str(e.pid) for e in left[:5])
            self._transition(S.BACKOFF, why)
            self.wanted = False
            self._transition(
                S.FATAL,
                f"daemonized itself: exited with code {self.exit_code} and left PID {pids} "
                "running (ended); set `pidfile:` to supervise it (like systemd Type=forking) "
                "or run it in the foreground",
            )
        elif self._should_restart():
            await self._after_failed_start(why)
        else:  # a one-shot job that is done (or a failed one its policy does not restart)
            self.wanted = False
            self._transition(S.EXITED, why)

    async def _follow_pidfile(self) -> asyncio.Future[int] | None:
        """Type=forking: the leader exited; supervise the main PID it wrote. None when that failed."""
        code = self.exit_code
        if code not in self.cfg.exit_codes:
            await self._after_failed_start(f"exited with code {code} before its pidfile named a main PID")
            return None
        followed = await self._child.follow_main_pid(self._spawned_at + max(self.cfg.start_timeout_s, 1.0))
        if isinstance(followed, str):
            await self._after_failed_start(followed)
            return None
        self._track(*followed)
        return followed[1].exited

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
