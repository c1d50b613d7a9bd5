"""Dependency order, stop order and reload of the real Supervisor, on virtual time with scripted children.

The Supervisor and every ManagedProcess under it are the production code; only their seams are fakes
(``virtual_time.py``): a clock that moves when every task waits, and children that follow scripts. A start
that waits on a health probe's 10 s start period, a shutdown that waits out 30 s stop timeouts level by
level, or a reload of a fleet run in milliseconds, and each test says exactly when each child starts,
answers and ends. The same behaviours with real children: tests/process/test_process.py, test_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import examples, make_config
from helpers.virtual_time import Fleet, Script, VirtualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.processstates import Health, ProcessState
from foss_supervisor.config import Config
from foss_supervisor.core.events import ConfigReloaded, EventBus, HealthChanged, StateChanged
from foss_supervisor.core.process import Seams
from foss_supervisor.core.statestore import StateStore
from foss_supervisor.core.supervisor import ReloadPlan, Supervisor, stop_levels

S = ProcessState
FOREVER = 3600.0  # virtual seconds: long enough for any of these scenarios to settle


@dataclass
class Run:
    """A running Supervisor on virtual time: its events stamped with the virtual time they happened at."""

    sup: Supervisor
    clock: VirtualClock
    fleet: Fleet
    seen: list[tuple[float, object]]
    shutdown: asyncio.Event
    task: asyncio.Task[None]

    def at(self, name: str, state: ProcessState) -> list[float]:
        """When ``name`` entered ``state``, in order (virtual seconds since the start)."""
        return [t for t, e in self.seen if isinstance(e, StateChanged) and e.name == name and e.new is state]

    def healthy_at(self, name: str) -> list[float]:
        return [t for t, e in self.seen if isinstance(e, HealthChanged) and e.name == name and e.new is Health.HEALTHY]

    async def until(self, cond: Callable[[], bool], limit_s: float = FOREVER) -> None:
        await self.clock.run_until(cond, limit_s)

    async def settled(self) -> list[str]:
        """``wait_autostarted`` driven on virtual time: the problems once every program settled."""
        wait = asyncio.create_task(self.sup.wait_autostarted(timeout_s=60.0))
        await self.until(wait.done)
        return wait.result()

    async def stop_everything(self) -> None:
        """The daemon's shutdown: every program stopped, dependents first, then the supervisor returns."""
        self.shutdown.set()
        await self.until(self.task.done)
        self.task.result()


@contextlib.asynccontextmanager
async def supervised(config: Config, **scripts: list[Script]) -> AsyncIterator[Run]:
    """The Supervisor of ``config`` running on a virtual clock; ``scripts[name]`` is what ``name``'s children do
    (default: run until signalled). Shut down on the way out, and every child spawned must have been reaped."""
    clock = VirtualClock()
    fleet = Fleet(clock, dict(scripts))
    bus = EventBus()
    seen: list[tuple[float, object]] = []
    bus.on(lambda event: seen.append((clock.now, event)))
    config.state_dir.mkdir(parents=True, exist_ok=True)
    seams = Seams(monotonic=clock.monotonic, wall_clock=clock.wall, sleep=clock.sleep, child=fleet.child)
    sup = Supervisor(config, bus, StateStore(config.state_dir), seams=seams)
    started, shutdown = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sup.run(started, shutdown))
    await clock.run_until(started.is_set)
    run = Run(sup, clock, fleet, seen, shutdown, task)
    try:
        yield run
    finally:
        if not task.done():
            await run.stop_everything()
    for name, edges in fleet.made.items():
        for edge in edges:
            assert edge.reaped == len(edge.spawned), f"{name}: a child was never reaped"


# ------------------------------------------------------------------------------------------ start order


@pytest.mark.parametrize(
    ("dependency", "scripts", "condition", "met"),
    [
        ("db: {command: [db], start_timeout: 2s}", [Script()], "started", ("RUNNING", 2.0)),
        (
            "db: {command: [db], start_timeout: 2s, health: {tcp: 5432, start_period: 10s, interval: 1s}}",
            [Script()],
            "healthy",
            ("HEALTHY", 12.0),
        ),
        (
            "db: {command: [db], start_timeout: 2s, autorestart: never}",
            [Script(run_s=5.0, code=0)],
            "completed_successfully",
            ("EXITED", 5.0),
        ),
    ],
)
async def test_a_dependent_starts_the_moment_its_dependency_meets_the_condition(
    tmp_path: Path, dependency: str, scripts: list[Script], condition: str, met: tuple[str, float]
) -> None:
    cfg = make_config(
        tmp_path, f"{dependency}\napi: {{command: [api], start_timeout: 1s, depends_on: {{db: {condition}}}}}\n"
    )
    async with supervised(cfg, db=scripts) as run:
        await run.until(lambda: run.sup.processes["api"].state is S.RUNNING)
        what, when = met
        met_at = run.healthy_at("db") if what == "HEALTHY" else run.at("db", S[what])
        assert met_at == [pytest.approx(when)]
        assert run.at("api", S.STARTING) == [pytest.approx(when)]  # not a moment later, and only once
        assert run.at("api", S.RUNNING) == [pytest.approx(when + 1.0)]
        assert len(run.fleet["api"].spawned) == 1 and await run.settled() == []


async def test_the_first_spawns_are_waited_for_but_not_dependents_nor_programs_left_off(tmp_path: Path) -> None:
    """``wait_spawned`` (the dashboard starts after it), asked before any program ran: it returns once every
    program free to start has a child, without waiting for one held by a dependency that is not met, nor for
    one that does not autostart."""
    cfg = make_config(
        tmp_path,
        """
        db: {command: [db], start_timeout: 5s, health: {tcp: 5432, start_period: 60s, interval: 1s}}
        api: {command: [api], depends_on: {db: healthy}}
        cron: {command: [cron], autostart: false}
        web: {command: [web], start_timeout: 5s}
        """,
    )
    clock = VirtualClock()
    fleet = Fleet(clock)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    seams = Seams(monotonic=clock.monotonic, wall_clock=clock.wall, sleep=clock.sleep, child=fleet.child)
    sup = Supervisor(cfg, EventBus(), StateStore(cfg.state_dir), seams=seams)
    started, shutdown = asyncio.Event(), asyncio.Event()

    async def spawned_when_it_returns() -> dict[str, int]:
        await sup.wait_spawned(timeout_s=30.0)
        return {n: len(fleet.made[n][-1].spawned) if n in fleet.made else 0 for n in sup.processes}

    task = asyncio.create_task(sup.run(started, shutdown))  # the daemon's order: run, then the waiter
    waited = asyncio.create_task(spawned_when_it_returns())
    await clock.run_until(waited.done)
    assert waited.result() == {"db": 1, "api": 0, "cron": 0, "web": 1}
    assert clock.now < 1.0  # at once, not after a timeout or the start period
    shutdown.set()
    await clock.run_until(task.done)
    task.result()


async def test_a_probed_dependency_holds_its_dependents_until_its_probe_passes(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        """
        db: {command: [db], start_timeout: 1s, health: {tcp: 5432, interval: 2s, failure_threshold: 1000}}
        api: {command: [api], depends_on: db}
        web: {command: [web], depends_on: {api: started}}
        """,
    )
    async with supervised(cfg) as run:
        api, web = run.sup.processes["api"], run.sup.processes["web"]
        run.fleet["db"].healthy = False
        await run.clock.advance(120.0)
        assert run.fleet["db"].probes > 50 and api.state is web.state is S.STOPPED
        assert (api.reason, web.reason) == ("waiting for db (RUNNING, health unknown)", "waiting for api (STOPPED)")
        assert run.fleet["api"].spawned == run.fleet["web"].spawned == []
        run.fleet["db"].healthy = True
        await run.until(lambda: web.state is S.RUNNING)
        [healthy] = run.healthy_at("db")
        assert run.at("api", S.STARTING) == [healthy] and run.at("web", S.STARTING) == run.at("api", S.RUNNING)


async def test_a_dependency_that_gives_up_leaves_its_dependents_waiting_with_the_reason(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        """
        db: {command: [db], start_timeout: 1s, start_retries: 2}
        api: {command: [api], start_timeout: 1s, depends_on: db}
        web: {command: [web], start_timeout: 1s, depends_on: {api: started}}
        migrate: {command: [migrate], start_timeout: 1s, autorestart: never}
        report: {command: [report], depends_on: {migrate: {condition: completed_successfully}}}
        """,
    )
    async with supervised(cfg, db=[Script(run_s=0.5, code=1)], migrate=[Script(run_s=3.0, code=3)]) as run:
        problems = await run.settled()  # at once: nothing left can change without an operator
        p = run.sup.processes
        assert p["db"].state is S.FATAL and len(run.fleet["db"].spawned) == 3
        assert [(p[n].state, p[n].reason) for n in ("api", "web", "report")] == [
            (S.STOPPED, "waiting for db (FATAL)"),
            (S.STOPPED, "waiting for api (STOPPED)"),
            (S.STOPPED, "waiting for migrate (EXITED with code 3)"),
        ]
        assert run.fleet["api"].spawned == run.fleet["web"].spawned == run.fleet["report"].spawned == []
        assert {"api is waiting for db (FATAL)", "web is waiting for api (STOPPED)"} <= set(problems)
        assert "report is waiting for migrate (EXITED with code 3)" in problems
        assert any(line.startswith("db is FATAL") for line in problems)
        run.fleet["db"].scripts = [Script()]  # fixed: its next start stays up
        acted = asyncio.create_task(run.sup.act("start", ["db"], wait_s=60.0))
        await run.until(lambda: acted.done() and p["web"].state is S.RUNNING)
        assert run.at("api", S.STARTING) == run.at("db", S.RUNNING)  # healthy: no probe, RUNNING is enough
        assert not [line for line in run.sup.problems() if not line.startswith(("migrate", "report"))]


# ------------------------------------------------------------------------------------------ stop order


async def test_shutdown_stops_each_level_only_after_its_dependents_are_down(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        """
        db: {command: [db], stop_timeout: 30s}
        cache: {command: [cache], stop_timeout: 5s}
        lone: {command: [lone], stop_timeout: 1s}
        api: {command: [api], depends_on: [db, cache], stop_timeout: 10s}
        worker: {command: [worker], depends_on: {db: started}, stop_timeout: 2s}
        web: {command: [web], depends_on: {api: started}, stop_timeout: 7s}
        """,
    )
    deaf = [Script(ignores_term=True)]  # each stop takes its whole stop_timeout, then SIGKILL
    names = ("db", "cache", "lone", "api", "worker", "web")
    async with supervised(cfg, **dict.fromkeys(names, deaf)) as run:
        await run.until(lambda: all(p.state is S.RUNNING for p in run.sup.processes.values()))
        began = run.clock.now
        await run.stop_everything()
    levels = stop_levels(cfg.programs)
    assert levels == [["web"], ["api", "worker"], ["cache", "db", "lone"]]
    for level, after in itertools.pairwise(levels):
        down = max(run.at(n, S.STOPPED)[-1] for n in level)
        assert {n: run.at(n, S.STOPPING)[-1] for n in after} == dict.fromkeys(after, down)  # together, not before
    for name in names:
        assert run.fleet[name].signals == [signal.SIGTERM, signal.SIGKILL]
    # the longest stop of each level, one level after the other (what the systemd unit's budget sums up)
    assert run.clock.now - began == pytest.approx(7.0 + 10.0 + 30.0, abs=0.1)


# ------------------------------------------------------------------------------------------ reload


async def test_a_reload_stops_removed_and_changed_programs_dependents_first_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    before = make_config(
        tmp_path,
        """
        keep: {command: [keep]}
        base: {command: [base], stop_timeout: 4s}
        gone: {command: [gone], depends_on: {base: started}, stop_timeout: 3s}
        """,
    )
    after = make_config(
        tmp_path,
        """
        keep: {command: [keep]}
        base: {command: [base], env: {MODE: new}}
        added: {command: [added], depends_on: keep}
        """,
    )
    deaf = [Script(ignores_term=True)]
    async with supervised(before, base=deaf, gone=deaf) as run:
        p = run.sup.processes
        await run.until(lambda: all(proc.state is S.RUNNING for proc in p.values()))
        keep, keep_pid = p["keep"], p["keep"].pid
        base_edge, gone_edge = run.fleet["base"], run.fleet["gone"]
        applied = asyncio.create_task(run.sup.apply(after))
        await run.until(lambda: applied.done() and p["added"].state is S.RUNNING and p["base"].state is S.RUNNING)
        assert applied.result() == ReloadPlan(
            added=("added",), changed=("base",), removed=("gone",), unchanged=("keep",)
        )
        assert set(p) == {"keep", "base", "added"} and run.sup.config is after
        assert p["keep"] is keep and keep.pid == keep_pid and run.fleet["keep"].signals == []  # untouched
        assert run.fleet["base"] is not base_edge and p["base"].pid != base_edge.spawned[0]  # a new controller
        assert p["base"].cfg.env == {"MODE": "new"}
        assert gone_edge.signals == base_edge.signals == [signal.SIGTERM, signal.SIGKILL]
        assert run.at("gone", S.STOPPED)[-1] == run.at("base", S.STOPPING)[-1]  # the dependent went first
        [reloaded] = [e for _, e in run.seen if isinstance(e, ConfigReloaded)]
        assert (reloaded.added, reloaded.changed, reloaded.removed) == (("added",), ("base",), ("gone",))


# ------------------------------------------------------------------------------------------ any fleet


@st.composite
def fleets(draw: st.DrawFn) -> tuple[str, dict[str, list[Script]], dict[str, dict[str, str]]]:
    """A fleet whose dependencies form any DAG: services (some probed, some deaf to SIGTERM) and one-shot
    jobs, each dependency with a condition its dependency can meet. Returns the YAML, the scripts and
    ``{dependent: {dependency: condition}}``."""
    count = draw(st.integers(2, 7))
    lines: list[str] = []
    scripts: dict[str, list[Script]] = {}
    edges: dict[str, dict[str, str]] = {}
    jobs: set[str] = set()
    for i in range(count):
        name = f"p{i}"
        start = draw(st.sampled_from(["0.5s", "1s", "3s"]))
        stop = draw(st.sampled_from(["1s", "5s", "20s"]))
        deps = draw(st.lists(st.sampled_from([f"p{j}" for j in range(i)]), unique=True, max_size=3)) if i else []
        edges[name] = {
            d: draw(st.sampled_from(["started", "completed_successfully"] if d in jobs else ["started", "healthy"]))
            for d in deps
        }
        needs = ", ".join(f"{d}: {c}" for d, c in edges[name].items())
        settings = f"start_timeout: {start}, stop_timeout: {stop}, depends_on: {{{needs}}}"
        if draw(st.booleans()):
            jobs.add(name)
            lines.append(f"{name}: {{command: [{name}], autorestart: never, {settings}}}")
            scripts[name] = [Script(run_s=draw(st.sampled_from([0.2, 2.0, 9.0])), code=0)]
        else:
            probe = ", health: {tcp: 1, interval: 1s, start_period: 4s}" if draw(st.booleans()) else ""
            lines.append(f"{name}: {{command: [{name}], {settings}{probe}}}")
            scripts[name] = [Script(ignores_term=draw(st.booleans()))]
    return "\n".join(lines) + "\n", scripts, edges


@settings(max_examples=examples(60), deadline=None)
@given(fleets())
def test_any_fleet_starts_in_dependency_order_and_stops_in_reverse(
    fleet: tuple[str, dict[str, list[Script]], dict[str, dict[str, str]]],
) -> None:
    """Whatever the DAG: every program ends up as wanted, none starts before each of its dependencies meets
    its condition, and at shutdown none of them is stopped before all its dependents are down."""
    text, scripts, edges = fleet

    async def scenario(tmp: Path) -> None:
        cfg = make_config(tmp, text)
        async with supervised(cfg, **scripts) as run:
            assert await run.settled() == []
            jobs = {name for name, (script, *_) in scripts.items() if script.run_s is not None}
            procs = run.sup.processes
            await run.until(lambda: all(procs[n].completed for n in jobs))
            assert run.sup.problems() == []
            for name, proc in procs.items():
                assert (proc.state, proc.completed) == ((S.EXITED, True) if name in jobs else (S.RUNNING, False))
                assert len(run.fleet[name].spawned) == 1, name  # nothing failed, nothing started twice
                for dep, condition in edges[name].items():
                    met = {
                        "started": run.at(dep, S.RUNNING) or run.at(dep, S.EXITED),
                        "healthy": run.healthy_at(dep) if cfg.programs[dep].health else run.at(dep, S.RUNNING),
                        "completed_successfully": run.at(dep, S.EXITED),
                    }[condition]
                    assert met and run.at(name, S.STARTING)[0] >= met[0], (name, dep, condition)
            await run.stop_everything()
            for name, deps in edges.items():
                for dep in deps:
                    if run.at(dep, S.STOPPING) and run.at(name, S.STOPPED):
                        assert run.at(name, S.STOPPED)[-1] <= run.at(dep, S.STOPPING)[-1], (name, dep)

    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        asyncio.run(scenario(Path(tmp)))
