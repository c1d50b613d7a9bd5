"""An event loop error that repeats is logged once per interval, with the count of the ones left out."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from foss_supervisor.base.loopguard import LoopErrorLog


def test_a_repeated_event_loop_error_is_logged_once_per_interval() -> None:
    now = [0.0]
    handler = LoopErrorLog(interval_s=10.0, clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        with capture_logs() as logs:
            for second in range(25):  # what the loop reports while accept() fails with EMFILE
                now[0] = float(second)
                handler(loop, {"message": "socket.accept() out of system resource", "exception": OSError(24, "EMFILE")})
            handler(loop, {"message": "another failure"})
    finally:
        loop.close()
    lines = [(e["message"], e["skipped_since_last"]) for e in logs if e["event"] == "event_loop_error"]
    accept = "socket.accept() out of system resource"
    assert lines == [(accept, 0), (accept, 9), (accept, 9), ("another failure", 0)]
