"""One definition of healthy, told the same everywhere (foss_supervisor.commands.verdict, foss_supervisor.core.health).

A stopped (SIGSTOP) or zombie process is unhealthy at the next probe whatever the probe kind, and what
follows is its ``autorestart``; a tcp probe that connects but gets no answer fails (real servers, real
timeouts). Real processes, real sockets, real signals. (One verdict in ``/health``, ``status``, ``/metrics``
and the dashboard: tests/e2e/test_health_truth_daemon.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from helpers import PY, free_port, make_config, supervising, until, wait_for, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from foss_supervisor.base.processstates import Health, ProcessState
from foss_supervisor.base.procinfo import read_stat
from foss_supervisor.config.model import HealthConfig
from foss_supervisor.core.containment import Containment
from foss_supervisor.core.events import HealthChanged, StateChanged
from foss_supervisor.core.health import probe
from foss_supervisor.core.program_child import ProgramChild

# answers GET with 200 and "PING" with "PONG"; stays silent to anything else
SERVER = r"""
import asyncio, sys
async def handle(reader, writer):
    line = await reader.readline()
    if line.startswith(b"GET"):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    elif line.startswith(b"PING"):
        writer.write(b"PONG\n")
    await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def _probe_yaml(kind: str, port: int, threshold: int) -> str:
    common = f"interval: 0.2, timeout: 1s, failure_threshold: {threshold}"
    connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"  # a frozen server passes
    return {
        "http": f"{{http: 'http://127.0.0.1:{port}/', {common}}}",
        "tcp": f"{{tcp: {port}, {common}}}",
        "tcp-talk": f'{{tcp: {port}, send: "PING\\n", expect: PONG, {common}}}',
        "exec": f"{{exec: [{PY!r}, '-c', {connect!r}], {common}}}",
    }[kind]


async def _stopped_case(tmp: Path, kind: str, threshold: int, policy: str) -> None:
    port = free_port()
    cfg = make_config(
        tmp,
        f"""
        web:
          command: [{PY!r}, '-c', {json.dumps(SERVER)}, '{port}']
          start_timeout: 0.2
          autorestart: {policy}
          backoff: {{initial: 0s}}
          health: {_probe_yaml(kind, port, threshold)}
    """,
    )
    async with supervising(cfg) as (sup, sub):
        web = sup.processes["web"]

        def health(new: Health) -> Any:
            return lambda e: isinstance(e, HealthChanged) and e.name == "web" and e.new is new

        await until(sub, health(Health.HEALTHY), timeout_s=20)
        pid = web.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            went = await until(sub, health(Health.UNHEALTHY), timeout_s=20)
            assert isinstance(went, HealthChanged) and f"process {pid} is stopped (state T)" in went.detail
            if policy == "never":  # reported, left as it is: a few more probes, still the same process
                more = f"({threshold + 2} failures in a row)"
                await wait_until(lambda: more in web.snapshot()["health_detail"], 20, more)
                assert (web.state, web.pid, web.spawns) == (ProcessState.RUNNING, pid, 1)
                assert any(p.startswith("web is unhealthy: process") for p in sup.problems())
                os.kill(pid, signal.SIGCONT)
                await until(sub, health(Health.HEALTHY), timeout_s=20)  # it answers again: healthy, same process
                assert web.pid == pid and sup.problems() == []
            else:  # stopped (SIGTERM with SIGCONT) and started again
                await until(
                    sub,
                    lambda e: (
                        isinstance(e, StateChanged)
                        and e.name == "web"
                        and e.pid not in (pid, None)
                        and e.new is ProcessState.RUNNING
                    ),
                    timeout_s=20,
                )
                assert web.spawns == 2
                await until(sub, health(Health.HEALTHY), timeout_s=20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@settings(max_examples=8, deadline=None)
@given(
    st.sampled_from(["http", "tcp", "tcp-talk", "exec"]),
    st.integers(1, 5),
    st.sampled_from(["always", "on-failure", "never"]),
)
def test_a_stopped_process_is_unhealthy_at_the_next_probe_whatever_the_kind(
    kind: str, threshold: int, policy: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="health-") as tmp:
        asyncio.run(_stopped_case(Path(tmp), kind, threshold, policy))


# ------------------------------------------------------------------------------------------ tcp answers


# ------------------------------------------------------------------------------------------ the OS edge


def test_a_stopped_or_zombie_main_process_is_halted(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, f"x: {{command: [{PY!r}, '-c', 'import time; time.sleep(60)']}}\n").programs["x"]
    child = ProgramChild(cfg, log_path=tmp_path / "x.log", containment=Containment(), wake=lambda: None)
    sleeper = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    quitter = subprocess.Popen([PY, "-c", "pass"])
    try:
        child.pid = sleeper.pid
        assert child.halted() == ""
        os.kill(sleeper.pid, signal.SIGSTOP)
        wait_for(lambda: child.halted(), 10, "the stop seen")
        assert child.halted() == f"process {sleeper.pid} is stopped (state T): it cannot answer"
        os.kill(sleeper.pid, signal.SIGCONT)
        wait_for(lambda: child.halted() == "", 10, "the continue seen")
        child.pid = quitter.pid  # exits at once, and stays a zombie until this test reaps it
        wait_for(lambda: child.halted(), 10, "the zombie seen")
        assert child.halted() == f"process {quitter.pid} is a zombie (state Z): it cannot answer"
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
        quitter.wait(timeout=10)


def test_a_program_is_halted_only_when_no_process_of_its_tree_runs(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, f"x: {{command: [{PY!r}, '-c', 'import time; time.sleep(60)']}}\n").programs["x"]
    child = ProgramChild(cfg, log_path=tmp_path / "x.log", containment=Containment(), wake=lambda: None)
    code = "import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"
    code += "; print(w.pid, flush=True); time.sleep(60)"
    main = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    assert main.stdout is not None
    worker = int(main.stdout.readline())
    try:
        child.pid = main.pid
        os.kill(main.pid, signal.SIGSTOP)  # the main stops; its worker still runs: the program can answer
        wait_for(lambda: read_stat(main.pid).state == "T", 10, "the stop seen")  # type: ignore[union-attr]
        assert child.halted() == ""
        os.kill(worker, signal.SIGSTOP)  # now nothing of it runs
        wait_for(lambda: child.halted(), 10, "the worker's stop seen")
        assert child.halted() == f"process {main.pid} is stopped (state T): it cannot answer"
        os.kill(worker, signal.SIGCONT)
        wait_for(lambda: child.halted() == "", 10, "the worker's continue seen")
    finally:
        for pid in (worker, main.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        main.wait(timeout=10)


# ------------------------------------------------------------------------------------------ one verdict


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[str, str, bool, str, str]:
    """(server behaviour, its answer, whether it closes after it, the probe's send, the probe's expect)."""
    behaviour = draw(st.sampled_from(["answer", "silent", "close", "refuse"]))
    text = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30)
    answer = draw(text) if behaviour == "answer" else ""
    send = draw(st.just("") | text)
    expect = draw(st.just("") | text | (st.just(answer[1:4]) if len(answer) > 3 else st.just("")))
    return behaviour, answer, draw(st.booleans()), send, expect


async def _exchange(behaviour: str, answer: str, closes: bool, send: str, expect: str) -> tuple[bool, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "answer":
            writer.write(answer.encode())
            await writer.drain()
        if behaviour == "close" or (behaviour == "answer" and closes):
            writer.close()
            return
        await reader.read()  # silent, or the answer given: wait for the probe to leave

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    if behaviour == "refuse":
        server.close()
        await server.wait_closed()
    cfg = HealthConfig(kind="tcp", port=port, send=send, expect=expect, timeout_s=0.3)
    try:
        return await probe(cfg)
    finally:
        server.close()


@settings(max_examples=120, deadline=None)
@given(exchanges())
def test_a_tcp_probe_passes_only_when_it_gets_what_it_waits_for(exchange: tuple[str, str, bool, str, str]) -> None:
    behaviour, answer, _, send, expect = exchange
    ok, detail = asyncio.run(_exchange(*exchange))
    talks = bool(send or expect)
    if behaviour == "refuse":
        wanted = False
    elif not talks:
        wanted = True  # a plain tcp probe proves the port listens (the process state is checked apart)
    elif behaviour == "answer":
        wanted = expect in answer if expect else True
    else:
        wanted = False  # accepted, then silent or closed: no answer
    assert ok is wanted, detail
    if behaviour == "silent" and talks:
        assert "accepted but gave no answer within 0.3s" in detail
