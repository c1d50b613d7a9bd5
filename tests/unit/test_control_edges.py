"""The control socket at its edges: a full backlog gets retries and then "busy" (never a traceback), and silent
or half-open clients are closed after a bounded time while a client waiting for a long command is not."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PY, DaemonHandle, wait_for

from foss_supervisor.base.pidfile import PidFile
from foss_supervisor.cli.terminal import EXIT_BUSY
from foss_supervisor.control.client import ControlClient, call
from foss_supervisor.control.protocol import encode, ok_reply
from foss_supervisor.control.server import IDLE_TIMEOUT_S
from foss_supervisor.errors import DaemonBusy, NotRunning

# ------------------------------------------------------------------------------------------ a busy socket


@contextlib.contextmanager
def full_backlog(path: Path) -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A real listening Unix socket at ``path`` whose backlog is full: the next connect gets EAGAIN."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(64):  # Linux queues backlog + 1 connections
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(path))
            except BlockingIOError:
                s.close()
                break
            fillers.append(s)
        else:
            pytest.fail("the backlog never filled")
        yield server, fillers
    finally:
        for s in fillers:
            s.close()
        server.close()


def test_the_cli_says_busy_on_a_full_backlog_never_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path}\n")
    with full_backlog(tmp_path / "control.sock"):
        result = subprocess.run(
            [PY, "-m", "foss_supervisor", "status", "--config", str(config)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == EXIT_BUSY, result.stderr
    assert "busy" in result.stderr and "backlog is full" in result.stderr
    assert "Traceback" not in result.stderr and "BlockingIOError" not in result.stderr


def test_a_busy_socket_is_retried_until_it_takes_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    with full_backlog(path) as (server, fillers):
        client = ControlClient(path, timeout_s=30.0)
        outcome: dict[str, Any] = {}

        def ask() -> None:
            try:
                with client:
                    outcome["result"] = client.call("ping")
            except BaseException as exc:  # collected for the assert below
                outcome["error"] = exc

        thread = threading.Thread(target=ask)
        thread.start()
        wait_for(lambda: client.busy_retries >= 2, 10, "the client retrying")
        for _ in fillers:  # room in the backlog again: the daemon accepted what was queued
            server.accept()[0].close()
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            request = json.loads(conn.makefile("rb").readline())
            conn.sendall(encode(ok_reply(request["id"], {"pong": True})))
            thread.join(timeout=20)
    assert outcome == {"result": {"pong": True}}


def test_a_refused_connection_is_busy_only_while_a_daemon_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nothing listens: ECONNREFUSED
    with pytest.raises(NotRunning):
        call(path, "ping", timeout_s=5.0)  # no daemon holds the lock: not running, at once
    lock = PidFile(tmp_path / "foss-supervisor.pid")
    lock.acquire()
    try:
        with pytest.raises(DaemonBusy, match="holds its lock but refused the connection"):
            call(path, "ping", timeout_s=0.5)
    finally:
        lock.release()


# ------------------------------------------------------------------------------------------ idle clients


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def drained(sock: socket.socket, got: bytearray) -> bool:
    """Read what is there; True once the daemon closed the connection."""
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
        if not chunk:
            return True
        got += chunk


def test_silent_and_half_open_clients_are_closed_but_a_long_command_is_not_cut(daemon: DaemonHandle) -> None:
    stubborn = f"[{PY!r}, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)']"
    stop_timeout = IDLE_TIMEOUT_S + 3  # the stop command outlasts the idle timeout
    daemon.write_config(
        f"programs:\n  slow: {{command: {stubborn}, start_timeout: 0.1, stop_timeout: {stop_timeout}}}\n"
    )
    daemon.start()
    wait_for(lambda: daemon.program("slow")["state"] == "RUNNING", 20, "slow running")
    assert daemon.proc is not None
    baseline = fds(daemon.proc.pid)
    silent, half = [], []
    for i in range(120):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(daemon.socket_path))
        if i % 6 == 0:
            s.sendall(b'{"v": 1, "id": 1, "cmd": "sta')  # half a line, then nothing
            half.append(s)
        else:
            silent.append(s)
        s.setblocking(False)
    wait_for(lambda: fds(daemon.proc.pid) >= baseline + 100, 10, "the clients accepted")  # type: ignore[union-attr]
    reply: dict[str, Any] = {}
    stopper = threading.Thread(
        target=lambda: reply.update(
            result=call(daemon.socket_path, "stop", timeout_s=120.0, names=["slow"], wait_s=60.0)
        )
    )
    stopper.start()
    got = {id(s): bytearray() for s in silent + half}
    try:
        wait_for(lambda: all([drained(s, got[id(s)]) for s in silent + half]), IDLE_TIMEOUT_S * 4, "clients closed")
        assert all(got[id(s)] == b"" for s in silent)
        assert all(b"request not completed (no newline)" in got[id(s)] for s in half)
        stopper.join(timeout=stop_timeout * 4)
        assert reply["result"][0]["state"] == "STOPPED"  # the long command's client got its reply
        assert daemon.call("ping")["pong"] is True
        wait_for(lambda: fds(daemon.proc.pid) <= baseline + 5, 10, "the closed clients' descriptors freed")  # type: ignore[union-attr]
    finally:
        for s in silent + half:
            s.close()
