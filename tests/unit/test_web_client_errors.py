"""Clients' failures stay out of the dashboard's error log: a malformed request or a client that resets or
leaves mid-request is counted in one info line, never logged as an ERROR with a traceback (a chaos run's
abrupt resets wrote 455 tracebacks in 4 s); errors of our own are still logged."""

from __future__ import annotations

import errno
import logging

from aiohttp import http_exceptions
from aiohttp.client_exceptions import ClientConnectionResetError
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
