"""A restart that arrives while an earlier one is still stopping the program joins it (found by the OpenAPI
conformance run: ``restart wait_s=0`` then ``restart wait_s=60`` left the program STOPPING for the minute)."""

from __future__ import annotations

from helpers import PY, DaemonHandle, wait_for


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
    """A restart asked while the program is still starting is not lost: it spawns the program once more
    (a lost one would leave the spawn count as it was, the command waiting out its wait_s)."""
    daemon.write_config(
        f"programs:\n  web: {{command: [{PY!r}, '-c', 'import time; time.sleep(600)'], start_timeout: 0.5}}\n"
    )
    daemon.start()
    for _ in range(5):
        before = daemon.program("web")
        daemon.call("restart", names=["web"], wait_s=0.0)
        wait_for(lambda before=before: daemon.program("web")["spawns"] > before["spawns"], 20, "the respawn")
        starting = daemon.program("web")  # STARTING most often (0.5 s), else already RUNNING
        [web] = daemon.call("restart", names=["web"], wait_s=20.0)
        assert web["state"] == "RUNNING", web
        assert web["spawns"] == starting["spawns"] + 1, (starting, web)
