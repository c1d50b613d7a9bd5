"""Restart policy on virtual time with a fake child: every decision of the controller, in milliseconds.

The process tier (``tests/process/test_process.py``, ``test_lifecycle.py``) proves the OS edge; here the
:class:`~foss_supervisor.core.process.Seams` carry a virtual clock and a scripted child (``virtual_time.py``),
so minutes of backoff run instantly and each test states exactly what the child does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from helpers.virtual_time import EPOCH, FakeChildren, Script, VirtualClock

from foss_supervisor.base.processstates import Health, ProcessState
from foss_supervisor.config import ProgramConfig
from foss_supervisor.core.backoff import BackoffPolicy
from foss_supervisor.core.events import EventBus, StateChanged
from foss_supervisor.core.process import ManagedProcess, Seams
from foss_supervisor.core.states import TRANSITIONS

S = ProcessState


@dataclass
class Harness:
    proc: ManagedProcess
    clock: VirtualClock
    children: FakeChildren
    events: list[StateChanged]

    def edges(self) -> list[tuple[ProcessState, ProcessState]]:
        return [(e.old, e.new) for e in self.events]

    def states(self) -> list[ProcessState]:
        return [e.new for e in self.events]

    async def until(self, cond: Callable[[], bool], limit_s: float = 3600.0) -> None:
        await self.clock.run_until(cond, limit_s)

    async def until_state(self, state: ProcessState, limit_s: float = 3600.0) -> None:
        await self.until(lambda: self.proc.state is state, limit_s)


def program(**settings: object) -> ProgramConfig:
    return replace(ProgramConfig(name="app", command=("fake",), start_timeout_s=1.0), **settings)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def controlled(
    cfg: ProgramConfig,
    *scripts: Script,
    blockers: Callable[[ProgramConfig], list[str]] | None = None,
    changed: Callable[[], asyncio.Future[None]] | None = None,
    on_spawn: Callable[[ManagedProcess], None] = lambda p: None,
) -> AsyncIterator[Harness]:
    clock = VirtualClock()
    children = FakeChildren(clock, list(scripts) or [Script()])
    bus = EventBus()
    events: list[StateChanged] = []
    bus.on(lambda e: events.append(e) if isinstance(e, StateChanged) else None)
    seams = Seams(monotonic=clock.monotonic, wall_clock=clock.wall, sleep=clock.sleep, child=lambda p: children)
    proc = ManagedProcess(
        cfg,
        log_dir=Path("/nonexistent"),
        bus=bus,
        seams=seams,
        blockers=blockers or (lambda c: []),
        changed=changed,
        on_spawn=on_spawn,
    )
    task = asyncio.create_task(proc.run())
    try:
        yield Harness(proc, clock, children, events)
    finally:
        task.cancel()  # shutdown: the controller stops its child on the way out, on virtual time
        await clock.run_until(task.done)
        with contextlib.suppress(asyncio.CancelledError):
            task.result()  # an illegal transition on the way out would raise here
        assert proc.pid is None and proc.state not in (S.STARTING, S.RUNNING, S.STOPPING)
        assert children.reaped == len(children.spawned), "every child spawned was reaped"


# ------------------------------------------------------------------------------------------ one-shot jobs


async def test_one_shot_job_that_finishes_within_start_timeout_runs_once_and_is_done() -> None:
    async with controlled(program(autorestart="never"), Script(run_s=0.1, code=0)) as h:
        await h.until_state(S.EXITED)
        await h.clock.advance(600.0)
        assert len(h.children.spawned) == 1
        assert h.edges() == [(S.STOPPED, S.STARTING), (S.STARTING, S.EXITED)]
        assert h.proc.exit_code == 0 and h.proc.completed and not h.proc.wanted
        assert h.proc.snapshot()["completed"] is True


@pytest.mark.parametrize(
    ("autorestart", "code", "retried"),
    [("never", 0, False), ("never", 3, False), ("on-failure", 0, False), ("on-failure", 3, True), ("always", 0, True)],
)
async def test_early_exit_is_a_failed_start_only_when_the_policy_restarts_it(
    autorestart: str, code: int, retried: bool
) -> None:
    cfg = program(autorestart=autorestart, start_retries=2)
    async with controlled(cfg, Script(run_s=0.1, code=code)) as h:
        await h.until(lambda: h.proc.state in (S.EXITED, S.FATAL))
        assert h.proc.state is (S.FATAL if retried else S.EXITED)
        assert len(h.children.spawned) == (3 if retried else 1)
        assert h.proc.completed is (not retried and code == 0)


# ------------------------------------------------------------------------------------------ retries and BACKOFF


async def test_default_retry_window_is_tens_of_seconds_and_every_wait_shows_as_backoff() -> None:
    seen: list[dict[str, object]] = []
    async with controlled(program(), Script(run_s=0.05, code=1)) as h:
        original = h.proc._transition

        def spy(new: ProcessState, reason: str, retry_in_s: float | None = None) -> None:
            original(new, reason, retry_in_s)
            if new is S.BACKOFF and retry_in_s is not None:
                seen.append(h.proc.snapshot())

        h.proc._transition = spy  # type: ignore[method-assign]
        await h.until_state(S.FATAL)
        assert h.clock.now >= 20.0, f"gave up after {h.clock.now:.2f} s"
        assert len(h.children.spawned) == 11  # the first attempt and 10 retries
        assert "gave up after 11 attempts" in h.proc.reason
    assert len(seen) == 10
    for snap in seen:
        assert snap["state"] == "BACKOFF" and "retry in" in str(snap["reason"])
        assert isinstance(snap["next_attempt_at"], float) and snap["next_attempt_at"] >= EPOCH
        assert snap["retry_in_s"] is not None
    delays = [float(s["retry_in_s"]) for s in seen]  # type: ignore[arg-type]
    assert delays[-1] > delays[1] and max(delays) <= 30.0  # grows, capped


async def test_a_program_that_comes_good_during_its_retries_stays_up() -> None:
    scripts = [Script(run_s=0.05, code=1)] * 5 + [Script()]
    async with controlled(program(), *scripts) as h:
        await h.until_state(S.RUNNING)
        assert len(h.children.spawned) == 6 and h.proc.reason.startswith("up for")


async def test_a_restart_asked_while_a_spawn_is_under_way_is_carried_out() -> None:
    """The spawn awaits (the real one forks and connects pipes over several turns of the loop); a restart asked
    meanwhile must not be lost when the controller then starts watching the new child."""
    async with controlled(program()) as h:
        await h.until_state(S.RUNNING)
        gate = h.children.spawn_gate = asyncio.Event()
        h.proc.restart()
        await h.until(lambda: h.proc.state is S.STARTING)  # the respawn, held inside the spawn
        assert len(h.children.spawned) == 1
        h.proc.restart()
        gate.set()
        await h.until(lambda: len(h.children.spawned) == 3, limit_s=60.0)  # the one under way, then the asked one
        await h.until_state(S.RUNNING)


async def test_crash_of_a_running_program_restarts_at_once_then_waits_in_backoff() -> None:
    cfg = program(autorestart="always", backoff=BackoffPolicy(jitter=0.0))
    async with controlled(cfg, Script(run_s=2.0, code=1)) as h:
        await h.until(lambda: len(h.children.spawned) == 3)
        assert h.states()[:8] == [
            S.STARTING,
            S.RUNNING,
            S.EXITED,
            S.STARTING,
            S.RUNNING,
            S.EXITED,
            S.BACKOFF,
            S.STARTING,
        ]
        backoff = next(e for e in h.events if e.new is S.BACKOFF)
        assert backoff.old is S.EXITED and backoff.retry_in_s == pytest.approx(0.1)
        assert h.proc.next_attempt_at is None  # cleared once the attempt happens


async def test_a_crash_loop_stays_a_problem_between_its_crashes_until_a_run_is_stable() -> None:
    cfg = program(autorestart="always", backoff=BackoffPolicy(jitter=0.0, reset_after_s=10.0))
    scripts = [Script(run_s=2.0, code=1)] * 3 + [Script()]  # three crashes after 2 s, then it stays up
    async with controlled(cfg, *scripts) as h:
        await h.until(lambda: len(h.children.spawned) == 3 and h.proc.state is S.RUNNING)
        assert h.proc.crash_streak == 2  # up again, but still looping: /health must not say healthy
        await h.until(lambda: len(h.children.spawned) == 4 and h.proc.state is S.RUNNING)
        assert h.proc.crash_streak == 3
        await h.clock.advance(10.5)
        assert h.proc.state is S.RUNNING and h.proc.crash_streak == 0  # a stable run ends the streak


async def test_retries_forever_at_the_cap_when_asked() -> None:
    cfg = program(start_retries=None, backoff=BackoffPolicy(max_s=5.0, jitter=0.0))
    async with controlled(cfg, Script(run_s=0.01, code=1)) as h:
        await h.until(lambda: len(h.children.spawned) == 30)
        assert h.proc.state in (S.BACKOFF, S.STARTING)
        assert max(e.retry_in_s or 0 for e in h.events) == 5.0


async def test_spawn_failure_backs_off_with_the_reason() -> None:
    async with controlled(program(start_retries=1), Script(spawn_error="No such file")) as h:
        await h.until_state(S.FATAL)
        assert "spawn failed: No such file" in h.proc.reason and h.children.spawned == []


async def test_a_failed_spawn_record_does_not_lose_the_child() -> None:
    def broken_store(p: ManagedProcess) -> None:
        raise OSError(24, "Too many open files")

    async with controlled(program(), on_spawn=broken_store) as h:
        await h.until_state(S.RUNNING)
        assert h.proc.pid == h.children.spawned[0]
        h.proc.stop()
        await h.until_state(S.STOPPED)
        assert h.children.reaped == 1


# ------------------------------------------------------------------------------------------ stop, start, shutdown


async def test_stop_during_backoff_is_stopped_and_stop_of_fatal_takes_it_out() -> None:
    async with controlled(program(start_retries=1), Script(run_s=0.01, code=1)) as h:
        await h.until(lambda: len(h.children.spawned) == 1 and h.proc.state is S.BACKOFF)
        h.proc.stop()
        await h.until_state(S.STOPPED)
        assert h.proc.reason == "stop requested while in backoff"
        h.proc.start()
        await h.until_state(S.FATAL)
        await h.clock.advance(60.0)
        assert h.proc.state is S.FATAL and not h.proc.wanted  # given up: it stays FATAL, a problem
        gave_up = h.proc.reason
        h.proc.stop()  # the operator takes it out (supervisord would leave it FATAL; /health would stay 503)
        await h.until_state(S.STOPPED)
        assert h.proc.reason == f"stopped by the operator after FATAL: {gave_up}"
        spawned = len(h.children.spawned)
        await h.clock.advance(60.0)
        assert h.proc.state is S.STOPPED and len(h.children.spawned) == spawned
        h.proc.start()  # fresh retries
        await h.until(lambda: len(h.children.spawned) == spawned + 2)


@pytest.mark.parametrize("where", ["STARTING", "RUNNING", "BACKOFF", "FATAL", "EXITED", "STOPPING"])
async def test_shutdown_in_any_state_leaves_a_legal_state_and_no_child(where: str) -> None:
    scripts = {
        "STARTING": [Script()],
        "RUNNING": [Script()],
        "BACKOFF": [Script(run_s=0.01, code=1)],
        "FATAL": [Script(run_s=0.01, code=1)],
        "EXITED": [Script(run_s=0.01, code=0)],
        "STOPPING": [Script(ignores_term=True)],
    }[where]
    cfg = program(start_retries=1, autorestart="never" if where == "EXITED" else "on-failure")
    async with controlled(cfg, *scripts) as h:
        if where == "STOPPING":
            await h.until_state(S.RUNNING)
            h.proc.stop()
        elif where == "BACKOFF":
            await h.until(lambda: h.children.spawned != [] and h.proc.state is S.BACKOFF)
        await h.until(lambda: h.proc.state is S[where])
    # the context manager cancels the controller and checks the child is gone without an illegal edge


# ------------------------------------------------------------------------------------------ health, dependencies


async def turn_unhealthy_twice(h: Harness) -> None:
    """The probe fails on two runs in a row: the first restart is at once, the second after a delay."""
    for n in (1, 2):
        await h.until(lambda: h.proc.state is S.RUNNING and not h.proc._unhealthy)
        h.proc._health_changed(Health.UNHEALTHY, "probe failed")
        await h.until(lambda n=n: h.states().count(S.STOPPED) == n)  # type: ignore[misc]
    await h.until_state(S.RUNNING)


async def test_unhealthy_program_is_stopped_and_restarted_through_backoff() -> None:
    async with controlled(program(backoff=BackoffPolicy(jitter=0.0)), Script()) as h:
        await turn_unhealthy_twice(h)
        assert (S.STOPPED, S.BACKOFF) in h.edges() and (S.STOPPED, S.STARTING) in h.edges()
        assert len(h.children.spawned) == 3


@pytest.mark.parametrize("autorestart", ["always", "on-failure", "never"])
async def test_what_follows_unhealthy_is_the_restart_policy(autorestart: str) -> None:
    """One table (README, Health and restarts): never leaves an unhealthy program running, as it is."""
    async with controlled(program(autorestart=autorestart, backoff=BackoffPolicy(jitter=0.0)), Script()) as h:
        await h.until_state(S.RUNNING)
        h.proc._health_changed(Health.UNHEALTHY, "probe failed")
        await h.clock.advance(600.0)
        restarted = autorestart != "never"
        assert (len(h.children.spawned), h.proc.state) == (2 if restarted else 1, S.RUNNING)
        assert ((S.RUNNING, S.STOPPING) in h.edges()) is restarted
        assert h.proc.health is (Health.UNKNOWN if restarted else Health.UNHEALTHY)


async def test_waiting_for_dependencies_shows_them_as_the_reason() -> None:
    blocking = ["db (FATAL)"]
    loop = asyncio.get_running_loop()
    pulse: asyncio.Future[None] = loop.create_future()

    def changed() -> asyncio.Future[None]:
        return pulse

    async with controlled(program(depends_on=("db",)), blockers=lambda c: list(blocking), changed=changed) as h:
        await h.until(lambda: h.proc.reason == "waiting for db (FATAL)")
        assert h.proc.state is S.STOPPED and h.children.spawned == []
        blocking.clear()
        pulse.set_result(None)
        await h.until_state(S.RUNNING)


# ------------------------------------------------------------------------------------------ the table


async def test_the_table_holds_exactly_the_edges_the_controller_takes() -> None:
    taken: set[tuple[ProcessState, ProcessState]] = set()
    tours = [
        (program(autorestart="never"), [Script(run_s=0.1)], None),  # STARTING -> EXITED
        (program(start_retries=1), [Script(run_s=0.01, code=1)], None),  # BACKOFF -> FATAL
        (program(autorestart="always"), [Script(run_s=2.0, code=1)], None),  # RUNNING -> EXITED -> BACKOFF
        (program(), [Script()], "stop"),  # RUNNING -> STOPPING -> STOPPED
        (program(start_timeout_s=5.0), [Script()], "stop-starting"),  # STARTING -> STOPPING
        (program(start_retries=3), [Script(run_s=0.01, code=1)], "stop-backoff"),  # BACKOFF -> STOPPED
        (program(), [Script()], "unhealthy"),  # STOPPED -> BACKOFF
        (program(start_retries=0), [Script(run_s=0.01, code=1), Script()], "fatal-start"),  # FATAL -> STARTING
        (program(start_retries=0), [Script(run_s=0.01, code=1)], "fatal-stop"),  # FATAL -> STOPPED
    ]
    for cfg, scripts, action in tours:
        async with controlled(cfg, *scripts) as h:
            if action is None:
                await h.until(lambda: len(h.children.spawned) >= 3 or h.proc.state in (S.EXITED, S.FATAL))
            elif action == "stop":
                await h.until_state(S.RUNNING)
                h.proc.stop()
                await h.until_state(S.STOPPED)
            elif action == "stop-starting":
                await h.until_state(S.STARTING)
                h.proc.stop()
                await h.until_state(S.STOPPED)
            elif action == "stop-backoff":
                await h.until(lambda: h.children.spawned != [] and h.proc.state is S.BACKOFF)
                h.proc.stop()
                await h.until_state(S.STOPPED)
            elif action == "unhealthy":
                await turn_unhealthy_twice(h)
            elif action == "fatal-stop":
                await h.until_state(S.FATAL)
                h.proc.stop()
                await h.until_state(S.STOPPED)
            else:
                await h.until_state(S.FATAL)
                h.proc.start()
                await h.until_state(S.RUNNING)
            taken |= set(h.edges())
    table = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert taken == table


# ------------------------------------------------------------------------------------------ dependency conditions


def test_each_dependency_condition_is_met_by_exactly_its_states() -> None:
    from foss_supervisor.config import HealthConfig
    from foss_supervisor.core.supervisor import _describe, _meets

    def dep(
        state: ProcessState,
        *,
        wanted: bool = True,
        code: int | None = None,
        health: Health = Health.UNKNOWN,
        probed: bool = False,
    ) -> ManagedProcess:
        cfg = program(health=HealthConfig(kind="tcp", port=1) if probed else None)
        proc = ManagedProcess(
            cfg,
            log_dir=Path("/nonexistent"),
            bus=EventBus(),
            seams=Seams(child=lambda p: FakeChildren(VirtualClock(), [Script()])),
        )  # type: ignore[arg-type,return-value]
        proc.state, proc.wanted, proc.exit_code, proc.health = state, wanted, code, health
        return proc

    cases = [  # (dependency, started, healthy, completed_successfully)
        (dep(S.RUNNING), True, True, False),
        (dep(S.RUNNING, probed=True), True, False, False),
        (dep(S.RUNNING, probed=True, health=Health.HEALTHY), True, True, False),
        (dep(S.EXITED, wanted=False, code=0), True, False, True),
        (dep(S.EXITED, wanted=False, code=3), True, False, False),
        (dep(S.EXITED, wanted=True, code=1), False, False, False),  # crashed, about to be restarted
        (dep(S.STARTING), False, False, False),
        (dep(S.BACKOFF), False, False, False),
        (dep(S.FATAL, wanted=False), False, False, False),
    ]
    for proc, started, healthy, completed in cases:
        got = (_meets(proc, "started"), _meets(proc, "healthy"), _meets(proc, "completed_successfully"))
        assert got == (started, healthy, completed), (proc.state, proc.exit_code, proc.health, got)
    assert [_describe(p) for p, *_ in cases[:5]] == [
        "RUNNING",
        "RUNNING, health unknown",
        "RUNNING, health healthy",
        "EXITED with code 0",
        "EXITED with code 3",
    ]


# ------------------------------------------------------------------------------------------ watchdog (WatchdogSec=)


def _ready_now() -> asyncio.Future[None]:
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ready.set_result(None)
    return ready


async def test_a_program_that_stops_pinging_its_watchdog_is_aborted_and_started_again() -> None:
    cfg = program(ready="notify", watchdog_s=10.0, autorestart="always", backoff=BackoffPolicy(jitter=0.0))
    async with controlled(cfg, Script()) as h:
        h.children.ready = _ready_now()
        await h.until_state(S.RUNNING)
        for _ in range(10):  # a ping every 4 s keeps it up for 40 s
            await h.clock.advance(4.0)
            h.children.watchdog_ping_at = h.clock.now
        assert len(h.children.spawned) == 1 and h.proc.state is S.RUNNING
        last_ping = h.clock.now
        await h.until(lambda: len(h.children.spawned) == 2)
        assert h.children.signals[0] is signal.SIGABRT  # systemd's WatchdogSignal: a Python child dumps its stacks
        stopping = next(e for e in h.events if e.new is S.STOPPING)
        assert stopping.reason == "unhealthy"
        assert 10.0 <= h.clock.now - last_ping < 12.0  # at the deadline (+ the SIGABRT and a restart), not later


async def test_watchdog_trigger_fails_the_program_at_once() -> None:
    cfg = program(ready="notify", watchdog_s=60.0, autorestart="always", backoff=BackoffPolicy(jitter=0.0))
    async with controlled(cfg, Script()) as h:
        h.children.ready = _ready_now()
        await h.until_state(S.RUNNING)
        started = h.clock.now
        h.children.watchdog_triggered = True
        await h.until(lambda: len(h.children.spawned) == 2)
        assert h.clock.now - started < 60.0 and h.children.signals[0] is signal.SIGABRT


async def test_without_a_watchdog_silence_is_fine() -> None:
    cfg = program(ready="notify")
    async with controlled(cfg, Script()) as h:
        h.children.ready = _ready_now()
        await h.until_state(S.RUNNING)
        await h.clock.advance(3600.0)
        assert len(h.children.spawned) == 1 and h.proc.state is S.RUNNING
