"""The ``supervision`` schema: the daemon's journal queried beside the layers, through the same read-only gate."""

from __future__ import annotations

import json
from typing import Any

from helpers import DaemonHandle, wait_for

CONFIG = """
programs:
  flaky: {command: "sh -c 'sleep 0.2; exit 3'", autorestart: always}
  steady: {command: "sleep 1000"}
pipelines:
  orders: {on_new_files: false, demo_data: false}
"""


def _query(daemon: DaemonHandle, sql: str) -> dict[str, Any]:
    out = daemon.cli("query", sql, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_restarts_exits_audit_and_samples_are_one_select_each(daemon: DaemonHandle) -> None:
    daemon.write_config(CONFIG, extra="history: {sample_interval: 0.3s}")
    daemon.start()
    assert daemon.cli("ctl", "stop", "steady").returncode == 0

    def exits() -> list[list[Any]]:
        sql = "SELECT name, exit_code, count(*) FROM supervision.exits WHERE name = 'flaky' GROUP BY ALL"
        return _query(daemon, sql)["rows"]  # type: ignore[no-any-return]

    rows = wait_for(lambda: (r := exits()) and r[0][2] >= 2 and r, 30, "two exits of flaky in supervision.exits")
    assert rows[0][:2] == ["flaky", 3]
    audit = _query(daemon, "SELECT command, ok, via, args->>'$.names[0]' FROM supervision.commands")["rows"]
    assert ["stop", True, "control", "steady"] in audit
    peak = (
        "SELECT name, max(rss_bytes) > 0, count(*) >= 1 FROM supervision.samples"
        " WHERE kind = 'program' AND name = 'flaky' GROUP BY ALL"
    )
    wait_for(lambda: _query(daemon, peak)["rows"] == [["flaky", True, True]], 30, "flaky's samples")
    # descriptors and storage I/O of every tree (rates from its second sample on), the probes' verdict of each
    # program at each sample (issue 19)
    daemon_io = "SELECT min(fds) >= 3, count(write_bytes_per_s) > 0 FROM supervision.samples WHERE kind = 'daemon'"
    wait_for(lambda: _query(daemon, daemon_io)["rows"] == [[True, True]], 30, "the daemon's descriptors and I/O")
    health = "SELECT DISTINCT health FROM supervision.samples WHERE kind = 'program' AND name = 'flaky'"
    assert _query(daemon, health)["rows"] == [["unknown"]]  # no probe declared: never judged
    # one row per exit (EXITED then BACKOFF carry the same code: counted once), with its run time and lines
    per_exit = (
        "SELECT count(*) = count(DISTINCT ts), bool_and(ran_s > 0), bool_and(state_after IN ('EXITED', 'BACKOFF'))"
        " FROM supervision.exits WHERE name = 'flaky'"
    )
    assert _query(daemon, per_exit)["rows"] == [[True, True, True]]
    seen = "SELECT count(*) FROM supervision.state_changes WHERE name = 'flaky' AND exit_code = 3"
    exits_kept = "SELECT count(*) FROM supervision.exits WHERE name = 'flaky'"
    assert _query(daemon, exits_kept)["rows"][0][0] < _query(daemon, seen)["rows"][0][0]
    host = _query(daemon, "SELECT count(*) > 0, bool_and(memory_available_bytes > 0) FROM supervision.host")
    assert host["rows"] == [[True, True]]
    # the same gate as any query: no write, no file read, even here
    refused = daemon.cli("query", "DELETE FROM supervision.events")
    assert refused.returncode == 1 and "read-only" in refused.stderr
