"""Lifecycle semantics with real children: one-shot jobs, dependency conditions, BACKOFF, replicas, limits."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from helpers import make_config, py, state, supervising, until, wait_until, written

from foss_supervisor.base.processstates import Health, ProcessState
from foss_supervisor.core.events import StateChanged

S = ProcessState


async def test_one_shot_job_runs_once_ends_exited_and_is_no_problem(tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    job = f"import time; time.sleep(0.1); open({str(runs)!r}, 'a').write('ran\\n')"
    cfg = make_config(tmp_path, f"migrate: {{command: {py(job)}, autorestart: never}}\n")
    async with supervising(cfg) as (sup, _):
        problems = await asyncio.wait_for(sup.wait_autostarted(60), 20)
        proc = sup.processes["migrate"]
        assert proc.state is S.EXITED and proc.exit_code == 0 and proc.completed
        assert problems == []
        assert runs.read_text() == "ran\n" and proc.spawns == 1


async def test_dependent_of_a_fatal_program_says_so_and_starts_once_it_is_fixed(tmp_path: Path) -> None:
    ok = tmp_path / "db-ok"
    db = f"import os, sys, time; sys.exit(1) if not os.path.exists({str(ok)!r}) else time.sleep(300)"
    cfg = make_config(
        tmp_path,
        f"""
        db: {{command: {py(db)}, start_timeout: 0.2, start_retries: 1}}
        api: {{command: {py("import time; time.sleep(300)")}, start_timeout: 0.2, depends_on: db}}
        web: {{command: {py("import time; time.sleep(300)")}, start_timeout: 0.2, depends_on: api}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        # settled as soon as db gave up: its dependents can never start on their own
        problems = await asyncio.wait_for(sup.wait_autostarted(60), 20)
        api, web = sup.processes["api"], sup.processes["web"]
        assert sup.processes["db"].state is S.FATAL
        # the dependent's controller takes the news on its next turn
        await wait_until(lambda: api.reason == "waiting for db (FATAL)", 5, "api waiting for db")
        assert api.state is S.STOPPED and api.spawns == 0 and web.reason == "waiting for api (STOPPED)"
        assert "api is waiting for db (FATAL)" in problems and "web is waiting for api (STOPPED)" in problems
        assert any(p.startswith("db is FATAL") for p in problems)
        [snap] = await asyncio.wait_for(sup.act("start", ["api"], wait_s=600), 20)  # says so, does not wait
        assert snap["state"] == "STOPPED" and snap["reason"] == "waiting for db (FATAL)"
        ok.touch()
        await sup.act("start", ["db"], wait_s=10)
        await until(sub, state("web", S.RUNNING), timeout_s=15)
        assert sup.problems() == []


async def test_init_job_gates_its_dependent_until_it_completed_successfully(tmp_path: Path) -> None:
    marker = tmp_path / "initialised"
    init = f"import time; time.sleep(0.3); open({str(marker)!r}, 'w').close()"
    app = f"import os, sys, time; time.sleep(300) if os.path.exists({str(marker)!r}) else sys.exit(7)"
    cfg = make_config(
        tmp_path,
        f"""
        init: {{command: {py(init)}, autorestart: never}}
        app:
          command: {py(app)}
          start_timeout: 0.2
          depends_on: {{init: {{condition: completed_successfully}}}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        started = await until(sub, state("app", S.STARTING))
        assert sup.processes["init"].completed
        await until(sub, state("app", S.RUNNING))
        assert isinstance(started, StateChanged) and sup.processes["app"].spawns == 1


async def test_failed_init_job_blocks_its_dependent_with_the_reason(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        f"""
        init: {{command: {py("import sys; sys.exit(4)")}, autorestart: never}}
        app:
          command: {py("import time; time.sleep(300)")}
          depends_on: {{init: {{condition: completed_successfully}}}}
    """,
    )
    async with supervising(cfg) as (sup, _):
        problems = await asyncio.wait_for(sup.wait_autostarted(60), 20)
        assert sup.processes["app"].reason == "waiting for init (EXITED with code 4)"
        assert any(p.startswith("init exited with unexpected code 4") for p in problems)


async def test_crash_looping_running_program_waits_in_backoff_and_is_a_problem(tmp_path: Path) -> None:
    crash = "import sys, time; time.sleep(0.3); sys.exit(1)"
    cfg = make_config(
        tmp_path,
        f"""
        crashy: {{command: {py(crash)}, start_timeout: 0.1, backoff: {{initial: 2, jitter: 0}}}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        backoff = await until(sub, state("crashy", S.BACKOFF))
        assert isinstance(backoff, StateChanged) and backoff.old is S.EXITED and backoff.retry_in_s == 2.0
        snap = sup.processes["crashy"].snapshot()
        assert snap["state"] == "BACKOFF" and snap["next_attempt_at"] is not None and 0 < snap["retry_in_s"] <= 2.0
        assert any(p.startswith("crashy is crash-looping (BACKOFF)") for p in sup.problems())


async def test_replica_number_reaches_the_health_probe(tmp_path: Path) -> None:
    touch = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(300)"
    cfg = make_config(
        tmp_path,
        f"""
        svc:
          command: [{sys.executable!r}, '-c', {touch!r}, 'ok-{{replica}}']
          cwd: {str(tmp_path)!r}
          replicas: 2
          start_timeout: 0.1
          health: {{exec: [test, -f, {str(tmp_path / "ok-{replica}")!r}], interval: 0.05, failure_threshold: 1}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        async with asyncio.timeout(15):
            while not all(sup.processes[f"svc-{i}"].health is Health.HEALTHY for i in (0, 1)):
                await until(sub, lambda e: True)
        assert {p.name for p in tmp_path.glob("ok-*")} == {"ok-0", "ok-1"}


async def test_umask_and_resource_limits_apply_in_the_child(tmp_path: Path) -> None:
    show = (
        "import os, resource; m = os.umask(0); "
        "print(oct(m), resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_CORE), "
        "os.getppid(), flush=True)"
    )
    cfg = make_config(
        tmp_path,
        f"""
        limited:
          command: {py(show)}
          autorestart: never
          umask: "027"
          rlimits: {{nofile: "256:512", core: 0}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("limited", S.EXITED))
        out = written(sup.processes["limited"].log_path).split()
    assert out[:5] == ["0o27", "(256,", "512)", "(0,", "0)"]
    assert int(out[5]) == os.getpid()  # prlimit exec'd the program in place: its parent is the daemon


async def test_start_reports_a_program_whose_next_attempt_is_far_off_instead_of_waiting(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        f"""
        broken: {{command: {py("import sys; sys.exit(2)")}, backoff: {{initial: 120, max: 120}}}}
        after: {{command: {py("import time; time.sleep(300)")}, start_timeout: 0.1, depends_on: broken}}
    """,
    )
    async with supervising(cfg) as (sup, _):
        problems = await asyncio.wait_for(sup.wait_autostarted(600), 30)
        assert sup.processes["broken"].state is S.BACKOFF
        assert any(p.startswith("broken is crash-looping (BACKOFF)") and "retry in 120" in p for p in problems)
        assert "after is waiting for broken (BACKOFF)" in problems
