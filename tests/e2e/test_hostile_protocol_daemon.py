"""The hostile lines of tests/unit/test_hostile_protocol.py against a real daemon's control socket: each is
answered with an error, and the daemon keeps serving."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import DaemonHandle, free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.control.protocol import VERSION


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonHandle]:
    handle = DaemonHandle(tmp_path_factory.mktemp("protocol"), free_port())
    handle.write_config()
    try:
        handle.start()
        yield handle
    finally:
        handle.cleanup()


def exchange(path: Path, line: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(line + b"\n")
        s.shutdown(socket.SHUT_WR)  # no more requests: a blank line gets no reply, the server hangs up
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


@given(st.binary(max_size=500).map(lambda b: b.replace(b"\n", b" ")))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_live_daemon_answers_hostile_lines_with_errors_and_keeps_serving(live: DaemonHandle, line: bytes) -> None:
    reply = exchange(live.socket_path, line)
    if line.strip():
        answer = json.loads(reply)
        assert answer["v"] == VERSION and answer["ok"] is False and answer["error"]["message"]
    assert live.call("ping")["phase"] == "ready"
