"""Floods against a real daemon: idle connections never reach the daemon, and a flood beyond the open-files
limit leaves /health and the CLI working."""

from __future__ import annotations

import os
import signal
import socket

import psutil
import pytest
from helpers import PY, DaemonHandle, wait_for


def _tcp_clients(pid: int, port: int) -> int:
    return sum(
        1
        for c in psutil.Process(pid).net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


@pytest.mark.timeout(90)
def test_a_flood_of_idle_connections_never_reaches_the_daemon(daemon: DaemonHandle) -> None:
    """The dashboard process holds the connections; the daemon holds none, supervises and answers its socket."""
    daemon.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', 'import time; time.sleep(300)']}}\n")
    daemon.start()
    assert daemon.proc is not None
    web_pid = daemon.call("status")["services"][0]["pid"]
    socks = []
    try:
        for _ in range(700):  # idle sockets that never send a request
            socks.append(socket.create_connection(("127.0.0.1", daemon.port), timeout=5))
        conn = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        conn.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nConnection: close\r\n\r\n".encode())
        assert conn.recv(100).startswith(b"HTTP/1.1 200")
        conn.close()
        assert daemon.call("ping")["pong"]  # the control socket is fine too
        assert wait_for(lambda: _tcp_clients(web_pid, daemon.port) >= 700, 10, "the dashboard holds them")
        assert _tcp_clients(daemon.proc.pid, daemon.port) == 0
        pid = daemon.call("status")["programs"][0]["pid"]
        os.kill(pid, signal.SIGKILL)  # supervision goes on meanwhile
        wait_for(lambda: daemon.call("status")["programs"][0]["pid"] not in (None, pid), 10, "a restart")
    finally:
        for s in socks:
            s.close()


@pytest.mark.timeout(90)
def test_a_flood_beyond_the_open_files_limit_leaves_health_and_the_cli_working(daemon: DaemonHandle) -> None:
    """256 descriptors in all: the dashboard admits 85, answers the rest 503 (at once past its descriptor
    budget), and serves health from its reserve."""
    import resource

    daemon.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', 'import time; time.sleep(300)']}}\n")

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    daemon.start(preexec_fn=low_limit)
    socks = []
    try:
        for _ in range(400):  # more idle connections than the dashboard has descriptors
            socks.append(socket.create_connection(("127.0.0.1", daemon.port), timeout=5))
        conn = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        conn.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nConnection: close\r\n\r\n".encode())
        conn.settimeout(10)
        assert conn.recv(100).startswith(b"HTTP/1.1 200")
        conn.close()
        assert daemon.call("status")["programs"][0]["state"] == "RUNNING"  # the control socket answers
        assert daemon.cli("status").returncode == 0
    finally:
        for s in socks:
            s.close()
