"""Nothing a client does can stop supervision: the dashboard is a process of its own, supervised like a program.

Real daemons, real dashboard processes, real signals, and wrk for load (issue 15's wedge reproduction, run
exactly). Every wait is bounded; every process started is ended by PID.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from helpers import PY, DaemonHandle, is_gone, need, request, wait_for

SLEEPER = f"programs:\n  one: {{command: [{PY!r}, '-c', 'import time; time.sleep(600)']}}\n"


def _status_code(port: int, path: str, timeout_s: float = 3.0) -> int | str:
    try:
        return request(port, "GET", path, timeout_s=timeout_s).status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


def _dashboard(daemon: DaemonHandle) -> dict[str, object]:
    return next(s for s in daemon.call("status")["services"] if s["name"] == "@dashboard")


def _restarted_after_kill(daemon: DaemonHandle) -> int:
    """kill -9 the program ``one``; return its new PID (a restart proves supervision goes on)."""
    old = daemon.program("one")["pid"]
    os.kill(old, signal.SIGKILL)
    return int(wait_for(lambda: (p := daemon.program("one")["pid"]) not in (None, old) and p, 10, "a restart"))


@pytest.mark.timeout(60)
def test_the_dashboard_is_its_own_process_and_the_daemon_never_loads_the_web_layer(daemon: DaemonHandle) -> None:
    daemon.write_config(SLEEPER)
    daemon.start()
    assert daemon.proc is not None
    web = _dashboard(daemon)
    assert web["state"] == "RUNNING" and web["pid"] not in (None, daemon.proc.pid)
    web_proc = psutil.Process(int(web["pid"]))  # type: ignore[call-overload]
    assert web_proc.ppid() == daemon.proc.pid and "foss_supervisor.web" in web_proc.cmdline()
    assert web_proc.nice() > psutil.Process(daemon.proc.pid).nice()  # programs and the daemon come first
    assert _status_code(daemon.port, "/api/v1/health") == 200
    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    assert "aiohttp" not in maps and "jinja2" not in maps, "the daemon loaded the web layer"
    loop = daemon.call("status")["daemon"]["loop"]
    assert loop["beats"] > 0 and loop["lag_s"] is not None


@pytest.mark.timeout(90)
def test_a_killed_dashboard_is_replaced_and_programs_are_untouched(daemon: DaemonHandle) -> None:
    daemon.write_config(SLEEPER)
    daemon.start()
    program_pid = daemon.program("one")["pid"]
    old = int(_dashboard(daemon)["pid"])  # type: ignore[call-overload]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: _dashboard(daemon)["state"] == "RUNNING" and _dashboard(daemon)["pid"] != old, 20, "a new one")
    assert wait_for(lambda: _status_code(daemon.port, "/api/v1/health") == 200, 10, "the new dashboard answers")
    assert daemon.program("one")["pid"] == program_pid


@pytest.mark.timeout(120)
def test_a_wedged_dashboard_is_caught_by_its_watchdog_and_replaced(daemon: DaemonHandle) -> None:
    """SIGSTOP stands for any wedge of its event loop (the deadlock of issue 15): the pings stop."""
    daemon.write_config(SLEEPER)
    daemon.start()
    program_pid = daemon.program("one")["pid"]
    old = int(_dashboard(daemon)["pid"])  # type: ignore[call-overload]
    os.kill(old, signal.SIGSTOP)
    try:
        assert _status_code(daemon.port, "/api/v1/health", timeout_s=1.0) != 200  # it is wedged indeed
        new = wait_for(
            lambda: (d := _dashboard(daemon))["state"] == "RUNNING" and d["pid"] != old and d["pid"],
            40,
            "the watchdog to replace it",
        )
    finally:
        if not is_gone(old):
            os.kill(old, signal.SIGKILL)
    assert new and is_gone(old)
    assert wait_for(lambda: _status_code(daemon.port, "/api/v1/health") == 200, 10, "the new dashboard answers")
    assert daemon.program("one")["pid"] == program_pid
    log = (daemon.state_dir / "logs" / "@dashboard.log").read_text(errors="replace")
    assert "most recent call first" in log  # faulthandler's stacks, from the watchdog's SIGABRT
    assert "watchdog_timeout" in (daemon.state_dir / "foss-supervisor.log").read_text()


@pytest.mark.timeout(60)
def test_the_dashboard_dies_with_the_daemon(daemon: DaemonHandle) -> None:
    daemon.write_config(SLEEPER)
    daemon.start()
    assert daemon.proc is not None
    web = int(_dashboard(daemon)["pid"])  # type: ignore[call-overload]
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait(10)
    assert wait_for(lambda: is_gone(web), 10, "the dashboard to exit with its daemon")


@pytest.mark.timeout(120)
def test_the_wrk_connection_close_flood_of_issue_15_leaves_supervision_running(daemon: DaemonHandle) -> None:
    """The exact command of the report: after it, status answers, health answers, and a kill is restarted."""
    wrk = need("wrk", "apt-get install -y wrk")
    daemon.write_config(SLEEPER)
    daemon.start()
    url = f"http://127.0.0.1:{daemon.port}/favicon.ico"
    cmd = [wrk, "-t1", "-c100", "-d8s", "-H", "Connection: close", url]
    flood = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert flood.returncode == 0, flood.stderr
    status = daemon.cli("status")  # the CLI gives up (exit 3) when the daemon does not answer within 5 s
    assert status.returncode == 0, status.stdout + status.stderr
    assert wait_for(lambda: _status_code(daemon.port, "/api/v1/health") == 200, 5, "health after the flood")
    _restarted_after_kill(daemon)
    requests = int(next(line for line in flood.stdout.splitlines() if "requests in" in line).split()[0])
    assert requests > 0
