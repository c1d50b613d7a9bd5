"""A real daemon's /metrics passes the Prometheus lint and its counters only grow (the exposition of any data
is tests/unit/test_metrics.py)."""

from __future__ import annotations

from helpers import PY, DaemonHandle, get, wait_for
from helpers.prometheus import lint, samples


def test_a_real_daemons_counters_are_counters_and_only_grow(daemon: DaemonHandle) -> None:
    code = "import time; time.sleep(300)"
    daemon.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', {code!r}], start_timeout: 0.1}}\n")
    daemon.start()
    text = get(daemon.port, "/metrics").text
    assert lint(text) == []
    key = (("program", "app"),)
    first = samples(text, "foss_supervisor_program_spawns_total")[key]
    for _ in range(3):
        daemon.call("restart", names=["app"])
    wait_for(lambda: daemon.program("app")["state"] == "RUNNING", 10, "app running again")
    after = samples(get(daemon.port, "/metrics").text, "foss_supervisor_program_spawns_total")[key]
    assert (first, after) == (1.0, 4.0)
