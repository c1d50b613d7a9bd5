"""A flood of local control clients does not stop supervision: with 300 connections from 10 processes (idle
ones, ones asking ``status`` in a loop, ones that never read their replies; the chaos suite's
``control_flood`` pattern), a killed program is restarted, ``status`` from the CLI answers, the dashboard's
pages and commands answer 200 (its process is admitted beside the cap, never told busy), no request
read is left without its reply, and the daemon's descriptors are all freed after it (the caps themselves, in-process:
tests/unit/test_control_admission.py)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from helpers import PY, REPO, DaemonHandle, kill_tree_by_pid, wait_for
from helpers.web import command, get

SLEEPER = f"command: [{PY!r}, '-c', 'import time; time.sleep(300)']\n    start_timeout: 0.1"
CLIENTS = REPO / "benchmarks" / "chaos_clients.py"


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_control_flood_does_not_stop_supervision(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  a:\n    {SLEEPER}\n")
    daemon.start()
    wait_for(lambda: daemon.program("a")["state"] == "RUNNING", 20, "a running")
    assert daemon.proc is not None
    baseline = fds(daemon.proc.pid)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    total = max(30, min(300, soft - 100))  # each flood process keeps its share within this limit
    spec = {
        "control": str(daemon.socket_path),
        "seconds": 600,
        "patterns": {"control_flood": {"connections": total, "processes": 10}},
    }
    flood = subprocess.Popen(
        [PY, str(CLIENTS), json.dumps(spec)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_for(lambda: fds(daemon.proc.pid) > baseline + 30, 30, "the flood under way")  # type: ignore[union-attr]
        for _ in range(3):
            old = daemon.program("a")["pid"]
            os.kill(old, signal.SIGKILL)

            def restarted(old: int = old) -> bool:
                now = daemon.program("a")
                return bool(now["state"] == "RUNNING" and now["pid"] != old)

            wait_for(restarted, 20, "a restarted during the flood")
            status = daemon.cli("status", "--json", timeout_s=30)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["programs"][0]["name"] == "a"
            # more at once than the dashboard's pool of 8 holds: it opens new connections under the flood
            with ThreadPoolExecutor(16) as pool:
                pages = list(pool.map(lambda _: get(daemon.port, "/api/status"), range(16)))
                answers = list(pool.map(lambda _: command(daemon.port, "status"), range(16)))
            assert [r.status for r in pages + answers] == [200] * 32, [r.text for r in pages + answers]
        flood.terminate()
        out, _ = flood.communicate(timeout=60)
    finally:
        kill_tree_by_pid(flood.pid)
    outcome: dict[str, Any] = json.loads(out.strip().splitlines()[-1])["control_flood"]
    assert outcome["notes"].get("status answered", 0) > 0
    assert outcome["notes"].get("status: told busy", 0) + outcome["notes"].get("idle: told busy", 0) > 0
    assert not outcome["errors"].get("lost"), outcome  # no request read and then left without a reply
    assert daemon.call("ping")["pong"] is True
    wait_for(lambda: fds(daemon.proc.pid) <= baseline + 5, 30, "the flood's descriptors freed")  # type: ignore[union-attr]
