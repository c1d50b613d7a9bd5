"""process-compose and PM2 parity under a real Supervisor with real children: selector actions in dependency
order, replica names in ``depends_on``, ``restart: true`` propagation (systemd's ``PartOf=``), ``disabled``
programs, readiness on a log line, rolling restarts."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from pathlib import Path

import pytest
from helpers import py, state, supervising, until, written

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import Config, parse_config
from foss_supervisor.core.events import Event, StateChanged, Subscription
from foss_supervisor.core.supervisor import Supervisor
from foss_supervisor.errors import CommandError, ConfigError

S = ProcessState
SLEEPER = py("import time; time.sleep(300)")


def config(tmp: Path, body: str) -> Config:
    """A config of ``body`` (top-level YAML: programs, groups) with its state dir in ``tmp``."""
    return parse_config(f"state_dir: {tmp / 'state'}\n" + textwrap.dedent(body), tmp / "c.yaml", {})


def moves(events: list[Event]) -> list[str]:
    return [f"{e.name}:{e.new}" for e in events if isinstance(e, StateChanged)]


async def seen_until(sub: Subscription, name: str, new: ProcessState, timeout_s: float = 20.0) -> list[str]:
    """Every state move of ``sub`` up to and including ``name`` entering ``new``."""
    seen: list[str] = []
    while f"{name}:{new}" not in seen:
        seen += moves([await until(sub, lambda e: isinstance(e, StateChanged), timeout_s=timeout_s)])
    return seen


async def all_running(sup: Supervisor, names: list[str], wait_s: float = 20.0) -> None:
    results = await sup.act("start", names, wait_s)
    assert all(r["state"] == "RUNNING" for r in results), results


async def test_group_actions_stop_dependents_first_and_start_in_dependency_order(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        f"""
        programs:
          web: {{command: {SLEEPER}, start_timeout: 0.3}}
          talker: {{command: {SLEEPER}, start_timeout: 0.1, depends_on: web}}
        groups:
          backend: [talker, web]
        """,
    )
    async with supervising(cfg) as (sup, sub):
        await all_running(sup, ["backend"])
        await sup.act("stop", ["talker"], 20)  # the case: the dependent is stopped when the group restarts
        sub.drain()
        results = await sup.act("restart", ["backend"], 20)
        assert {r["name"]: r["state"] for r in results} == {"web": "RUNNING", "talker": "RUNNING"}
        order = moves(sub.drain())
        assert order.index("web:RUNNING") < order.index("talker:STARTING"), order

        await sup.act("restart", ["backend"], 20)  # both running: the dependent stops first, starts last
        order = moves(sub.drain())
        assert order.index("talker:STOPPED") < order.index("web:STOPPING"), order
        assert order.index("web:RUNNING") < order.index("talker:STARTING"), order

        await sup.act("stop", ["all"], 20)
        order = moves(sub.drain())
        assert order.index("talker:STOPPED") < order.index("web:STOPPING"), order


async def test_replica_names_are_accepted_and_honoured_in_depends_on(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        f"""
        programs:
          web: {{command: {SLEEPER}, start_timeout: 0.3, replicas: 2}}
          api: {{command: {SLEEPER}, start_timeout: 0.1, depends_on: [web-0, web-1]}}
          solo: {{command: {SLEEPER}, start_timeout: 0.1, depends_on: {{web-1: {{condition: started}}}}}}
        """,
    )
    assert cfg.programs["api"].depends_on == ("web-0", "web-1")
    assert cfg.programs["solo"].depends_on == ("web-1",)
    for bad in ("[web-2]", "[api]", "[web-]"):
        with pytest.raises(ConfigError, match="depends_on"):
            config(
                tmp_path, f"programs:\n  web: {{command: [x], replicas: 2}}\n  api: {{command: [x], depends_on: {bad}}}"
            )
    async with supervising(cfg) as (_sup, sub):
        order = await seen_until(sub, "api", S.RUNNING)
        if "solo:RUNNING" not in order:
            order += await seen_until(sub, "solo", S.RUNNING)
        assert order.index("web-0:RUNNING") < order.index("api:STARTING")
        assert order.index("web-1:RUNNING") < order.index("api:STARTING")
        assert order.index("web-1:RUNNING") < order.index("solo:STARTING")


async def test_restart_true_makes_a_dependent_follow_its_dependency(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        f"""
        programs:
          db: {{command: {SLEEPER}, start_timeout: 0.2, autorestart: always}}
          api: {{command: {SLEEPER}, start_timeout: 0.1, depends_on: {{db: {{restart: true}}}}}}
          cron: {{command: {SLEEPER}, start_timeout: 0.1, depends_on: [db]}}
        """,
    )
    assert cfg.programs["api"].part_of == frozenset({"db"}) and cfg.programs["cron"].part_of == frozenset()
    async with supervising(cfg) as (sup, sub):
        await all_running(sup, ["all"])
        pids = {n: p.pid for n, p in sup.processes.items()}

        await sup.act("restart", ["db"], 20)  # an operator's restart of db restarts api, not cron
        await until(sub, state("api", S.RUNNING))
        assert sup.processes["api"].pid != pids["api"] and sup.processes["cron"].pid == pids["cron"]

        db_pid, api_pid = sup.processes["db"].pid, sup.processes["api"].pid
        assert db_pid is not None
        sub.drain()
        os.kill(db_pid, signal.SIGKILL)  # db crashes and is restarted: api follows, after db is back
        order = await seen_until(sub, "api", S.RUNNING)
        assert sup.processes["api"].pid != api_pid and sup.processes["cron"].pid == pids["cron"]
        assert order.index("db:RUNNING") < order.index("api:STARTING"), order

        await sup.act("stop", ["db"], 20)  # stopped: api stops with it, cron keeps running
        await until(sub, state("api", S.STOPPED))
        assert sup.processes["cron"].state is S.RUNNING
        assert not sup.store.stopped_by_hand() - {"db"}  # api's stop is not an operator's
        await sup.act("start", ["db"], 20)  # and it comes back with db
        await until(sub, state("api", S.RUNNING))

        await sup.act("stop", ["db"], 20)
        await until(sub, state("api", S.STOPPED))
        await sup.act("stop", ["api"], 20)  # an operator's stop of api itself: it stays stopped this time
        await sup.act("start", ["db"], 20)
        assert sup.processes["api"].state is S.STOPPED and not sup.processes["api"].wanted


async def test_disabled_programs_are_listed_and_started_only_by_name(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        f"""
        programs:
          app: {{command: {SLEEPER}, start_timeout: 0.1}}
          tool: {{command: {SLEEPER}, start_timeout: 0.1, disabled: true}}
        groups:
          everything: [app, tool]
        """,
    )
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("app", S.RUNNING))
        tool = sup.processes["tool"]
        assert tool.state is S.STOPPED and tool.snapshot()["disabled"] is True
        assert not sup.problems()
        for action, selector in (("start", "all"), ("restart", "all"), ("start", "everything"), ("restart", "*")):
            results = await sup.act(action, [selector], 10)  # type: ignore[arg-type]
            assert [r["name"] for r in results] == ["app"]
            assert tool.state is S.STOPPED and tool.spawns == 0
        with pytest.raises(CommandError, match="nothing to start: tool is disabled"):
            await sup.act("start", ["to*"], 10)  # a glob covering disabled programs only: said, not silent
        [result] = await sup.act("start", ["tool"], 10)
        assert result["state"] == "RUNNING" and result["disabled"] is True
        stopped = await sup.act("stop", ["all"], 10)
        assert {r["name"] for r in stopped} == {"app", "tool"}


async def test_a_program_is_ready_when_a_line_of_its_output_matches(tmp_path: Path) -> None:
    server = py(
        """
        import sys, time
        print('booting', flush=True)
        sys.stderr.write('still booting\\n'); sys.stderr.flush()
        time.sleep(0.3)
        sys.stdout.write('listening on 80'); sys.stdout.flush()
        time.sleep(0.2)
        print('80 now', flush=True)
        time.sleep(300)
        """
    )
    cfg = config(
        tmp_path,
        f"""
        programs:
          server: {{command: {server}, start_timeout: 30, ready: {{log: 'listening on \\d+ now$'}}}}
          mute: {{command: {SLEEPER}, start_timeout: 0.5, start_retries: 0, ready: {{log: '^ready$'}}}}
          after: {{command: {SLEEPER}, start_timeout: 0.1, depends_on: server}}
        """,
    )
    assert (cfg.programs["server"].ready, cfg.programs["server"].ready_log) == ("log", "listening on \\d+ now$")
    async with supervising(cfg) as (sup, sub):
        running = await until(sub, state("server", S.RUNNING), timeout_s=20)
        assert isinstance(running, StateChanged) and "matching its ready pattern" in running.reason
        assert "listening on 8080 now\n" in written(tmp_path / "state" / "logs" / "server.log")
        await until(sub, state("after", S.RUNNING))
        if sup.processes["mute"].state is not S.FATAL:  # (it may have given up while we waited for the others)
            await until(sub, state("mute", S.FATAL), timeout_s=20)
        assert "no line matching '^ready$' within 0.5s" in sup.processes["mute"].reason


@pytest.mark.parametrize("pattern", ["(?=x)", "(a)\\1", "", "[", "a" * 1001])
def test_a_ready_pattern_re2_cannot_run_is_refused_with_its_key(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"programs\.s\.ready\.log"):
        config(tmp_path, f"programs:\n  s: {{command: [x], ready: {{log: {json.dumps(pattern)}}}}}")
