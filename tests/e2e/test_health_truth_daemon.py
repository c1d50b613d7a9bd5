"""One verdict everywhere: a SIGSTOPped tcp server is unhealthy in /health, ``status``, /metrics and the
dashboard alike, and never restarted."""

from __future__ import annotations

import os
import signal
import textwrap
from typing import Any

from helpers import PY, DaemonHandle, free_port, get, health, wait_for


def _everywhere(d: DaemonHandle) -> dict[str, Any]:
    """The verdict as /health, status, /metrics and the dashboard give it."""
    code, body = health(d.port)
    metrics = get(d.port, "/metrics").text
    page = get(d.port, "/?format=json").json()
    shown = [
        line.split('"')[1]
        for line in metrics.splitlines()
        if line.startswith("foss_supervisor_health_status{") and line.endswith(" 1.0")
    ]
    return {
        "code": code,
        "health": body["status"],
        "status": d.call("status")["daemon"]["health"],
        "metrics": shown,
        "dashboard": page["health"]["status"],
    }


def test_a_sigstopped_tcp_server_is_unhealthy_everywhere_and_never_restarted(daemon: DaemonHandle) -> None:
    """Repro 30: a tcp probe kept a SIGSTOPped http.server (listen backlog 5) healthy until the backlog
    filled, then restarted it although it had autorestart: never."""
    port = free_port()
    daemon.write_config(
        textwrap.dedent(f"""\
        programs:
          web:
            command: [{PY!r}, '-m', 'http.server', '{port}', '--bind', '127.0.0.1']
            health: {{tcp: {port}, interval: 0.3, timeout: 1s, failure_threshold: 2}}
            autorestart: never
    """)
    )
    daemon.start()
    wait_for(lambda: daemon.program("web")["health"] == "healthy", 20, "web healthy")
    assert _everywhere(daemon) == {
        "code": 200,
        "health": "healthy",
        "status": "healthy",
        "metrics": ["healthy"],
        "dashboard": "healthy",
    }
    pid = daemon.program("web")["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: daemon.program("web")["health"] == "unhealthy", 20, "web unhealthy")
        web = daemon.program("web")
        assert f"process {pid} is stopped (state T)" in web["health_detail"]
        unhealthy = {
            "code": 503,
            "health": "unhealthy",
            "status": "unhealthy",
            "metrics": ["unhealthy"],
            "dashboard": "unhealthy",
        }  # the dashboard process learns it from the event stream, a moment after the control socket
        assert wait_for(lambda: (seen := _everywhere(daemon)) == unhealthy and seen, 10, "unhealthy everywhere")
        wait_for(lambda: "4 failures" in daemon.program("web")["health_detail"], 20, "more probes")
        web = daemon.program("web")
        assert (web["state"], web["pid"], web["spawns"]) == ("RUNNING", pid, 1)  # never restarted
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: daemon.program("web")["health"] == "healthy", 20, "web healthy again")
    assert get(daemon.port, "/health").status == 200
