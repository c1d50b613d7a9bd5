"""Clients that reset mid-request against a real daemon are counted, never logged as errors."""

from __future__ import annotations

import json
import socket
import struct

from helpers import PY, DaemonHandle, wait_for


def test_clients_that_reset_mid_request_are_counted_not_logged_as_errors(daemon: DaemonHandle) -> None:
    """Resets while a command's body is read (after 100 Continue, so the handler is reading) and while a file
    is being sent: the dashboard logs no ERROR, counts them, and goes on serving."""
    daemon.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', 'import time; time.sleep(300)']}}\n")
    daemon.start()
    host = f"Host: 127.0.0.1:{daemon.port}\r\n".encode()
    auth = f"Authorization: {daemon.bearer()['Authorization']}\r\n".encode()  # every command needs the token
    for i in range(20):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
            if i % 2:
                s.sendall(
                    b"POST /api/commands/status HTTP/1.1\r\n" + host + auth + b"Content-Type: application/json\r\n"
                    b"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
                )
                assert s.recv(100).startswith(b"HTTP/1.1 100")
                s.sendall(b'{"names": [')
            else:
                s.sendall(b"GET /favicon.ico HTTP/1.1\r\n" + host + b"\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    log = daemon.state_dir / "logs" / "@dashboard.log"

    def counted() -> dict[str, object] | None:
        for line in log.read_text().splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("event") == "http_requests_refused" and entry.get("disconnected"):
                return entry
        return None

    wait_for(counted, 10, "the resets counted in the dashboard's log")
    errors = [line for line in log.read_text().splitlines() if '"level": "error"' in line]
    assert errors == [], errors[:2]
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
