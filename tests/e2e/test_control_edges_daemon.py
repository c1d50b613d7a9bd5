"""The control socket's edges from outside: the CLI says "busy" on a full backlog (never a traceback), and a
real daemon closes silent and half-open clients after a bounded time but never a client waiting for a long
command."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from helpers import PY, DaemonHandle, full_backlog, wait_for

from foss_supervisor.cli.terminal import EXIT_BUSY
from foss_supervisor.control.client import call
from foss_supervisor.control.server import IDLE_TIMEOUT_S


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
    for i in range(12):  # under the per-process cap (MAX_CONNECTIONS_PER_PEER): each stays until its timeout
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(daemon.socket_path))
        if i % 6 == 0:
            s.sendall(b'{"v": 1, "id": 1, "cmd": "sta')  # half a line, then nothing
            half.append(s)
        else:
            silent.append(s)
        s.setblocking(False)
    wait_for(lambda: fds(daemon.proc.pid) >= baseline + 10, 10, "the clients accepted")  # type: ignore[union-attr]
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
