"""A real daemon's /metrics passes the Prometheus lint and its counters only grow (the exposition of any data
is tests/unit/test_metrics.py)."""

from __future__ import annotations

import urllib.request

from helpers import PY, DaemonHandle, owner_headers, wait_for
from helpers.prometheus import lint, samples


def _metrics(port: int) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=owner_headers(port))
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.read().decode())


def test_a_real_daemons_counters_are_counters_and_only_grow(daemon: DaemonHandle) -> None:
    code = "import time; time.sleep(300)"
    daemon.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', {code!r}], start_timeout: 0.1}}\n")
    daemon.start()
    text = _metrics(daemon.port)
    assert lint(text) == []
    key = (("program", "app"),)
    first = samples(text, "foss_supervisor_program_spawns_total")[key]
    for _ in range(3):
        daemon.call("restart", names=["app"])
    wait_for(lambda: daemon.program("app")["state"] == "RUNNING", 10, "app running again")
    after = samples(_metrics(daemon.port), "foss_supervisor_program_spawns_total")[key]
    assert (first, after) == (1.0, 4.0)
