"""The control client at the socket's edges, in-process: a full backlog is retried until it takes the
connection, and a refused connection is "busy" only while a daemon holds the lock (the CLI and a real
daemon at these edges: tests/e2e/test_control_edges_daemon.py)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import full_backlog, wait_for

from foss_supervisor.base.pidfile import PidFile
from foss_supervisor.control.client import ControlClient, call
from foss_supervisor.control.protocol import encode, ok_reply
from foss_supervisor.errors import DaemonBusy, NotRunning

# ------------------------------------------------------------------------------------------ a busy socket


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
