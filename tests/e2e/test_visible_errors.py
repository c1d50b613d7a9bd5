"""Errors an operator must see are in ``status --json`` and on ``/health``, not only in the log.

A refused reload stays visible (``/health`` degraded: 200, under ``warnings``, since every program runs
on the old config) until a reload succeeds; a crash-looping program in BACKOFF makes ``/health``
unhealthy. Real daemons, real HTTP; every wait is bounded.
"""

from __future__ import annotations

import json
import signal

import pytest
from helpers import PY, DaemonHandle, health, wait_for

from foss_supervisor.errors import CommandError

SLEEPER = f"command: [{PY!r}, '-c', 'import time; time.sleep(300)']\n    start_timeout: 0.1"
CRASHER = (
    f"command: [{PY!r}, '-c', 'import sys; sys.exit(3)']\n    start_timeout: 0.5\n"
    "    backoff: {initial: 30, max: 30, jitter: 0}"
)


def status_json(daemon: DaemonHandle, key: str) -> list[str]:
    result = daemon.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["daemon"][key])


def test_a_refused_reload_is_shown_as_degraded_until_a_reload_succeeds(daemon: DaemonHandle) -> None:
    """A typo refused by reload must not turn /health to 503 while every program runs on the old config:
    a monitor that restarts the host on 503 would restart a healthy host into a file it cannot load."""
    daemon.write_config(f"programs:\n  keep:\n    {SLEEPER}\n")
    daemon.start()
    assert daemon.proc is not None
    good = daemon.config_path.read_text()
    code, body = health(daemon.port)
    assert (code, body["status"]) == (200, "healthy")
    daemon.config_path.write_text(good + "  broken:\n    command: 42\n")
    with pytest.raises(CommandError, match="config refused"):
        daemon.call("reload")
    warnings = status_json(daemon, "warnings")
    assert len(warnings) == 1 and warnings[0].startswith("last reload refused: config refused")
    assert "programs.broken.command" in warnings[0] and status_json(daemon, "problems") == []
    code, body = health(daemon.port)
    assert (code, body["status"], body["problems"], body["warnings"]) == (200, "degraded", [], warnings)
    with pytest.raises(CommandError):  # a dry run is a check: it says why to its caller and changes nothing
        daemon.call("reload", dry_run=True)
    assert status_json(daemon, "warnings") == warnings
    daemon.config_path.write_text(good)  # fixed, but not yet applied: still shown
    assert status_json(daemon, "warnings") == warnings
    daemon.proc.send_signal(signal.SIGHUP)  # a reload that succeeds clears it
    wait_for(lambda: not status_json(daemon, "warnings"), 15, "the refusal cleared")
    assert health(daemon.port)[1]["status"] == "healthy"
    daemon.config_path.write_text(good + "x: &r [*r]\n")  # refused through SIGHUP too
    daemon.proc.send_signal(signal.SIGHUP)
    found = wait_for(lambda: status_json(daemon, "warnings"), 15, "the SIGHUP refusal shown")
    assert "last reload refused" in found[0] and health(daemon.port)[0] == 200
    assert daemon.program("keep")["state"] == "RUNNING"


def test_a_crash_looping_program_in_backoff_makes_health_unhealthy(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  fine:\n    {SLEEPER}\n  crashy:\n    {CRASHER}\n")
    daemon.start()
    wait_for(lambda: daemon.program("crashy")["state"] == "BACKOFF", 15, "crashy in BACKOFF")
    code, body = health(daemon.port)
    assert code == 503
    assert any(p.startswith("crashy is crash-looping (BACKOFF)") for p in body["problems"]), body
    assert not any(p.startswith("fine") for p in body["problems"])
    daemon.call("stop", names=["crashy"], wait_s=10.0)  # the operator took it out: healthy again
    code, body = health(daemon.port)
    assert code == 200 and body["problems"] == []
