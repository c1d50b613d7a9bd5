"""Real children under a real Supervisor, in-process: restarts, stops, groups, backoff, output, health."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from helpers import is_gone, make_config, need_root, py, state, supervising, until, wait_until, written

from foss_supervisor.base.processstates import Health, ProcessState
from foss_supervisor.core.events import HealthChanged, StateChanged
from foss_supervisor.core.seams import ExitWatch

S = ProcessState


async def test_sigkilled_child_comes_back_at_once(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        f"""
        app: {{command: {py("import time; time.sleep(300)")}, start_timeout: 0.2, autorestart: always}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("app", S.RUNNING))
        old_pid = sup.processes["app"].pid
        assert old_pid
        os.kill(old_pid, signal.SIGKILL)
        exited = await until(sub, state("app", S.EXITED))
        assert isinstance(exited, StateChanged) and exited.exit_code == -signal.SIGKILL
        await until(sub, state("app", S.STARTING))
        await until(sub, state("app", S.RUNNING))
        new_pid = sup.processes["app"].pid
        assert new_pid and new_pid != old_pid and psutil.pid_exists(new_pid)
        assert is_gone(old_pid)


async def test_child_ignoring_sigterm_is_killed_after_stop_timeout(tmp_path: Path) -> None:
    code = """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('ready', flush=True)
        time.sleep(300)
    """
    cfg = make_config(tmp_path, f"stubborn: {{command: {py(code)}, start_timeout: 0.1, stop_timeout: 0.5}}\n")
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("stubborn", S.RUNNING))
        log = sup.processes["stubborn"].log_path
        await _wait_file_has(log, "ready")
        t0 = time.monotonic()
        [snap] = await sup.act("stop", ["stubborn"], wait_s=10)
        elapsed = time.monotonic() - t0
        assert snap["state"] == "STOPPED"
        assert snap["exit_code"] == -signal.SIGKILL
        assert elapsed >= 0.5  # it really waited for the timeout before SIGKILL


async def _wait_file_has(path: Path, text: str, timeout_s: float = 10.0) -> str:
    def content() -> str | None:
        found = path.read_text() if path.exists() else ""
        return found if text in found else None

    return await wait_until(content, timeout_s, f"{text!r} in {path}")  # type: ignore[no-any-return]


GRANDPARENT = """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])
    print('grandchild', child.pid, flush=True)
    {after}
"""


@pytest.mark.parametrize("how", ["stopped", "crashed"])
async def test_grandchild_does_not_outlive_its_program(tmp_path: Path, how: str) -> None:
    after = "time.sleep(300)" if how == "stopped" else "time.sleep(0.5); sys.exit(1)"
    code = GRANDPARENT.format(after=after)
    cfg = make_config(tmp_path, f"fam: {{command: {py(code)}, start_timeout: 0.1, autorestart: never}}\n")
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("fam", S.RUNNING))
        content = await _wait_file_has(sup.processes["fam"].log_path, "grandchild")
        grandchild = int(content.split("grandchild")[1].split()[0])
        assert psutil.pid_exists(grandchild)
        if how == "stopped":
            await sup.act("stop", ["fam"], wait_s=10)
        else:
            await until(sub, state("fam", S.EXITED))

        await wait_until(lambda: is_gone(grandchild), 5, "the grandchild gone")


async def test_crash_loop_backs_off_with_growing_delays_then_fatal(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        f"""
        crashy:
          command: {py("import sys; sys.exit(7)")}
          start_timeout: 1
          start_retries: 3
          backoff: {{initial: 0, multiplier: 2, jitter: 0, max: 10}}
    """,
    )
    seen: list[StateChanged] = []
    async with supervising(cfg) as (sup, sub):
        while True:
            event = await until(sub, lambda e: isinstance(e, StateChanged), timeout_s=20)
            assert isinstance(event, StateChanged)
            seen.append(event)
            if event.new is S.FATAL:
                break
        assert sup.processes["crashy"].snapshot()["state"] == "FATAL"
    states = [e.new for e in seen]
    assert states == [S.STARTING, S.BACKOFF] * 4 + [S.FATAL]
    delays = [e.retry_in_s for e in seen if e.new is S.BACKOFF and e.retry_in_s is not None]
    assert delays == [0.0, 0.1, 0.2]
    assert all(e.exit_code == 7 for e in seen if e.new is S.BACKOFF)


async def test_fatal_program_starts_again_when_asked(tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    code = f"import os, sys, time; os.path.exists({str(flag)!r}) or sys.exit(2); time.sleep(300)"
    cfg = make_config(tmp_path, f"p: {{command: {py(code)}, start_timeout: 0.2, start_retries: 0}}\n")
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("p", S.FATAL))
        flag.touch()
        [snap] = await sup.act("start", ["p"], wait_s=10)
        assert snap["state"] == "RUNNING"


async def test_megabyte_without_newline_and_a_fast_writer_lose_nothing(tmp_path: Path) -> None:
    code = """
        import sys
        sys.stdout.write('x' * 1_048_576)
        sys.stdout.write('\\n')
        for i in range(100_000):
            sys.stdout.write(f'line {i}\\n')
        sys.stderr.write('done\\n')
    """
    cfg = make_config(tmp_path, f"chatty: {{command: {py(code)}, start_timeout: 0, autorestart: never}}\n")
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("chatty", S.EXITED), timeout_s=30)
        log = sup.processes["chatty"].log_path
    lines = log.read_text().splitlines()
    assert lines[0] == "x" * 1_048_576
    body = [ln for ln in lines[1:] if ln != "done"]
    assert body == [f"line {i}" for i in range(100_000)]
    assert "done" in lines


async def test_log_lines_get_timestamps_when_asked(tmp_path: Path) -> None:
    code = "import sys; print('a'); sys.stdout.flush(); print('b', file=sys.stderr)"
    cfg = make_config(
        tmp_path,
        f"""
        ts: {{command: {py(code)}, start_timeout: 0, autorestart: never, log: {{timestamps: true}}}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("ts", S.EXITED))
        lines = written(sup.processes["ts"].log_path).splitlines()
    assert sorted(line.split(" ", 1)[1] for line in lines) == ["a", "stderr: b"]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in lines)


async def test_dependency_starts_only_once_healthy_and_stops_last(tmp_path: Path, unused_tcp_port: int) -> None:
    port = unused_tcp_port
    db_code = f"""
        import socket, time
        time.sleep(0.5)
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', {port})); s.listen()
        time.sleep(300)
    """
    cfg = make_config(
        tmp_path,
        f"""
        db:
          command: {py(db_code)}
          start_timeout: 0.1
          health: {{tcp: {port}, interval: 0.1, timeout: 1, failure_threshold: 100}}
        api:
          command: {py("import time; time.sleep(300)")}
          start_timeout: 0.1
          depends_on: db
    """,
    )
    order: list[str] = []
    async with supervising(cfg) as (sup, sub):
        while True:
            event = await until(sub, lambda e: isinstance(e, StateChanged | HealthChanged), timeout_s=15)
            if isinstance(event, HealthChanged):
                order.append(f"{event.name}:{event.new}")
            elif isinstance(event, StateChanged):
                order.append(f"{event.name}:{event.new}")
                if event.name == "api" and event.new is S.RUNNING:
                    break
        assert order.index("db:healthy") < order.index("api:STARTING")
        await sup.stop_all()
        stops = [e.name for e in sub.drain() if isinstance(e, StateChanged) and e.new is S.STOPPED]
        assert stops == ["api", "db"]


async def test_unhealthy_program_is_restarted(tmp_path: Path) -> None:
    flag = tmp_path / "healthy"
    flag.touch()
    cfg = make_config(
        tmp_path,
        f"""
        svc:
          command: {py("import time; time.sleep(300)")}
          start_timeout: 0.1
          health: {{exec: [test, -f, {str(flag)!r}], interval: 0.05, timeout: 2, failure_threshold: 2}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        await until(sub, lambda e: isinstance(e, HealthChanged) and e.new is Health.HEALTHY)
        first_pid = sup.processes["svc"].pid
        flag.unlink()
        unhealthy = await until(sub, lambda e: isinstance(e, HealthChanged) and e.new is Health.UNHEALTHY)
        assert isinstance(unhealthy, HealthChanged) and "2 failures in a row" in unhealthy.detail
        stopped = await until(sub, state("svc", S.STOPPED))
        assert isinstance(stopped, StateChanged) and "unhealthy" in stopped.reason
        flag.touch()
        await until(sub, state("svc", S.RUNNING))
        assert sup.processes["svc"].pid not in (None, first_pid)


async def test_exit_codes_and_autorestart_policy(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path,
        f"""
        clean: {{command: {py("import sys; sys.exit(0)")}, start_timeout: 0}}
        expected: {{command: {py("import sys; sys.exit(3)")}, start_timeout: 0, exit_codes: [0, 3]}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        exited: set[str] = set()
        while exited != {"clean", "expected"}:
            event = await until(sub, lambda e: isinstance(e, StateChanged) and e.new is S.EXITED)
            exited.add(event.name)  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)  # a wrongly restarted program would have spawned again by now
        for name in ("clean", "expected"):
            proc = sup.processes[name]
            assert proc.state is S.EXITED and proc.wanted is False and proc.spawns == 1


async def test_missing_executable_goes_fatal_with_reason(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, "ghost: {command: [/nonexistent/bin/x], start_retries: 1}\n")
    async with supervising(cfg) as (_sup, sub):
        fatal = await until(sub, state("ghost", S.FATAL))
        assert isinstance(fatal, StateChanged) and "spawn failed" in fatal.reason


async def test_environment_is_clean_and_env_file_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("LISTEN_FDS", "1")
    env_file = tmp_path / "app.env"
    env_file.write_text("# comment\nexport FROM_FILE='yes'\nOVERRIDDEN=file\n")
    code = (
        "import os; print(sorted(k for k in os.environ if k in ('NOTIFY_SOCKET','LISTEN_FDS')),"
        " os.environ['FROM_FILE'], os.environ['OVERRIDDEN'], os.environ['FOSS_SUPERVISOR_PROGRAM'])"
    )
    cfg = make_config(
        tmp_path,
        f"""
        envy:
          command: {py(code)}
          start_timeout: 0
          autorestart: never
          env_file: {str(env_file)!r}
          env: {{OVERRIDDEN: inline}}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("envy", S.EXITED))
        out = written(sup.processes["envy"].log_path).strip()
    assert out == "[] yes inline envy"


NOTIFY_CHILD = """
    import os, socket, sys, time
    time.sleep({delay})
    if {send}:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(b'STATUS=warming up\\nREADY=1', os.environ['NOTIFY_SOCKET'])
        print('sent ready', flush=True)
    time.sleep(300)
"""


async def test_notify_program_is_running_only_after_ready(tmp_path: Path) -> None:
    code = NOTIFY_CHILD.format(delay=0.3, send=True)
    cfg = make_config(tmp_path, f"n: {{command: {py(code)}, ready: notify, start_timeout: 20}}\n")
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("n", S.STARTING))
        t0 = time.monotonic()
        running = await until(sub, state("n", S.RUNNING))
        assert isinstance(running, StateChanged) and running.reason == "sent READY=1"
        assert time.monotonic() - t0 < 15  # it did not sit out the whole start_timeout
        await _wait_file_has(sup.processes["n"].log_path, "sent ready")  # printed right after READY=1
        assert sup.processes["n"].snapshot()["status_text"] == "warming up"


async def test_notify_program_without_ready_backs_off_to_fatal(tmp_path: Path) -> None:
    code = NOTIFY_CHILD.format(delay=0, send=False)
    cfg = make_config(tmp_path, f"n: {{command: {py(code)}, ready: notify, start_timeout: 0.3, start_retries: 0}}\n")
    async with supervising(cfg) as (sup, sub):
        pid = await wait_until(lambda: sup.processes["n"].pid, 5, "n spawned")
        fatal = await until(sub, state("n", S.FATAL))
        assert isinstance(fatal, StateChanged) and "no READY=1 within 0.3s" in fatal.reason
        assert pid is not None and is_gone(pid)


async def test_user_program_runs_as_that_user(tmp_path: Path) -> None:
    need_root("a program with user: needs a root daemon")
    import pwd

    cfg = make_config(
        tmp_path,
        """
        low:
          command: ["/bin/sh", "-c", "id -u; id -g; echo $$HOME $$USER"]
          user: nobody
          cwd: /
          start_timeout: 0
          autorestart: never
    """,
    )
    async with supervising(cfg) as (sup, sub):
        await until(sub, state("low", S.EXITED))
        out = written(sup.processes["low"].log_path).split()
    nobody = pwd.getpwnam("nobody")
    assert out == [str(nobody.pw_uid), str(nobody.pw_gid), nobody.pw_dir, "nobody"]


async def test_a_bug_in_one_controller_does_not_take_the_daemon_down(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    sleeper = f"{{command: {py('import time; time.sleep(300)')}, start_timeout: 0.1}}"
    cfg = make_config(tmp_path, f"buggy: {sleeper}\nfine: {sleeper}\n")
    with capture_logs() as logs:
        async with supervising(cfg) as (sup, sub):
            buggy = sup.processes["buggy"]
            async with asyncio.timeout(10):
                while buggy.state is not S.RUNNING or sup.processes["fine"].state is not S.RUNNING:
                    await until(sub, lambda e: isinstance(e, StateChanged))
            original = buggy._child.spawn
            calls = 0

            async def fails_once(serial: int) -> tuple[int, ExitWatch]:
                nonlocal calls
                calls += 1
                if calls == 1:
                    raise RuntimeError("a bug")  # not an OSError: nothing in the controller expects it
                return await original(serial)

            buggy._child.spawn = fails_once  # type: ignore[method-assign]
            first_pid = buggy.pid
            buggy.restart()
            reset = await until(sub, lambda e: isinstance(e, StateChanged) and "internal error" in e.reason)
            assert isinstance(reset, StateChanged) and reset.name == "buggy" and reset.old is S.STARTING
            await until(sub, state("buggy", S.RUNNING), timeout_s=15)
            assert buggy.pid not in (None, first_pid)
            assert first_pid is not None and is_gone(first_pid)
            assert sup.processes["fine"].state is S.RUNNING  # the other program never noticed
    assert any(e["event"] == "controller_crashed" and e["program"] == "buggy" for e in logs)
