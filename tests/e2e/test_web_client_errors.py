"""Clients' failures stay out of the dashboard's error log: a malformed request or a client that resets or
leaves mid-request is counted in one info line, never logged as an ERROR with a traceback (a chaos run's
abrupt resets wrote 455 tracebacks in 4 s); errors of our own are still logged."""

from __future__ import annotations

import errno
import json
import logging
import socket
import struct

from aiohttp import http_exceptions
from aiohttp.client_exceptions import ClientConnectionResetError
from helpers import PY, DaemonHandle, wait_for
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from foss_supervisor.web.serve import ClientErrorFilter

text = st.text(max_size=30)
# (exception, what the filter must make of it: "malformed", "disconnected", or None: logged as it is)
CLIENT_ERRORS = st.one_of(
    st.builds(
        lambda code, m: (
            http_exceptions.HttpProcessingError(code=code, message=m),
            "malformed" if (code or 400) < 500 else None,
        ),
        st.sampled_from([None, 0, *range(400, 600, 7), 500, 503]),
        text,
    ),
    st.builds(lambda m: (http_exceptions.BadHttpMessage(m), "malformed"), text),
    st.builds(lambda m, n: (http_exceptions.LineTooLong(m, n), "malformed"), text, st.integers(0, 10**6)),
    st.builds(lambda m: (http_exceptions.InvalidHeader(m), "malformed"), text),
    st.builds(
        lambda cls, args: (cls(*args), "disconnected"),
        st.sampled_from(
            [
                ConnectionResetError,
                BrokenPipeError,
                ConnectionAbortedError,
                ConnectionRefusedError,
                ClientConnectionResetError,
                ConnectionError,
            ]
        ),
        st.lists(text, max_size=2),
    ),
    st.builds(lambda code: (OSError(code, "x"), "disconnected"), st.sampled_from([errno.ECONNRESET, errno.EPIPE])),
    st.builds(lambda code: (OSError(code, "x"), None), st.sampled_from([errno.EMFILE, errno.ENOSPC, errno.EACCES])),
    st.just((RuntimeError("Transport is closing"), "disconnected")),
    st.builds(lambda m: (RuntimeError(m), None), text.filter(lambda m: m != "Transport is closing")),
    st.builds(lambda cls: (cls("Transport is closing"), None), st.sampled_from([RecursionError, NotImplementedError])),
    st.builds(lambda cls, m: (cls(m), None), st.sampled_from([ValueError, KeyError, TypeError, TimeoutError]), text),
    st.just((None, None)),
)


def _record(exc: BaseException | None) -> logging.LogRecord:
    info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), info)


@given(st.lists(CLIENT_ERRORS, max_size=30))
def test_only_clients_failures_are_kept_out_and_each_is_counted(
    errors: list[tuple[BaseException | None, str | None]],
) -> None:
    filt = ClientErrorFilter(every_s=3600.0)
    with capture_logs() as logs:
        kept = [filt.filter(_record(exc)) for exc, _ in errors]
    assert kept == [kind is None for _, kind in errors]
    assert filt.refused == sum(kind == "malformed" for _, kind in errors)
    assert filt.disconnected == sum(kind == "disconnected" for _, kind in errors)
    lines = [entry for entry in logs if entry["event"] == "http_requests_refused"]
    assert len(lines) == (1 if filt.refused + filt.disconnected else 0)  # one line per every_s, not one per error


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
