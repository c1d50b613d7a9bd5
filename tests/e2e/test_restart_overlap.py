"""A restart that arrives while an earlier one is still stopping the program joins it (found by the OpenAPI
conformance run: ``restart wait_s=0`` then ``restart wait_s=60`` left the program STOPPING for the minute)."""

from __future__ import annotations

from helpers import PY, DaemonHandle


def test_overlapping_restarts_end_running(daemon: DaemonHandle) -> None:
    daemon.write_config(
        f"programs:\n  web: {{command: [{PY!r}, '-c', 'import time; time.sleep(600)'], start_timeout: 0.1}}\n"
    )
    daemon.start()
    first = daemon.program("web")["pid"]
    for _ in range(3):  # each returns at once, the program still on its way down
        daemon.call("restart", names=["web"], wait_s=0.0)
    [web] = daemon.call("restart", names=["web"], wait_s=20.0)
    assert web["state"] == "RUNNING" and web["pid"] not in (None, first), web


def test_restarts_asked_while_it_starts_are_each_carried_out(daemon: DaemonHandle) -> None:
    """A restart asked while the program is still starting is not lost: the command returns once it ran."""
    daemon.write_config(
        f"programs:\n  web: {{command: [{PY!r}, '-c', 'import time; time.sleep(600)'], start_timeout: 0.5}}\n"
    )
    daemon.start()
    for _ in range(5):
        daemon.call("restart", names=["web"], wait_s=0.0)
        [web] = daemon.call("restart", names=["web"], wait_s=20.0)
        assert web["state"] == "RUNNING", web
